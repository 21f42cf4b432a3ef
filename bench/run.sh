#!/usr/bin/env bash
# One command for the whole side-by-side comparison (issue 14): builds what it needs,
# then, in one run on this machine, measures selu-serve against the bare gRPC echo
# server (unary and streaming), a plain Python grpcio+numpy server and a plain Node
# @grpc/grpc-js + onnxruntime-node server, all driven by `selu-client bench` (and by
# ghz when it is on PATH); then the engine alone against ONNX Runtime; then selu-serve's
# start-up time, resident size and the monitor's cost. See bench/README.md ("run.sh").
#
#   flock /tmp/selu-bench.lock bench/run.sh          # the full run, ~15 min
#   QUICK=1 bench/run.sh                               # a ~2-minute smoke run
#
# Environment (defaults in brackets; QUICK=1 changes the starred ones):
#   BUILD        build folder [build/release]      OUT  results folder [$BUILD/bench-results/<time>]
#   DURATION*    measured seconds per run [4; 1]   WARMUP*  seconds before each run [1; 0.5]
#   ROUNDS*      rounds, each running every target once in turn [3; 1]
#   CONCURRENCY* closed-loop concurrencies ["1 16 64"; "1 16"]
#   CONNECTIONS  "c:connections ..." ["1:1 16:4 64:4"]; any other c gets 4
#   MODELS*      ["digits_snn big_snn"; "digits_snn"]
#   TARGETS      filter, any of echo-unary echo-stream selu-unary selu-stream python node
#                selu-nomon [all]  (selu-nomon: selu-serve with --monitor-sample-rate 0)
#   ENGINE       1: run the engine comparison [1]   ENGINE_ROUNDS* [5; 1]  ENGINE_SECONDS* [0.3; 0.1]
#   ENGINE_BATCHES* ["1,8,32,128,512"; "1,8"]
#   ENGINE_BF16  1: the engine comparison again with bf16 weights (ORT stays fp32), when
#                the CPU has native bf16 (avx512_bf16 or amx_bf16) [1]     STARTUP  1: ready time and RSS [1]
#   SKIP_BUILD   1: use the binaries as they are [0]
# Writes $OUT/runs.jsonl (one line per measured run), $OUT/engine.json, $OUT/startup.json
# and $OUT/bench-results.json (everything, aggregated, with the machine and versions),
# and prints the tables (bench/run_table.py re-prints them from bench-results.json).
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build/release}
QUICK=${QUICK:-0}
q() { if [[ $QUICK == 1 ]]; then echo "$2"; else echo "$1"; fi; }
DURATION=${DURATION:-$(q 4 1)}
WARMUP=${WARMUP:-$(q 1 0.5)}
ROUNDS=${ROUNDS:-$(q 3 1)}
CONCURRENCY=${CONCURRENCY:-$(q "1 16 64" "1 16")}
CONNECTIONS=${CONNECTIONS:-"1:1 16:4 64:4"}
MODELS=${MODELS:-$(q "digits_snn big_snn" "digits_snn")}
TARGETS=${TARGETS:-"echo-unary echo-stream selu-unary selu-stream python node selu-nomon"}
ENGINE=${ENGINE:-1}
ENGINE_BF16=${ENGINE_BF16:-1}
ENGINE_ROUNDS=${ENGINE_ROUNDS:-$(q 5 1)}
ENGINE_SECONDS=${ENGINE_SECONDS:-$(q 0.3 0.1)}
ENGINE_BATCHES=${ENGINE_BATCHES:-$(q 1,8,32,128,512 1,8)}
STARTUP=${STARTUP:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
OUT=${OUT:-$BUILD/bench-results/$(date +%Y%m%d-%H%M%S)}
PY=/usr/bin/python3
NODE_PACKAGES=(@grpc/grpc-js@1.14.7 @grpc/proto-loader@0.8.1 onnxruntime-node@1.30.0)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
say() { echo "run.sh: $*" >&2; }
wants() { [[ " $TARGETS " == *" $1 "* ]]; }
wants_node() { wants node || [[ $ENGINE == 1 ]]; }
# Every server and the engine run single-threaded per call, as selu-serve does.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

# ---- build, models, stubs, npm packages
if [[ $SKIP_BUILD != 1 ]]; then
  if [[ ! -f $BUILD/build.ninja ]]; then
    [[ $BUILD == build/release ]] || { say "$BUILD is not configured"; exit 2; }
    cmake --preset release >&2
  fi
  cmake --build "$BUILD" -j2 --target selu-serve selu-client echo_server onnx_engine_bench >&2
fi
BUILD=$(realpath "$BUILD")
NODE_DIR=$BUILD/bench-node
SERVE=$BUILD/server/selu-serve
CLIENT=$BUILD/client/selu-client
ECHO=$BUILD/bench/echo_server
for bin in "$SERVE" "$CLIENT" "$ECHO"; do
  [[ -x $bin ]] || { say "missing $bin"; exit 2; }
done
MODELS_DIR=$BUILD/bench-models
$PY bench/peers/make_models.py "$MODELS_DIR"
STUBS=$BUILD/bench-stubs
# The Python peer, check_peers.py and startup_rss.py use them.
mkdir -p "$STUBS"
$PY -m grpc_tools.protoc -Iproto --python_out="$STUBS" --grpc_python_out="$STUBS" \
  proto/grpc_service.proto proto/model_config.proto
if wants_node; then
  if [[ ! -d $NODE_DIR/node_modules/onnxruntime-node ]]; then
    # --ignore-scripts: onnxruntime-node's install script only fetches the CUDA
    # provider from GitHub (unreachable here); its CPU binaries are in the package.
    say "installing ${NODE_PACKAGES[*]} into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --prefix "$NODE_DIR" --no-audit --no-fund --ignore-scripts \
      "${NODE_PACKAGES[@]}" >&2
  fi
  export NODE_PATH=$NODE_DIR/node_modules
fi
STREAM_CLIENT=0
# Not `| grep -q`: grep exits at the first match, the client then dies of
# SIGPIPE and pipefail turned that into "no --stream" (the streaming rows were
# silently skipped).
CLIENT_HELP=$("$CLIENT" bench --help 2>&1 || true)
if [[ $CLIENT_HELP == *--stream* ]]; then STREAM_CLIENT=1; fi

# ---- servers: all started once, idle while another is measured
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
declare -A PORT PID
start() {  # name command...
  local name=$1
  shift
  rm -f "$OUT/$name.port"
  "$@" 2>"$OUT/$name.log" &
  PIDS+=($!)
  PID[$name]=$!
  for _ in $(seq 600); do
    # selu-serve listens before its models are loaded: ready means health SERVING.
    # The others load before they listen (and have no health service).
    if [[ -s $OUT/$name.port ]] && { [[ $name != selu* ]] ||
       "$CLIENT" --address "127.0.0.1:$(cat "$OUT/$name.port")" health >/dev/null 2>&1; }; then
      PORT[$name]=$(cat "$OUT/$name.port")
      return 0
    fi
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  say "$name did not start (see $OUT/$name.log):"
  tail -5 "$OUT/$name.log" >&2
  exit 1
}
REPO=$MODELS_DIR/repo
ONNX_ARGS=()
for m in digits_snn big_snn; do ONNX_ARGS+=(--model "$m=$REPO/$m/1/model.onnx"); done
if wants echo-unary || wants echo-stream; then
  start echo "$ECHO" --address 127.0.0.1:0 --port-file "$OUT/echo.port" \
    --model-output big_snn=output:1024 --model-output digits_snn=probabilities:10
fi
# REST on a free port: on, as deployed, and two selu-serve targets cannot share 8000.
SELU_ARGS=(--model-repository "$REPO" --grpc-address 127.0.0.1:0 --log-level warn
           --metrics-address 127.0.0.1:0 --http-address 127.0.0.1:0)
if wants selu-unary || wants selu-stream; then
  start selu "$SERVE" "${SELU_ARGS[@]}" --port-file "$OUT/selu.port"
fi
if wants selu-nomon; then
  start selu-nomon "$SERVE" "${SELU_ARGS[@]}" --monitor-sample-rate 0 \
    --port-file "$OUT/selu-nomon.port"
fi
if wants python; then
  start python "$PY" bench/peers/python_oip_server.py --stubs "$STUBS" "${ONNX_ARGS[@]}" \
    --port-file "$OUT/python.port"
fi
if wants node; then
  start node node bench/peers/node_oip_server.js --proto proto "${ONNX_ARGS[@]}" \
    --port-file "$OUT/node.port"
fi

# ---- the server comparison
# Requests: one row of seeded values, raw little-endian FP32 (so every server
# answers raw), as JSON that selu-client bench and ghz both take.
# shellcheck disable=SC2086  # MODELS is a word list
for m in $(printf '%s\n' digits_snn $MODELS | sort -u); do
  $PY - "$MODELS_DIR/models.json" "$m" >"$OUT/request-$m.json" <<'EOF'
import base64, json, sys
import numpy as np
info = json.load(open(sys.argv[1]))[sys.argv[2]]
x = np.random.default_rng(14).uniform(0, 2, (1, info["in"])).astype("<f4")
print(json.dumps({"model_name": sys.argv[2], "id": "bench",
                  "inputs": [{"name": info["input"], "datatype": "FP32", "shape": [1, info["in"]]}],
                  "raw_input_contents": [base64.b64encode(x.tobytes()).decode()]}))
EOF
done
CHECK=()
for t in selu python node; do
  if [[ -n ${PORT[$t]:-} ]]; then CHECK+=(--server "$t=127.0.0.1:${PORT[$t]}"); fi
done
$PY bench/peers/check_peers.py --stubs "$STUBS" --models "$MODELS_DIR/models.json" \
  "${CHECK[@]}" >&2

connections_for() {
  local pair
  for pair in $CONNECTIONS; do [[ ${pair%%:*} == "$1" ]] && { echo "${pair##*:}"; return; }; done
  echo 4
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
RUNS=$OUT/runs.jsonl
: >"$RUNS"
measure() {  # tool target server model c k round
  local tool=$1 target=$2 server=$3 model=$4 c=$5 k=$6 round=$7
  local port=${PORT[$server]} pid=${PID[$server]} stream=()
  [[ $target == *-stream ]] && stream=(--stream)
  local cmd=("$CLIENT" bench "127.0.0.1:$port" -c "$c" --connections "$k" -O json
             -D "$OUT/request-$model.json" "${stream[@]}")
  if [[ $tool == ghz ]]; then
    cmd=(ghz --insecure --proto proto/grpc_service.proto --import-paths proto
         --call inference.GRPCInferenceService/ModelInfer -c "$c" --connections "$k" -O json
         -D "$OUT/request-$model.json" "127.0.0.1:$port")
  fi
  "${cmd[@]}" -z "${WARMUP}s" >/dev/null 2>&1 || true
  local before after
  before=$(cpu_ticks "$pid")
  "${cmd[@]}" -z "${DURATION}s" >"$OUT/last.json" 2>"$OUT/last.err" || true
  after=$(cpu_ticks "$pid")
  $PY - "$OUT/last.json" "$tool" "$target" "$model" "$c" "$k" "$round" \
    "$((after - before))" "$CLK_TCK" >>"$RUNS" <<'EOF'
import json, sys
path, tool, target, model, c, k, rnd, ticks, tck = sys.argv[1:]
try:
    doc = json.load(open(path))
except (OSError, ValueError):
    doc = {}
codes = doc.get("statusCodeDistribution") or {}
ok = int(codes.get("OK", 0))
lat = {int(float(p["percentage"])): p["latency"] for p in doc.get("latencyDistribution") or []}
cpu_s = int(ticks) / int(tck)
print(json.dumps({
    "tool": tool, "target": target, "model": model, "concurrency": int(c),
    "connections": int(k), "round": int(rnd), "rps": doc.get("rps", 0) if ok else 0,
    "ok": ok, "errors": int(doc.get("count", 0)) - ok,
    "error_sample": next(iter(doc.get("errorDistribution") or {}), None),
    "p50_ms": lat.get(50, 0) / 1e6, "p99_ms": lat.get(99, 0) / 1e6,
    "server_cpu_s": cpu_s, "server_cpu_us_per_req": 1e6 * cpu_s / ok if ok else None}))
EOF
  tail -1 "$RUNS" | $PY -c 'import json,sys; r=json.load(sys.stdin); print("  %-4s %-12s %-10s c=%-3d round %d: %8.0f req/s p99 %.2f ms%s" % (r["tool"][:4], r["target"], r["model"], r["concurrency"], r["round"], r["rps"], r["p99_ms"], "  (%d errors: %s)" % (r["errors"], r["error_sample"]) if r["errors"] else ""))' >&2
}

declare -A SERVER_OF=([echo-unary]=echo [echo-stream]=echo [selu-unary]=selu [selu-stream]=selu
                      [python]=python [node]=node [selu-nomon]=selu-nomon)
ORDER=()
for t in echo-unary selu-unary echo-stream selu-stream python node selu-nomon; do
  wants "$t" || continue
  if [[ $t == *-stream && $STREAM_CLIENT != 1 ]]; then
    say "note: selu-client bench has no --stream: the streaming rows ($t) are skipped"
    continue
  fi
  ORDER+=("$t")
done
TOOLS=(selu-client)
if command -v ghz >/dev/null; then TOOLS+=(ghz); fi
say "results in $OUT; $(getconf _NPROCESSORS_ONLN) CPUs; targets: ${ORDER[*]}; tools: ${TOOLS[*]}"
for tool in "${TOOLS[@]}"; do
  for m in $MODELS; do
    for c in $CONCURRENCY; do
      k=$(connections_for "$c")
      for round in $(seq "$ROUNDS"); do
        for t in "${ORDER[@]}"; do
          [[ $tool == ghz && $t == *-stream ]] && continue  # ghz's streams are not comparable
          measure "$tool" "$t" "${SERVER_OF[$t]}" "$m" "$c" "$k" "$round"
        done
      done
    done
  done
done

# ---- the engine against ONNX Runtime, one thread
if [[ $ENGINE == 1 ]]; then
  say "engine vs onnxruntime-node (batches $ENGINE_BATCHES, $ENGINE_ROUNDS rounds)"
  node bench/peers/ort_engine_bench.js --engine-bin "$BUILD/bench/onnx_engine_bench" \
    --models "$MODELS_DIR/models.json" --out "$OUT/engine.json" --batches "$ENGINE_BATCHES" \
    --rounds "$ENGINE_ROUNDS" --seconds "$ENGINE_SECONDS"
  if [[ $ENGINE_BF16 == 1 ]]; then
    if grep -q -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo; then
      say "engine with bf16 weights vs onnxruntime-node fp32"
      node bench/peers/ort_engine_bench.js --engine-bin "$BUILD/bench/onnx_engine_bench" \
        --models "$MODELS_DIR/models.json" --out "$OUT/engine_bf16.json" \
        --batches "$ENGINE_BATCHES" --rounds "$ENGINE_ROUNDS" --seconds "$ENGINE_SECONDS" \
        --weights bf16
    else
      say "note: no native bf16 on this CPU: the bf16 engine comparison is skipped"
    fi
  fi
fi

# ---- selu-serve alone: time to ready, resident size serving digits_snn
if [[ $STARTUP == 1 ]]; then
  say "start-up and resident size (bundled models/, digits_snn)"
  $PY bench/peers/startup_rss.py --stubs "$STUBS" --serve "$SERVE" --client "$CLIENT" \
    --request "$OUT/request-digits_snn.json" --repository models \
    --load-seconds "$DURATION" --out "$OUT/startup.json"
fi

cleanup
trap - EXIT
$PY bench/run_table.py --collect "$OUT" --node-lock "$NODE_DIR/package-lock.json" \
  --machine "$(lscpu | sed -n 's/^Model name:[[:space:]]*//p')" \
  --versions "node=$(node --version 2>/dev/null || echo -)" \
  --versions "selu-client-stream=$STREAM_CLIENT" \
  --versions "ghz=$(command -v ghz >/dev/null && ghz --version 2>&1 | head -1 || echo -)" \
  --settings "DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONCURRENCY=$CONCURRENCY CONNECTIONS=$CONNECTIONS MODELS=$MODELS TARGETS=$TARGETS QUICK=$QUICK"
say "wrote $OUT/bench-results.json"
