# GATEWAY_IO_URING=ON (options.cmake) builds every target on Asio's io_uring
# backend instead of its epoll reactor. Asio chooses its backend at compile
# time, per program: ASIO_HAS_IO_URING turns the io_uring service on and
# ASIO_DISABLE_EPOLL makes it the only one (sockets, timers and descriptors all
# go through the ring). liburing comes from Debian's liburing-dev, found
# through its pkg-config file `liburing` like c-ares. Defines GATEWAY_IO_URING=1
# so the code can name the backend (start-up check, --version).
#
# GATEWAY_IO_URING_RUNTIME=ON (the default for Release) instead keeps every
# target on epoll and gives the gateway binary a second copy of its library
# on io_uring (gateway/CMakeLists.txt), chosen at start-up; it needs the
# same liburing, found here.
if(GATEWAY_IO_URING AND GATEWAY_IO_URING_RUNTIME)
  message(FATAL_ERROR "GATEWAY_IO_URING=ON (io_uring only) and GATEWAY_IO_URING_RUNTIME=ON (both, chosen at run time) "
                      "exclude each other; turn one off")
endif()
if(NOT GATEWAY_IO_URING AND NOT GATEWAY_IO_URING_RUNTIME)
  return()
endif()
include(PkgLibrary)
gateway_find_pkg_library(URING liburing liburing.h uring)
if(NOT URING_LIBRARY OR NOT URING_INCLUDE_DIR)
  message(FATAL_ERROR "GATEWAY_IO_URING=ON and GATEWAY_IO_URING_RUNTIME=ON need liburing (Debian: apt-get install "
                      "liburing-dev); configure with -DGATEWAY_IO_URING=OFF -DGATEWAY_IO_URING_RUNTIME=OFF for epoll alone")
endif()
message(STATUS "io_uring backend: liburing ${URING_VERSION} (${URING_LIBRARY})")
if(GATEWAY_IO_URING_RUNTIME)
  message(STATUS "io_uring backend: a second copy of the gateway library, chosen at run time (--io-backend)")
  return()
endif()
target_include_directories(gateway_options SYSTEM INTERFACE "${URING_INCLUDE_DIR}")
target_compile_definitions(gateway_options INTERFACE ASIO_HAS_IO_URING ASIO_DISABLE_EPOLL GATEWAY_IO_URING=1)
target_link_libraries(gateway_options INTERFACE "${URING_LIBRARY}")
# Asio 1.22's cancellations reach the ring with a stale user_data; the header
# replaces the two prep helpers it calls (see the header). Every translation
# unit gets it, C++ only (the C sources use no Asio), so that every inline
# copy of Asio's io_uring service the linker may keep has the fix.
target_compile_options(gateway_options INTERFACE
  "$<$<COMPILE_LANGUAGE:CXX>:SHELL:-include ${PROJECT_SOURCE_DIR}/gateway/net/io_uring_sqe_fix.hpp>")
