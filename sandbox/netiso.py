"""A network of its own for each sandbox that may use the internet, with no way home.

Tasks with `Limits(network=True)` used to share `docker0`: they reached every service
the host binds on 0.0.0.0 (in a cluster, Ray's port, and through it the Docker socket)
and the other episodes' containers. Here each such sandbox gets:

* a user-defined bridge of its own (`envfarm-net-<id>`, interface `efb<id>`), with
  inter-container communication off, on a /28 from `ENVFARM_NET_POOL` (default
  10.213.0.0/16: 4096 networks, where Docker's default pools hold about 30);
* firewall rules keyed on that interface, installed before the container starts and
  removed with the network: `INPUT -i efb<id> -j REJECT` (no host address at all: the
  gateway, eth0's address, 0.0.0.0-bound services) and, in `DOCKER-USER`, REJECT towards
  private, link-local and shared ranges and every subnet of the host's interfaces (the
  LAN, other episodes' bridges, docker0). The host's DNS servers stay reachable on port
  53 only, so names resolve. Everything else (the internet) is forwarded as before.

All rules carry the comment `envfarm-net:<bridge>`; `gc()` removes networks whose
container is gone and rules whose bridge is gone. Needs root and `iptables` on the
engine's host; where that is missing `available` is False and a networked start fails
closed (SandboxError) unless the backend is told `isolate_network=False`.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import shutil
import subprocess
import threading
import uuid
from typing import Any

import docker.errors

from sandbox.errors import SandboxError
from sandbox.run_context import LABEL_OWNER, LABEL_RUN

NET_PREFIX = "envfarm-net-"
BRIDGE_PREFIX = "efb"
COMMENT = "envfarm-net:"
BLOCKED = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
           "100.64.0.0/10", "127.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4")
_lock = threading.Lock()


class EpisodeNetworks:
    """Creates and removes isolated per-sandbox networks on one engine."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._reason: str | None = None

    @property
    def available(self) -> bool:
        if self._reason is None:
            self._reason = _probe(self.client)
        return not self._reason

    @property
    def reason(self) -> str:
        return self._reason or ""

    def create(self, run: str, owner: str) -> str:
        """A new isolated network (its rules in place); returns its name."""
        if not self.available:
            raise SandboxError(f"cannot isolate a networked sandbox here ({self.reason}); "
                               "run as root on the engine's host with iptables")
        short = uuid.uuid4().hex[:10]
        name, bridge = NET_PREFIX + short, BRIDGE_PREFIX + short
        pool = ipaddress.ip_network(os.environ.get("ENVFARM_NET_POOL", "10.213.0.0/16"))
        subnets = list(pool.subnets(new_prefix=28)) if pool.prefixlen <= 28 else [pool]
        labels = {LABEL_RUN: run, LABEL_OWNER: owner, "envfarm.network": "episode"}
        options = {"com.docker.network.bridge.name": bridge,
                   "com.docker.network.bridge.enable_icc": "false"}
        last: Exception | None = None
        for _ in range(16):
            subnet = random.choice(subnets)
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(
                subnet=str(subnet), gateway=str(next(subnet.hosts())))])
            try:
                self.client.networks.create(name, driver="bridge", options=options,
                                            ipam=ipam, labels=labels, check_duplicate=True)
                break
            except docker.errors.APIError as exc:
                last = exc
                if "overlap" not in str(exc).lower():
                    raise SandboxError(f"cannot create network {name}: {exc}") from exc
        else:
            raise SandboxError(f"no free subnet in {pool} for network {name}: {last}")
        try:
            _apply("-I", bridge)
        except SandboxError:
            self.remove(name)
            raise
        return name

    def remove(self, name: str) -> None:
        """Remove the network and its rules (missing is fine)."""
        bridge = BRIDGE_PREFIX + name[len(NET_PREFIX):]
        try:
            self.client.api.remove_network(name)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise SandboxError(f"cannot remove network {name}: {exc}") from exc
        finally:
            _delete_rules({bridge})

    def gc(self) -> list[str]:
        """Remove envfarm networks no container uses, and rules of gone bridges."""
        removed = []
        for net in self.client.api.networks(filters={"label": "envfarm.network=episode"}):
            detail = self.client.api.inspect_network(net["Id"])
            if detail.get("Containers"):
                continue
            try:
                self.remove(net["Name"])
                removed.append(net["Name"])
            except SandboxError:
                pass
        live = {BRIDGE_PREFIX + n["Name"][len(NET_PREFIX):]
                for n in self.client.api.networks(filters={"label": "envfarm.network=episode"})}
        if shutil.which("iptables"):
            _delete_rules(set(_rule_bridges()) - live)
        return removed


