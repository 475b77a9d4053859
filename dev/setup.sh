#!/usr/bin/env bash
# Installs what the demo and the tests need, into the repository: a Python venv with moto.
# Idempotent and quick when already done: the venv is rebuilt only when requirements change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$root/dev/requirements.txt" | cut -d' ' -f1)

if [ -x "$venv/bin/moto_server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-python3}
command -v "$python" >/dev/null || { echo "error: $python not found; install Python 3.9 or newer" >&2; exit 1; }
echo "Installing the local AWS emulator (moto) into .venv ..." >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/dev/requirements.txt"
echo "$want" > "$stamp"
