# dp_bench: DP-SGD (per-example clipping + noise) throughput vs non-private training.
if(TARGET ff_models AND TARGET ff_privacy)
  add_executable(dp_bench ${CMAKE_CURRENT_LIST_DIR}/dp_bench.c)
  target_compile_options(dp_bench PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(dp_bench PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
                             FF_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(dp_bench PRIVATE ff_models ff_privacy)
  set_target_properties(dp_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()
