#!/usr/bin/env bash
# Creates (once) this clone's own virtual environment, <clone>/.venv, and prints its path.
#
# Why one venv per clone: a venv shared by several clones holds one editable install of
# erts, pointed at whichever clone set it up last, so two checkouts (or CI beside a working
# tree) silently ran each other's code.
# Why it is still fast: packages are kept once, in a shared cache (~/.cache/erts/uv), and uv
# hard-links them into each clone's .venv: the first set-up installs torch (a few GB), a
# second clone takes seconds. uv is installed with pip, pinned, under ~/.cache/erts/uv-bin.
# uv does not read pip's configuration, so the index settings of `pip config list`
# (index-url, extra-index-url, find-links, constraint, cert) are handed to it: a machine
# whose pip is pointed at local mirrors stays on them. Where uv cannot be installed, pip
# builds the venv (slower: no hard links), with its download cache under ~/.cache/erts/pip.
#
# The venv is rebuilt when requirements.txt changes: the marker .venv/.erts-complete holds
# its hash. erts itself is installed editable (re-done when pyproject.toml changes).
#
# Settings (environment): ERTS_VENV=/path another place for the venv; ERTS_PYTHON the
# interpreter (default python3.11, else python3); ERTS_INSTALLER=pip skips uv;
# ERTS_UV_VERSION the uv release used (default below).
# Only the venv path goes to stdout; progress goes to stderr.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ERTS_VENV:-$here/.venv}"
shared="${XDG_CACHE_HOME:-$HOME/.cache}/erts"
uv_version="${ERTS_UV_VERSION:-0.13.9}"

req_hash="$(sha256sum "$here/requirements.txt" | cut -c1-64)"
proj_hash="$(cat "$here/pyproject.toml" | sha256sum | cut -c1-64)"
complete="$req_hash $venv"          # a moved venv (absolute paths inside) is rebuilt too
editable="$proj_hash $here"

say() { echo "[erts] $*" >&2; }

if [ "$(cat "$venv/.erts-complete" 2>/dev/null)" = "$complete" ] &&
   [ "$(cat "$venv/.erts-editable" 2>/dev/null)" = "$editable" ] && [ -x "$venv/bin/python" ]; then
  echo "$venv"   # the common case: nothing to do (milliseconds)
  exit 0
fi

mkdir -p "$shared"
if command -v flock >/dev/null 2>&1; then  # two `make test` in one clone: the second waits
  exec 9>"$shared/env-$(echo "$venv" | sha256sum | cut -c1-16).lock"
  flock 9
fi

if [ -n "${ERTS_PYTHON:-}" ]; then py="$ERTS_PYTHON"
elif command -v python3.11 >/dev/null 2>&1; then py="python3.11"
else py="python3"; fi
py="$(command -v "$py")"

# uv: the pinned release, installed once with pip into the shared cache
find_uv() {
  [ "${ERTS_INSTALLER:-uv}" = "pip" ] && return 1
  local dir="$shared/uv-bin/$uv_version"
  if [ ! -x "$dir/bin/uv" ]; then
    say "installing uv $uv_version into $dir"
    rm -rf "$dir.tmp"
    if ! PIP_ROOT_USER_ACTION=ignore "$py" -m pip install -q --disable-pip-version-check --no-warn-script-location \
         --target "$dir.tmp" "uv==$uv_version" >&2 2>&1; then
      rm -rf "$dir.tmp"
      return 1
    fi
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  "$dir/bin/uv" --version >/dev/null 2>&1 || return 1
  echo "$dir/bin/uv"
}

