#!/usr/bin/env bash
# What .github/workflows/release.yml calls: `glm51 release` for the steps named, in the run
# directory that travels between the jobs (records + run.json; a re-run resumes there).
#   bash ci/release.sh image | verify gates | card publish tag notes
# Environment: VERSION (vX.Y.Z), RUN_DIR [out/release/run], GLM51_CHECKPOINT (the runner's
# NVFP4 checkpoint, for verify/gates/publish), HF_TOKEN (publish; read by huggingface_hub).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${VERSION:?set VERSION=vX.Y.Z}"
RUN_DIR=${RUN_DIR:-out/release/run}
steps=$(IFS=,; echo "$*")
args=(release --version "$VERSION" --run-dir "$RUN_DIR" --steps "$steps")
[ -n "${GLM51_CHECKPOINT:-}" ] && args+=(--checkpoint "$GLM51_CHECKPOINT")
exec bash ci/nox.sh -s release -- "${args[@]:1}"
