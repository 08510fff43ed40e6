# GATEWAY_STATIC=ON (options.cmake) links the gateway binary fully statically
# (glibc included).
if(GATEWAY_STATIC AND NOT GATEWAY_SANITIZE STREQUAL "")
  message(FATAL_ERROR "GATEWAY_STATIC cannot be combined with GATEWAY_SANITIZE")
endif()
function(gateway_make_static target)
  if(GATEWAY_STATIC)
    target_link_options(${target} PRIVATE -static)
    target_compile_definitions(${target} PRIVATE GATEWAY_STATIC_BUILD=1)
  endif()
endfunction()