# pip's index settings as uv arguments (one per line); SSL_CERT_FILE from pip's cert
pip_settings_for_uv() {
  "$py" - <<'EOF'
import ast, os, subprocess, sys
out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
vals = {}
for line in out.splitlines():
    key, sep, raw = line.partition("=")
    if not sep:
        continue
    scope, _, name = key.rpartition(".")
    try:
        v = ast.literal_eval(raw)
    except (SyntaxError, ValueError):
        v = raw
    vals.setdefault(name, []).append((scope, str(v)))
def tokens(name):
    seen = []
    for _, v in vals.get(name, []):
        seen += [t for t in v.split() if t not in seen]
    return seen
index = [v for s, v in vals.get("index-url", []) if s == ":env:"] or [v for _, v in vals.get("index-url", [])]
if index:
    print("--index-url"); print(index[0].split()[0])
for t in tokens("extra-index-url"):
    print("--extra-index-url"); print(t)
for t in tokens("find-links"):
    if "://" in t or os.path.exists(t):
        print("--find-links"); print(t)
for t in tokens("constraint"):
    if os.path.exists(t):
        print("--constraint"); print(t)
for t in tokens("cert")[:1]:
    if os.path.exists(t):
        print("CERT=" + t)
EOF
}

build_with_uv() {
  local uv="$1" line index=() constraint=()
  while IFS= read -r line; do
    case "$line" in
      CERT=*) [ -n "${SSL_CERT_FILE:-}" ] || export SSL_CERT_FILE="${line#CERT=}" ;;
      --constraint) IFS= read -r line; constraint+=(--constraint "$line") ;;
      --*) local opt="$line"; IFS= read -r line; index+=("$opt" "$line") ;;
    esac
  done < <(pip_settings_for_uv)
  say "creating $venv with uv (packages hard-linked from $UV_CACHE_DIR; torch is a few GB the first time)"
  "$uv" venv -q --seed --python "$py" "${index[@]}" "$venv" >&2 &&
    "$uv" pip install -q --python "$venv/bin/python" "${index[@]}" "${constraint[@]}" \
      -r "$here/requirements.txt" >&2 &&
    echo "uv $uv ${index[*]}" > "$venv/.erts-installer"
}

if [ "$(cat "$venv/.erts-complete" 2>/dev/null)" != "$complete" ] || [ ! -x "$venv/bin/python" ]; then
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
    say "$venv exists and is not a virtual environment; remove it or set ERTS_VENV"
    exit 2
  fi
  t0=$SECONDS
  rm -rf "$venv"
  export UV_CACHE_DIR="${UV_CACHE_DIR:-$shared/uv}" UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"
  if uv="$(find_uv)" && build_with_uv "$uv"; then
    :
  else
    if [ "${ERTS_INSTALLER:-uv}" != "pip" ]; then
      say "uv could not be installed or failed; falling back to pip (no hard links, slower)"
    fi
    rm -rf "$venv"
    say "creating $venv with pip (torch + torchvision, a few minutes the first time)"
    "$py" -m venv "$venv"
    PIP_CACHE_DIR="${PIP_CACHE_DIR:-$shared/pip}" "$venv/bin/python" -m pip install -q \
      --disable-pip-version-check -r "$here/requirements.txt" >&2
    echo "pip" > "$venv/.erts-installer"
  fi
  echo "$complete" > "$venv/.erts-complete"
  rm -f "$venv/.erts-editable"
  say "environment ready in $((SECONDS - t0)) s"
fi

if [ "$(cat "$venv/.erts-editable" 2>/dev/null)" != "$editable" ]; then
  # erts itself, editable from this clone: its code is read from $here/src
  if [ "$(cut -d' ' -f1 "$venv/.erts-installer" 2>/dev/null)" = "uv" ]; then
    read -r _ uv rest < "$venv/.erts-installer"
    read -r -a args <<< "${rest:-}"
    export UV_CACHE_DIR="${UV_CACHE_DIR:-$shared/uv}" UV_LINK_MODE="${UV_LINK_MODE:-hardlink}"
    "$uv" pip install -q --python "$venv/bin/python" "${args[@]}" --no-deps -e "$here" >&2
  else
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$here" >&2
  fi
  echo "$editable" > "$venv/.erts-editable"
fi
echo "$venv"
