# hiredis from Debian's libhiredis-dev (0.14): the header and both the shared
# and the static library (the static one for GATEWAY_STATIC). Defines the
# imported target Hiredis::hiredis.
find_path(HIREDIS_INCLUDE_DIR NAMES hiredis/async.h)
if(GATEWAY_STATIC)
  find_library(HIREDIS_LIBRARY NAMES libhiredis.a)
else()
  find_library(HIREDIS_LIBRARY NAMES hiredis)
endif()
if(HIREDIS_INCLUDE_DIR AND EXISTS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis.h")
  file(STRINGS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis.h" _maj REGEX "#define HIREDIS_MAJOR")
  file(STRINGS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis.h" _min REGEX "#define HIREDIS_MINOR")
  file(STRINGS "${HIREDIS_INCLUDE_DIR}/hiredis/hiredis.h" _pat REGEX "#define HIREDIS_PATCH")
  string(REGEX MATCH "[0-9]+" _maj "${_maj}")
  string(REGEX MATCH "[0-9]+" _min "${_min}")
  string(REGEX MATCH "[0-9]+" _pat "${_pat}")
  set(HIREDIS_VERSION "${_maj}.${_min}.${_pat}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Hiredis
  REQUIRED_VARS HIREDIS_LIBRARY HIREDIS_INCLUDE_DIR VERSION_VAR HIREDIS_VERSION)
if(Hiredis_FOUND AND NOT TARGET Hiredis::hiredis)
  add_library(Hiredis::hiredis UNKNOWN IMPORTED)
  set_target_properties(Hiredis::hiredis PROPERTIES
    IMPORTED_LOCATION "${HIREDIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${HIREDIS_INCLUDE_DIR}")
endif()
