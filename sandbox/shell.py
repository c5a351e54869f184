"""One persistent bash per sandbox, driven through a Docker exec socket.

Why not `docker exec` per command: each costs a process spawn in the container and
an HTTP round trip (tens of ms), and loses cwd and environment. Here a single bash
reads framed commands from its stdin and answers each with an end marker that
carries the exit code, so a command costs a write and a read on an open socket.

Wire protocol (host → shell): `<marker> <tag>\\n<command bytes>\\0`. The shell evaluates
the command in a function of the current shell (so `cd` and `export` persist), with
stdin from /dev/null and stderr merged into stdout, then prints
`\\n__EF_<marker>_<exit code>__\\n`. Marker and tag are random per command; the command's
processes carry only the tag (in `ENVFARM_CMD` and the start stamp), never the marker,
so nothing the command prints can forge the end of its output or its exit code (short of
reading the shell's memory, which a kernel without a Yama ptrace policy allows root).

Timeouts: the host interrupts from a second exec that SIGINTs the shell (a trap turns
that into `return` from the command's function, which also breaks builtin loops) and
SIGKILLs the command's processes: those whose environment carries the command's
tag, and forks of the shell started after it began. Background jobs of earlier
commands survive. If the shell still does not answer, the container's processes are
cleared, a new shell starts and the result says `shell_restarted`.
"""

from __future__ import annotations

import re
import secrets
import socket
import struct
import time
from typing import Any

from sandbox.errors import ContainerDied, ContainerOOMKilled, SandboxError
from sandbox.types import ExecResult

_LOOP = r"""
exec 2>&1
__ef_run() { trap 'trap - INT; return 130' INT; eval "$1"; }
trap 'printf "\n__EF_%s_%d_X__\n" "$__ef_m" "$?"' EXIT
printf '__EF_READY_%s__\n' "$$"
while IFS=' ' read -r __ef_m __ef_tag && IFS= read -r -d '' __ef_c; do
  export ENVFARM_CMD="$__ef_tag"
  read -r __ef_up _ < /proc/uptime && printf '%s %s\n' "$__ef_tag" "${__ef_up/./}" 2>/dev/null >"/dev/shm/.envfarm-t0-$$"
  __ef_run "$__ef_c" </dev/null
  __ef_rc=$?
  trap - INT
  jobs >/dev/null  # flush bash's deferred job notices into this command's output
  printf '\n__EF_%s_%d__\n' "$__ef_m" "$__ef_rc"
  __ef_m=
done
"""

# Runs in a second exec on timeout. Pure builtins where it matters: under a fork bomb
# the pids cgroup is full and every fork may fail. A process is the command's if its
# environment carries this command's ENVFARM_CMD tag, or, for forks of the shell
# (which keep the shell's own environment), if it started after the command was sent.
# Exec'd children of earlier commands carry an older tag and are spared. SIGSTOP
# first so nothing forks while we kill. The shell stamps each command's start tick in
# /dev/shm; without that file the start comes from the host's estimate, which the
# killer's own start-up delay makes late, so forks made early by the command escape.
# Args: shell pid, tag, centiseconds since the command was sent (/proc/uptime in
# centiseconds equals clock ticks, USER_HZ=100), and mode: "cmd", or "all" to clear
# everything but PID 1 and its keep-alive child before the shell is replaced.
_KILLER = r"""
shell=$1; tag=$2; mode=$4; me=$$
read -r up _ < /proc/uptime; up=${up/./}; t0=$(( 10#$up - $3 ))
read -r m t < "/dev/shm/.envfarm-t0-$shell" 2>/dev/null && [ "$m" = "$tag" ] && t0=$((10#$t))
kill -INT "$shell" 2>/dev/null
sid=
read -r line < /proc/$shell/stat && { rest=${line##*) }; set -- $rest; sid=$4; }
ours() {  # $1 = pid, $2 = start tick, $3 = ppid, $4 = session
  [ "$mode" = all ] && { [ "$3" != 1 ]; return; }
  [ -n "$sid" ] && [ "$4" != "$sid" ] && return 1
  local kv tagged=
  while IFS= read -r -d '' kv; do
    case $kv in
      ENVFARM_CMD=$tag) return 0 ;;
      ENVFARM_CMD=*) tagged=1 ;;
    esac
  done < /proc/$1/environ 2>/dev/null
  [ -z "$tagged" ] && [ "$2" -ge "$t0" ]
}
for round in 1 2 3 4 5 6 7 8 9 10; do
  victims=()
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$me" ] || [ "$p" = 1 ] && continue
    [ "$p" = "$shell" ] && [ "$mode" != all ] && continue
    read -r line < "$d/stat" 2>/dev/null || continue
    rest=${line##*) }; set -- $rest
    [ "$1" = Z ] && continue  # already dead, waiting to be reaped
    ours "$p" "${20}" "$2" "$4" && victims+=("$p")
  done
  [ ${#victims[@]} -eq 0 ] && exit 0
  kill -STOP "${victims[@]}" 2>/dev/null
  kill -KILL "${victims[@]}" 2>/dev/null
done
"""

