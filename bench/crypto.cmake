# Secure-aggregation benchmark (crypto/): build/bench/secagg_bench.
if(TARGET ff_crypto)
  add_executable(secagg_bench ${CMAKE_CURRENT_LIST_DIR}/secagg_bench.c)
  target_compile_options(secagg_bench PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(secagg_bench PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
  target_link_libraries(secagg_bench PRIVATE ff_crypto m)
  set_target_properties(secagg_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()
