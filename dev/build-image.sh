#!/usr/bin/env bash
# Build the local test build images from Debian packages: no container registry is needed.
#
#   dev/build-image.sh [--force] [RUNTIME ...]
#
# Each image stands in for exactly one Lambda runtime: the one whose interpreter it really has.
#
#   python3.9    auto-lambda/build-python3.9:test    Debian bullseye (Python 3.9)
#   python3.11   auto-lambda/build-python3.11:test   Debian bookworm (Python 3.11)
#   python3.13   auto-lambda/build-python3.13:test   Debian trixie   (Python 3.13)
#   nodejs20.x   auto-lambda/build-nodejs20.x:test   Debian trixie   (Node.js 20)
#   systemd      auto-lambda/systemd:test            Debian bookworm, systemd 252 as PID 1 (the
#                                                    same major version as Amazon Linux 2023's),
#                                                    for dev/test-systemd.sh; not a build image
#   python       the same as python3.13 (the default when no image is named)
#   node         the same as nodejs20.x
#   all          every build image above (not systemd)
#
# Python images hold python3, pip, venv, setuptools, wheel, gcc, libc6-dev and python3-dev; the
# Node image nodejs, npm, g++ and make. Each costs ~40-70 s and ~200-470 MB the first time.
#
# Environment:
#   AUTO_LAMBDA_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   AUTO_LAMBDA_FORCE_IMAGE=1     rebuild even when the image is up to date (same as --force)
#
# Each image carries the labels auto-lambda.runtime (the runtime it stands in for) and
# auto-lambda.recipe = sha256 of everything that decides its content (suite, variant, packages,
# dpkg options, the hook, the image config). When an image of that name already carries the
# current hash, the script does nothing (well under a second); when the recipe changes, the
# image is rebuilt and the old one removed.
#
# The images run as uid/gid 1000 ("build"), with HOME=/tmp and pip told to keep no cache and
# skip its version check, so they work with a read-only root and a tmpfs /tmp. They hold
# Debian's own CA bundle only: behind a TLS-intercepting proxy, mount the host's bundle and set
# PIP_CERT / SSL_CERT_FILE / REQUESTS_CA_BUNDLE to it at run time.
#
# Needs docker and root (for apt-get and mmdebstrap's root mode). Everything is printed to
# stderr; stdout stays empty. Safe to run concurrently: builds are serialised by a lock.
set -euo pipefail

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

MIRROR="${AUTO_LAMBDA_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
FORCE="${AUTO_LAMBDA_FORCE_IMAGE:-0}"

wanted=()
for arg in "$@"; do
    case "$arg" in
        python3.9|python3.11|python3.13|nodejs20.x|systemd) wanted+=("$arg") ;;
        python) wanted+=(python3.13) ;;
        node) wanted+=(nodejs20.x) ;;
        all) wanted+=(python3.9 python3.11 python3.13 nodejs20.x) ;;
        -f|--force) FORCE=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown argument '$arg' (expected: python3.9, python3.11, python3.13, nodejs20.x, systemd, python, node, all, --force)" ;;
    esac
done
if [ "${#wanted[@]}" = 0 ]; then wanted=(python3.13); fi

command -v docker >/dev/null || die "docker is not installed"

# ---- the recipe: everything here goes into the hash ------------------------------------------
RECIPE_VERSION=2
VARIANT=apt
PY_PACKAGES=python3,python3-pip,python3-venv,python3-setuptools,python3-wheel,gcc,libc6-dev,python3-dev
NODE_PACKAGES=nodejs,npm,g++,make
# python3: the worker's wheels-first installs run uv with it; passwd: useradd for ami/install.sh;
# procps: ps for the tests.
SYSTEMD_PACKAGES=systemd,systemd-sysv,dbus,passwd,python3,ca-certificates,procps

