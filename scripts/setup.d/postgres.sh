#!/usr/bin/env bash
# Idempotent: the PostgreSQL server binaries, for the tests that run the catalogue and the
# trajectory store on a real PostgreSQL (tests/catalogue/conftest.py starts a throwaway
# server in a temporary folder on a Unix socket; no system service is started or needed).
# The Python driver (psycopg) comes with the `postgres` extra that scripts/setup.sh installs.
set -euo pipefail
say() { printf '\033[1;34m[setup postgres]\033[0m %s\n' "$*"; }
if compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then say "need root to install postgresql (apt-get install postgresql)"; exit 1; fi
say "installing postgresql (server binaries)"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || {
  apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
