# GATEWAY_SANITIZE: "" (none), "address" (ASan + UBSan) or "thread" (TSan alone).
set(GATEWAY_SANITIZE "" CACHE STRING "Sanitizer build: address (ASan+UBSan) or thread")
set_property(CACHE GATEWAY_SANITIZE PROPERTY STRINGS "" address thread)

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
