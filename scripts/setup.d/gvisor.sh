#!/usr/bin/env bash
# Idempotent: gVisor (`runsc`, Debian package) registered with the Docker engine as the
# runtime "runsc" (ptrace platform) and, with ENVFARM_GVISOR_KVM=1, "runsc-kvm" (KVM
# platform; off by default: in this Firecracker VM its sandbox spins at boot and never
# starts, and the engine's calls on that container hang), both with --network=none (gVisor's own netstack cannot start inside
# this VM's root network namespace; networked sandboxes stay on runc). The engine
# reloads its runtimes on SIGHUP, so running containers are untouched.
# Skipped (exit 0) without root or apt: gVisor is optional (sandbox backend "gvisor").
set -euo pipefail
say() { printf '\033[1;34m[setup gvisor]\033[0m %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "not root: gVisor not installed (optional)"; exit 0; }
if ! command -v runsc >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || { say "no apt-get: gVisor not installed (optional)"; exit 0; }
  say "installing runsc"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runsc >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends runsc >/dev/null; }
fi
RUNSC=$(command -v runsc)
KVM=0
[ "${ENVFARM_GVISOR_KVM:-0}" = 1 ] && [ -c /dev/kvm ] && KVM=1
CONF=/etc/docker/daemon.json
mkdir -p /etc/docker
changed=$(RUNSC="$RUNSC" KVM="$KVM" CONF="$CONF" python3 - <<'PY'
import json, os
path = os.environ["CONF"]
try:
    conf = json.load(open(path))
except (OSError, ValueError):
    conf = {}
runtimes = conf.setdefault("runtimes", {})
want = {"runsc": {"path": os.environ["RUNSC"],
                  "runtimeArgs": ["--platform=ptrace", "--network=none", "--overlay2=none", "--file-access=shared"]}}
if os.environ["KVM"] == "1":
    want["runsc-kvm"] = {"path": os.environ["RUNSC"],
                         "runtimeArgs": ["--platform=kvm", "--network=none", "--overlay2=none", "--file-access=shared"]}
changed = any(runtimes.get(k) != v for k, v in want.items())
if os.environ["KVM"] != "1" and "runsc-kvm" in runtimes:
    del runtimes["runsc-kvm"]
    changed = True
runtimes.update(want)
if changed:
    tmp = path + ".envfarm.tmp"
    with open(tmp, "w") as f:
        json.dump(conf, f, indent=2)
    os.replace(tmp, path)
print("1" if changed else "0")
PY
)
if docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && [ "$changed" = 0 ]; then
  exit 0
fi
pid=$(pidof dockerd || true)
if [ -n "$pid" ]; then
  say "reloading dockerd's runtimes (SIGHUP $pid)"
  kill -HUP "$pid"
  for _ in $(seq 20); do
    docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' && break
    sleep 0.5
  done
fi
docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"' \
  && say "runtime runsc registered ($RUNSC)" \
  || say "runsc is in $CONF but the engine does not list it yet (restart dockerd)"
