# gateway_find_pkg_library(PREFIX MODULE HEADER NAME) finds a library that
# Debian ships with a pkg-config file MODULE (pkg-config only gives hints):
# PREFIX_INCLUDE_DIR, the folder with HEADER; PREFIX_LIBRARY, libNAME.a for
# GATEWAY_STATIC and the shared library otherwise; PREFIX_VERSION, the
# version pkg-config reports (empty without it).
function(gateway_find_pkg_library prefix module header name)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(PC_${prefix} QUIET ${module})
  find_path(${prefix}_INCLUDE_DIR NAMES ${header} HINTS ${PC_${prefix}_INCLUDE_DIRS})
  if(GATEWAY_STATIC)
    find_library(${prefix}_LIBRARY NAMES lib${name}.a HINTS ${PC_${prefix}_LIBRARY_DIRS})
  else()
    find_library(${prefix}_LIBRARY NAMES ${name} HINTS ${PC_${prefix}_LIBRARY_DIRS})
  endif()
  set(${prefix}_VERSION "${PC_${prefix}_VERSION}" PARENT_SCOPE)
endfunction()
