#!/usr/bin/env bash
# make test-infra: checks infra/ (Terraform) and ami/ (Packer, systemd, shell) on this machine.
#
#  1. the scaling model's tests (dev/test_scaling_sim.py; standard library, a few seconds)
#  2. tools: the moto venv (dev/setup.sh); shellcheck, packer, systemd-analyze from Debian
#     then the patched emulator's tests (dev/test_moto_patches.py: Lambda's RevisionId; seconds)
#  3. static: shellcheck of every shell script, terraform fmt, systemd-analyze verify of the
#     units, packer validate of the template
#  4. terraform init + validate of the module as users get it
#  5. terraform apply against moto, then verify the stack through the API
#     (infra/tests/verify_stack.py) and the dashboard's metrics against the Rust code
#     (infra/tests/check_metrics.py)
#  6. the real worker and publisher, configured from the launch templates' user data, deploy
#     examples/python-hello and publish the backlog
#  7. the same units under a real systemd in a container, hardening on (dev/test-systemd.sh)
#  8. terraform destroy
#
# Needs no stdin and no AWS account. Terraform comes from the offline provider mirror when one
# is found (TF_PLUGIN_MIRROR, default /opt/tf-plugins), else from the registry.
# Environment: SKIP_CARGO_BUILD=1 uses target/debug as it is; RUN_CHECKOV=1 also runs checkov
# (installed into .dev/tools, findings reported, never fatal); KEEP_STATE=1 keeps the scratch dir.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
py="$root/.venv/bin/python"
state="$root/.dev/test-infra/run-$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$state"
export PYTHONDONTWRITEBYTECODE=1
started=$SECONDS

step() { printf '\n== [%3ds] %s\n' $((SECONDS - started)) "$*"; }
die() { echo "error: $*" >&2; exit 1; }

