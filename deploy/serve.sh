#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds the release preset and
# serves the bundled model repository (models/).
set -euo pipefail
cd "$(dirname "$0")/.."

deploy/install-deps.sh build
cmake --preset serve
cmake --build --preset serve -j "$(nproc)"

if [[ -x build/serve/server/selu-serve ]]; then
  exec build/serve/server/selu-serve --model-repository models "$@"
fi
echo "serve.sh: built selu::core; the selu-serve binary is not part of this build yet" \
  "(see the gRPC server issue). The engine is exercised by deploy/test.sh." >&2
