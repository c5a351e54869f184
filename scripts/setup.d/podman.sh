#!/usr/bin/env bash
# Idempotent: Podman (Debian package), the second sandbox engine (backend "podman").
# Envfarm talks to it through its Docker-compatible API socket, which the backend
# starts on demand (`podman system service`). Optional: skipped without root or apt.
set -euo pipefail
say() { printf '\033[1;34m[setup podman]\033[0m %s\n' "$*"; }
[ "$(id -u)" = 0 ] || { say "not root: Podman not installed (optional)"; exit 0; }
command -v podman >/dev/null 2>&1 && exit 0
command -v apt-get >/dev/null 2>&1 || { say "no apt-get: Podman not installed (optional)"; exit 0; }
say "installing podman"
pkgs=(podman crun fuse-overlayfs uidmap slirp4netns)
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null \
  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
say "$(podman --version)"
