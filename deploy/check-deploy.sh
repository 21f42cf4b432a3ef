#!/usr/bin/env bash
# Validates the deployment files with real tools (run by the ctest test
# deploy_check; needs `deploy/install-deps.sh test` and the npm registry):
#
#   deploy/check-deploy.sh [--cache DIR] [--serve BIN] [--client BIN]
#
#   1. Dockerfile: linted by dockerfile-utils (npm), and its stages run the
#      scripts CI runs (deploy/install-deps.sh, deploy/test.sh).
#   2. Kubernetes: every kustomization under deploy/k8s rendered by
#      `kubectl kustomize`, each object validated against the Kubernetes
#      OpenAPI schemas (npm kubernetes-models, @kubernetes-models/prometheus-operator,
#      @kubernetes-models/cert-manager).
#   3. Prometheus: promtool check config / check rules.
#   4. Grafana + alerts: every metric their exprs name is exported by the real
#      selu-serve (started on port 0, sent requests, /metrics scraped); so is
#      every metric of the prometheus-adapter rules of the custom-metric-hpa
#      overlay, whose queries promtool parses and whose names are the pods
#      metrics its HPA asks for.
#   4b. KServe (deploy/kserve): the fields KServe reads, checked by
#      deploy/check/check-kserve.js against `selu-serve --help` (the containers
#      against the Kubernetes schema), then selu-serve started with the args
#      KServe renders for the InferenceService on a KServe-style /mnt/models.
#   4c. HEALTHCHECK: deploy/healthcheck.sh, the script the image runs, against
#      real servers on a --grpc-address argument, a SELU_GRPC_ADDRESS
#      variable, port 0, a wildcard bind and TLS; it must fail against a
#      stopped (SIGSTOP) and an exited server. Then the Dockerfile's
#      HEALTHCHECK CMD as written, with selu-serve as PID 1 of a PID namespace
#      (unshare; reported as not run where that is not permitted).
#   5. docker-compose.yml parses and references existing files.
#   6. Runtime libraries: ldd of selu-serve and selu-client resolves, and each
#      library belongs to a package in install-deps.sh's runtime group or its
#      dependencies (what the runtime image installs), and matches none of the
#      path-exclude patterns the Dockerfile's runtime stage gives dpkg.
#   7. Runtime image size: deploy/check/image-size.sh (the Debian mirror: it
#      downloads the runtime packages once, into DIR/image-size) keeps the
#      runtime stage under 150 MB uncompressed.
# npm packages are installed once into DIR (default build/deploy-check) with
# `npm install --no-save --prefix DIR`; versions pinned below, for Debian 12's
# node 18 (checked with it too). The tools run with SELU_NODE (default: node),
# kubectl is SELU_KUBECTL (default: kubectl), npm is the npm on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

CACHE="$ROOT/build/deploy-check"
SERVE="$ROOT/build/release/server/selu-serve"
CLIENT="$ROOT/build/release/client/selu-client"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    --serve) SERVE="$2"; shift 2 ;;
    --client) CLIENT="$2"; shift 2 ;;
    *) echo "check-deploy.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

NPM_PKGS=(
  dockerfile-utils@0.16.3
  kubernetes-models@4.4.2
  @kubernetes-models/prometheus-operator@4.4.4
  @kubernetes-models/cert-manager@4.4.4
  js-yaml@4.1.0
)

failed=()
step() { echo; echo "=== $*"; }
fail() { echo "FAIL: $*" >&2; failed+=("$1"); }

