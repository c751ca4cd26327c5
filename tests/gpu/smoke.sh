#!/usr/bin/env bash
# GPU smoke run of the whole pipeline (see tests/gpu/smoke.py): bash tests/gpu/smoke.sh [--out F] [--device cpu]
set -euo pipefail
cd "$(dirname "$0")/../.."
exec "${PYTHON:-python}" tests/gpu/smoke.py "$@"
