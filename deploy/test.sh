#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds the release preset and
# runs the whole test suite. This is what `.ci/run` runs.
#
#   deploy/test.sh            release build + all tests
#   SELU_PRESET=asan deploy/test.sh   everything under ASan+UBSan
#   SELU_SKIP_ASAN=1 deploy/test.sh   skip the extra ASan run of the unit tests
set -euo pipefail
cd "$(dirname "$0")/.."

preset="${SELU_PRESET:-release}"
deploy/install-deps.sh test

jobs="$(nproc)"
cmake --preset "$preset"
cmake --build --preset "$preset" -j "$jobs"
# One test process at a time: the tests themselves run threads, and the
# machines are 2-core.
ctest --preset "$preset" -j 1

# The unit tests (loader fuzzing included) again under AddressSanitizer and
# UndefinedBehaviorSanitizer: a memory error fails CI even where it does not
# crash. Only the unit test targets are built (about a minute).
if [[ "$preset" == release && "${SELU_SKIP_ASAN:-0}" != 1 ]]; then
  cmake --preset asan
  cmake --build --preset asan -j "$jobs" --target selu_unit_tests
  ctest --preset asan -j 1 -L unit
fi
