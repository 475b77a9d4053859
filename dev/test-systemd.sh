#!/usr/bin/env bash
# The worker and publisher units under a real systemd (systemd 252, Debian bookworm: the same
# major version as Amazon Linux 2023's), with all their hardening on. Called by
# dev/test-infra.sh once the stack is applied to moto and the user data's files are extracted:
#
#   dev/test-systemd.sh STATE_DIR ENDPOINT OUTPUTS_JSON
#
# STATE_DIR holds worker.env, publisher.env and worker-50-stack.conf as the launch templates'
# user data writes them (infra/tests/verify_stack.py --env-dir). The container:
#  - boots /sbin/init from auto-lambda/systemd:test (dev/build-image.sh systemd), with no added
#    capability: tmpfs /run and /tmp, the host's cgroup tree read-only, and Docker's seccomp
#    filter off (it refuses the user namespace PrivateUsers= needs);
#  - shares the host's network, so the units reach moto on the host's loopback;
#  - reaches the host's Docker Engine through its socket; the worker's work directory and the
#    staged files (uv among them) are bind-mounted at the same paths on both sides, so build
#    and verifier containers see what the worker wrote and mounts;
#  - is laid out by ami/install.sh itself (INSTALL_OS_PACKAGES=0: no dnf here).
# Only what differs between an instance and this machine is changed, in drop-ins and env lines
# that say why. The container is removed on every path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
state=${1:?STATE_DIR}
endpoint=${2:?ENDPOINT}
outputs=${3:?OUTPUTS_JSON}
py="$root/.venv/bin/python"
image=auto-lambda/systemd:test
name="auto-lambda-systemd-$$"
started=$SECONDS

step() { printf '\n== systemd [%3ds] %s\n' $((SECONDS - started)) "$*"; }
die() {
  echo "error: $*" >&2
  echo "-- the units' journal:" >&2
  docker exec "$name" journalctl --no-pager -n 40 -o short-precise -u 'auto-lambda*' -u 'queue-metric*' >&2 || true
  exit 1
}
# KEEP_STATE=1 (as for dev/test-infra.sh) keeps the container of a failed run, for a look.
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] && [ -n "${KEEP_STATE:-}" ]; then
    echo "kept the container $name (docker rm -f $name when done)" >&2
  else
    docker rm -f "$name" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_c() { docker exec "$name" "$@"; }
