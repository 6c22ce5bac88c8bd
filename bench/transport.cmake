# transport_bench: broadcast and upload of a fusion-base-sized model over loopback mutual TLS,
# against a raw OpenSSL TLS socket copy measured in the same run.
if(TARGET ff_transport)
  add_executable(transport_bench ${CMAKE_CURRENT_LIST_DIR}/transport_bench.c)
  target_compile_options(transport_bench PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(transport_bench PRIVATE _GNU_SOURCE)
  target_link_libraries(transport_bench PRIVATE ff_transport PkgConfig::OPENSSL Threads::Threads)
  set_target_properties(transport_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()
