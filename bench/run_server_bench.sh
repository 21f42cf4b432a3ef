#!/usr/bin/env bash
# End-to-end server benchmark: selu-serve against a bare gRPC server (echo_server)
# under the same closed-loop load (infer_load), in the same run, alternating
# between them so that the shared machine's noise falls on both alike.
#
#   bench/run_server_bench.sh [BUILD_DIR]          (default build/release)
#
# Environment (defaults in brackets):
#   LOADS     "concurrency:connections ..."             ["1:1 16:1 64:1 64:4"]
#   CONFIGS   selu-serve option sets, separated by ';'  [delay 0/100 µs × instances 1/2]
#   REPEATS   rounds per load (each round: echo, config, echo, config, ...)  [2]
#   DURATION  measured seconds per run [3]    WARMUP  seconds before measuring [1]
#   ROWS      rows per request [1]            OUT     results folder [a new temp folder]
#   DIAG      extra echo_server option sets, ';'-separated, run like configs  [none]
#             e.g. "--mode handoff --work-us 8;--mode inline --work-us 8" (see echo_server.cc)
#
# Prints a table (median rps over the rounds, p50/p99, server CPU per 1k requests,
# and selu/echo) and leaves every run's JSON line in $OUT/runs.jsonl.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${1:-build/release}
LOADS=${LOADS:-"1:1 16:1 64:1 64:4"}
CONFIGS=${CONFIGS:-"--max-queue-delay-us 0 --instances 1;--max-queue-delay-us 100 --instances 1;--max-queue-delay-us 0 --instances 2;--max-queue-delay-us 100 --instances 2"}
REPEATS=${REPEATS:-2}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
ROWS=${ROWS:-1}
OUT=${OUT:-$(mktemp -d /tmp/selu-server-bench.XXXXXX)}
mkdir -p "$OUT"

ECHO_BIN=$BUILD/bench/echo_server
LOAD_BIN=$BUILD/bench/infer_load
SELU_BIN=$BUILD/server/selu-serve
for bin in "$ECHO_BIN" "$LOAD_BIN" "$SELU_BIN"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin: cmake --build $BUILD -j2 --target echo_server infer_load selu-serve" >&2
    exit 2
  fi
done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() {  # file pid
  for _ in $(seq 300); do
    [[ -s $1 ]] && { cat "$1"; return 0; }
    kill -0 "$2" 2>/dev/null || { echo "server $2 exited at start-up" >&2; return 1; }
    sleep 0.1
  done
  echo "server $2 did not write $1" >&2
  return 1
}

"$ECHO_BIN" --address 127.0.0.1:0 --port-file "$OUT/echo.port" 2>"$OUT/echo.log" &
PIDS+=($!)
ECHO_PID=$!
ECHO_PORT=$(wait_port "$OUT/echo.port" "$ECHO_PID")

DIAG=${DIAG:-}
DIAG_LIST=()
DIAG_PIDS=()
DIAG_PORTS=()
if [[ -n $DIAG ]]; then IFS=';' read -r -a DIAG_LIST <<<"$DIAG"; fi
for i in "${!DIAG_LIST[@]}"; do
  # shellcheck disable=SC2086
  "$ECHO_BIN" --address 127.0.0.1:0 --port-file "$OUT/diag$i.port" ${DIAG_LIST[$i]} \
    2>"$OUT/diag$i.log" &
  PIDS+=($!)
  DIAG_PIDS+=($!)
  DIAG_PORTS+=("$(wait_port "$OUT/diag$i.port" "$!")")
done

IFS=';' read -r -a CONFIG_LIST <<<"$CONFIGS"
SELU_PIDS=()
SELU_PORTS=()
for i in "${!CONFIG_LIST[@]}"; do
  # Metrics on a free port unless the config sets --metrics-address;
  # "--metrics-address=" turns them off (and with them the gRPC interceptor).
  read -r -a words <<<"${CONFIG_LIST[$i]}"
  args=()
  [[ " ${CONFIG_LIST[$i]} " == *" --metrics-address"* ]] || args=(--metrics-address 127.0.0.1:0)
  for w in "${words[@]}"; do
    if [[ $w == --metrics-address= ]]; then args+=(--metrics-address ""); else args+=("$w"); fi
  done
  "$SELU_BIN" --model-repository models --grpc-address 127.0.0.1:0 \
    --port-file "$OUT/selu$i.port" --log-level warn "${args[@]}" 2>"$OUT/selu$i.log" &
  PIDS+=($!)
  SELU_PIDS+=($!)
  SELU_PORTS+=("$(wait_port "$OUT/selu$i.port" "$!")")
done

RUNS=$OUT/runs.jsonl
: >"$RUNS"
run() {  # label port pid concurrency connections
  "$LOAD_BIN" --address "127.0.0.1:$2" --server-pid "$3" --concurrency "$4" \
    --connections "$5" --duration "$DURATION" --warmup "$WARMUP" --rows "$ROWS" \
    --label "$1" | tee -a "$RUNS" >/dev/null
}

echo "results in $OUT; $(nproc) CPUs; ${#CONFIG_LIST[@]} selu-serve configs" >&2
for load in $LOADS; do
  c=${load%%:*}
  k=${load##*:}
  for round in $(seq "$REPEATS"); do
    for i in "${!CONFIG_LIST[@]}"; do
      echo "  c=$c k=$k round $round: echo, then selu-serve ${CONFIG_LIST[$i]}" >&2
      run "echo" "$ECHO_PORT" "$ECHO_PID" "$c" "$k"
      run "selu ${CONFIG_LIST[$i]}" "${SELU_PORTS[$i]}" "${SELU_PIDS[$i]}" "$c" "$k"
    done
    for i in "${!DIAG_LIST[@]}"; do
      echo "  c=$c k=$k round $round: echo, then echo_server ${DIAG_LIST[$i]}" >&2
      run "echo" "$ECHO_PORT" "$ECHO_PID" "$c" "$k"
      run "diag ${DIAG_LIST[$i]}" "${DIAG_PORTS[$i]}" "${DIAG_PIDS[$i]}" "$c" "$k"
    done
  done
done

/usr/bin/python3 bench/server_bench_table.py "$RUNS"
echo "command: LOADS=\"$LOADS\" CONFIGS=\"$CONFIGS\" DIAG=\"$DIAG\" REPEATS=$REPEATS DURATION=$DURATION WARMUP=$WARMUP ROWS=$ROWS $0 $BUILD" >&2
