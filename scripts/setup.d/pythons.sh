#!/usr/bin/env bash
# Idempotent: host tools that SWE environments use beyond the base setup.
# - mmdebstrap bootstraps the Debian roots of the version-matched Python layers
#   (bullseye 3.9, trixie 3.13; bookworm 3.11 is the envfarm base) -- scripts/setup.sh
#   installs it; checked here so a missing one is named.
# - ip (iproute2) and nsenter (util-linux) give test sandboxes a black-holed route
#   (swe_tasks/network.py): connects time out, as offline harness runs assume.
set -euo pipefail
say() { printf '\033[1;34m[setup pythons]\033[0m %s\n' "$*"; }
missing=()
command -v ip >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then say "need root to install: ${missing[*]}"; exit 1; fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
