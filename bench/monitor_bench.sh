#!/usr/bin/env bash
# What the self-normalization monitor costs, measured in one run on this machine.
#
#   bench/monitor_bench.sh [BUILD_DIR] [BASELINE_ENGINE_BENCH]
#
# 1. Engine. BM_Engine (the unobserved MlpEngine::Run) of BUILD_DIR's engine_bench
#    against BASELINE_ENGINE_BENCH, an engine_bench built from a commit before the
#    monitor existed (e.g. git worktree add /tmp/base 32a3a5a && build it there), the
#    two alternated ROUNDS times so the machine's noise falls on both; and in the same
#    runs BM_EngineSampled / BM_Engine: what one sampled batch costs (every tensor's
#    per-unit moments, windows closing and scoring, against a reference).
# 2. Server. run_server_bench.sh with --monitor-sample-rate 0 (off), 0.25 (the
#    default) and 1 (every batch), each against the bare echo server in the same round.
#
# Environment: ROUNDS [3], FILTER (engine benchmarks) [tiny, small (digits_snn's shape), big at batch 1, 8, 32],
# SERVER=0 skips part 2; part 2 takes LOADS/REPEATS/DURATION as run_server_bench.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
BASE=${2:-}
ROUNDS=${ROUNDS:-3}
FILTER=${FILTER:-'BM_Engine(Sampled)?/(tiny|small|big)/(1|8|32)/ip$'}
OUT=${OUT:-$(mktemp -d /tmp/selu-monitor-bench.XXXXXX)}
mkdir -p "$OUT"
export OMP_NUM_THREADS=1

echo "results in $OUT" >&2
lscpu | grep -E '^Model name' >&2
for round in $(seq "$ROUNDS"); do
  for who in new base; do
    bin=$BUILD/bench/engine_bench
    if [[ $who == base ]]; then
      [[ -n $BASE ]] || continue
      bin=$BASE
    fi
    echo "  engine round $round: $who" >&2
    "$bin" --benchmark_filter="$FILTER" --benchmark_min_time=0.2 --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=false --benchmark_format=json \
      >"$OUT/engine_${who}_$round.json" 2>/dev/null
  done
done
/usr/bin/python3 - "$OUT" <<'PY'
import glob, json, os, statistics, sys
out = sys.argv[1]
def best(who):
    rates = {}
    for path in glob.glob(os.path.join(out, "engine_%s_*.json" % who)):
        for b in json.load(open(path))["benchmarks"]:
            if b.get("run_type") != "iteration":
                continue
            rates.setdefault(b["run_name"], []).append(b["items_per_second"])
    return {k: max(v) for k, v in rates.items()}
new, base = best("new"), best("base")
print("%-28s %12s %12s %10s %14s" % ("benchmark", "rows/s", "baseline", "new/base", "sampled/plain"))
for name in sorted(k for k in new if k.startswith("BM_Engine/")):
    sampled = new.get(name.replace("BM_Engine/", "BM_EngineSampled/"))
    b = base.get(name)
    print("%-28s %12.0f %12s %10s %14s" % (
        name, new[name], "%.0f" % b if b else "-", "%.3f" % (new[name] / b) if b else "-",
        "%.3f" % (sampled / new[name]) if sampled else "-"))
PY
if [[ ${SERVER:-1} != 0 ]]; then
  CONFIGS="--monitor-sample-rate 0;--monitor-sample-rate 0.25;--monitor-sample-rate 1" \
    LOADS=${LOADS:-"1:1 16:1 64:4"} REPEATS=${REPEATS:-3} OUT=$OUT/server bench/run_server_bench.sh "$BUILD"
fi
