#!/usr/bin/env bash
# Install and start a Docker engine with buildx from Debian packages (docs/image.md).
# Idempotent: a no-op when an engine already answers. Run as root.
#   docker.io      from bookworm (engine 20.10, BuildKit built in)
#   docker-buildx  downloaded from trixie with a one-off sources list; trixie's docker.io/runc
#                  are never installed (they need glibc 2.38 and break dpkg).
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_S=${DOCKERD_WAIT_S:-60}

log() { printf '[docker-engine] %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
    log "an engine already answers: nothing to do"
    docker buildx version >/dev/null 2>&1 || log "warning: buildx plugin missing"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io from bookworm"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables ca-certificates >/dev/null
fi

if ! docker buildx version >/dev/null 2>&1; then
    log "fetching docker-buildx from trixie (plugin only)"
    tmp=$(mktemp -d)
    chmod 755 "$tmp"  # lets apt's sandbox user write its downloads
    trap 'rm -rf "$tmp"' EXIT
    mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
    echo "deb http://deb.debian.org/debian trixie main" >"$tmp/trixie.list"
    apt_opts=(-o "Dir::Etc::SourceList=$tmp/trixie.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives")
    apt-get "${apt_opts[@]}" update -qq
    (cd "$tmp" && apt-get "${apt_opts[@]}" download docker-buildx >/dev/null)
    dpkg-deb -x "$tmp"/docker-buildx_*.deb "$tmp/x"
    # Both the Debian client (/usr/bin/docker) and a newer one in /usr/local/bin look here.
    install -D -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-buildx" \
        /usr/libexec/docker/cli-plugins/docker-buildx
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sf /usr/libexec/docker/cli-plugins/docker-buildx "$HOME/.docker/cli-plugins/docker-buildx"
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $LOG)"
    nohup dockerd >"$LOG" 2>&1 &
fi

for _ in $(seq "$WAIT_S"); do
    if docker info >/dev/null 2>&1; then
        log "engine up: $(docker version --format '{{.Server.Version}}'), buildx $(docker buildx version | awk '{print $2}')"
        exit 0
    fi
    sleep 1
done
log "dockerd did not answer within ${WAIT_S}s; last log lines:"
tail -n 20 "$LOG" >&2 || true
exit 1
