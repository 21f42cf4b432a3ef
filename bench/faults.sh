#!/usr/bin/env bash
# The times behind tests/integration/test_faults.py (which asserts none):
# restart after SIGKILL to SERVING, and overload at 3x capacity (how fast
# RESOURCE_EXHAUSTED comes back, accepted latency, recovery after the load
# stops). bench/faults.py does the work; see its --help.
#
#   bench/faults.sh [--serve build/release/server/selu-serve]
#                   [--client build/release/client/selu-client]
#                   [--stubs build/release/tests/integration/stubs] [--restarts 5]
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec /usr/bin/python3 "$(dirname "$0")/faults.py" "$@"
