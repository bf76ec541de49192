#!/bin/sh
# Create this build's JIT cache directory on the /cache/jit volume, then run the command as PID 1
# (glm51 serve forwards SIGTERM to sglang itself).
set -e
mkdir -p "${GLM51_JIT_CACHE:-/cache/jit/dev}" 2>/dev/null || true
exec "$@"
