#!/usr/bin/env bash
# Installs llama-cpp-python (the [serving] extra's engine) before the rest, so that its one slow step is visible.
# On a fresh machine pip compiles llama.cpp from the source distribution: several minutes on 2 cores. pip keeps the
# built wheel in its cache (~/.cache/pip/wheels), so later installs, CI runs and demos take it from there in seconds.
set -euo pipefail
python="$1"
pin="$(grep -E '^llama-cpp-python==' constraints.txt)"
installed="$("$python" -m pip show llama-cpp-python 2>/dev/null || true)"
if grep -qx "Version: ${pin#*==}" <<<"$installed" && "$python" -c 'import llama_cpp' 2>/dev/null; then
    exit 0
fi
echo "install: $pin (compiles llama.cpp on first use, several minutes; pip caches the wheel)" >&2
started=$SECONDS
# One build job per core; the multimodal (mtmd) library is not needed by DAGnostics.
CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
    "$python" -m pip install --progress-bar off --constraint constraints.txt "$pin" 2>&1 \
    | grep --line-buffered -E 'Building|Created wheel|Successfully|Using cached|ERROR|error' >&2 || true
"$python" -c 'import llama_cpp' || { echo "install: $pin failed to build" >&2; exit 1; }
echo "install: $pin ready after $((SECONDS - started)) s" >&2
