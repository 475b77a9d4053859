#!/usr/bin/env bash
# Installs auto-lambda on Amazon Linux 2023. Packer runs it as root on the build instance
# (ami/auto-lambda.pkr.hcl), with everything it installs staged in $STAGING:
#   auto-lambda-worker, queue-metric-publisher   the binaries
#   systemd/                                     the units and the prune timer
#   files/                                       docker, journald, rsyslog, logrotate config; the prune script
#
# It installs Docker, the CloudWatch agent and rsyslog (journald -> files the agent ships), creates
# the service user, installs the binaries and units, and pre-pulls the build images in
# $BUILD_IMAGES. It enables no auto-lambda service: the instance's user data (written by infra/)
# writes the configuration and enables the worker or the publisher.
#
# INSTALL_OS_PACKAGES=0 (dev/test-systemd.sh, in a Debian container with systemd as PID 1)
# skips every step that needs dnf or the packages it brings (Docker, the CloudWatch agent,
# rsyslog, pre-pulled images), installs uv from $STAGING/uv, and leaves $STAGING in place: the
# rest (user, binaries, units, journald, the timer) is laid out exactly as on the AMI.
set -euo pipefail

staging=${STAGING:-/tmp/auto-lambda}
read -r -a build_images <<<"${BUILD_IMAGES:-}"
user=auto-lambda
os_packages=${INSTALL_OS_PACKAGES:-1}

log() { printf '[install] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh must run as root" >&2
  exit 1
fi
for f in auto-lambda-worker queue-metric-publisher systemd files; do
  [ -e "$staging/$f" ] || { echo "missing $staging/$f" >&2; exit 1; }
done

# uv: the Python installer the worker runs on the host and mounts into build containers. PyPI's
# wheel holds one static binary (manylinux_2_17); the version is pinned in files/uv-version.
if [ "$os_packages" = 1 ]; then
  log "packages"
  dnf -y -q upgrade
  # python3-pip: wheels-only builds can run pip on the host, and it installs uv below.
  dnf -y -q install docker amazon-cloudwatch-agent rsyslog logrotate findutils python3-pip
  log "uv $(cat "$staging/files/uv-version")"
  python3 -m pip install --quiet --no-cache-dir --prefix /usr/local "uv==$(tr -d '[:space:]' <"$staging/files/uv-version")"

  log "docker"
  install -d -m 0755 /etc/docker
  install -m 0644 "$staging/files/docker-daemon.json" /etc/docker/daemon.json
  systemctl enable docker.service
else
  log "uv from $staging/uv (no OS packages)"
  install -m 0755 "$staging/uv" /usr/local/bin/uv
fi
/usr/local/bin/uv --version

log "service user $user"
# Home = the unit's StateDirectory, so tools the worker runs (docker CLI) have a writable home.
if ! id "$user" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir /var/lib/auto-lambda --no-create-home \
    --shell /sbin/nologin --comment "auto-lambda worker" "$user"
fi
# Not a member of the docker group: only the worker's unit adds it (SupplementaryGroups=docker).

log "binaries"
install -m 0755 "$staging/auto-lambda-worker" /usr/local/bin/auto-lambda-worker
install -m 0755 "$staging/queue-metric-publisher" /usr/local/bin/queue-metric-publisher
install -m 0755 "$staging/files/auto-lambda-prune.sh" /usr/local/bin/auto-lambda-prune
# Fail the image build, not the first boot, if a binary does not run here (glibc, architecture).
/usr/local/bin/auto-lambda-worker --version
/usr/local/bin/queue-metric-publisher --version

log "systemd units"
install -m 0644 "$staging"/systemd/*.service "$staging"/systemd/*.timer /etc/systemd/system/
install -d -m 0755 /etc/auto-lambda
install -d -m 0755 /etc/systemd/journald.conf.d
install -m 0644 "$staging/files/journald-auto-lambda.conf" /etc/systemd/journald.conf.d/50-auto-lambda.conf
systemctl daemon-reload
systemctl enable auto-lambda-prune.timer
# Deliberately not enabled: auto-lambda-worker.service, queue-metric-publisher.service.

if [ "$os_packages" != 1 ]; then
  log "done (no OS packages: logs shipping, image pre-pull and clean-up skipped)"
  exit 0
fi

log "logs: journald -> rsyslog -> /var/log/auto-lambda -> CloudWatch agent"
# The agent runs as cwagent (created by its package) and reads the files through their group.
install -d -m 0750 -o root -g cwagent /var/log/auto-lambda
install -m 0644 "$staging/files/rsyslog-auto-lambda.conf" /etc/rsyslog.d/30-auto-lambda.conf
install -m 0644 "$staging/files/logrotate-auto-lambda" /etc/logrotate.d/auto-lambda
rsyslogd -N1 -f /etc/rsyslog.conf
systemctl enable rsyslog.service

if [ "${#build_images[@]}" -gt 0 ]; then
  log "pre-pulling ${#build_images[@]} build image(s)"
  systemctl start docker.service
  for image in "${build_images[@]}"; do
    docker pull --quiet "$image"
  done
  docker image ls
fi

log "cleaning up"
dnf clean all
rm -rf "$staging"
journalctl --rotate >/dev/null 2>&1 || true
journalctl --vacuum-time=1s >/dev/null 2>&1 || true
log "done"
