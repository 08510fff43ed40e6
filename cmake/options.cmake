# gateway_options: the compile settings every target of the project shares.
add_library(gateway_options INTERFACE)
target_compile_features(gateway_options INTERFACE cxx_std_20)
target_compile_definitions(gateway_options INTERFACE
  ASIO_STANDALONE
  ASIO_NO_DEPRECATED
  # Asio recycles coroutine frames per thread; the default cache of 2 frames is
  # smaller than one request's chain of nested awaitables, so every request
  # would reach malloc. 16 covers the chain with room to spare.
  ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=16
  GATEWAY_VERSION="${PROJECT_VERSION}")
target_include_directories(gateway_options INTERFACE "${PROJECT_SOURCE_DIR}")
find_package(Threads REQUIRED)
target_link_libraries(gateway_options INTERFACE Threads::Threads)
