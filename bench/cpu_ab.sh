#!/usr/bin/env bash
# Server CPU per request of several server binaries, side by side: the tool for
# unary-overhead work (issue 14 item 3, bench/UNARY_OVERHEAD.md), where a
# change is worth a microsecond or two per request and throughput on a shared
# 2-core machine is too noisy to show it.
#
#   bench/cpu_ab.sh [-r ROUNDS] [-n REQUESTS] [-c CONCURRENCY] [-m MODEL_REPO]
#                   [-d REQUEST_JSON] [-s] NAME=BINARY[:extra,flags] ...
#
# Every target is started once (a selu-serve with the model repository, or a
# bench/echo_server when the binary's name contains "echo"), then the rounds
# alternate the targets so that noise hits all of them; each measurement is
# 2,000 warm-up requests and then REQUESTS requests from `selu-client bench`
# at CONCURRENCY (over min(CONCURRENCY, 4) connections). The server's CPU
# (utime + stime of the whole process, /proc/PID/stat) over the timed part is
# divided by the requests. Prints one line per measurement and, at the end,
# the mean and standard deviation per target and each target's mean relative
# to the first one named. -s drives ModelStreamInfer instead (`selu-client
# bench --stream`: CONCURRENCY streams, one message in flight each). Extra
# flags are comma separated, e.g.
# old=build/release/server/selu-serve:--batch-execution,workers.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=6 N=30000 C=16 REPO=models DATA="" STREAM=()
while getopts "r:n:c:m:d:s" opt; do
  case $opt in
    r) ROUNDS=$OPTARG ;; n) N=$OPTARG ;; c) C=$OPTARG ;; m) REPO=$OPTARG ;; d) DATA=$OPTARG ;;
    s) STREAM=(--stream) ;;
    *) sed -n '2,22p' "$0" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[[ $# -ge 1 ]] || { echo "cpu_ab.sh: name at least one NAME=BINARY" >&2; exit 2; }
CLIENT=${CLIENT:-build/release/client/selu-client}
[[ -x $CLIENT ]] || { echo "cpu_ab.sh: no $CLIENT (build selu-client first)" >&2; exit 2; }

WORK=$(mktemp -d)
declare -A PID PORT
NAMES=()
cleanup() {
  for n in "${NAMES[@]}"; do kill "${PID[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z $DATA ]]; then  # one row of digits_snn, raw FP32, as run.sh sends it
  DATA=$WORK/request.json
  /usr/bin/python3 - >"$DATA" <<'EOF'
import base64, json
import numpy as np
x = np.random.default_rng(14).uniform(0, 2, (1, 64)).astype("<f4")
print(json.dumps({"model_name": "digits_snn", "id": "bench",
                  "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 64]}],
                  "raw_input_contents": [base64.b64encode(x.tobytes()).decode()]}))
EOF
fi

for spec in "$@"; do
  name=${spec%%=*} rest=${spec#*=}
  bin=${rest%%:*} extra=()
  [[ $rest == *:* ]] && IFS=, read -r -a extra <<<"${rest#*:}"
  if [[ $bin == *echo* ]]; then
    "$bin" --address 127.0.0.1:0 --port-file "$WORK/$name.port" "${extra[@]}" >"$WORK/$name.log" 2>&1 &
  else
    off=()  # REST off where the binary has it (several targets would share port 8000)
    [[ $("$bin" --help 2>/dev/null || true) == *--http-address* ]] && off=(--http-address "")
    "$bin" --model-repository "$REPO" --metrics-address "" --grpc-address 127.0.0.1:0 \
      --port-file "$WORK/$name.port" "${off[@]}" "${extra[@]}" >"$WORK/$name.log" 2>&1 &
  fi
  PID[$name]=$!
  NAMES+=("$name")
done
for n in "${NAMES[@]}"; do
  for _ in $(seq 100); do [[ -s $WORK/$n.port ]] && break; sleep 0.1; done
  [[ -s $WORK/$n.port ]] || { echo "cpu_ab.sh: $n did not start:" >&2; cat "$WORK/$n.log" >&2; exit 1; }
  PORT[$n]=$(cat "$WORK/$n.port")
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)
K=$((C < 4 ? C : 4))
: >"$WORK/results"
for r in $(seq "$ROUNDS"); do
  for n in "${NAMES[@]}"; do
    load=("$CLIENT" bench "127.0.0.1:${PORT[$n]}" -c "$C" --connections "$K" -D "$DATA" "${STREAM[@]}")
    "${load[@]}" -n 2000 >/dev/null
    before=$(ticks "${PID[$n]}")
    out=$("${load[@]}" -n "$N")
    after=$(ticks "${PID[$n]}")
    rps=$(awk '/Requests\/sec:/{print $2}' <<<"$out")
    us=$(awk -v a="$after" -v b="$before" -v t="$TCK" -v n="$N" 'BEGIN{printf "%.2f", (a-b)/t*1e6/n}')
    echo "round $r  $n  c=$C${STREAM:+ stream}  req/s $rps  server CPU µs/request $us"
    echo "$n $us" >>"$WORK/results"
  done
done
awk -v first="${NAMES[0]}" '
  {s[$1] += $2; q[$1] += $2 * $2; k[$1]++; if (!($1 in seen)) { seen[$1] = 1; order[++m] = $1 } }
  END {
    base = s[first] / k[first]
    for (i = 1; i <= m; i++) {
      n = order[i]; mean = s[n] / k[n]; sd = sqrt(q[n] / k[n] - mean * mean)
      printf "%-12s server CPU µs/request mean %.2f  sd %.2f  (%d runs)  vs %s %.3f\n",
             n, mean, sd, k[n], first, mean / base
    }
  }' "$WORK/results"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p')"