need() {
  local missing=0
  for c in "$@"; do
    if ! command -v "$c" >/dev/null; then
      echo "FAIL: '$c' not found: run deploy/install-deps.sh test" >&2
      missing=1
    fi
  done
  return $missing
}
# Debian's Python (python3-yaml): a python3 earlier on PATH may lack its modules.
PYTHON="${SELU_PYTHON:-/usr/bin/python3}"
NODE="${SELU_NODE:-node}"
KUBECTL="${SELU_KUBECTL:-kubectl}"
need "$NODE" npm "$KUBECTL" promtool "$PYTHON" ldd dpkg apt-cache apt-get dpkg-deb strip curl openssl
"$PYTHON" -c 'import yaml' || { echo "FAIL: python3-yaml missing: run deploy/install-deps.sh test" >&2; exit 1; }
[[ -x "$SERVE" && -x "$CLIENT" ]] || { echo "FAIL: build selu-serve and selu-client first ($SERVE, $CLIENT)" >&2; exit 1; }

# ------------------------------------------------------------ npm tools
step "npm tools in $CACHE"
mkdir -p "$CACHE"
# Node trusts only its own CA bundle; behind a TLS-inspecting proxy whose CA
# the administrator added to Debian's store (update-ca-certificates), npm
# needs that store too.
if [[ -z "${NODE_EXTRA_CA_CERTS:-}" && -r /etc/ssl/certs/ca-certificates.crt ]]; then
  export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
stamp="$CACHE/.installed"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "${NPM_PKGS[*]}" ]]; then
  # Three tries, so that one slow or dropped registry answer does not fail CI.
  installed=0
  for attempt in 1 2 3; do
    if npm install --no-save --no-audit --no-fund --no-package-lock --fetch-timeout=60000 \
        --fetch-retries=2 --prefix "$CACHE" \
        "${NPM_PKGS[@]}" >"$CACHE/npm-install.log" 2>&1; then
      installed=1
      break
    fi
    echo "npm install failed (attempt $attempt of 3)" >&2
    sleep $((attempt * 5))
  done
  if [[ $installed != 1 ]]; then
    cat "$CACHE/npm-install.log" >&2
    echo "FAIL: npm install of ${NPM_PKGS[*]} failed (is the npm registry reachable?); the deploy checks need these tools and are not skipped" >&2
    exit 1
  fi
  echo "${NPM_PKGS[*]}" >"$stamp"
fi
export NODE_PATH="$CACHE/node_modules"
echo "node $("$NODE" --version) ($NODE), $(ls "$NODE_PATH" | wc -l) packages"

# ----------------------------------------------------------- Dockerfile
step "Dockerfile: dockerfile-utils lint"
lint_out="$("$NODE" "$CACHE/node_modules/dockerfile-utils/bin/dockerfile-utils" lint Dockerfile 2>&1)" || fail dockerfile-lint "dockerfile-utils exited non-zero"
if [[ -n "$lint_out" ]]; then
  echo "$lint_out"
  fail dockerfile-lint "dockerfile-utils reported problems"
else
  echo "no problems"
fi
step "Dockerfile: stages run CI's scripts"
expect_line() {  # the Dockerfile holds a line matching the regex
  grep -Eq "$1" Dockerfile || fail dockerfile-structure "Dockerfile has no line matching: $1"
}
expect_line '^FROM debian:12 AS build$'
expect_line '^FROM debian:12-slim AS runtime$'
expect_line '^RUN deploy/install-deps.sh test'
expect_line '^RUN deploy/test.sh'
expect_line 'strip -o /out/selu-serve build/release/server/selu-serve'
expect_line 'strip -o /out/selu-client build/release/client/selu-client'
expect_line '^(RUN| +&&) /tmp/install-deps.sh runtime( |$)'
expect_line '^USER [1-9][0-9]*'
expect_line '^EXPOSE 8000 8001 8002$'
expect_line '^STOPSIGNAL SIGTERM$'
expect_line '^ENTRYPOINT \["selu-serve"\]$'
expect_line '^COPY deploy/healthcheck.sh /opt/selu/bin/selu-healthcheck$'
expect_line '^ +CMD \["selu-healthcheck"'
[[ -x deploy/healthcheck.sh ]] || fail dockerfile-structure "deploy/healthcheck.sh is not executable (COPY keeps the mode)"
if sed -n '/^HEALTHCHECK/,/CMD/p' Dockerfile | grep localhost >/dev/null; then
  fail dockerfile-structure "the HEALTHCHECK depends on localhost resolving"
