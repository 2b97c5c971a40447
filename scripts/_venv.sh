# Sourced by scripts/*: make .venv with the project installed (idempotent, quick when done).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
STAMP=.venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)
if [ ! -f "$STAMP" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".[dev,embedded]"
  touch "$STAMP"
fi
