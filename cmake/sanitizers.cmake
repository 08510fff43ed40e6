# GATEWAY_SANITIZE (options.cmake): "" (none), "address" (ASan + UBSan) or
# "thread" (TSan alone).

if(GATEWAY_SANITIZE STREQUAL "")
  set(_san_flags "")
elseif(GATEWAY_SANITIZE STREQUAL "address")
  set(_san_flags -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
elseif(GATEWAY_SANITIZE STREQUAL "thread")
  set(_san_flags -fsanitize=thread -fno-omit-frame-pointer)
else()
  message(FATAL_ERROR "GATEWAY_SANITIZE must be empty, 'address' or 'thread', not '${GATEWAY_SANITIZE}'")
endif()

if(_san_flags)
  target_compile_options(gateway_options INTERFACE ${_san_flags})
  target_link_options(gateway_options INTERFACE ${_san_flags})
  target_compile_definitions(gateway_options INTERFACE GATEWAY_SANITIZED=1)
endif()
