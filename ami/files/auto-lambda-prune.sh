#!/usr/bin/env bash
# Disk hygiene for a long-lived worker, run hourly by auto-lambda-prune.timer (as root):
#  - build containers that exited more than an hour ago (the worker removes its own; this
#    catches what a crash left behind);
#  - dangling images: old versions of a build image after a newer one was pulled;
#  - per-job directories the worker did not remove (it deletes each one when its job ends), but
#    not the verifier's staging directory;
#  - under disk pressure, every image no container uses that was created more than KEEP_HOURS
#    ago (pre-pulled build images too: the worker pulls one again when it needs it), and the
#    worker's uv wheel cache (<AUTO_LAMBDA_CACHE_DIR>/uv: the next builds download again).
# The worker bounds its dependency cache itself (AUTO_LAMBDA_CACHE_DIR).
set -euo pipefail

work_dir=${AUTO_LAMBDA_WORK_DIR:-/var/lib/auto-lambda/work}
uv_cache=${AUTO_LAMBDA_CACHE_DIR:-/var/cache/auto-lambda}/uv
high_water=${AUTO_LAMBDA_PRUNE_HIGH_WATER_PERCENT:-80}
keep_hours=${AUTO_LAMBDA_PRUNE_KEEP_HOURS:-168}
stale_minutes=${AUTO_LAMBDA_PRUNE_STALE_MINUTES:-1440}

used_percent() { df --output=pcent / | tail -n1 | tr -dc '0-9'; }

echo "root volume $(used_percent)% used before pruning"
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  docker container prune --force --filter "until=1h"
  docker image prune --force
fi

if [ -d "$work_dir" ]; then
  # Older than any build can run (build timeout <= 12 h): no job still owns it. The
  # verifier's staging directory (auto-lambda-verify-<pid>) lives as long as its worker, which
  # removes those of dead workers when it starts.
  find "$work_dir" -mindepth 1 -maxdepth 1 -mmin +"$stale_minutes" ! -name 'auto-lambda-verify-*' \
    -print -exec rm -rf -- {} +
fi

used=$(used_percent)
if [ "$used" -ge "$high_water" ] && command -v docker >/dev/null; then
  echo "root volume ${used}% used (>= ${high_water}%): pruning unused images older than ${keep_hours} h"
  docker image prune --all --force --filter "until=${keep_hours}h"
fi
if [ "$(used_percent)" -ge "$high_water" ] && [ -d "$uv_cache" ] && command -v uv >/dev/null; then
  # uv waits for installs in progress to finish (its cache lock); ten minutes at most. It runs
  # as root here, so whatever it leaves (the emptied folder, its lock) goes back to the
  # worker's user, or the worker's next install could not use its own cache.
  echo "root volume still >= ${high_water}% used: clearing the uv wheel cache $uv_cache"
  owner=$(stat -c %u:%g "$uv_cache")
  UV_CACHE_DIR=$uv_cache timeout 600 uv cache clean || echo "uv cache clean did not finish; next run tries again"
  if [ -d "$uv_cache" ]; then chown -R "$owner" "$uv_cache"; fi
fi
echo "root volume $(used_percent)% used after pruning"