_END = re.compile(rb"\n__EF_([0-9a-f]{32})_(-?\d+)(_X)?__\n")
_GRACE_S = 5.0  # how long a timed-out command gets to die before the shell is replaced
_READY = re.compile(rb"__EF_READY_(\d+)__\n")


class _OutputBuffer:
    """Keeps the head and tail of a stream with the middle dropped, in bounded memory."""

    def __init__(self, limit_bytes: int, slack: int = 128) -> None:
        self.limit = limit_bytes
        self.half = limit_bytes // 2
        self.slack = slack  # room for an end marker split across reads
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            keep = self.limit - self.half + self.slack
            if len(self.tail) > 4 * keep:
                del self.tail[: len(self.tail) - keep]

    def window(self, size: int) -> bytes:
        """The newest `size` bytes, where an end marker may be."""
        if len(self.tail) >= size:
            return bytes(self.tail[-size:])
        return bytes(self.head[-(size - len(self.tail)):] + self.tail)

    def drop_last(self, n: int) -> None:
        self.total -= n
        from_tail = min(n, len(self.tail))
        del self.tail[len(self.tail) - from_tail:]
        if n > from_tail:
            del self.head[len(self.head) - (n - from_tail):]

    def render(self) -> tuple[bytes, bool]:
        """The kept output and whether anything was dropped from its middle."""
        if self.total <= len(self.head) + len(self.tail) and self.total <= self.limit:
            return bytes(self.head + self.tail), False
        tail = bytes(self.tail[-(self.limit - self.half):])
        dropped = self.total - len(self.head) - len(tail)
        note = f"\n\n[... envfarm: {dropped} bytes of output truncated ...]\n\n".encode()
        return bytes(self.head) + note + tail, True


def death(api: Any, container_id: str) -> ContainerDied | ContainerOOMKilled:
    """The error for a container found not running, by who must act.

    The engine's `State.OOMKilled` (the container's own memory cap killed it) means the
    agent's commands did it: `ContainerOOMKilled`, an `AgentCaused` (score 0). Anything
    else (killed or removed from outside, engine restart or unreachable) is
    `ContainerDied`, an infrastructure error that is retried."""
    short = container_id[:12]
    try:
        state = api.inspect_container(container_id).get("State") or {}
    except Exception:  # noqa: BLE001 — removed, or the engine does not answer
        return ContainerDied(f"container {short} is gone (removed, or the engine is down)")
    if state.get("OOMKilled"):
        return ContainerOOMKilled(f"container {short} was killed by its own memory cap "
                                  f"(exit {state.get('ExitCode')}): the agent's commands "
                                  "used all its memory")
    return ContainerDied(f"container {short} is no longer running "
                         f"(exit {state.get('ExitCode')}, {state.get('Status')})")


