# bench_data_load: load the default synthetic cohort (8,000 patients) as four clients would.
if(TARGET ff_data)
  add_executable(bench_data_load ${CMAKE_CURRENT_LIST_DIR}/data_load.c)
  target_compile_options(bench_data_load PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(bench_data_load PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
  target_link_libraries(bench_data_load PRIVATE ff_data)
  set_target_properties(bench_data_load PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${PROJECT_BINARY_DIR}/bench)
endif()
