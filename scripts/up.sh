#!/usr/bin/env bash
# Install what is missing (Debian packages, .venv, Java jars), then bring up a cluster.
# Default: the HA topology in examples/ha.yaml. Extra arguments go to `contrail-ha up`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
bash "$ROOT/scripts/install.sh"
"$ROOT/.venv/bin/contrail-ha" up "$@"
"$ROOT/.venv/bin/contrail-ha" status
