# bench_eval: ff_eval_binary on 1M rows against the floor it cannot beat (sorting the scores).
add_executable(bench_eval ${CMAKE_CURRENT_LIST_DIR}/bench_eval.c)
target_compile_options(bench_eval PRIVATE ${FF_WARNING_FLAGS})
target_compile_definitions(bench_eval PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
target_link_libraries(bench_eval PRIVATE ff_eval)
set_target_properties(bench_eval PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
