# Every dependency comes from Debian's packages (see README: libasio-dev,
# node-llhttp, zlib1g-dev, libssl-dev, libhiredis-dev, catch2).
find_package(Asio REQUIRED)
find_package(LLHTTP REQUIRED)
find_package(Hiredis 0.14 REQUIRED)
if(GATEWAY_STATIC)
  set(ZLIB_USE_STATIC_LIBS ON)
  set(OPENSSL_USE_STATIC_LIBS ON)
endif()
find_package(ZLIB REQUIRED)
find_package(OpenSSL REQUIRED COMPONENTS SSL Crypto)