# No man pages, docs (but copyrights), info or translations: ~65 MB less, nothing a build uses.
DPKG_OPTS=(
    'path-exclude=/usr/share/man/*'
    'path-exclude=/usr/share/info/*'
    'path-exclude=/usr/share/locale/*'
    'path-exclude=/usr/share/doc/*'
    'path-include=/usr/share/doc/*/copyright'
)

# Runs with the root filesystem as $1. Adds the build user without needing `passwd` (not part
# of --variant=apt), and /src + /out as mount points so WORKDIR exists under --read-only.
# shellcheck disable=SC2016 # expanded by mmdebstrap's hook shell, not here
HOOK='set -e
r="$1"
grep -q "^build:" "$r/etc/passwd" || echo "build:x:1000:1000:auto-lambda build:/home/build:/bin/bash" >>"$r/etc/passwd"
grep -q "^build:" "$r/etc/group" || echo "build:x:1000:" >>"$r/etc/group"
if [ -f "$r/etc/shadow" ]; then grep -q "^build:" "$r/etc/shadow" || echo "build:*:19000:0:99999:7:::" >>"$r/etc/shadow"; fi
if [ -f "$r/etc/gshadow" ]; then grep -q "^build:" "$r/etc/gshadow" || echo "build:!::" >>"$r/etc/gshadow"; fi
mkdir -p "$r/home/build" "$r/src" "$r/out"
chown 1000:1000 "$r/home/build" "$r/out"
chmod 0755 "$r/home/build" "$r/src" "$r/out"'

common_changes() {
    CHANGES=(
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        'ENV LANG=C.UTF-8'
        'ENV HOME=/tmp'
        'ENV PIP_NO_CACHE_DIR=1'
        'ENV PIP_DISABLE_PIP_VERSION_CHECK=1'
        'ENV PIP_NO_INPUT=1'
        'ENV PYTHONDONTWRITEBYTECODE=1'
        'USER 1000:1000'
        'WORKDIR /src'
        'CMD ["/bin/bash"]'
    )
}

# systemd as PID 1: root, and `container=docker` so that systemd knows where it runs. (docker
# import takes no STOPSIGNAL: dev/test-systemd.sh passes --stop-signal SIGRTMIN+3.)
systemd_changes() {
    CHANGES=(
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
        'ENV LANG=C.UTF-8'
        'ENV container=docker'
        'CMD ["/sbin/init"]'
    )
}

# ---- helpers ----------------------------------------------------------------------------------
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo -n "$@"
    else die "need root to run: $*"
    fi
}

ensure_mmdebstrap() {
    local pkgs=()
    command -v mmdebstrap >/dev/null || pkgs+=(mmdebstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || pkgs+=(debian-archive-keyring)
    [ "${#pkgs[@]}" = 0 ] && return 0
    log "installing ${pkgs[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null >&2; then
        log "apt-get install failed; running apt-get update and retrying"
        as_root apt-get update -q </dev/null >&2
        as_root apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null >&2
    fi
    command -v mmdebstrap >/dev/null || die "mmdebstrap is still missing after apt-get install"
}

# The Debian suite whose interpreter is the runtime's own.
suite_of() {
    case "$1" in
        python3.9) echo bullseye ;;
        python3.11) echo bookworm ;;
        python3.13|nodejs20.x) echo trixie ;;
        systemd) echo bookworm ;;
    esac
}

