# Shared build settings and helpers for every fedfuse target.
include(CheckCCompilerFlag)

set(FF_WARNING_FLAGS "")
foreach(flag -Wall -Wextra -Wshadow -Wpointer-arith -Wstrict-prototypes
             -Wmissing-prototypes -Wformat=2 -Wvla -Wundef -Wcast-align
             -Wnull-dereference -Wimplicit-fallthrough
             -Werror=implicit-function-declaration
             # Messages are cut to fixed buffers on purpose; truncation is not a bug there.
             -Wno-format-truncation)
  string(MAKE_C_IDENTIFIER "FF_HAS${flag}" var)
  check_c_compiler_flag(${flag} ${var})
  if(${var})
    list(APPEND FF_WARNING_FLAGS ${flag})
  endif()
endforeach()
if(FF_WERROR)
  list(APPEND FF_WARNING_FLAGS -Werror)
endif()

set(FF_SAN_FLAGS "")
if(FF_SANITIZE)
  set(FF_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=undefined
                   -fno-omit-frame-pointer)
  add_compile_options(${FF_SAN_FLAGS})
  add_link_options(${FF_SAN_FLAGS})
endif()

# ff_add_library(name SOURCES ... LINK ...): a static library from folder/src with the
# public header folder folder/include.
function(ff_add_library name)
  cmake_parse_arguments(A "" "" "SOURCES;LINK" ${ARGN})
  add_library(ff_${name} STATIC ${A_SOURCES})
  target_include_directories(ff_${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include
                                        PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_options(ff_${name} PRIVATE ${FF_WARNING_FLAGS})
  target_compile_definitions(ff_${name} PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE)
  target_link_libraries(ff_${name} PUBLIC ${A_LINK})
endfunction()

# ff_add_test(name SOURCES ... LINK ... [LABELS ...]): a cmocka test registered with ctest.
function(ff_add_test name)
  cmake_parse_arguments(A "" "" "SOURCES;LINK;LABELS" ${ARGN})
  add_executable(test_${name} ${A_SOURCES})
  target_compile_options(test_${name} PRIVATE ${FF_WARNING_FLAGS} -Wno-missing-prototypes)
  target_compile_definitions(test_${name} PRIVATE _POSIX_C_SOURCE=200809L _DEFAULT_SOURCE
      FF_SOURCE_DIR="${PROJECT_SOURCE_DIR}" FF_SHARED_DIR="${PROJECT_SOURCE_DIR}/../shared"
      FF_BINARY_DIR="${PROJECT_BINARY_DIR}")
  target_link_libraries(test_${name} PRIVATE ff_testutil ${A_LINK} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND test_${name})
  set_tests_properties(${name} PROPERTIES ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
  if(A_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${A_LABELS}")
  endif()
endfunction()

# ff_add_cli_test(name EXIT code EXPECT text ARGS ...): runs `fedfuse ARGS...` and checks
# the exit status and that the output contains text.
function(ff_add_cli_test name)
  cmake_parse_arguments(A "" "EXIT;EXPECT" "ARGS;LABELS;ENV" ${ARGN})
  add_test(NAME cli_${name}
           COMMAND ${PROJECT_SOURCE_DIR}/tests/cli/expect.sh ${A_EXIT} "${A_EXPECT}" --
                   $<TARGET_FILE:fedfuse> ${A_ARGS})
  set_tests_properties(cli_${name} PROPERTIES LABELS "cli;${A_LABELS}"
                       WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  if(A_ENV)
    set_tests_properties(cli_${name} PROPERTIES ENVIRONMENT "${A_ENV}")
  endif()
endfunction()
