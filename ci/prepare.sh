#!/usr/bin/env bash
# CI preparation, called by .ci/run before the test command (as root, on a fresh clone):
#   1. a Docker engine with buildx (ci/docker-engine.sh)
#   2. a local bookworm base image (ci/base-image.sh)
#   3. the CI image from Dockerfile.cu130, tagged glm51:ci for tests/integration/test_image.py
# Prints the time of each step. Environment:
#   GLM51_CI_STACK   full (default: the whole SGLang + torch cu13 + b12x stack, ~11.2 GB, 6-7 min
#                    cold here, so the build-time SGLang/profile checks run in every CI)
#                    | slim (glm51's light deps only, same final stages, under 1 min)
#   GLM51_CA_BUNDLE  CA bundle handed to the build as a secret [default: the host's bundle]
#   GLM51            the glm51 command [default: .venv/bin/glm51, else glm51 on PATH]
set -euo pipefail
cd "$(dirname "$0")/.."

STACK=${GLM51_CI_STACK:-full}
CA=${GLM51_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
GLM51=${GLM51:-$( [ -x .venv/bin/glm51 ] && echo .venv/bin/glm51 || echo glm51 )}

step() {
    local name=$1 start=$SECONDS
    shift
    echo "[prepare] $name ..." >&2
    "$@"
    echo "[prepare] $name: $((SECONDS - start)) s" >&2
}

step "docker engine" bash ci/docker-engine.sh
step "base image" bash ci/base-image.sh glm51-base:bookworm
ca_args=()
[ -s "$CA" ] && ca_args=(--ca-bundle "$CA")
step "image build ($STACK)" "$GLM51" image build --local-base --stack "$STACK" \
    "${ca_args[@]}" --out out/image
tag=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tags"][0])' out/image/image.json)
docker tag "$tag" glm51:ci
echo "[prepare] glm51:ci = $tag ($(docker image inspect -f '{{.Size}}' glm51:ci) bytes)" >&2
echo "[prepare] total: ${SECONDS} s" >&2