class PersistentShell:
    """A bash process inside a running container, reached through the exec API socket."""

    def __init__(self, api: Any, container_id: str, *, env: dict[str, str] | None = None,
                 workdir: str | None = None, start_timeout_s: float = 30.0) -> None:
        self._api = api
        self._container_id = container_id
        self._env = env or {}
        self._workdir = workdir
        self._start_timeout_s = start_timeout_s
        self._sock: socket.socket | None = None
        self._pending = bytearray()  # demultiplexed bytes not yet consumed
        self._frame_left = 0  # bytes of the current stdout/stderr frame still to read
        self._frame_skip = False
        self._header_rest = b""
        self.pid: int | None = None
        self.restarts = 0

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Start a fresh bash and wait for its ready line. Raises SandboxError."""
        self.close()
        try:
            exec_id = self._api.exec_create(
                self._container_id,
                ["bash", "--noprofile", "--norc", "-c", _LOOP],
                stdin=True, stdout=True, stderr=True, tty=False,
                environment=self._env or None, workdir=self._workdir,
            )["Id"]
            wrapped = self._api.exec_start(exec_id, socket=True)
        except Exception as exc:  # docker.errors.APIError, requests errors
            raise self._died_or(f"cannot start the sandbox shell: {exc}") from exc
        self._sock = getattr(wrapped, "_sock", wrapped)
        self._sock.setblocking(True)
        self._pending.clear()
        self._frame_left, self._header_rest = 0, b""
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            match = _READY.search(self._pending)
            if match:
                self.pid = int(match.group(1))
                del self._pending[: match.end()]
                return
            if not self._fill(deadline):
                raise self._died_or("the sandbox shell did not start in time")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None

    @property
    def alive(self) -> bool:
        return self._sock is not None

    # -- one command -----------------------------------------------------------
    def run(self, command: str, timeout_s: float, output_limit_bytes: int) -> ExecResult:
        """Run `command` in the shell; a timeout kills it and is reported, not raised.

        Raises SandboxError (ContainerDied) when the container is gone."""
        restarted = False
        if self._sock is None:
            self.start()
            restarted = True
        if "\0" in command:
            return ExecResult(2, "envfarm: a command cannot contain a NUL byte")
        marker, tag = secrets.token_hex(16), secrets.token_hex(16)
        begun = time.monotonic()
        buf = _OutputBuffer(output_limit_bytes)
        buf.add(bytes(self._pending))
        self._pending.clear()
        try:
            payload = command.encode("utf-8", "surrogateescape")
            self._sock.sendall(f"{marker} {tag}\n".encode() + payload + b"\0")
        except OSError as exc:
            self.close()
            raise self._died_or(f"lost the sandbox shell: {exc}") from exc

        deadline = begun + timeout_s
        timed_out = False
        while True:
            end = self._find_end(buf, marker)
            if end is not None:
                code, exited = end
                break
            if self._fill(deadline, sink=buf):
                continue
            if self._sock is None:  # EOF without a marker: the shell was killed
                self._replace_shell()
                return self._result(buf, -1, begun, timed_out, shell_restarted=True)
            if not timed_out:
                timed_out = True
                grace_end = time.monotonic() + _GRACE_S
            if time.monotonic() < grace_end:
                self._interrupt(tag, time.monotonic() - begun, "cmd")
                deadline = min(time.monotonic() + 0.5, grace_end)
                continue
            # The shell ignored every interrupt (it replaced our INT trap, or a fork
            # bomb outran the killer): clear the container and start a new shell.
            self._interrupt(tag, time.monotonic() - begun, "all")
            self.close()
            self._replace_shell()
            return self._result(buf, 124, begun, True, shell_restarted=True)
        if exited:  # the command ran `exit`: the EXIT trap sent the marker
            self.close()
            self._replace_shell()
            return self._result(buf, code, begun, timed_out, shell_restarted=True)
        return self._result(buf, 124 if timed_out else code, begun, timed_out, restarted)

    # -- internals -------------------------------------------------------------
    def _find_end(self, buf: _OutputBuffer, marker: str) -> tuple[int, bool] | None:
        """Find this command's end marker; cut it from the output, keep what follows."""
        window = buf.window(buf.slack + 4096)
        idx = window.find(b"\n__EF_" + marker.encode() + b"_")
        if idx < 0:
            return None
        match = _END.match(window, idx)
        if match is None:
            return None  # the marker has not fully arrived
        self._pending += window[match.end():]
        buf.drop_last(len(window) - idx)
        return int(match.group(2)), match.group(3) is not None

    def _fill(self, deadline: float, sink: _OutputBuffer | None = None) -> bool:
        """Read what arrives before `deadline` into `sink` (or the pending buffer).

        Returns False on timeout, or on EOF (then the socket is closed)."""
        left = deadline - time.monotonic()
        if left <= 0 or self._sock is None:
            return False
        self._sock.settimeout(left)
        try:
            chunk = self._sock.recv(1 << 20)
        except TimeoutError:
            return False
        except OSError:
            chunk = b""
        if not chunk:
            self.close()
            return False
        data = self._demux(chunk)
        if sink is None:
            self._pending += data
        else:
            sink.add(data)
        return True

    def _demux(self, chunk: bytes) -> bytes:
        """Strip Docker's 8-byte stream headers (non-tty exec streams are multiplexed)."""
        out = bytearray()
        data = self._header_rest + chunk if self._header_rest else chunk
        self._header_rest = b""
        i, n = 0, len(data)
        while i < n:
            if self._frame_left == 0:
                if n - i < 8:
                    self._header_rest = bytes(data[i:])
                    break
                stream, size = struct.unpack(">BxxxL", data[i : i + 8])
                self._frame_left, self._frame_skip = size, stream not in (1, 2)
                i += 8
                continue
            take = min(self._frame_left, n - i)
            if not self._frame_skip:
                out += data[i : i + take]
            self._frame_left -= take
            i += take
        return bytes(out)

    def _interrupt(self, tag: str, elapsed_s: float, mode: str) -> None:
        """Kill the running command from a second exec (see the module docstring)."""
        if self.pid is None:
            return
        since_cs = str(int(elapsed_s * 100) + 5)  # fallback only: err towards early forks
        args = ["bash", "-c", _KILLER, "_", str(self.pid), tag, since_cs, mode]
        for attempt in range(20):
            try:
                exec_id = self._api.exec_create(self._container_id, args)["Id"]
                self._api.exec_start(exec_id)
                if self._api.exec_inspect(exec_id).get("ExitCode") == 0:
                    return
            except Exception:
                if not self._container_running():
                    return
            time.sleep(0.02 * (attempt + 1))  # pids cgroup full: wait for a free slot

    def _container_running(self) -> bool:
        try:
            state = self._api.inspect_container(self._container_id)["State"]
        except Exception:
            return False
        return bool(state.get("Running"))

    def _replace_shell(self) -> None:
        """The shell is gone: raise if the container is too, else start a new shell."""
        if not self._container_running():
            raise death(self._api, self._container_id)
        self.restarts += 1
        self.start()

    def _died_or(self, message: str) -> Exception:
        if not self._container_running():
            return death(self._api, self._container_id)
        return SandboxError(message)

    @staticmethod
    def _result(buf: _OutputBuffer, code: int, begun: float, timed_out: bool,
                shell_restarted: bool = False) -> ExecResult:
        body, truncated = buf.render()
        return ExecResult(
            exit_code=code,
            output=body.decode("utf-8", errors="replace"),
            truncated=truncated,
            timed_out=timed_out,
            duration_s=time.monotonic() - begun,
            shell_restarted=shell_restarted,
        )
