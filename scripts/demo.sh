#!/usr/bin/env bash
# The farm's main job on the embedded default: what is ready, one sandbox session, then
# oracle rollouts over every env kind's bundled examples (and the tiny model through a
# real vLLM server when installed), then the real model (SmolLM2, installed by `make
# setup`) sampling groups of 8 on echo, terminal and general tasks with its own table
# (pass@1, pass@8, parse errors guided vs unguided, dynamic sampling), exports, and a
# summary table. Without the model it says so in one line (fix: `make setup`); under
# CI=true that fails the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
ENVFARM=.venv/bin/envfarm
echo "== envfarm doctor"
$ENVFARM doctor || true
echo
echo "== one sandbox, one persistent shell (no network, capped CPU/memory/pids)"
$ENVFARM sandbox run \
  'cd /tmp && export GREETING="hello from the sandbox"' \
  'pwd; echo "$GREETING"' \
  'ls /sys/class/net' \
  'seq 1 200000 | tail -n 1'
echo
echo "== the main job"
$ENVFARM demo --out out/demo
