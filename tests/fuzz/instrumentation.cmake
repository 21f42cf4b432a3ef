# Included by the top-level CMakeLists.txt before any target when
# SELU_BUILD_FUZZERS is ON: every library (and the fuzz targets) is compiled
# with libFuzzer's coverage instrumentation (fuzzer-no-link) and with
# AddressSanitizer and UndefinedBehaviorSanitizer, which abort on the first
# error so libFuzzer records the input. Only tests/fuzz/CMakeLists.txt links
# libFuzzer itself (-fsanitize=fuzzer). Use a build folder of its own.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "SELU_BUILD_FUZZERS needs clang (libFuzzer): configure with "
                      "CXX=clang++-14, in a build folder of its own (tests/fuzz/run.sh does)")
endif()
set(SELU_FUZZ_SANITIZERS address,undefined)
add_compile_options(-fsanitize=fuzzer-no-link,${SELU_FUZZ_SANITIZERS}
  -fno-sanitize-recover=all -fno-omit-frame-pointer)
add_link_options(-fsanitize=${SELU_FUZZ_SANITIZERS})