fi
for f in $(grep -Eo -- '--from=build /src/[^ ]+' Dockerfile | sed 's|--from=build /src/||'); do
  [[ -e "$f" ]] || fail dockerfile-structure "Dockerfile copies $f from the build stage, which the release build does not produce"
done
for f in $(awk '/^COPY / && !/--from/ {for (i=2;i<NF;i++) if ($i !~ /^--/) print $i}' Dockerfile); do
  [[ "$f" == "." || -e "$f" ]] || fail dockerfile-structure "Dockerfile copies $f, which does not exist"
done
grep -qx 'build/' .dockerignore || fail dockerfile-structure ".dockerignore does not exclude build/"
# deploy/test.sh must still be what .ci/run runs
if [[ -f .ci/run ]] && ! grep -q 'deploy/test.sh' .ci/run; then
  fail dockerfile-structure ".ci/run no longer runs deploy/test.sh, the Dockerfile's build step"
fi

# ----------------------------------------------------------- Kubernetes
rendered=()
echo; echo "kubectl: $("$KUBECTL" version --client 2>/dev/null | grep -Eo 'v[0-9]+\.[0-9]+\.[0-9]+' | head -1) ($KUBECTL)"
for k in $(find deploy/k8s -name kustomization.yaml -printf '%h\n' | sort); do
  step "Kubernetes: kubectl kustomize $k + schema validation"
  out="$CACHE/rendered-$(echo "$k" | tr / _).yaml"
  if "$KUBECTL" kustomize "$k" >"$out" 2>"$out.err"; then
    rendered+=("$out")
    "$NODE" deploy/check/validate-k8s.js "$out" || fail "k8s-schema" "$k does not validate"
  else
    cat "$out.err" >&2
    fail "k8s-kustomize" "kubectl kustomize $k failed"
  fi
done

# ----------------------------------------------------------- Prometheus
step "Prometheus: promtool"
promtool check config deploy/prometheus/prometheus.yml || fail promtool "check config"
promtool check rules deploy/prometheus/alerts.yml || fail promtool "check rules"

# ----------------------------------------- Grafana/alerts vs real metrics
step "Grafana dashboard and alerts name only exported metrics"
"$PYTHON" -m json.tool deploy/grafana/selu-serve-dashboard.json >/dev/null || fail grafana "dashboard is not valid JSON"
tmp="$(mktemp -d)"
serve_pid=""
cleanup() {
  if [[ -n "$serve_pid" ]]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
healthcheck() { deploy/healthcheck.sh --client "$CLIENT" "$@"; }
# Every batch sampled, so the held-out rows below close monitor windows and
# the selu_activation_* and selu_input_drift_score series exist.
"$SERVE" --model-repository models --grpc-address 127.0.0.1:0 --metrics-address 127.0.0.1:0 \
  --port-file "$tmp/grpc.port" --metrics-port-file "$tmp/metrics.port" --log-level warn \
  --monitor-sample-rate 1 >"$tmp/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do
  [[ -s "$tmp/grpc.port" && -s "$tmp/metrics.port" ]] && break
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -s "$tmp/grpc.port" && -s "$tmp/metrics.port" ]]; then
  addr="127.0.0.1:$(cat "$tmp/grpc.port")"
  # The port files appear when the server listens; the models load after
  # that, and health turns SERVING once they are ready.
  serving=0
  for _ in $(seq 100); do
    if "$CLIENT" --address "$addr" health >/dev/null 2>&1; then serving=1; break; fi
    sleep 0.1
  done
  [[ $serving == 1 ]] || fail metrics "server not SERVING after 10 s"
  "$CLIENT" --address "$addr" infer digits_snn --csv models/digits_snn/heldout.csv --batch 32 >/dev/null \
    || fail metrics "inference failed"
  # one refused request too, so error-coded series exist
  "$CLIENT" --address "$addr" infer digits_snn --json '[[1,2,3]]' >/dev/null 2>&1 || true
  curl -sf "http://127.0.0.1:$(cat "$tmp/metrics.port")/metrics" >"$tmp/metrics.txt" || fail metrics "scrape failed"
  PYTHONDONTWRITEBYTECODE=1 "$PYTHON" deploy/check/check_metrics_and_compose.py metrics "$tmp/metrics.txt" \
    || fail metrics "dashboard/alerts name metrics the server does not export"
  step "prometheus-adapter rules and the custom-metric HPA name exported metrics"
  PYTHONDONTWRITEBYTECODE=1 "$PYTHON" deploy/check/check_metrics_and_compose.py adapter "$tmp/metrics.txt" \
    deploy/k8s/overlays/custom-metric-hpa/prometheus-adapter-values.yaml "${rendered[@]}" \
    || fail adapter "prometheus-adapter rules or the HPA's pods metrics"
  step "HEALTHCHECK (deploy/healthcheck.sh) follows the server's address"
  healthcheck --pid "$serve_pid" \
    || fail healthcheck "not SERVING: --grpc-address 127.0.0.1:0 (argument, port 0)"
