#!/usr/bin/env bash
# make demo: the whole pipeline on this machine against the AWS emulator.
# Installs what it needs, starts moto, the worker and the publisher, uploads
# examples/python-hello, waits for the deployment, prints what happened, stops everything.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state="$root/.dev/demo"
mkdir -p "$state"
py="$root/.venv/bin/python"

step() { printf '\n== %s\n' "$*"; }

step "Setting up (venv with moto, the local build image, binaries)"
dev/setup.sh
dev/build-image.sh python3.13 nodejs20.x
cargo build --quiet --bins
bin="$root/target/debug"

pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  "$py" dev/localaws.py stop --state "$state" 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    echo "demo failed; logs are in $state/" >&2
    tail -n 20 "$state"/worker.log "$state"/publisher.log 2>/dev/null >&2 || true
  fi
  exit "$status"
}
trap cleanup EXIT INT TERM

step "Starting the AWS emulator"
endpoint=$("$py" dev/localaws.py start --state "$state")
echo "moto on $endpoint (pid $(cat "$state/moto.pid"))"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="$endpoint"

step "Creating the bucket, queue + DLQ, notification and execution role"
env_json=$("$py" dev/localaws.py bootstrap --endpoint "$endpoint" --name demo)
field() { "$py" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$env_json" "$1"; }
bucket=$(field bucket); queue_url=$(field queue_url); role_arn=$(field role_arn)
echo "bucket $bucket, queue $queue_url"

step "Starting auto-lambda-worker and queue-metric-publisher"
# No container registry here: native dependencies build in the local Debian image, offline.
AUTO_LAMBDA_QUEUE_URL="$queue_url" AUTO_LAMBDA_ROLE_ARN="$role_arn" AUTO_LAMBDA_WAIT_TIME_SECS=2 \
  AUTO_LAMBDA_SCALE_IN_PROTECTION=off AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE=off AUTO_LAMBDA_CACHE_DIR="$state/cache" \
  AUTO_LAMBDA_BUILD_IMAGES="python3.13=auto-lambda/build-python3.13:test,nodejs20.x=auto-lambda/build-nodejs20.x:test" \
  AUTO_LAMBDA_DEFAULT_PYTHON_RUNTIME=python3.13 AUTO_LAMBDA_DEFAULT_NODE_RUNTIME=nodejs20.x \
  AUTO_LAMBDA_UV_BINARY="$root/.venv/bin/uv" \
  AUTO_LAMBDA_BUILD_NETWORK=none \
  "$bin/auto-lambda-worker" >"$state/worker.log" 2>&1 &
pids+=($!)
QMP_QUEUE_URL="$queue_url" QMP_PERIOD_SECS=1 "$bin/queue-metric-publisher" >"$state/publisher.log" 2>&1 &
pids+=($!)
echo "worker pid ${pids[0]}, publisher pid ${pids[1]}; logs in .dev/demo/"

step "Uploading examples/python-hello as apps/python-hello.zip"
"$bin/auto-lambda" push --bucket "$bucket" --wait --timeout 60 examples/python-hello

step "Uploading examples/python-native: a C extension compiled in the build container"
"$bin/auto-lambda" push --bucket "$bucket" --wait --timeout 180 examples/python-native

step "A canary behind a function URL: examples/python-canary, then a change to it"
# The first version has nothing to shift from; the change moves 50 % of the traffic on alias
# live to the new version for 3 s, then all of it (push --wait follows the shift).
"$bin/auto-lambda" push --bucket "$bucket" --wait --timeout 60 examples/python-canary
changed="$state/python-canary"
rm -rf "$changed" && cp -r examples/python-canary "$changed"
sed -i 's/^VERSION = 1$/VERSION = 2/' "$changed/app.py"
"$bin/auto-lambda" push --bucket "$bucket" --key apps/python-canary.zip --wait --timeout 60 "$changed"

step "Backlog metrics the publisher put in CloudWatch"
"$py" - "$endpoint" <<'PY'
import sys, time, boto3
cw = boto3.client("cloudwatch", endpoint_url=sys.argv[1])
for _ in range(50):
    metrics = cw.list_metrics(Namespace="AutoLambda")["Metrics"]
    if metrics:
        break
    time.sleep(0.1)
for m in sorted(metrics, key=lambda m: m["MetricName"]):
    dims = ",".join(f"{d['Name']}={d['Value']}" for d in m["Dimensions"])
    print(f"AutoLambda/{m['MetricName']} {{{dims}}}")
if not metrics:
    sys.exit("error: the publisher put no metrics")
PY

step "Stopping everything"
