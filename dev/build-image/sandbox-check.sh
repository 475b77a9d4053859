#!/usr/bin/env bash
# Checks the build-container sandbox against the local test image, with the docker CLI.
#
#   dev/build-image/sandbox-check.sh [--no-pypi]
#
# (a) offline: fixture/mypkg (a C extension) is compiled by pip inside a locked-down container
#     with --network none, then imported from /out in a second container (the smoke test);
# (b) online: six and charset-normalizer (binary wheel) from PyPI over the default bridge
#     network, trusting the host's CA bundle (TLS-intercepting proxy). Skipped with --no-pypi
#     or AUTO_LAMBDA_CHECK_PYPI=0.
# The flags here are the recipe the worker uses through the Engine API.
# Environment: AUTO_LAMBDA_BUILD_IMAGE, AUTO_LAMBDA_CA_BUNDLE (host CA bundle path).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
IMAGE="${AUTO_LAMBDA_BUILD_IMAGE:-auto-lambda/build-python3.13:test}"
PYPI="${AUTO_LAMBDA_CHECK_PYPI:-1}"
[ "${1:-}" = --no-pypi ] && PYPI=0

log() { printf 'sandbox-check: %s\n' "$*" >&2; }
now() { date +%s%N; }
since() { local ms=$((($(now) - $1) / 1000000)); printf '%d.%02d' $((ms / 1000)) $((ms % 1000 / 10)); }

"$here/../build-image.sh" python3.13

work="$(mktemp -d "${TMPDIR:-/tmp}/auto-lambda-sandbox.XXXXXX")"
cleanup() {
    # Files in the output dirs belong to uid 1000: a non-root caller may not delete them itself.
    rm -rf "$work" 2>/dev/null ||
        docker run --rm --network none -v "$work:/w" --user 0:0 "$IMAGE" sh -c 'rm -rf /w/*' >/dev/null 2>&1 ||
        true
    rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

# The build user is 1000:1000. When running as root, hand the output dir to it; otherwise run
# the container as the caller's own uid:gid (the image needs no passwd entry: HOME=/tmp).
if [ "$(id -u)" = 0 ]; then RUN_USER=1000:1000; else RUN_USER="$(id -u):$(id -g)"; fi
new_out() { mkdir -p "$1"; [ "$(id -u)" = 0 ] && chown 1000:1000 "$1"; chmod 0755 "$1"; }

SANDBOX=(
    --rm
    --user "$RUN_USER"
    --cap-drop ALL
    --security-opt no-new-privileges
    --pids-limit 256
    --memory 2g --memory-swap 2g
    --cpus 2
    --read-only
    --tmpfs '/tmp:rw,exec,nosuid,nodev,size=1g'
)
# pip builds local projects in place: copy the read-only source to the tmpfs first.
BUILD='cp -R /src /tmp/src && cd /tmp/src && exec pip install --no-cache-dir --no-compile "$@" -r requirements.txt -t /out'

passed=0
failed=0
check() { if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); log "FAILED: $*"; fi; }

case_offline() {
    local out="$work/out-a" t
    new_out "$out"
    t=$(now)
    docker run "${SANDBOX[@]}" --network none \
        -v "$here/fixture:/src:ro" -v "$out:/out:rw" \
        "$IMAGE" sh -c "$BUILD" pip --no-index --no-build-isolation >&2 || return 1
    log "(a) offline C-extension build: $(since "$t") s"
    ls -ln "$out" >&2
    t=$(now)
    docker run "${SANDBOX[@]}" --network none -v "$out:/out:ro" "$IMAGE" \
        python3 -c 'import sys; sys.path.insert(0, "/out"); import mymod; assert mymod.add(2, 3) == 5; print("import ok:", mymod.__file__)' >&2 ||
        return 1
    log "(a) import smoke test: $(since "$t") s"
}

ca_bundle() {
    local c
    for c in "${AUTO_LAMBDA_CA_BUNDLE:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt \
        /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        if [ -n "$c" ] && [ -f "$c" ]; then readlink -f "$c"; return 0; fi
    done
    return 1
}

case_pypi() {
    local out="$work/out-b" src="$work/src-b" ca t
    new_out "$out"
    mkdir -p "$src"
    printf 'six==1.16.0\ncharset-normalizer\n' >"$src/requirements.txt"
    ca="$(ca_bundle)" || { log "no CA bundle found on the host"; return 1; }
    log "(b) host CA bundle: $ca"
    t=$(now)
    docker run "${SANDBOX[@]}" --network bridge \
        -v "$src:/src:ro" -v "$out:/out:rw" \
        -v "$ca:/etc/auto-lambda/ca-bundle.crt:ro" \
        -e PIP_CERT=/etc/auto-lambda/ca-bundle.crt \
        -e REQUESTS_CA_BUNDLE=/etc/auto-lambda/ca-bundle.crt \
        -e SSL_CERT_FILE=/etc/auto-lambda/ca-bundle.crt \
        "$IMAGE" sh -c "$BUILD" pip >&2 || return 1
    log "(b) PyPI install over bridge: $(since "$t") s"
    docker run "${SANDBOX[@]}" --network none -v "$out:/out:ro" "$IMAGE" \
        python3 -c 'import sys; sys.path.insert(0, "/out"); import six, charset_normalizer; print("import ok:", charset_normalizer.__version__)' >&2
}

check case_offline
if [ "$PYPI" != 0 ]; then check case_pypi; fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
