#!/usr/bin/env bash
# What .github/workflows/release.yml calls: `glm51 release` for the steps named, in the run
# directory that travels between the jobs (records + run.json; a re-run resumes there).
#   bash ci/release.sh image | verify gates | card publish tag notes
#   bash ci/release.sh --install-only   (install first, in a step that holds no secret)
# Environment: VERSION (vX.Y.Z; the git tag, which must be the commit checked out), RUN_DIR
# [out/release/run], GLM51_CHECKPOINT (the runner's NVFP4 checkpoint), GLM51_SOURCE (its BF16
# source, for the fidelity step; read by glm51 from the environment), HF_TOKEN (publish; read
# by huggingface_hub), GLM51_NOX_REUSE=1 (run without installing: the step after
# --install-only).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--install-only" ]; then
    exec bash ci/nox.sh -s release --install-only
fi
: "${VERSION:?set VERSION=vX.Y.Z}"
# A release ships the commit its tag names, never another (a manual run names a version).
tagged=$(git rev-parse -q --verify "refs/tags/$VERSION^{commit}" || true)
if [ "$tagged" != "$(git rev-parse HEAD)" ]; then
    echo "glm51: bad input: tag $VERSION ${tagged:+is $tagged, }not the commit checked out ($(git rev-parse HEAD)); tag it, or run the workflow on the tag" >&2
    exit 3
fi
RUN_DIR=${RUN_DIR:-out/release/run}
steps=$(IFS=,; echo "$*")
args=(--version "$VERSION" --run-dir "$RUN_DIR" --steps "$steps")
[ -n "${GLM51_CHECKPOINT:-}" ] && args+=(--checkpoint "$GLM51_CHECKPOINT")
reuse=()
[ "${GLM51_NOX_REUSE:-}" = 1 ] && reuse=(-R)
exec bash ci/nox.sh "${reuse[@]}" -s release -- "${args[@]}"
