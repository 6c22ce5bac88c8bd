# model_bench: fusion-model throughput, GFLOP/s vs cblas_sgemm, peak RSS, PyTorch peer ratio.
if(TARGET ff_models)
  add_executable(model_bench ${CMAKE_CURRENT_SOURCE_DIR}/model_bench.c)
  target_compile_options(model_bench PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(model_bench PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
                             FF_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  target_link_libraries(model_bench PRIVATE ff_models)
  set_target_properties(model_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()
