#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds the release preset and
# runs the whole test suite. This is what `.ci/run` runs.
#
#   deploy/test.sh            release build + all tests
#   SELU_PRESET=asan deploy/test.sh   the same under ASan+UBSan
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