def _probe(client: Any) -> str:
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("iptables-restore") is None or shutil.which("iptables") is None:
        return "iptables missing"
    base_url = str(getattr(client.api, "base_url", ""))
    if not base_url.startswith(("http+docker://localhost", "http+docker://localunixsocket")):
        return f"engine not local ({base_url})"
    proc = subprocess.run(["iptables", "-w", "-S", "DOCKER-USER"], capture_output=True, text=True)
    if proc.returncode != 0:
        return f"no DOCKER-USER chain: {proc.stderr.strip()}"
    return ""


def _host_subnets() -> list[str]:
    proc = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True)
    nets = []
    for match in re.finditer(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", proc.stdout):
        nets.append(str(ipaddress.ip_interface(match.group(1)).network))
    return nets


def _nameservers() -> list[str]:
    try:
        text = open("/etc/resolv.conf").read()
    except OSError:
        return []
    return [m for m in re.findall(r"^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)", text, re.M)
            if not m.startswith("127.")]


def _rules(op: str, bridge: str) -> list[str]:
    """The rule lines for one bridge (op -I to add, -D to delete), in iptables-restore form."""
    tag = f'-m comment --comment "{COMMENT}{bridge}"'
    lines = [f"{op} INPUT -i {bridge} {tag} -j REJECT"]
    forward = []
    for dst in dict.fromkeys([*BLOCKED, *_host_subnets()]):
        forward.append(f"-i {bridge} -d {dst} {tag} -j REJECT")
    for ns in _nameservers():  # inserted last with -I: evaluated first
        for proto in ("udp", "tcp"):
            forward.append(f"-i {bridge} -d {ns}/32 -p {proto} --dport 53 {tag} -j ACCEPT")
    lines += [f"{op} DOCKER-USER {rule}" for rule in forward]
    return lines


def _apply(op: str, bridge: str) -> None:
    script = "*filter\n" + "\n".join(_rules(op, bridge)) + "\nCOMMIT\n"
    with _lock:
        proc = subprocess.run(["iptables-restore", "-w", "--noflush"], input=script,
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxError(f"cannot install firewall rules for {bridge}: {proc.stderr.strip()}")


def _rule_bridges() -> list[str]:
    out = []
    for chain in ("INPUT", "DOCKER-USER"):
        proc = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True)
        out += re.findall(rf"{COMMENT}({BRIDGE_PREFIX}[0-9a-f]+)", proc.stdout)
    return sorted(set(out))


def _delete_rules(bridges: set[str]) -> None:
    """Delete every rule that names one of `bridges` (as listed now: exact lines)."""
    if not bridges or shutil.which("iptables") is None:
        return
    lines = []
    for chain in ("INPUT", "DOCKER-USER"):
        proc = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            found = re.search(rf"{COMMENT}({BRIDGE_PREFIX}[0-9a-f]+)", line)
            if found and found.group(1) in bridges and line.startswith("-A "):
                lines.append("-D " + line[3:])
    if not lines:
        return
    with _lock:
        subprocess.run(["iptables-restore", "-w", "--noflush"],
                       input="*filter\n" + "\n".join(lines) + "\nCOMMIT\n",
                       capture_output=True, text=True)
