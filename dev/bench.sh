#!/usr/bin/env bash
# make bench: every benchmark of issue 7 against its baseline, on this machine.
#
# Starts the release build in the background, and while it runs installs the rest: the
# baselines' tools from Debian when missing (Info-ZIP `zip`, GNU `time`; `perf` for the
# packager's profile when the distribution has it), the venv with moto (dev/setup.sh), the
# local Python build image, and the packaging benchmark's trees. Then it runs
# dev/bench/bench.py with the project's venv. Every step is quick when already done.
#
# Prints `name: value unit` per figure, a markdown table and the scaling simulator's output.
# Logs and scratch files (generated trees, moto state) stay in .dev/bench/. Every server it
# starts listens on loopback and is stopped on exit.
#
#   dev/bench.sh [--only packaging,latency,native,verify,installers,burst,footprint,sim]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
start=$(date +%s)
py="$root/.venv/bin/python"
mkdir -p .dev/bench
build=
child=
cleanup() {
  local status=$?
  # bench.py stops what it started on SIGTERM; moto state dirs are a backstop.
  for pid in "$build" "$child"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  for state in .dev/bench/moto-*; do
    if [ -f "$state/moto.pid" ]; then "$py" dev/localaws.py stop --state "$state" 2>/dev/null || true; fi
  done
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The build is the longest step (about 11-13 minutes cold on 2 cores), so it goes first.
echo "bench: building release binaries in the background" \
  "(cargo build --release --bins --features auto-lambda-worker/bench-tools; log in .dev/bench/build.log)" >&2
cargo build --release --bins --features auto-lambda-worker/bench-tools >.dev/bench/build.log 2>&1 &
build=$!

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

dev/setup.sh
dev/build-image.sh python3.13
"$py" dev/bench/bench.py --prepare

if ! wait "$build"; then
  build=
  echo "bench: error: the release build failed; the end of .dev/bench/build.log:" >&2
  tail -n 30 .dev/bench/build.log >&2
  exit 1
fi
build=
echo "bench: release build done after $(( $(date +%s) - start )) s" >&2

"$py" dev/bench/bench.py "$@" &
child=$!
wait "$child"
child=
echo "bench_total_runtime: $(( $(date +%s) - start )) s (dev/bench.sh: set-up, release build, benchmarks)"
