# PyTorch peer tests (bench/torch_peer.py). The models CMakeLists.txt includes this with
#   include(${CMAKE_CURRENT_SOURCE_DIR}/peer.cmake)
# Both tests skip (exit 77) where /usr/bin/python3 lacks torch, so CI without torch passes.
if(EXISTS /usr/bin/python3)
  # The oracle itself: autograd vs finite differences, attention vs nn.MultiheadAttention,
  # the spec's masking rules, the committed golden files reproduce. ~5 s.
  add_test(NAME models_torch_peer_selfcheck
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/check_torch_peer.py)
  set_tests_properties(models_torch_peer_selfcheck PROPERTIES
                       SKIP_RETURN_CODE 77 TIMEOUT 120 LABELS "unit;peer")
  if(TARGET fedfuse)
    # fusion-base, all three fusion modes, mixed presence: `fedfuse model grad` against fresh
    # float64 golden files, relative error <= 1e-4 per tensor. Skips until `model grad` exists.
    add_test(NAME models_base_vs_torch
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/peer_vs_c.sh $<TARGET_FILE:fedfuse> base
                     ${CMAKE_CURRENT_BINARY_DIR}/peer_base)
    set_tests_properties(models_base_vs_torch PROPERTIES
                         SKIP_RETURN_CODE 77 TIMEOUT 300 LABELS "integration;peer")
  endif()
endif()