pids=()
moto_started=
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$moto_started" ]; then "$py" dev/localaws.py stop --state "$state" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then
    echo "test-infra FAILED after $((SECONDS - started)) s; logs are in ${state#"$root"/}/" >&2
    tail -n 20 "$state"/*.log 2>/dev/null >&2 || true
  elif [ -z "${KEEP_STATE:-}" ]; then
    rm -rf "$state"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() { # apt_install COMMAND PACKAGE: installs PACKAGE unless COMMAND exists
  command -v "$1" >/dev/null && return 0
  command -v apt-get >/dev/null || die "$1 is missing; install $2"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  echo "installing $2 (for $1) with apt-get"
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "$2" >"$state/apt.log" 2>&1 ||
    { "${sudo[@]}" apt-get update -q >>"$state/apt.log" 2>&1 &&
      "${sudo[@]}" apt-get install -y -q --no-install-recommends "$2" >>"$state/apt.log" 2>&1; } ||
    die "cannot install $2; see ${state#"$root"/}/apt.log"
}

step "Scaling model (dev/test_scaling_sim.py)"
python3 -m unittest discover -s dev -p 'test_scaling_sim.py'

step "Tools"
dev/setup.sh
dev/build-image.sh python3.13
export DEBIAN_FRONTEND=noninteractive
apt_install shellcheck shellcheck
apt_install packer packer
apt_install systemd-analyze systemd
command -v terraform >/dev/null || die "terraform is missing: install Terraform >= 1.5 (https://developer.hashicorp.com/terraform/install)"

# Terraform CLI config: the offline mirror of hashicorp/aws when this machine has one.
mirror=${TF_PLUGIN_MIRROR:-/opt/tf-plugins}
export TF_CLI_CONFIG_FILE="$state/terraformrc"
if [ -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
  cat >"$TF_CLI_CONFIG_FILE" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/*"]
  }
  direct {
    exclude = ["registry.terraform.io/hashicorp/*"]
  }
}
EOF
  echo "providers from the filesystem mirror $mirror"
else
  : >"$TF_CLI_CONFIG_FILE"
  echo "no provider mirror at $mirror: providers come from the registry"
fi
export TF_IN_AUTOMATION=1 TF_INPUT=0 CHECKPOINT_DISABLE=1
export TF_PLUGIN_CACHE_DIR="$root/.dev/tools/terraform-plugin-cache"
mkdir -p "$TF_PLUGIN_CACHE_DIR"
echo "terraform $(terraform version | head -n1 | cut -d' ' -f2), $(packer version | head -n1), shellcheck $(shellcheck --version | sed -n 's/^version: //p'), systemd $(systemd-analyze --version | head -n1 | cut -d' ' -f2)"

step "The patched emulator enforces Lambda's RevisionId (dev/test_moto_patches.py)"
"$py" -m unittest discover -s dev -p 'test_moto_patches.py'

step "shellcheck: every shell script in the repository"
scripts=()
while IFS= read -r f; do
  [ -f "$f" ] || continue
  case "$f" in
    *.sh) scripts+=("$f") ;;
    *) head -n1 "$f" | grep -Eq '^#!.*\b(ba|da|k)?sh\b' && scripts+=("$f") ;;
  esac
done < <(git ls-files --cached --others --exclude-standard -- ':!target' ':!.venv' ':!.dev')
shellcheck --severity=style "${scripts[@]}"
echo "${#scripts[@]} scripts clean: ${scripts[*]}"

step "terraform fmt -check"
terraform fmt -check -recursive -diff infra

step "systemd-analyze verify: the units as installed by ami/install.sh"
sdroot="$state/sdroot"
mkdir -p "$sdroot/etc/systemd/system" "$sdroot/usr/local/bin" "$sdroot/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$sdroot/usr/lib/systemd/" 2>/dev/null || cp -a /lib/systemd/system "$sdroot/usr/lib/systemd/"
# Every program the units run, as an executable stub at its path in the image.
while IFS= read -r bin; do
  mkdir -p "$sdroot$(dirname "$bin")"
  printf '#!/bin/sh\n' >"$sdroot$bin"
  chmod +x "$sdroot$bin"
done < <(sed -nE 's/^Exec[A-Za-z]*=[-+!@:]*(\/[^ ]+).*/\1/p' ami/systemd/*.service | sort -u)
cp ami/systemd/*.service ami/systemd/*.timer "$sdroot/etc/systemd/system/"
units=()
for u in ami/systemd/*.service ami/systemd/*.timer; do units+=("$sdroot/etc/systemd/system/$(basename "$u")"); done
# verify prints parse warnings without failing: any output is a failure here.
if ! out=$(systemd-analyze verify --root="$sdroot" "${units[@]}" 2>&1) || [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  die "systemd-analyze verify found problems"
fi
echo "clean: $(cd ami/systemd && echo *.service *.timer)"
for u in auto-lambda-worker queue-metric-publisher; do
  # Exposure score of the hardening (lower is better); informative only.
  systemd-analyze security --offline=true --root="$sdroot" --no-pager "$u.service" 2>/dev/null | tail -n1 | sed "s/^/$u: /" || true
done

step "packer validate"
bin_dir="$root/target/debug"
case "$(packer version | head -n1)" in
  "Packer v1.6."*)
    # 1.6 has the amazon-ebs builder built in and rejects `packer { required_plugins }`, which
    # lives in ami/plugins.pkr.hcl for current Packer; validate the template file by name.
    (cd ami && packer validate -var "binaries_dir=$bin_dir" auto-lambda.pkr.hcl)
    ;;
  *)
    (cd ami && packer init . >/dev/null && packer validate -var "binaries_dir=$bin_dir" .)
    ;;
esac

step "terraform init + validate (the module as users get it)"
plain="$state/module"
mkdir -p "$plain"
cp -r infra/*.tf infra/templates "$plain/"
terraform -chdir="$plain" init -backend=false -no-color >"$state/init-plain.log"
terraform -chdir="$plain" validate -no-color

if [ -n "${RUN_CHECKOV:-}" ]; then
  step "checkov (informative)"
  cv="$root/.dev/tools/checkov-venv"
  [ -x "$cv/bin/checkov" ] || { python3 -m venv "$cv" && "$cv/bin/pip" install -q checkov; }
  "$cv/bin/checkov" -d "$plain" --framework terraform --quiet --compact --skip-download 2>"$state/checkov.log" ||
    echo "(checkov findings are informative; see infra/README.md)"
fi

step "Binaries"
# SKIP_CARGO_BUILD (make test sets it): the test run has just built the binaries.
if [ -z "${SKIP_CARGO_BUILD:-}" ]; then cargo build --quiet --bins; fi
worker="$bin_dir/auto-lambda-worker"
publisher="$bin_dir/queue-metric-publisher"
if [ ! -x "$worker" ] || [ ! -x "$publisher" ]; then die "binaries missing in ${bin_dir#"$root"/}"; fi

step "Starting moto"
# Managed policies (AmazonSSMManagedInstanceCore) must exist to be attached.
export MOTO_IAM_LOAD_MANAGED_POLICIES=true
endpoint=$("$py" dev/localaws.py start --state "$state")
moto_started=1
echo "moto on $endpoint"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_SESSION_TOKEN

# What a user brings: a VPC with subnets (moto's default ones) and an AMI built from ami/
# (registered here under the Packer template's name prefix, so the module's lookup finds it).
name="altest$$"
"$py" - "$endpoint" "$name" >"$state/test.tfvars.json" <<'PY'
import json, sys
import boto3
endpoint, name = sys.argv[1], sys.argv[2]
ec2 = boto3.client("ec2", endpoint_url=endpoint)
vpc = next(v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if v["IsDefault"])
subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"])[:2]
base = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["x86_64"]}])["Images"][0]["ImageId"]
iid = ec2.run_instances(ImageId=base, MinCount=1, MaxCount=1, InstanceType="t3.micro")["Instances"][0]["InstanceId"]
ec2.create_image(InstanceId=iid, Name="auto-lambda-worker-2025-01-01T00-00-00Z")
ec2.terminate_instances(InstanceIds=[iid])
print(json.dumps({
    "moto_endpoint": endpoint,
    "name": name,
    "vpc_id": vpc,
    "subnet_ids": subnets,
    "force_destroy_bucket": True,
    # moto keeps no RedriveAllowPolicy: the provider would wait for it forever.
    "enable_redrive_allow_policy": False,
    # The example canary alarm, on the alias of the example the worker deploys below.
    "canary_alarm_function": f"{name}-python-hello",
}, indent=2))
PY

step "terraform init + validate + apply against moto"
work="$state/tf"
mkdir -p "$work"
cp -r infra/*.tf infra/templates infra/tests/moto/*.tf "$work/"
cp "$state/test.tfvars.json" "$work/"
tf() { terraform -chdir="$work" "$@"; }
tf init -no-color >"$state/init.log"
tf validate -no-color
t=$SECONDS
tf apply -auto-approve -no-color -var-file=test.tfvars.json >"$state/apply.log" 2>&1 ||
  { tail -n 40 "$state/apply.log" >&2; die "terraform apply failed"; }
grep -E '^Apply complete' "$state/apply.log"
echo "apply took $((SECONDS - t)) s"
tf output -json >"$state/outputs.json"

step "Verifying the applied stack through the API"
"$py" infra/tests/verify_stack.py stack --endpoint "$endpoint" --outputs "$state/outputs.json" --env-dir "$state"

step "Dashboard metrics against the code"
"$py" infra/tests/check_metrics.py --outputs "$state/outputs.json" --endpoint "$endpoint"

step "The real worker, configured by the launch template's user data, deploys an example"
# moto evaluates bucket policies, and it serves plain HTTP: the TLS-only statement (checked
# above) would deny every request here. On AWS every SDK call is HTTPS. Terraform's refresh
# notices the policy is gone, so destroy still runs clean.
bucket=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["bucket_name"]["value"])' "$state/outputs.json")
"$py" -c 'import sys, boto3; boto3.client("s3", endpoint_url=sys.argv[1]).delete_bucket_policy(Bucket=sys.argv[2])' "$endpoint" "$bucket"
load_env() { # load_env FILE: exports FILE's NAME=value lines (systemd EnvironmentFile syntax)
  local k v
  while IFS='=' read -r k v; do
    [[ "$k" =~ ^[A-Z_][A-Z0-9_]*$ ]] && export "$k=$v"
  done <"$1"
}
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mkdir -p "$state/work" "$state/cache"
export AWS_ENDPOINT_URL="$endpoint"
worker_port=$(free_port)
# systemd's side of Type=notify and WatchdogSec=60, as the unit runs it.
"$py" infra/tests/notify_sink.py "$state/notify.sock" &
pids+=($!)
for _ in $(seq 50); do [ -S "$state/notify.sock" ] && break; sleep 0.1; done
(
  load_env "$state/worker.env"
  # Only what differs between an instance and this machine:
  export AUTO_LAMBDA_WORK_DIR="$state/work" AUTO_LAMBDA_CACHE_DIR="$state/cache" \
    AUTO_LAMBDA_METRICS_ADDR="127.0.0.1:$worker_port" AUTO_LAMBDA_WAIT_TIME_SECS=1 \
    AUTO_LAMBDA_SCALE_IN_PROTECTION=false AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE=false AUTO_LAMBDA_LOG_FORMAT=text
  # No container registry here: the package is verified in the local python3.13 image.
  export AUTO_LAMBDA_BUILD_IMAGES="python3.13=auto-lambda/build-python3.13:test"
  export NOTIFY_SOCKET="$state/notify.sock" WATCHDOG_USEC=60000000 WATCHDOG_PID=$BASHPID
  exec "$worker"
) >"$state/worker.log" 2>&1 &
pids+=($!)
worker_pid=$!
# --expect-events: the deploy is announced on the stack's bus and topic (test queues listen).
"$py" infra/tests/verify_stack.py deploy --endpoint "$endpoint" --outputs "$state/outputs.json" --deploy examples/python-hello --expect-events
# SIGTERM, as systemd stops the unit: the worker drains and exits 0.
kill -TERM "$worker_pid"
worker_status=0
wait "$worker_pid" || worker_status=$?
[ "$worker_status" -eq 0 ] || die "the worker exited $worker_status on SIGTERM (see worker.log)"
echo "the worker stopped cleanly on SIGTERM"
# The units are Type=notify with WatchdogSec: the worker must send READY=1 and WATCHDOG=1.
# Set to 1 only while a binary lacks sd_notify; both send READY=1 and WATCHDOG=1 now.
notify_pending=
if grep -qx 'READY=1' "$state/notify.sock.log" 2>/dev/null && grep -qx 'WATCHDOG=1' "$state/notify.sock.log"; then
  echo "the worker notified systemd: $(sort -u "$state/notify.sock.log" | tr '\n' ' ')"
  [ -z "$notify_pending" ] || echo "note: sd_notify works now; empty notify_pending in dev/test-infra.sh" >&2
elif [ -n "$notify_pending" ]; then
  echo "warning: PENDING: the worker sends no READY=1/WATCHDOG=1, but the unit is Type=notify with WatchdogSec=60: it cannot start under systemd until it does" >&2
else
  die "the worker did not send READY=1 and WATCHDOG=1 to NOTIFY_SOCKET"
fi

step "The real publisher, configured by its user data, publishes the backlog"
publisher_port=$(free_port)
(
  load_env "$state/publisher.env"
  export QMP_ONCE=true QMP_METRICS_ADDR="127.0.0.1:$publisher_port" QMP_LOG_FORMAT=text
  exec "$publisher"
) >"$state/publisher.log" 2>&1
"$py" - "$endpoint" "$state/outputs.json" <<'PY'
import json, sys
import boto3
out = {k: v["value"] for k, v in json.load(open(sys.argv[2])).items()}
queue = out["queue_arn"].split(":")[-1]
cw = boto3.client("cloudwatch", endpoint_url=sys.argv[1])
names = sorted({m["MetricName"] for m in cw.list_metrics(Namespace=out["metric_namespace"],
                Dimensions=[{"Name": "QueueName", "Value": queue}])["Metrics"]})
print(f"{out['metric_namespace']} metrics for {queue}: {', '.join(names) or 'none'}")
if "Visible" not in names:
    sys.exit("error: the publisher published no Visible metric for the stack's queue")
PY

step "The units under a real systemd, hardening on (dev/test-systemd.sh)"
dev/test-systemd.sh "$state" "$endpoint" "$state/outputs.json"

step "terraform destroy"
t=$SECONDS
tf destroy -auto-approve -no-color -var-file=test.tfvars.json >"$state/destroy.log" 2>&1 ||
  { tail -n 40 "$state/destroy.log" >&2; die "terraform destroy failed"; }
grep -E '^Destroy complete' "$state/destroy.log"
echo "destroy took $((SECONDS - t)) s"
[ "$(tf state list | wc -l)" -eq 0 ] || die "resources left in the state after destroy"

step "test-infra passed in $((SECONDS - started)) s"
