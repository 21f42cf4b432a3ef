#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds the release preset and
# serves the bundled model repository (models/) on port 8001.
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh build
cmake --preset serve
cmake --build --preset serve -j "$(nproc)"

# gRPC on 0.0.0.0:8001 by default; extra arguments go to selu-serve
# (deploy/serve.sh --help lists them).
exec build/serve/server/selu-serve --model-repository models "$@"
