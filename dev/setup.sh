#!/usr/bin/env bash
# Installs what the demo and the tests need, into the repository: a Python venv with moto, and
# uv (the Python installer the worker runs; its version is pinned in ami/files/uv-version, the
# one place both this script and the AMI read it from; .venv/bin/uv is its static binary).
# Idempotent and quick when already done: the venv is rebuilt only when requirements change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
uv_version=$(tr -d '[:space:]' <"$root/ami/files/uv-version")
want=$(cat "$root/dev/requirements.txt" "$root/ami/files/uv-version" | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/uv" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "error: $python not found; install Python 3.9 or newer" >&2; exit 1; }
echo "Installing the local AWS emulator (moto) and uv $uv_version into .venv ..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/dev/requirements.txt" "uv==$uv_version"
echo "$want" > "$stamp"