else
  cat "$tmp/serve.log" >&2
  fail metrics "selu-serve did not start"
fi

# ---------------------------------------- KServe and the health check
# start_server NAME ARGS...: selu-serve in the background (pid in
# extra_pids[NAME]), waiting for its gRPC port file.
declare -A extra_pids=()
start_server() {
  local name="$1"
  shift
  "$SERVE" --log-level warn --port-file "$tmp/$name.port" "$@" >"$tmp/$name.log" 2>&1 &
  extra_pids[$name]=$!
  for _ in $(seq 100); do
    [[ -s "$tmp/$name.port" ]] && return 0
    kill -0 "${extra_pids[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  cat "$tmp/$name.log" >&2
  return 1
}
stop_server() {
  kill "${extra_pids[$1]}" 2>/dev/null || true
  wait "${extra_pids[$1]}" 2>/dev/null || true
}
# healthy NAME ARGS...: deploy/healthcheck.sh passes within 10 s (the models
# load after the port opens).
healthy() {
  local name="$1"
  shift
  for _ in $(seq 50); do
    healthcheck --pid "${extra_pids[$name]}" "$@" >"$tmp/$name.health" 2>&1 && return 0
    sleep 0.2
  done
  cat "$tmp/$name.health" >&2
  return 1
}
cleanup_extra() {
  for name in "${!extra_pids[@]}"; do stop_server "$name"; done
  cleanup
}
trap cleanup_extra EXIT

