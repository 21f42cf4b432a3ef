#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds the release preset and
# runs the whole test suite, then runs it again against sanitizer builds. This
# is what `.ci/run` runs. Each phase prints how long it took.
#
#   deploy/test.sh                    release build + all tests, then:
#     asan  ASan+UBSan build of everything the tests use (no benchmarks) and the
#           whole suite (unit, parity, integration) but the checks that run no
#           binary of ours or check the release binaries (labels `source`,
#           `deploy`: clang-format, architecture, bundled model, deploy_check);
#     tsan  TSan build of selu-serve, selu-client and the Python stubs, and the
#           concurrency, repository, lifecycle and stream integration tests.
#   SELU_PRESET=asan deploy/test.sh   one preset's build and its test preset only
#   SELU_SKIP_ASAN=1 deploy/test.sh   skip the ASan+UBSan phase
#   SELU_SKIP_TSAN=1 deploy/test.sh   skip the TSan phase
#   SELU_SKIP_FUZZ=1 deploy/test.sh   skip the fuzz phase (SELU_FUZZ_SECONDS per target, 20)
#
# A sanitizer report fails the test it happened in: the processes exit
# non-zero (ASan halts, UBSan does not recover, TSan exits 66), and the
# integration tests also fail on a report in the server's log
# (tests/integration/selu_server.py). Suppressions (tests/sanitizers/) cover
# Debian's uninstrumented libraries only.
set -euo pipefail
cd "$(dirname "$0")/.."

# phase NAME COMMAND...: runs COMMAND and says how long it took.
phase() {
  local name="$1" start="$SECONDS"
  shift
  echo "test.sh: ${name}"
  "$@"
  echo "test.sh: ${name}: $((SECONDS - start)) s"
}

preset="${SELU_PRESET:-release}"
phase "install" deploy/install-deps.sh test

jobs="$(nproc)"
# One test process at a time: the tests themselves run threads, and the
# machines are 2-core.
cmake --preset "$preset"
phase "${preset} build" cmake --build --preset "$preset" -j "$jobs"
phase "${preset} ctest" ctest --preset "$preset" -j 1

[[ "$preset" == release ]] || exit 0

if [[ "${SELU_SKIP_ASAN:-0}" != 1 ]]; then
  cmake --preset asan
  phase "asan build" cmake --build --preset asan -j "$jobs"
  phase "asan ctest" ctest --preset asan -j 1
fi

# The threads of the server against ThreadSanitizer: the tests that drive them
# hardest (many callers, hot reload under load, drain on SIGTERM).
if [[ "${SELU_SKIP_TSAN:-0}" != 1 ]]; then
  cmake --preset tsan
  phase "tsan build" cmake --build --preset tsan -j "$jobs" \
    --target selu-serve selu-client selu_integration_stubs
  phase "tsan ctest" ctest --preset tsan -j 1
fi

# Coverage-guided fuzzing (clang-14 libFuzzer, ASan+UBSan): every kept crash
# input again, then each target for a short fixed time (tests/fuzz/run.sh).
if [[ "${SELU_SKIP_FUZZ:-0}" != 1 ]]; then
  phase "fuzz" tests/fuzz/run.sh "${SELU_FUZZ_SECONDS:-20}"
fi
