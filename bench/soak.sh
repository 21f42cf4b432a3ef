#!/usr/bin/env bash
# Soak benchmark (issue 15): selu-serve at ~80 % of its measured maximum for
# 10 minutes (default), mixed batch sizes 1-64, 5 % invalid requests, a model
# reload every minute; fails when an error is unexpected, a reload fails, or
# RSS (2 %), descriptors or threads grow after the warm-up. bench/soak.py
# does the work; see its --help.
#
#   bench/soak.sh [--duration 600] [--reload-every 60] [--warmup S]
#                 [--serve build/release/server/selu-serve]
#                 [--client build/release/client/selu-client]
#
# The ctest test soak_smoke: 150 s, a reload every 15 s, the bounds over the last 60 s.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec /usr/bin/python3 "$(dirname "$0")/soak.py" "$@"