step "KServe: deploy/kserve against selu-serve --help"
"$SERVE" --help >"$tmp/serve-help.txt" || fail kserve "selu-serve --help failed"
# Every flag is checked against --help (none pending).
KSERVE_PENDING_FLAGS=()
"$NODE" deploy/check/check-kserve.js --serve-help "$tmp/serve-help.txt" "${KSERVE_PENDING_FLAGS[@]}" \
  deploy/kserve/*.yaml || fail kserve "deploy/kserve does not match the server"

step "KServe: selu-serve with the args KServe renders for InferenceService digits-snn"
mapfile -t kserve_args < <("$NODE" deploy/check/check-kserve.js --serve-help "$tmp/serve-help.txt" \
  "${KSERVE_PENDING_FLAGS[@]}" --print-args digits-snn deploy/kserve/*.yaml 2>/dev/null)
# What the storage initializer leaves in /mnt/models for a storageUri holding
# a model repository, and for one naming a single model.onnx.
mkdir -p "$tmp/kserve-repository/mnt/models/digits_snn/1" "$tmp/kserve-file/mnt/models"
cp models/digits_snn/1/model.onnx "$tmp/kserve-repository/mnt/models/digits_snn/1/"
cp models/digits_snn/1/model.onnx "$tmp/kserve-file/mnt/models/"
run_args() {  # LAYOUT: the rendered args, on LAYOUT's /mnt/models and free ports
  local a flag
  for a in "${kserve_args[@]}"; do
    flag="${a%%=*}"
    if ! grep -Eq -- "^ +(-[a-z], )?$flag( |$)" "$tmp/serve-help.txt"; then
      echo "(dropping $a: this selu-serve has no $flag yet)" >&2
      continue
    fi
    case "$flag" in
      --model-repository) echo "$flag=$tmp/$1${a#*=}" ;;
      --grpc-address | --http-address | --metrics-address) echo "$flag=127.0.0.1:0" ;;
      *) echo "$a" ;;
    esac
  done
}
if [[ ${#kserve_args[@]} -eq 0 ]]; then
  fail kserve "no rendered args for InferenceService digits-snn"
else
  mapfile -t args < <(run_args kserve-repository)
  if start_server kserve "${args[@]}"; then
    healthy kserve || fail kserve "not ready with the rendered args on a model repository in /mnt/models"
    "$CLIENT" --address "127.0.0.1:$(cat "$tmp/kserve.port")" infer digits_snn --csv models/digits_snn/heldout.csv \
      --batch 32 >/dev/null || fail kserve "digits_snn does not infer from /mnt/models/digits_snn/1/model.onnx"
  else
    fail kserve "selu-serve does not start with the rendered args: ${args[*]}"
  fi
  stop_server kserve
  # A single file is no repository: the server runs with no model, and the
  # runtime's readiness probe must keep it unready.
  mapfile -t args < <(run_args kserve-file)
  if start_server kserve-file "${args[@]}"; then
    sleep 1  # past the (instant) load of an empty repository
    if healthcheck --pid "${extra_pids[kserve-file]}"; then
      fail kserve "the readiness probe passes on a /mnt/models holding only model.onnx (no model served)"
    fi
    "$CLIENT" --address "127.0.0.1:$(cat "$tmp/kserve-file.port")" health --service inference.GRPCInferenceService \
      >/dev/null || fail kserve "the server on a single-file /mnt/models is not running"
  else
    fail kserve "selu-serve does not start on a single-file /mnt/models"
  fi
  stop_server kserve-file
  echo "rendered args work on a model repository; a single model.onnx stays unready"
fi

step "HEALTHCHECK: SELU_GRPC_ADDRESS, wildcard binds, port 0, TLS, stopped servers"
# SELU_GRPC_ADDRESS, wildcard [::], port 0: the port is found from the sockets.
if SELU_GRPC_ADDRESS='[::]:0' start_server env-wildcard --model-repository models --metrics-address ''; then
  healthy env-wildcard || fail healthcheck "not SERVING: SELU_GRPC_ADDRESS=[::]:0"
  # Stopped: the port accepts connections the process never answers.
  kill -STOP "${extra_pids[env-wildcard]}"
  if healthcheck --pid "${extra_pids[env-wildcard]}" --timeout 1 >/dev/null 2>&1; then
    fail healthcheck "passes against a stopped (SIGSTOP) server"
  fi
  kill -CONT "${extra_pids[env-wildcard]}"
  pid="${extra_pids[env-wildcard]}"
  stop_server env-wildcard
  if healthcheck --pid "$pid" >/dev/null 2>&1; then
    fail healthcheck "passes after the server exited"
  fi
else
  fail healthcheck "selu-serve does not start on SELU_GRPC_ADDRESS=[::]:0"
fi
# --grpc-address argument on 0.0.0.0 and a fixed non-default port (the
# variable says otherwise: the flag wins), TLS with a self-signed certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=selu-serve \
  -keyout "$tmp/tls.key" -out "$tmp/tls.crt" >/dev/null 2>&1 || fail healthcheck "openssl could not make a certificate"
free_port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("0.0.0.0", 0)); print(s.getsockname()[1])')"
if SELU_GRPC_ADDRESS=127.0.0.1:1 start_server args-tls --model-repository models --metrics-address '' \
    --grpc-address "0.0.0.0:$free_port" --tls-cert "$tmp/tls.crt" --tls-key "$tmp/tls.key"; then
  healthy args-tls || fail healthcheck "not SERVING: --grpc-address 0.0.0.0:$free_port with TLS"
  # gRPC binds 0.0.0.0 dual-stack, so [::1] answers too: when 127.0.0.1 was
  # asked while the models still loaded, [::1] (asked next) may say SERVING.
  grep -Eq "at (127\.0\.0\.1|\[::1\]):$free_port " "$tmp/args-tls.health" ||
    fail healthcheck "did not ask port $free_port on 127.0.0.1 or [::1]: $(cat "$tmp/args-tls.health")"
  stop_server args-tls
else
  fail healthcheck "selu-serve does not start on 0.0.0.0:$free_port with TLS"
fi
echo "health check followed: argument 127.0.0.1:0, SELU_GRPC_ADDRESS=[::]:0, argument 0.0.0.0:$free_port with TLS; failed when stopped and exited"

step "HEALTHCHECK: the Dockerfile's command, with selu-serve as PID 1"
# As in the container: selu-serve is PID 1 of its PID namespace, the
# Dockerfile's HEALTHCHECK CMD runs as written (no --pid, from PATH). Needs
# unshare/nsenter permission (root, not inside an unprivileged container):
# reported, not failed, without it; the steps above cover the rest.
mapfile -t hc_cmd < <(sed -n '/^HEALTHCHECK/,/CMD/p' Dockerfile | sed -n 's/^ *CMD //p' |
  "$PYTHON" -c 'import json, sys; print("\n".join(json.load(sys.stdin)))')
mkdir -p "$tmp/image-bin"
ln -sf "$CLIENT" "$tmp/image-bin/selu-client"
ln -sf "$ROOT/deploy/healthcheck.sh" "$tmp/image-bin/selu-healthcheck"
if [[ ${#hc_cmd[@]} -eq 0 ]]; then
  fail healthcheck "no HEALTHCHECK CMD in the Dockerfile"
elif unshare --pid --fork --mount-proc true 2>/dev/null; then
  unshare --pid --fork --kill-child --mount-proc "$SERVE" --model-repository models --grpc-address 0.0.0.0:0 \
    --metrics-address '' --log-level warn >"$tmp/pid1.log" 2>&1 &
  extra_pids[pid1]=$!
  pid1_ok=0
  for _ in $(seq 50); do
    inner="$(pgrep -P "${extra_pids[pid1]}" | head -1)"
    if [[ -n "$inner" ]] && nsenter --target "$inner" --pid --mount env PATH="$tmp/image-bin:$PATH" \
        "${hc_cmd[@]}" >"$tmp/pid1.health" 2>&1; then
      pid1_ok=1
      break
    fi
    sleep 0.2
  done
  if [[ $pid1_ok == 1 ]] && grep -q 'selu-serve pid 1,' "$tmp/pid1.health"; then
    echo "${hc_cmd[*]}: $(cat "$tmp/pid1.health")"
  else
    cat "$tmp/pid1.health" "$tmp/pid1.log" >&2
    fail healthcheck "the Dockerfile's HEALTHCHECK (${hc_cmd[*]}) does not find selu-serve as PID 1"
  fi
  [[ -n "$inner" ]] && kill "$inner" 2>/dev/null
  wait "${extra_pids[pid1]}" 2>/dev/null || true
  unset 'extra_pids[pid1]'
else
  echo "NOT RUN: unshare --pid is not permitted here (the other health check steps ran)"
fi

# ------------------------------------------------------------- compose
step "docker-compose.yml"
PYTHONDONTWRITEBYTECODE=1 "$PYTHON" deploy/check/check_metrics_and_compose.py compose || fail compose "docker-compose.yml"

# ---------------------------------------------------- runtime libraries
step "Runtime libraries of selu-serve and selu-client are in install-deps.sh runtime"
# shellcheck disable=SC1090
source <(sed -n '/^RUNTIME_PKGS=(/,/^)/p' deploy/install-deps.sh)
allowed="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${RUNTIME_PKGS[@]}" 2>/dev/null |
  sed -n 's/^\([a-z0-9][^ :]*\).*/\1/p' | sort -u)"
