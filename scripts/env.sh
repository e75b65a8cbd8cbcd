#!/usr/bin/env bash
# Creates (once) and prints the path of the pinned virtual environment.
# The venv lives outside the clone, keyed by the hash of requirements.txt, so a
# fresh clone (CI) reuses an identical environment instead of reinstalling torch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
key="$(cat "$here/requirements.txt" | sha256sum | cut -c1-12)"
venv="${ERTS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/erts/venv-$key}"
if [ ! -f "$venv/.complete" ]; then
  echo "[erts] creating environment $venv (torch + torchvision, a few minutes the first time)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt" >&2
  touch "$venv/.complete"
fi
# The package itself is installed editable from this clone every time (seconds, no downloads).
"$venv/bin/pip" install -q --no-deps --no-build-isolation -e "$here" >&2
echo "$venv"
