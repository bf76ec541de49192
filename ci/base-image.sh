#!/usr/bin/env bash
# Make a local Debian bookworm base image (no registry is reachable here): debootstrap
# minbase + docker import. Skipped when the tag already exists. Run as root.
# Only the bare OS goes in; python3.11, venv, gcc... are installed by Dockerfile.cu130 itself,
# so the same Dockerfile also builds on the CUDA base.
set -euo pipefail

TAG=${1:-${GLM51_LOCAL_BASE:-glm51-base:bookworm}}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf '[base-image] %s\n' "$*" >&2; }

if docker image inspect "$TAG" >/dev/null 2>&1; then
    log "$TAG exists: skipped"
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
log "debootstrap --variant=minbase bookworm ($MIRROR)"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
# Slim the tarball: apt lists and caches are refreshed by the Dockerfile anyway.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'CMD ["/bin/bash"]' - "$TAG" >/dev/null
log "imported $TAG ($(docker image inspect -f '{{.Size}}' "$TAG") bytes)"
