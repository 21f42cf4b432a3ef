#!/bin/bash
# Runs the engine benchmark and the PyTorch baseline, then prints one table
# (bench/report.py). Builds nothing: pass the engine_bench binary.
#
#   bench/run_engine_bench.sh [path/to/engine_bench] [output dir]
#
# Defaults: build/release/bench/engine_bench, and a fresh directory under
# /tmp for engine.json, pytorch.jsonl and report.txt. Takes about 2-3 minutes
# (under 5) on a quiet 2-core machine. Extra knobs (environment):
#   MIN_TIME     seconds per benchmark repetition (default 0.15)
#   REPS         repetitions per benchmark; the best is reported (default 8)
#   BASIS        cpu|real: thread CPU time or wall time for rates (default cpu)
#   FILTER       --benchmark_filter regex for engine_bench (default all)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin="${1:-$root/build/release/bench/engine_bench}"
out="${2:-$(mktemp -d /tmp/selu-bench.XXXXXX)}"
min_time="${MIN_TIME:-0.15}"
reps="${REPS:-8}"
basis="${BASIS:-cpu}"
filter="${FILTER:-.}"

if [[ ! -x "$bin" ]]; then
  echo "run_engine_bench: no engine_bench at $bin; build it first, e.g." >&2
  echo "  cmake --preset release && cmake --build build/release --target engine_bench -j2" >&2
  exit 2
fi
mkdir -p "$out"
load="$(cut -d' ' -f1 /proc/loadavg)"
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  echo "run_engine_bench: warning: load average $load; other processes share the CPUs," \
    "expect noisy ratios (rerun when quieter, or raise REPS)" >&2
fi

# Everything single-threaded: oneDNN (OpenMP), OpenBLAS (PyTorch's BLAS).
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Give OpenBLAS the kernel for this CPU, for this run only, unless the caller
# chose one. (Debian's DYNAMIC_ARCH build may mis-detect virtual CPUs.)
if [[ -z "${OPENBLAS_CORETYPE:-}" ]]; then
  flags="$(grep -m1 '^flags' /proc/cpuinfo)"
  if [[ "$flags" == *avx512_bf16* ]]; then OPENBLAS_CORETYPE=Cooperlake
  elif [[ "$flags" == *avx512f* ]]; then OPENBLAS_CORETYPE=SkylakeX
  elif [[ "$flags" == *avx2* ]]; then OPENBLAS_CORETYPE=Haswell
  fi
  export OPENBLAS_CORETYPE
fi
echo "run_engine_bench: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}," \
  "load average: $(cut -d' ' -f1-3 /proc/loadavg), results in $out" >&2

"$bin" --benchmark_format=console \
  --benchmark_out="$out/engine.json" --benchmark_out_format=json \
  --benchmark_min_time="$min_time" --benchmark_repetitions="$reps" \
  --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=false --benchmark_display_aggregates_only=true \
  --benchmark_filter="$filter" >"$out/engine.txt" 2>"$out/engine.stderr" || {
  echo "run_engine_bench: engine_bench failed:" >&2
  tail -20 "$out/engine.stderr" >&2
  exit 1
}

/usr/bin/python3 "$here/pytorch_bench.py" --min-time "$min_time" --reps "$reps" \
  >"$out/pytorch.jsonl" 2>"$out/pytorch.stderr" || {
  echo "run_engine_bench: pytorch_bench.py failed:" >&2
  tail -20 "$out/pytorch.stderr" >&2
  exit 1
}

/usr/bin/python3 "$here/report.py" --basis "$basis" "$out/engine.json" "$out/pytorch.jsonl" |
  tee "$out/report.txt"
