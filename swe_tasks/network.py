"""Tests that need the network fail the way offline harness runs assume.

A sandbox started with `Limits(network=False)` has only loopback: a connect to any other
address fails at once with ENETUNREACH. SWE-bench's harness runs tests on machines
where an unroutable address (requests' `TestTimeout` uses 10.255.255.1) makes connects
*time out*, which is what such tests assert. `blackhole(sandbox)` gives the sandbox's
network namespace a default route into a TUN device nobody reads: every packet to a
non-local address is dropped, so connects time out (a timeout the test sets, or the
kernel's), and names fail to resolve at once (resolv.conf points at loopback, where
nothing answers). No packet ever leaves the machine.

Done from the host with `nsenter` into the container's network namespace, so the
sandbox itself never holds CAP_NET_ADMIN. Needs root on the Docker host; elsewhere (or on
a backend without a host PID) it returns False and the sandbox keeps plain `none`.
The sandbox layer could offer the same as a start option (`Limits(network="blackhole")`).

`httpbin`: the black hole, plus a local httpbin answering for http://httpbin.org on
loopback port 80. Old requests test suites call httpbin.org directly (SWE-bench ran them
with the internet, and lists those tests in PASS_TO_PASS and FAIL_TO_PASS); the image
carries httpbin in its own virtualenv (`HTTPBIN_VENV`, apart from the packages under
test, see `swe_tasks.environment`), started as root before the tests. It answers https
too, with a certificate for httpbin.org from a CA made at image build (its key deleted
there), which the test runs trust through `REQUESTS_CA_BUNDLE` (`TEST_ENV`; those suites
otherwise verify with the repository's own 2013 CA file): psf__requests-2317's
FAIL_TO_PASS test_requests_history_is_saved follows https://httpbin.org/redirect/5.
Other hosts stay unreachable (the spec's `network_tests`).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

from sandbox import Sandbox, connect

_SETUP = ("ip tuntap add envfarm0 mode tun && ip link set envfarm0 up && "
          "ip route add default dev envfarm0")
RESOLV = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"


def blackhole(sandbox: Sandbox) -> bool:
    """Black-hole the sandbox's outbound traffic (see module docstring). True when done."""
    pid = _host_pid(sandbox)
    if pid is None or os.geteuid() != 0 or shutil.which("nsenter") is None:
        return False
    proc = subprocess.run(["nsenter", "-t", str(pid), "-n", "sh", "-c", _SETUP],
                          capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        return False
    sandbox.exec(f"printf '{RESOLV}' > /etc/resolv.conf 2>/dev/null || true")
    return True


HTTPBIN_VENV = "/opt/envfarm/httpbin"
HTTPBIN_INSTALL = (f"python3 -m venv {HTTPBIN_VENV} && {HTTPBIN_VENV}/bin/pip install -q "
                   "'httpbin==0.10.2' 'flask<3.1' 'werkzeug<3.1'")
"""The image step that gives `httpbin` networks their server (its own venv)."""
HTTPBIN_CA = f"{HTTPBIN_VENV}/ca.pem"
HTTPBIN_TLS = (
    f"cd {HTTPBIN_VENV} && openssl req -x509 -newkey rsa:2048 -nodes -days 36500 "
    "-subj /CN=envfarm-httpbin-ca -keyout ca.key -out ca.pem 2>/dev/null && "
    "openssl req -newkey rsa:2048 -nodes -subj /CN=httpbin.org -keyout key.pem -out req.csr "
    "2>/dev/null && printf 'subjectAltName=DNS:httpbin.org\\n' > ext.cnf && "
    "openssl x509 -req -in req.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 36500 "
    "-extfile ext.cnf -out cert.pem 2>/dev/null && rm -f ca.key ca.srl req.csr ext.cnf && "
    "chmod 644 ca.pem cert.pem && chmod 600 key.pem")
"""The image step that gives the local httpbin a certificate for httpbin.org, from a CA
made for it whose key is deleted at once (nothing else can be signed with it)."""
TEST_ENV: dict[str, dict[str, str]] = {"httpbin": {"REQUESTS_CA_BUNDLE": HTTPBIN_CA}}
"""Environment of the test runs per network: requests of that age verify https with
their own 2013 CA file unless `REQUESTS_CA_BUNDLE` names another."""
_SERVE = (f"(cd / && nohup {HTTPBIN_VENV}/bin/python -c 'from httpbin import app; "
          "app.run(host=\"127.0.0.1\", port={port}, threaded=True{tls})' "
          "> /tmp/envfarm-httpbin-{port}.log 2>&1 < /dev/null &) ; ")
_WAIT = ("for i in $(seq 100); do python3 -c 'import socket; socket.create_connection("
         "(\"127.0.0.1\", {port}), 1)' 2>/dev/null && break; sleep 0.1; done; "
         "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 1)' "
         "2>/dev/null || {{ tail -5 /tmp/envfarm-httpbin-{port}.log; exit 1; }}; ")
_TLS = f', ssl_context=(\"{HTTPBIN_VENV}/cert.pem\", \"{HTTPBIN_VENV}/key.pem\")'
_HTTPBIN_START = (
    "grep -q ' httpbin.org$' /etc/hosts || echo '127.0.0.1 httpbin.org' >> /etc/hosts; "
    + _SERVE.format(port=80, tls="") + _WAIT.format(port=80)
    + f"if [ -f {HTTPBIN_VENV}/cert.pem ]; then "
    + _SERVE.format(port=443, tls=_TLS) + _WAIT.format(port=443) + "fi; exit 0")


def start_httpbin(sandbox: Sandbox) -> bool:
    """Start the image's httpbin on 127.0.0.1 as httpbin.org: port 80, and 443 with its
    certificate where the image has one (`HTTPBIN_TLS`). True once they answer."""
    return sandbox.exec(f"bash -c {shlex.quote(_HTTPBIN_START)}", timeout_s=60).ok


def runner_env(network: str) -> dict[str, str]:
    """Variables the test runs of a `network` get (`TEST_ENV`)."""
    return dict(TEST_ENV.get(network, {}))


def prepare(sandbox: Sandbox, network: str) -> bool:
    """Give a started sandbox the network a spec asks for (`none`, `blackhole` or
    `httpbin`). True when done; False where the black hole cannot be made here."""
    if network == "httpbin":
        return blackhole(sandbox) & start_httpbin(sandbox)
    return blackhole(sandbox) if network == "blackhole" else True


def _host_pid(sandbox: Sandbox) -> int | None:
    container = getattr(sandbox, "id", None)
    if not isinstance(container, str):
        return None
    try:
        pid = connect().api.inspect_container(container)["State"]["Pid"]
    except Exception:  # noqa: BLE001 - any engine trouble: no black hole, plain none stays
        return None
    return pid if isinstance(pid, int) and pid > 0 else None