write_c() { docker exec -i "$name" sh -c "cat >>'$1'"; } # write_c FILE: appends stdin to FILE
prop() { in_c systemctl show -P "$2" "$1"; } # prop UNIT PROPERTY
# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND (in this shell) every 0.5 s.
wait_for() {
  local limit=$1 what=$2 t=$SECONDS
  shift 2
  until "$@"; do
    [ $((SECONDS - t)) -lt "$limit" ] || die "not within $limit s: $what"
    sleep 0.5
  done
}
out() { "$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["value"])' "$outputs" "$1"; }

step "Image and container"
dev/build-image.sh systemd python3.13
work="$state/systemd-work" # the worker's work directory, at the same path here and inside
staging="$state/systemd-staging"
mkdir -p "$work" "$staging"
chmod 0755 "$state" "$work"
cp target/debug/auto-lambda-worker target/debug/queue-metric-publisher .venv/bin/uv ami/install.sh "$staging/"
cp -r ami/systemd ami/files "$staging/"
docker_gid=$(stat -c %g /var/run/docker.sock)
# Behind this machine's TLS-intercepting proxy the worker's own uv needs the host's CA bundle
# (an instance behind such a proxy has its CA in the system bundle the same way).
ca=/etc/ssl/certs/ca-certificates.crt
ca_mount=()
if [ -f "$ca" ]; then ca_mount=(-v "$ca:$ca:ro"); fi
# seccomp=unconfined: Docker's default seccomp profile refuses the user namespace that systemd
# sets up for PrivateUsers= (the publisher's unit fails with 217/USER under it); on an instance
# systemd runs on the host, under no such filter. No capability is added.
docker run -d --name "$name" --label auto-lambda.test=systemd --stop-signal SIGRTMIN+3 \
  --security-opt seccomp=unconfined \
  --network host --tmpfs /run --tmpfs /run/lock --tmpfs /tmp \
  -v /sys/fs/cgroup:/sys/fs/cgroup:ro \
  -v /var/run/docker.sock:/run/docker.sock \
  -v "$(command -v docker)":/usr/bin/docker:ro \
  "${ca_mount[@]}" \
  -v "$staging:$staging:ro" -v "$work:$work" \
  "$image" >/dev/null
wait_for 30 "systemd reaches running" sh -c "docker exec $name systemctl is-system-running 2>/dev/null | grep -Eq '^(running|degraded)$'"
echo "systemd $(in_c systemctl --version | head -n1 | cut -d' ' -f2) is $(in_c systemctl is-system-running || true)"

step "ami/install.sh lays out the units, binaries and files"
# The host's docker group, by number: SupplementaryGroups=docker must open the host's socket.
# -o: the number may already belong to a group of the image (999 is systemd-journal's).
in_c groupadd --system --non-unique --gid "$docker_gid" docker
in_c env STAGING="$staging" INSTALL_OS_PACKAGES=0 bash "$staging/install.sh" >"$state/systemd-install.log" 2>&1 ||
  { cat "$state/systemd-install.log" >&2; die "ami/install.sh failed"; }
tail -n 3 "$state/systemd-install.log"
[ "$(in_c systemctl is-enabled auto-lambda-prune.timer)" = enabled ] || die "the prune timer is not enabled"
echo "auto-lambda-prune.timer enabled; worker and publisher installed, not enabled"

step "The configuration, as the user data writes it"
# The user data's files, then only what differs from an instance: moto for AWS, static keys
# for the instance profile, the local build image for the registry, and a work directory
# that is the same path for the host's Docker Engine.
in_c install -d -m 0755 /etc/auto-lambda /etc/systemd/system/auto-lambda-worker.service.d
docker cp "$state/worker.env" "$name:/etc/auto-lambda/worker.env"
docker cp "$state/publisher.env" "$name:/etc/auto-lambda/publisher.env"
docker cp "$state/worker-50-stack.conf" "$name:/etc/systemd/system/auto-lambda-worker.service.d/50-stack.conf"
write_c /etc/auto-lambda/worker.env <<EOF
# dev/test-systemd.sh: this machine instead of an instance
AWS_ENDPOINT_URL=$endpoint
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
AUTO_LAMBDA_SCALE_IN_PROTECTION=false
AUTO_LAMBDA_FOLLOW_LIFECYCLE_STATE=false
AUTO_LAMBDA_WAIT_TIME_SECS=1
AUTO_LAMBDA_LOG_FORMAT=json
AUTO_LAMBDA_BUILD_IMAGES=python3.13=auto-lambda/build-python3.13:test
AUTO_LAMBDA_WORK_DIR=$work
# The Engine mounts uv into build containers from its own host: a path that is the same there.
AUTO_LAMBDA_UV_BINARY=$staging/uv
EOF
# This machine reaches PyPI through a TLS-intercepting proxy: builds get the host's CA bundle
# (mounted above at the same path, so the worker and the Engine see the same file).
if [ -f "$ca" ]; then echo "AUTO_LAMBDA_BUILD_CA_BUNDLE=$ca" | write_c /etc/auto-lambda/worker.env; fi
write_c /etc/auto-lambda/publisher.env <<EOF
# dev/test-systemd.sh: this machine instead of an instance
AWS_ENDPOINT_URL=$endpoint
AWS_ACCESS_KEY_ID=testing
AWS_SECRET_ACCESS_KEY=testing
QMP_LOG_FORMAT=json
EOF
# The work directory is not /var/lib/auto-lambda/work here, so ProtectSystem=strict must be
# told it is writable (on an instance the StateDirectory is). The unit's own start-up clean of
# its work directory is mirrored for this path.
write_c /etc/systemd/system/auto-lambda-worker.service.d/90-test-workdir.conf <<EOF
[Service]
ReadWritePaths=$work
ExecStartPre=-+/usr/bin/find $work -mindepth 1 -delete
EOF
in_c chown auto-lambda:auto-lambda "$work"
in_c systemctl daemon-reload

step "The worker starts under its hardening and deploys a pure, a native and a uv example"
t=$SECONDS
in_c systemctl start auto-lambda-worker.service || die "the worker unit did not start"
echo "active ($(prop auto-lambda-worker.service ActiveState)) after $((SECONDS - t)) s: READY=1 reached systemd"
# deploy DIR NAME: uploads DIR as NAME.zip (a key no earlier step used) and waits for its report.
deploy() { "$py" infra/tests/verify_stack.py deploy --endpoint "$endpoint" --outputs "$outputs" --timeout 180 --deploy "$1" --name "$2" "${@:3}"; }
deploy examples/python-hello sd-hello || die "python-hello was not deployed from the unit"
deploy examples/python-native sd-native --built-on container ||
  die "python-native was not deployed from the unit (a build container from inside the hardened unit)"
# A uv project from PyPI: uv export and a wheels-first install run by the worker itself, inside
# the unit's sandbox (seccomp filter, read-only system, private /tmp, UMask 0077).
deploy examples/python-uv sd-uv --built-on worker || die "python-uv was not installed on the worker from the unit"

step "The journal holds the worker's logs as JSON"
journal=$(in_c journalctl -u auto-lambda-worker.service -o cat --no-pager)
lines=$(grep '^{' <<<"$journal" | tail -n 50 || true)
[ -n "$lines" ] || die "no JSON log lines in the journal"
printf '%s\n' "$lines" | "$py" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert rows and all("level" in r and "message" in r and "timestamp" in r for r in rows), rows[:2]
level, message = rows[-1]["level"], rows[-1]["message"]
print(f"{len(rows)} JSON lines, the last: {level} {message!r}")'

step "A hung worker (SIGSTOP) is killed by the watchdog and started again"
# WatchdogSec=60 on an instance; 5 s here, so that the test does not wait a minute. Nothing
# else of the unit changes.
in_c sh -c 'printf "[Service]\nWatchdogSec=5\n" >/etc/systemd/system/auto-lambda-worker.service.d/91-test-watchdog.conf'
in_c systemctl daemon-reload
in_c systemctl restart auto-lambda-worker.service
pid=$(prop auto-lambda-worker.service MainPID)
restarts=$(prop auto-lambda-worker.service NRestarts)
in_c kill -STOP "$pid"
t=$SECONDS
wait_for 60 "the watchdog restarts the stopped worker" sh -c \
  "[ \"\$(docker exec $name systemctl show -P NRestarts auto-lambda-worker.service)\" -gt $restarts ] &&
   [ \"\$(docker exec $name systemctl show -P ActiveState auto-lambda-worker.service)\" = active ]"
journal=$(in_c journalctl -u auto-lambda-worker.service --no-pager -o cat)
grep -i 'watchdog timeout' <<<"$journal" || die "the journal does not say the watchdog fired"
echo "restarted $((SECONDS - t)) s after SIGSTOP (pid $pid -> $(prop auto-lambda-worker.service MainPID))"
deploy examples/python-hello sd-after-watchdog || die "the restarted worker does not deploy"
in_c rm /etc/systemd/system/auto-lambda-worker.service.d/91-test-watchdog.conf

step "systemctl stop within the grace: exit 0, the job in hand is handed back, not lost"
in_c systemctl daemon-reload
in_c systemctl restart auto-lambda-worker.service
# The stopped worker's last long poll (AUTO_LAMBDA_WAIT_TIME_SECS=1) may still be open on the
# server: a message sent within it goes to that dead poll and stays hidden for the visibility
# timeout (moto does this, and so can SQS). Upload only once it has run out.
sleep 2
# A job in hand when the stop comes: the native example with a setup.py that takes 8 s, so
# that systemctl stop arrives while its build container runs. The drain must finish it (or
# hand it back) within the grace, and the unit must exit 0.
bucket=$(out bucket_name)
prefix=$(out upload_prefix)
"$py" - "$endpoint" "$bucket" "${prefix}sd-stop.zip" <<'PY'
import io, sys, zipfile
import boto3
sys.path.insert(0, "dev")
from upload import zip_dir
src = zipfile.ZipFile(io.BytesIO(zip_dir("examples/python-native")))
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for item in src.infolist():
        data = src.read(item)
        if item.filename.endswith("setup.py"):
            data = b"import time\ntime.sleep(8)\n" + data
        z.writestr(item, data)
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=buf.getvalue())
PY
wait_for 30 "the job's build container runs" sh -c \
  "[ -n \"\$(docker ps -q --filter label=auto-lambda.role=build)\" ]"
t=$SECONDS
in_c systemctl stop auto-lambda-worker.service
status=$(prop auto-lambda-worker.service ExecMainStatus)
result=$(prop auto-lambda-worker.service Result)
if [ "$status" != 0 ] || [ "$result" != success ]; then die "stop: exit status $status, result $result"; fi
journal=$(in_c journalctl -u auto-lambda-worker.service --no-pager -o cat)
grep -q '"in_flight":1' <<<"$journal" || die "no job was in hand when the stop came"
echo "stopped in $((SECONDS - t)) s with a job in hand: exit 0, result success"
in_c systemctl start auto-lambda-worker.service
"$py" - "$endpoint" "$bucket" "$(out status_prefix)${prefix}sd-stop.zip/" <<'PY' || die "the job taken before the stop has no deployed report"
import json, sys, time
import boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1")
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    for obj in s3.list_objects_v2(Bucket=sys.argv[2], Prefix=sys.argv[3]).get("Contents", []):
        r = json.load(s3.get_object(Bucket=sys.argv[2], Key=obj["Key"])["Body"])
        if r["outcome"] in ("deployed", "unchanged"):
            print(f"the job taken before the stop: {r['outcome']} (attempt {r['attempt']})")
            sys.exit(0)
    time.sleep(0.5)
sys.exit("no report")
PY
in_c systemctl stop auto-lambda-worker.service

step "Exit 64 (bad configuration) is not restarted, and status shows why"
in_c cp /etc/auto-lambda/worker.env /etc/auto-lambda/worker.env.good
in_c sh -c 'echo AUTO_LAMBDA_CONCURRENCY=0 >>/etc/auto-lambda/worker.env'
in_c systemctl reset-failed auto-lambda-worker.service 2>/dev/null || true
in_c systemctl start auto-lambda-worker.service 2>/dev/null && die "a bad configuration started"
sleep 7 # longer than RestartSec=5s
[ "$(prop auto-lambda-worker.service ExecMainStatus)" = 64 ] || die "exit status $(prop auto-lambda-worker.service ExecMainStatus), not 64"
[ "$(prop auto-lambda-worker.service NRestarts)" = 0 ] || die "exit 64 was restarted"
[ "$(prop auto-lambda-worker.service ActiveState)" = failed ] || die "not failed after exit 64"
reason=$(in_c systemctl status auto-lambda-worker.service --no-pager -n 5 | grep -m1 'invalid setting' || true)
[ -n "$reason" ] || die "systemctl status does not show the reason"
echo "failed, not restarted; systemctl status shows:${reason#*]:}"

step "A transient start-up failure (exit 75) is restarted, and the start limit ends a loop"
# The queue's endpoint unreachable (nothing listens on port 9): the worker retries for
# AUTO_LAMBDA_STARTUP_TIMEOUT_SECS (1 s here), exits 75, and systemd starts it again, until the
# start limit (5 starts in 300 s) stops the loop. RestartSec is 1 s here instead of 5 s.
in_c cp /etc/auto-lambda/worker.env.good /etc/auto-lambda/worker.env
in_c sh -c 'printf "AWS_ENDPOINT_URL=http://127.0.0.1:9\nAUTO_LAMBDA_STARTUP_TIMEOUT_SECS=1\n" >>/etc/auto-lambda/worker.env'
in_c sh -c 'printf "[Service]\nRestartSec=1\n" >/etc/systemd/system/auto-lambda-worker.service.d/92-test-restart.conf'
in_c systemctl daemon-reload
in_c systemctl reset-failed auto-lambda-worker.service 2>/dev/null || true
t=$SECONDS
in_c systemctl start --no-block auto-lambda-worker.service
# systemd 252 leaves Result=exit-code (not start-limit-hit) when an automatic restart hits
# the limit; its journal says "Start request repeated too quickly".
wait_for 150 "the start limit stops the restart loop" sh -c \
  "docker exec $name journalctl -u auto-lambda-worker.service --no-pager -o cat | grep 'repeated too quickly' >/dev/null"
[ "$(prop auto-lambda-worker.service ActiveState)" = failed ] || die "not failed after the start limit"
restarts=$(prop auto-lambda-worker.service NRestarts)
journal=$(in_c journalctl -u auto-lambda-worker.service --no-pager -o cat)
exits=$(grep -c 'status=75' <<<"$journal" || true)
[ "$exits" -ge 5 ] || die "the journal shows $exits exits with status 75"
echo "exit 75 restarted $restarts times ($exits exits with 75), then the start limit after $((SECONDS - t)) s"
in_c rm /etc/systemd/system/auto-lambda-worker.service.d/92-test-restart.conf
in_c cp /etc/auto-lambda/worker.env.good /etc/auto-lambda/worker.env
in_c systemctl daemon-reload
in_c systemctl reset-failed auto-lambda-worker.service 2>/dev/null || true

step "The publisher unit starts, publishes and stops cleanly"
in_c systemctl start queue-metric-publisher.service || die "the publisher unit did not start"
"$py" - "$endpoint" "$outputs" <<'PY' || die "the publisher published nothing from its unit"
import json, sys, time
import boto3
out = {k: v["value"] for k, v in json.load(open(sys.argv[2])).items()}
queue = out["queue_arn"].split(":")[-1]
cw = boto3.client("cloudwatch", endpoint_url=sys.argv[1], region_name="us-east-1")
start = time.time() - 5
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    data = cw.get_metric_statistics(Namespace=out["metric_namespace"], MetricName="Visible",
                                    Dimensions=[{"Name": "QueueName", "Value": queue}],
                                    StartTime=start, EndTime=time.time() + 60, Period=1,
                                    Statistics=["SampleCount"])["Datapoints"]
    if data:
        print(f"Visible published from the unit ({len(data)} datapoints since it started)")
        sys.exit(0)
    time.sleep(1)
sys.exit("no datapoint")
PY
in_c systemctl stop queue-metric-publisher.service
status=$(prop queue-metric-publisher.service ExecMainStatus)
if [ "$status" != 0 ] || [ "$(prop queue-metric-publisher.service Result)" != success ]; then
  die "publisher stop: exit status $status"
fi
echo "publisher stopped: exit 0"

step "The prune service runs clean"
in_c systemctl start auto-lambda-prune.service || die "auto-lambda-prune.service failed"
[ "$(prop auto-lambda-prune.service Result)" = success ] || die "prune: $(prop auto-lambda-prune.service Result)"
journal=$(in_c journalctl -u auto-lambda-prune.service --no-pager -o cat)
grep 'root volume' <<<"$journal" || die "the prune script printed nothing"

step "Exposure scores under the real systemd (lower is better; informative)"
for u in auto-lambda-worker queue-metric-publisher; do
  in_c systemd-analyze security --no-pager "$u.service" 2>/dev/null | tail -n1 | sed "s/^/$u: /" || true
done
failed=$(in_c systemctl list-units --failed --no-legend --no-pager 'auto-lambda*' 'queue-metric*')
[ -z "$failed" ] || die "failed units: $failed"

step "systemd suite passed in $((SECONDS - started)) s"
