# load_bench: one coordinator and N client processes (fedfuse simulate over mutual TLS, secure
# aggregation on) for 16, 64 and 256 clients: round latency, coordinator CPU and peak RSS, the
# per-client memory constant. A script: build/bench/load_bench runs bench/load_bench.sh with
# this build's fedfuse.
if(TARGET fedfuse)
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/bench/load_bench
       CONTENT "#!/bin/sh\nexec \"${CMAKE_CURRENT_LIST_DIR}/load_bench.sh\" --fedfuse \"$<TARGET_FILE:fedfuse>\" \"$@\"\n"
       FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                        WORLD_READ WORLD_EXECUTE)
endif()
