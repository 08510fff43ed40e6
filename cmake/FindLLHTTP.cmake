# llhttp from Debian's node-llhttp, which ships the generated C sources
# (/usr/share/llhttp/*.c) and the header (/usr/share/include/llhttp/llhttp.h)
# but no library: build them here into the static target LLHTTP::llhttp.
find_path(LLHTTP_INCLUDE_DIR NAMES llhttp.h
  PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include)
find_path(LLHTTP_SOURCE_DIR NAMES llhttp.c api.c http.c
  PATHS /usr/share/llhttp)
if(LLHTTP_INCLUDE_DIR AND EXISTS "${LLHTTP_INCLUDE_DIR}/llhttp.h")
  file(STRINGS "${LLHTTP_INCLUDE_DIR}/llhttp.h" _maj REGEX "#define LLHTTP_VERSION_MAJOR")
  file(STRINGS "${LLHTTP_INCLUDE_DIR}/llhttp.h" _min REGEX "#define LLHTTP_VERSION_MINOR")
  file(STRINGS "${LLHTTP_INCLUDE_DIR}/llhttp.h" _pat REGEX "#define LLHTTP_VERSION_PATCH")
  string(REGEX MATCH "[0-9]+" _maj "${_maj}")
  string(REGEX MATCH "[0-9]+" _min "${_min}")
  string(REGEX MATCH "[0-9]+" _pat "${_pat}")
  set(LLHTTP_VERSION "${_maj}.${_min}.${_pat}")
endif()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LLHTTP
  REQUIRED_VARS LLHTTP_INCLUDE_DIR LLHTTP_SOURCE_DIR VERSION_VAR LLHTTP_VERSION)
if(LLHTTP_FOUND AND NOT TARGET LLHTTP::llhttp)
  add_library(gateway_llhttp STATIC
    "${LLHTTP_SOURCE_DIR}/api.c" "${LLHTTP_SOURCE_DIR}/http.c" "${LLHTTP_SOURCE_DIR}/llhttp.c")
  target_include_directories(gateway_llhttp SYSTEM PUBLIC "${LLHTTP_INCLUDE_DIR}")
  set_target_properties(gateway_llhttp PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
  target_link_libraries(gateway_llhttp PRIVATE gateway_options)
  add_library(LLHTTP::llhttp ALIAS gateway_llhttp)
endif()