# Priority: required packages are in every debian:12-slim image.
required="$(dpkg-query -W -f='${Package} ${Priority}\n' | awk '$2 == "required" {print $1}')"
# The runtime stage has dpkg leave out some files of these packages (the
# '/usr/...' patterns it writes to /etc/dpkg/dpkg.cfg.d/): none may be needed.
mapfile -t excludes < <(grep -o "'/usr/[^']*'" Dockerfile | tr -d "'")
excluded_by_dockerfile() {  # PATH: matched by a pattern (* matches / too, as in dpkg)
  local p
  # shellcheck disable=SC2053  # the patterns are globs
  for p in "${excludes[@]}"; do [[ "$1" == $p ]] && return 0; done
  return 1
}
libs_ok=1
for bin in "$SERVE" "$CLIENT"; do
  if ldd "$bin" | grep 'not found' >/dev/null; then  # not -q: SIGPIPE + pipefail
    ldd "$bin" | grep 'not found' >&2
    fail runtime-libs "$(basename "$bin") has unresolved libraries"
    libs_ok=0
  fi
  while read -r lib; do
    pkg="$(dpkg -S "*/$(basename "$lib")" 2>/dev/null | grep -E "^[^:]+(:[a-z0-9]+)?: /(usr/)?lib/" | head -1 | cut -d: -f1)"
    if [[ -z "$pkg" ]]; then
      pkg="$(dpkg -S "*/$(basename "$(readlink -f "$lib")")" 2>/dev/null | head -1 | cut -d: -f1)"
    fi
    if [[ -z "$pkg" ]]; then
      fail runtime-libs "$(basename "$bin"): $lib belongs to no Debian package"
      libs_ok=0
    elif ! grep -qx "$pkg" <<<"$allowed" && ! grep -qx "$pkg" <<<"$required"; then
      fail runtime-libs "$(basename "$bin"): $lib is in package $pkg, not pulled in by RUNTIME_PKGS in deploy/install-deps.sh"
      libs_ok=0
    fi
    real="$(readlink -f "$lib")"
    for path in "/usr/lib/$(basename "$(dirname "$real")")/$(basename "$lib")" "/usr${real#/usr}"; do
      if excluded_by_dockerfile "$path"; then
        fail runtime-libs "$(basename "$bin") needs $path, which the Dockerfile's runtime stage excludes (path-exclude)"
        libs_ok=0
      fi
    done
  done < <(ldd "$bin" | awk '/=> \// {print $3}')
done
[[ $libs_ok -eq 1 ]] && echo "all libraries come from runtime packages; none is path-excluded (${#excludes[@]} patterns)"

# ------------------------------------------------------ runtime image size
step "Runtime image size (deploy/check/image-size.sh)"
deploy/check/image-size.sh --serve "$SERVE" --client "$CLIENT" --cache "$CACHE/image-size" \
  || fail image-size "the runtime stage is over 150 MB, or could not be measured"

echo
if [[ ${#failed[@]} -ne 0 ]]; then
  echo "deploy checks FAILED: $(printf '%s\n' "${failed[@]}" | sort -u | tr '\n' ' ')"
  exit 1
fi
echo "deploy checks passed"
