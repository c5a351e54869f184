#!/usr/bin/env bash
# Idempotent: the trainers' own packages, so envfarm's adapters and exports are tested
# against their real code (pytest -m trainers).
#   .venv            skyrl-gym 0.4.0 (light: the SkyRL-Gym adapter runs in process)
#   .venv-trainers   verl 0.9.1 + skyrl 0.3.0 (--no-deps) on the CPU torch: verl pins
#                    tensordict <= 0.10 and transformers < 5.11, skyrl transformers
#                    5.6.1-5.8.0, so transformers 5.8.0 serves both, away from .venv
#   .venv-harbor     harbor 0.25 (needs Python >= 3.12), for ATIF and task-folder checks
# Skip with ENVFARM_SKIP_TRAINERS=1. Fast when done: one stamp per venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
say() { printf '\033[1;34m[setup trainers]\033[0m %s\n' "$*"; }
[ "${ENVFARM_SKIP_TRAINERS:-0}" = 1 ] && { say "skipped"; exit 0; }
PYTHON=${PYTHON:-python3}
TORCH=2.13.0

# -- skyrl-gym in the project venv ----------------------------------------------------------
VENV=${ENVFARM_VENV:-$ROOT/.venv}
if ! "$VENV/bin/python" -c "import skyrl_gym" 2>/dev/null; then
  say "installing skyrl-gym into $VENV"
  "$VENV/bin/pip" install -q "skyrl-gym==0.4.0"
fi

# -- verl + skyrl ------------------------------------------------------------------------------
TV=${ENVFARM_TRAINERS_VENV:-$ROOT/.venv-trainers}
want="verl==0.9.1 skyrl==0.3.0 transformers==5.8.0 torch==$TORCH r3"
if [ "$(cat "$TV/.envfarm-trainers" 2>/dev/null)" != "$want" ]; then
  [ -x "$TV/bin/python" ] || { say "creating $TV"; "$PYTHON" -m venv "$TV"; }
  say "installing $want into $TV (a few minutes)"
  "$TV/bin/pip" install -q --upgrade pip
  "$TV/bin/pip" install -q "torch==$TORCH"
  "$TV/bin/pip" install -q "torch==$TORCH" "verl==0.9.1" "transformers==5.8.0" \
    "tensordict>=0.8,<=0.10" "skyrl-gym==0.4.0" "datasets>=4" "peft==0.18.1" \
    "safetensors>=0.6.2" "cloudpathlib>=0.23" "pillow>=11.3" cachetools uvicorn fastapi loguru jaxtyping
  "$TV/bin/pip" install -q --no-deps "skyrl==0.3.0"
  "$TV/bin/python" -c "import verl, skyrl, skyrl_gym, torch; print('verl', verl.__version__, 'torch', torch.__version__)"
  echo "$want" >"$TV/.envfarm-trainers"
fi

# -- harbor (Python 3.12) ----------------------------------------------------------------------
HV=${ENVFARM_HARBOR_VENV:-$ROOT/.venv-harbor}
PY312=
for cand in $(command -v python3.12 2>/dev/null) "$HOME"/.pyenv/versions/3.12*/bin/python; do
  if [ -x "$cand" ] && "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
    PY312=$cand; break
  fi
done
hwant="harbor==0.25"
if [ "$(cat "$HV/.envfarm-harbor" 2>/dev/null)" != "$hwant" ]; then
  if [ -z "$PY312" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ] && apt-cache policy python3.12 2>/dev/null | grep -q Candidate; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.12 python3.12-venv >/dev/null
      PY312=$(command -v python3.12)
    else
      say "no Python 3.12 for harbor: install one (pyenv install 3.12) and rerun"; exit 1
    fi
  fi
  [ -x "$HV/bin/python" ] || { say "creating $HV with $PY312"; "$PY312" -m venv "$HV"; }
  say "installing $hwant into $HV"
  "$HV/bin/pip" install -q --upgrade pip
  "$HV/bin/pip" install -q "harbor>=0.25,<0.26"
  "$HV/bin/python" -c "import harbor; print('harbor ok')"
  echo "$hwant" >"$HV/.envfarm-harbor"
fi
say "ready"
