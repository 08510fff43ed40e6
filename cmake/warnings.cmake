# gateway_warnings: the warning set every target of ours builds clean with
# (errors with GATEWAY_WERROR, options.cmake).
add_library(gateway_warnings INTERFACE)
target_compile_options(gateway_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align
    -Woverloaded-virtual -Wimplicit-fallthrough>
  # g++ 12 reports coroutine frames freed by Asio's frame allocator as
  # mismatched new/delete (a known false positive).
  $<$<CXX_COMPILER_ID:GNU>:-Wno-mismatched-new-delete>
  $<$<BOOL:${GATEWAY_WERROR}>:-Werror>)
