#!/usr/bin/env bash
# Idempotent: Podman (Debian packages), the second sandbox engine (backend "podman").
# Envfarm talks to it through its Docker-compatible API socket, which the backend
# starts on demand (`podman system service`, sandbox/podman_service.py). runc: on cgroup
# v1 hosts the service runs it (Debian's crun refuses hybrid cgroup hierarchies);
# iptables: per-episode network isolation. fuse-overlayfs, uidmap and slirp4netns are
# what rootless Podman needs. Optional: skipped (exit 0) without root or apt.
set -euo pipefail
say() { printf '\033[1;34m[setup podman]\033[0m %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "not root: Podman not installed (optional)"; exit 0; }
command -v apt-get >/dev/null 2>&1 || { say "no apt-get: Podman not installed (optional)"; exit 0; }
pkgs=(podman crun runc fuse-overlayfs uidmap slirp4netns iptables)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
[ ${#missing[@]} -eq 0 ] && exit 0
say "installing ${missing[*]}"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
say "$(podman --version)"
