#!/usr/bin/env bash
# Installs, from Debian 12 packages only, what selu-serve needs.
#
#   deploy/install-deps.sh [runtime|build|test|all]...   (default: all)
#
# runtime: shared libraries the selu-serve binary links against (nothing else:
#          the runtime image installs exactly this group; plaintext gRPC only,
#          so no ca-certificates).
# build:   compilers, CMake and the -dev packages (includes runtime).
# test:    GoogleTest, Python with torch/onnx/grpcio, Prometheus, kubectl, node/npm
#          (deploy/check-deploy.sh), clang-14 + libFuzzer (tests/fuzz) (includes build).
# Idempotent: packages already installed are skipped; apt is only asked for the
# missing ones, so a second run costs a dpkg query and nothing else.
set -euo pipefail

RUNTIME_PKGS=(
  libdnnl2 libgomp1 libonnx1 libprotobuf32 libgrpc++1.51 libgrpc29 libssl3
  libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libspdlog1.10 libfmt9 libcpp-httplib0.11
)
BUILD_PKGS=(
  build-essential g++ cmake ninja-build pkg-config git
  libdnnl-dev ocl-icd-opencl-dev libonnx-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libssl-dev
  prometheus-cpp-dev libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libcpp-httplib-dev
  clang-format
)
TEST_PKGS=(
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  python3 python3-numpy python3-torch python3-onnx python3-sklearn python3-matplotlib
  python3-grpcio python3-grpc-tools python3-protobuf
  libopenblas0-pthread
  prometheus curl procps ca-certificates
  kubernetes-client nodejs npm python3-yaml
  clang-14 libfuzzer-14-dev
)
# Packages whose command is enough, from whatever package provides it: on a
# machine with another kubectl (Google's) or NodeSource's nodejs (which ships
# npm and conflicts with Debian's npm) installing Debian's would fail.
declare -A PROVIDED_BY_COMMAND=([kubernetes-client]=kubectl [nodejs]=node [npm]=npm)

groups=("$@")
[[ ${#groups[@]} -eq 0 ]] && groups=(all)

want=()
for g in "${groups[@]}"; do
  case "$g" in
    runtime) want+=("${RUNTIME_PKGS[@]}") ;;
    build) want+=("${RUNTIME_PKGS[@]}" "${BUILD_PKGS[@]}") ;;
    test | all) want+=("${RUNTIME_PKGS[@]}" "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
    *)
      echo "install-deps.sh: unknown group '$g' (runtime|build|test|all)" >&2
      exit 2
      ;;
  esac
done

missing=()
for p in $(printf '%s\n' "${want[@]}" | sort -u); do
  cmd="${PROVIDED_BY_COMMAND[$p]:-}"
  if [[ -n "$cmd" ]] && command -v "$cmd" >/dev/null; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps.sh: all ${groups[*]} packages present"
  exit 0
fi

SUDO=()
[[ $(id -u) -ne 0 ]] && SUDO=(sudo)
echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
