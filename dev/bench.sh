#!/usr/bin/env bash
# make bench: every benchmark of issue 7 against its baseline, on this machine.
#
# Installs the baselines' tools from Debian when missing (Info-ZIP `zip`, GNU `time`; `perf`
# for the packager's profile when the distribution has it), builds the release binaries once,
# then runs dev/bench/bench.py with the project's venv. `make bench` runs `make setup` first
# (the venv with moto, the local build image).
#
# Prints `name: value unit` per figure, a markdown table and the scaling simulator's output.
# Logs and scratch files (generated trees, moto state) stay in .dev/bench/. Every server it
# starts listens on loopback and is stopped on exit.
#
#   dev/bench.sh [--only packaging,latency,native,burst,footprint,sim]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
py="$root/.venv/bin/python"
[ -x "$py" ] || { echo "bench: error: $py missing; run dev/setup.sh (make bench does)" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else echo "bench: error: need root to run: $*" >&2; return 1
  fi
}

# apt_install PACKAGE... : idempotent; apt-get update only when an install fails.
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  echo "bench: installing $* with apt-get" >&2
  if ! as_root apt-get install -y -q --no-install-recommends "$@" </dev/null >/dev/null; then
    as_root apt-get update -q </dev/null >/dev/null
    as_root apt-get install -y -q --no-install-recommends "$@" </dev/null >/dev/null
  fi
}

need=()
command -v zip >/dev/null || need+=(zip)
[ -x /usr/bin/time ] || need+=(time)
if [ "${#need[@]}" -gt 0 ]; then apt_install "${need[@]}"; fi
# perf is optional: without it the packager's profile is skipped.
if ! command -v perf >/dev/null; then apt_install linux-perf || echo "bench: perf unavailable; no profile" >&2; fi

echo "bench: building release binaries (cargo build --release --bins --features auto-lambda-worker/bench-tools)" >&2
cargo build --release --quiet --bins --features auto-lambda-worker/bench-tools

mkdir -p .dev/bench
child=
cleanup() {
  local status=$?
  # bench.py stops what it started on SIGTERM; moto state dirs are a backstop.
  if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  for state in .dev/bench/moto-*; do
    if [ -f "$state/moto.pid" ]; then "$py" dev/localaws.py stop --state "$state" 2>/dev/null || true; fi
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$py" dev/bench/bench.py "$@" &
child=$!
wait "$child"
child=
echo "bench_total_runtime: $(( $(date +%s) - start )) s (dev/bench.sh: tools, release build, benchmarks; make setup not counted)"
