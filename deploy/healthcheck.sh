#!/usr/bin/env bash
# The container health check (the image's HEALTHCHECK, installed as
# /opt/selu/bin/selu-healthcheck): asks grpc.health.v1 of the running
# selu-serve wherever it listens, and exits 0 only when it is SERVING.
#
#   selu-healthcheck [--pid PID] [--service NAME] [--timeout SECONDS] [--client BIN]
#
# Service "" (the default) is SERVING once every model is ready, and not
# while the repository holds none (selu-serve's own rule).
#
# The address is the server's own: --grpc-address from its command line (the
# last one given), else SELU_GRPC_ADDRESS from its environment, else
# 0.0.0.0:8001 (read from /proc/PID, so `docker run IMAGE --grpc-address ...`
# and `-e SELU_GRPC_ADDRESS=...` are followed alike). Nothing resolves
# "localhost": a wildcard host (0.0.0.0, [::], empty) or localhost is dialled
# as 127.0.0.1, then [::1]. Port 0 (a free port picked at start-up) is found
# among the server's listening TCP sockets (/proc/PID/net/tcp{,6} against
# /proc/PID/fd), so no port file and no writable file system are needed.
# When the server speaks TLS (--tls-cert), the check does too, without
# verifying the certificate (it talks to its own container over loopback),
# and presents the server's certificate when clients must have one
# (--tls-client-ca; the certificate then needs the "client auth" usage).
#
# PID: --pid, else SELU_HEALTHCHECK_PID, else PID 1 when it is selu-serve
# (ENTRYPOINT exec form), else the only selu-serve process (`docker run --init`).
# The deploy check (deploy/check-deploy.sh) runs this script against real
# servers on moved addresses, port 0 and TLS, and against stopped ones.
set -uo pipefail

pid="${SELU_HEALTHCHECK_PID:-}"
service=""
timeout="2"
client="selu-client"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pid) pid="$2"; shift 2 ;;
    --service) service="$2"; shift 2 ;;
    --timeout) timeout="$2"; shift 2 ;;
    --client) client="$2"; shift 2 ;;
    *) echo "selu-healthcheck: unknown argument $1" >&2; exit 2 ;;
  esac
done

is_server() {  # PID: argv[0] is selu-serve, and not its calibrate subcommand
  local argv0="" argv1=""
  { IFS= read -r -d '' argv0; IFS= read -r -d '' argv1; } 2>/dev/null <"/proc/$1/cmdline"
  [[ "${argv0##*/}" == selu-serve && "$argv1" != calibrate ]]
}

if [[ -z "$pid" ]]; then
  if is_server 1; then
    pid=1
  else
    found=()
    for d in /proc/[0-9]*; do
      is_server "${d#/proc/}" && found+=("${d#/proc/}")
    done
    if [[ ${#found[@]} -ne 1 ]]; then
      echo "selu-healthcheck: ${#found[@]} selu-serve processes found; give --pid" >&2
      exit 1
    fi
    pid="${found[0]}"
  fi
fi
if ! is_server "$pid"; then
  echo "selu-healthcheck: process $pid is not a running selu-serve" >&2
  exit 1
fi

mapfile -d '' -t argv <"/proc/$pid/cmdline"
mapfile -d '' -t environ 2>/dev/null <"/proc/$pid/environ" || environ=()

# server_option FLAG VARIABLE DEFAULT: the value selu-serve runs with (the
# flag wins over the variable, as in selu-serve).
server_option() {
  local flag="$1" variable="$2" value="$3" i e
  for e in "${environ[@]}"; do
    [[ "$e" == "$variable="* ]] && value="${e#*=}"
  done
  for ((i = 1; i < ${#argv[@]}; i++)); do
    [[ "${argv[i]}" == -- ]] && break
    if [[ "${argv[i]}" == "$flag="* ]]; then
      value="${argv[i]#*=}"
    elif [[ "${argv[i]}" == "$flag" && $((i + 1)) -lt ${#argv[@]} ]]; then
      value="${argv[i + 1]}"
      ((i++))
    fi
  done
  printf '%s' "$value"
}

address="$(server_option --grpc-address SELU_GRPC_ADDRESS 0.0.0.0:8001)"
tls_cert="$(server_option --tls-cert SELU_TLS_CERT "")"
tls_key="$(server_option --tls-key SELU_TLS_KEY "")"
tls_client_ca="$(server_option --tls-client-ca SELU_TLS_CLIENT_CA "")"

# host:port, [v6]:port, or a gRPC target such as unix:/path (dialled as is).
hosts=() port=""
if [[ "$address" =~ ^\[([^]]*)\]:([0-9]+)$ ]] || [[ "$address" =~ ^([^:]*):([0-9]+)$ ]]; then
  host="${BASH_REMATCH[1]}" port="${BASH_REMATCH[2]}"
  case "$host" in
    "" | 0.0.0.0 | :: | localhost) hosts=(127.0.0.1 "[::1]") ;;
    *:*) hosts=("[$host]") ;;
    *) hosts=("$host") ;;
  esac
fi

# listening_ports: the TCP ports PID listens on (state 0A), from the socket
# inodes among its descriptors.
listening_ports() {
  local inodes=" " fd link
  for fd in /proc/"$pid"/fd/*; do
    link="$(readlink "$fd" 2>/dev/null)" || continue
    [[ "$link" == "socket:["*"]" ]] && inodes+="${link:8:-1} "
  done
  local f local_address st rest inode
  for f in /proc/"$pid"/net/tcp /proc/"$pid"/net/tcp6; do
    [[ -r "$f" ]] || continue
    # sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
    while read -r _ local_address _ st rest; do
      [[ "$st" == 0A ]] || continue
      read -r _ _ _ _ _ inode _ <<<"$rest"
      [[ "$inodes" == *" $inode "* ]] && echo $((16#${local_address##*:}))
    done < <(tail -n +2 "$f")
  done | sort -un
}

targets=()
if [[ ${#hosts[@]} -eq 0 ]]; then
  targets=("$address")
else
  ports=("$port")
  [[ "$port" == 0 ]] && mapfile -t ports < <(listening_ports)
  for p in "${ports[@]}"; do
    for h in "${hosts[@]}"; do targets+=("$h:$p"); done
  done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
  echo "selu-healthcheck: selu-serve (pid $pid, --grpc-address $address) listens on no TCP port yet" >&2
  exit 1
fi

tls_flags=()
if [[ -n "$tls_cert" ]]; then
  tls_flags=(--skipTLS)
  [[ -n "$tls_client_ca" ]] && tls_flags+=(--cert "$tls_cert" --key "$tls_key")
fi

# selu-client's own SELU_* variables (the container's environment) must not
# change what is asked.
ask() {  # TARGET SUBCOMMAND...
  local target="$1"
  shift
  env -u SELU_ADDRESS -u SELU_CACERT -u SELU_CERT -u SELU_KEY -u SELU_CNAME \
    "$client" --address "$target" --timeout "$timeout" "${tls_flags[@]}" "$@"
}
for target in "${targets[@]}"; do
  if ask "$target" health ${service:+--service "$service"} >/dev/null 2>&1; then
    echo "SERVING at $target (selu-serve pid $pid, --grpc-address $address)"
    exit 0
  fi
done
echo "selu-healthcheck: not SERVING at ${targets[*]} (selu-serve pid $pid, --grpc-address $address)" >&2
exit 1
