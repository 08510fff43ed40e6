# c-ares from Debian's libc-ares-dev (1.18), found through its pkg-config
# file `libcares` (the package ships no CMake config). The static library
# for GATEWAY_STATIC, the shared one otherwise. Defines Cares::cares.
include(PkgLibrary)
gateway_find_pkg_library(CARES libcares ares.h cares)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Cares
  REQUIRED_VARS CARES_LIBRARY CARES_INCLUDE_DIR VERSION_VAR CARES_VERSION)
if(Cares_FOUND AND NOT TARGET Cares::cares)
  add_library(Cares::cares UNKNOWN IMPORTED)
  set_target_properties(Cares::cares PROPERTIES
    IMPORTED_LOCATION "${CARES_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CARES_INCLUDE_DIR}")
  if(GATEWAY_STATIC)
    set_property(TARGET Cares::cares PROPERTY INTERFACE_COMPILE_DEFINITIONS CARES_STATICLIB)
  endif()
endif()