# build_image RUNTIME
build_image() {
    local runtime="$1" packages
    local name="auto-lambda/build-$runtime:test"
    local SUITE
    SUITE="$(suite_of "$runtime")"
    case "$runtime" in
        python*) packages="$PY_PACKAGES"; common_changes ;;
        systemd) packages="$SYSTEMD_PACKAGES"; name="auto-lambda/systemd:test"; systemd_changes ;;
        *) packages="$NODE_PACKAGES"; common_changes ;;
    esac
    [ "$runtime" = systemd ] || CHANGES+=("LABEL auto-lambda.runtime=$runtime")
    local recipe hash current old_id
    recipe="$(printf '%s\n' "v$RECIPE_VERSION" "$SUITE" "$VARIANT" "$packages" "${DPKG_OPTS[@]}" "$HOOK" "${CHANGES[@]}")"
    hash="$(printf '%s' "$recipe" | sha256sum | cut -d' ' -f1)"

    current="$(docker image inspect --format '{{ index .Config.Labels "auto-lambda.recipe" }}' "$name" 2>/dev/null || true)"
    if [ "$FORCE" != 1 ] && [ "$current" = "$hash" ]; then
        log "$name is up to date (recipe ${hash:0:12})"
        return 0
    fi

    # Serialise builds (tests may call this concurrently), then look again.
    exec 9>"${TMPDIR:-/tmp}/auto-lambda-build-image.lock"
    flock 9
    current="$(docker image inspect --format '{{ index .Config.Labels "auto-lambda.recipe" }}' "$name" 2>/dev/null || true)"
    if [ "$FORCE" != 1 ] && [ "$current" = "$hash" ]; then
        log "$name was built meanwhile (recipe ${hash:0:12})"
        exec 9>&-
        return 0
    fi
    if [ -n "$current" ]; then
        log "$name has recipe ${current:0:12}, want ${hash:0:12}: rebuilding"
    else
        log "$name not found: building (recipe ${hash:0:12})"
    fi
    old_id="$(docker image inspect --format '{{.Id}}' "$name" 2>/dev/null || true)"

    ensure_mmdebstrap

    local work tar start t1 t2 opt
    work="$(mktemp -d "${TMPDIR:-/tmp}/auto-lambda-rootfs.XXXXXX")"
    # shellcheck disable=SC2064 # expand $work now
    trap "rm -rf '$work'" EXIT
    tar="$work/rootfs.tar"

    local mm=(mmdebstrap --variant="$VARIANT" --include="$packages")
    for opt in "${DPKG_OPTS[@]}"; do mm+=(--dpkgopt="$opt"); done
    mm+=(--customize-hook="$HOOK" "$SUITE" "$tar" "$MIRROR")

    start=$(date +%s)
    log "running mmdebstrap $SUITE ($packages) from $MIRROR"
    # The mirror is given, so mmdebstrap never reads sources from stdin; </dev/null all the same.
    as_root "${mm[@]}" </dev/null >&2 || die "mmdebstrap failed"
    t1=$(date +%s)
    log "rootfs tarball: $(du -h "$tar" | cut -f1) in $((t1 - start)) s; importing as $name"

    local import=(docker import)
    local c
    for c in "${CHANGES[@]}"; do import+=(--change "$c"); done
    import+=(--change "LABEL auto-lambda.recipe=$hash")
    import+=(--change "LABEL org.opencontainers.image.description=\"auto-lambda local $runtime image ($packages; $SUITE)\"")
    import+=(--message "dev/build-image.sh recipe $hash")
    "${import[@]}" "$tar" "$name" >/dev/null </dev/null || die "docker import failed"
    rm -rf "$work"
    trap - EXIT
    t2=$(date +%s)

    local new_id size
    new_id="$(docker image inspect --format '{{.Id}}' "$name")"
    size="$(docker image inspect --format '{{.Size}}' "$name")"
    log "built $name ${new_id:7:12}: $((size / 1000000)) MB, mmdebstrap $((t1 - start)) s + import $((t2 - t1)) s"
    if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
        # Remove the old image only if nothing else names it: `docker image rm ID` would also
        # drop every other tag of the same repository that points at it.
        if [ "$(docker image inspect --format '{{len .RepoTags}}' "$old_id" 2>/dev/null || echo 1)" != 0 ]; then
            log "kept the previous image ${old_id:7:12} (still tagged)"
        elif docker image rm "$old_id" >/dev/null 2>&1; then
            log "removed the previous image ${old_id:7:12}"
        else
            log "kept the previous image ${old_id:7:12} (still in use)"
        fi
    fi
    exec 9>&-
}

for runtime in "${wanted[@]}"; do build_image "$runtime"; done
