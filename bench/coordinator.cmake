# coord_bench: the coordinator engine's per-round cost on a model-sized vector.
if(TARGET ff_coordinator)
  add_executable(coord_bench ${CMAKE_CURRENT_LIST_DIR}/coord_bench.c)
  target_compile_options(coord_bench PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(coord_bench PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
  target_link_libraries(coord_bench PRIVATE ff_coordinator)
  set_target_properties(coord_bench PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/bench)
endif()
