"""A simulated sandbox engine: the `Backend` and `Sandbox` contracts without containers.

For what a real engine cannot give a 2-core machine: 1,000 sandboxes running at once,
for measuring the driver, the store and the scheduler at cluster scale, and for unit
tests of the runner. It is a real implementation of the protocol, not a mock: each
sandbox is an in-memory filesystem with a small shell (`echo ... > f`, `cat f`, `mkdir`,
`rm`, `true`, `false`, `exit N`, `sleep S`, `;`/`&&`), so an env that writes and reads
files (the echo env) runs on it unchanged and earns real rewards.

Latencies and failures are drawn from distributions measured on real Docker here.
With `profile=PATH` (benchmarks/results/sim_profile.json, written by
benchmarks/scale_profile.py on the real docker backend) every start, command, file write
and read, and close waits a draw from the measured samples (inverse CDF, interpolated),
and the failure rates default to the measured ones. Without it: log-normal with the
median and p90 of benchmarks/results/sandbox.md (cold start p50 ~1.0 s, p90 ~1.4 s; a
command p50 ~0.6 ms). Waits are scaled by `time_scale` (0 = no waiting).
`start_failure_rate` and `exec_failure_rate` raise `SandboxError` (infrastructure) at
those rates. Draws are seeded per process and backend instance.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import random
import re
import shlex
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Self

from sandbox.errors import ContainerDied, SandboxError
from sandbox.run_context import owner_id, run_label
from sandbox.types import ExecResult, FileChange, Limits


@dataclass(frozen=True)
class Latency:
    """A log-normal latency by its median and 90th percentile, in seconds."""

    median_s: float
    p90_s: float

    def draw(self, rng: random.Random) -> float:
        if self.median_s <= 0:
            return 0.0
        sigma = max(1e-9, math.log(max(self.p90_s, self.median_s) / self.median_s) / 1.2816)
        return rng.lognormvariate(math.log(self.median_s), sigma)


@dataclass(frozen=True)
class Empirical:
    """Latencies drawn from measured samples (seconds): the inverse of their empirical CDF,
    linearly interpolated between neighbouring samples."""

    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("an empirical latency needs at least one sample")
        object.__setattr__(self, "samples", tuple(sorted(self.samples)))

    def draw(self, rng: random.Random) -> float:
        s = self.samples
        x = rng.random() * (len(s) - 1)
        i = int(x)
        return s[i] if i + 1 >= len(s) else s[i] + (s[i + 1] - s[i]) * (x - i)


@functools.cache
def load_profile(path: str) -> dict[str, Any]:
    """A measured profile (benchmarks/scale_profile.py's JSON), read once per process."""
    return json.loads(Path(path).read_text())


MEASURED_START = Latency(1.032, 1.441)
MEASURED_COMMAND = Latency(0.00064, 0.0119)

_LIVE: dict[str, SimSandbox] = {}
_INSTANCES = itertools.count()
_LIVE_LOCK = threading.Lock()


def live_sandboxes(run: str | None = None) -> list[SimSandbox]:
    """Sim sandboxes open in this process (of one run): what gc and leak checks read."""
    with _LIVE_LOCK:
        return [s for s in _LIVE.values() if run is None or s.labels.get("envfarm.run") == run]


class SimSandbox:
    """One simulated sandbox: an in-memory filesystem and a tiny shell."""

    def __init__(self, backend: SimBackend, image: str, limits: Limits,
                 labels: dict[str, str], workdir: str | None) -> None:
        self.id = uuid.uuid4().hex
        self.image, self.limits, self.labels = image, limits, labels
        self._backend = backend
        self._files: dict[str, bytes] = {}
        self._changed: dict[str, str] = {}
        self._cwd = workdir or "/"
        self._closed = False
        self._lock = threading.Lock()

    # -- commands ---------------------------------------------------------------------------
    def exec(self, command: str, timeout_s: float | None = None) -> ExecResult:
        self._check_open()
        timeout = timeout_s or self.limits.timeout_s
        wait = self._backend._draw(self._backend.command_latency)
        self._backend._maybe_fail("exec", self)
        started = time.monotonic()
        with self._lock:
            code, out, slept = self._run(command)
        total = wait + slept
        timed_out = total > timeout
        self._backend._sleep(min(total, timeout))
        if timed_out:
            code = 124
        data = out.encode()[: self.limits.output_limit_bytes]
        return ExecResult(code, data.decode(errors="replace"), len(out) > len(data), timed_out,
                          time.monotonic() - started)

    def _run(self, command: str) -> tuple[int, str, float]:
        code, out, slept = 0, [], 0.0
        for part, joiner in _split(command):
            if joiner == "&&" and code != 0:
                continue
            code, text, s = self._one(part)
            out.append(text)
            slept += s
            if code == -1:  # exit
                return int(text or 0), "".join(out[:-1]), slept
        return code, "".join(out), slept

    def _one(self, part: str) -> tuple[int, str, float]:
        words = shlex.split(part, posix=True) if part.strip() else []
        if not words:
            return 0, "", 0.0
        redirect = None
        if ">" in words:
            i = words.index(">")
            redirect, words = words[i + 1] if i + 1 < len(words) else None, words[:i]
        cmd, args = words[0], words[1:]
        if cmd == "echo":
            text = " ".join(a for a in args if a != "-n") + ("" if "-n" in args else "\n")
        elif cmd == "cat":
            chunks = []
            for a in args:
                data = self._files.get(self._abs(a))
                if data is None:
                    return 1, f"cat: {a}: No such file or directory\n", 0.0
                chunks.append(data.decode(errors="replace"))
            text = "".join(chunks)
        elif cmd in ("true", ":", "mkdir", "cd", "export"):
            if cmd == "cd" and args:
                self._cwd = self._abs(args[0])
            text = ""
        elif cmd == "rm":
            for a in (a for a in args if not a.startswith("-")):
                path = self._abs(a)
                for p in [p for p in self._files if p == path or p.startswith(path + "/")]:
                    del self._files[p]
                    self._changed[p] = "D"
            text = ""
        elif cmd == "false":
            return 1, "", 0.0
        elif cmd == "sleep":
            return 0, "", float(args[0]) if args else 0.0
        elif cmd == "exit":
            return -1, args[0] if args else "0", 0.0
        elif cmd == "pwd":
            text = self._cwd + "\n"
        else:
            return 127, f"sim: {cmd}: command not found\n", 0.0
        if redirect is not None:
            self._write(self._abs(redirect), text.encode())
            return 0, "", 0.0
        return 0, text, 0.0

    # -- files ------------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        self._check_open()
        self._backend._wait(self._backend.write_latency)
        self._write(path, data.encode() if isinstance(data, str) else data)

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        self._check_open()
        self._backend._wait(self._backend.read_latency)
        data = self._files.get(str(PurePosixPath(path)))
        if data is None:
            raise FileNotFoundError(path)
        return data if max_bytes is None else data[:max_bytes]

    def upload_dir(self, src: Path | str, dest: str) -> None:
        self._check_open()
        root = Path(src)
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink():
                self._write(str(PurePosixPath(dest) / p.relative_to(root).as_posix()),
                            p.read_bytes())

    def download_dir(self, src: str, dest: Path | str) -> None:
        self._check_open()
        prefix = str(PurePosixPath(src)).rstrip("/") + "/"
        for path, data in self._files.items():
            if path.startswith(prefix):
                target = Path(dest) / path[len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)

    # -- the agent is done ------------------------------------------------------------------
    def stop_processes(self) -> None:
        self._check_open()

    def changes(self) -> list[FileChange]:
        self._check_open()
        return [FileChange(kind, path) for path, kind in sorted(self._changed.items())]

    def snapshot(self) -> str:
        self._check_open()
        image = f"sim-snapshot:{uuid.uuid4().hex[:12]}"
        self._backend._images[image] = dict(self._files)
        return image

    def state(self) -> dict[str, Any]:
        return {"Running": not self._closed, "OOMKilled": False}

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _LIVE_LOCK:
            _LIVE.pop(self.id, None)
        self._backend._wait(self._backend.close_latency)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ContainerDied(f"sim sandbox {self.id[:12]} is closed")

    def _abs(self, path: str) -> str:
        return str(PurePosixPath(self._cwd) / path) if not path.startswith("/") else \
            str(PurePosixPath(path))

    def _write(self, path: str, data: bytes) -> None:
        path = str(PurePosixPath(path))
        self._changed[path] = "C" if path in self._files else "A"
        self._files[path] = data


class SimBackend:
    """Simulated engine. See the module docstring.

    Args:
        run: the `envfarm.run` label (default: this thread's run).
        profile: path of a measured profile (sim_profile.json): its samples give every
            latency and its failure counts the failure rates not given here.
        start: start latency distribution; command: per-command latency (both override
            the profile's).
        start_failure_rate, exec_failure_rate: probability of a `SandboxError` (None: the
            profile's measured rate, else 0).
        time_scale: multiply every latency (0: return at once, 1: real time).
        seed: for reproducible draws.
    """

    name = "sim"

    def __init__(self, *, run: str | None = None, profile: str | None = None,
                 start: Latency | Empirical | None = None,
                 command: Latency | Empirical | None = None,
                 start_failure_rate: float | None = None,
                 exec_failure_rate: float | None = None, time_scale: float = 1.0,
                 seed: int | None = None, **_: Any) -> None:
        self.run = run_label(run)
        data = load_profile(str(profile)) if profile else {}
        samples = data.get("samples", {})

        def measured(key: str, default: Latency | Empirical | None) -> Latency | Empirical | None:
            return Empirical(tuple(samples[key])) if samples.get(key) else default

        def rate(what: str, given: float | None) -> float:
            if given is not None:
                return given
            tried = data.get("attempts", {}).get(what, 0)
            return data.get("failures", {}).get(what, 0) / tried if tried else 0.0

        self.start_latency = start or measured("start_s", MEASURED_START)
        self.command_latency = command or measured("exec_s", MEASURED_COMMAND)
        self.write_latency = measured("write_s", None)
        self.read_latency = measured("read_s", None)
        self.close_latency = measured("close_s", None)
        self.start_failure_rate = rate("start", start_failure_rate)
        self.exec_failure_rate = rate("exec", exec_failure_rate)
        self.time_scale = time_scale
        # One stream per backend instance (a worker builds one per episode): the same seed
        # in every instance would give every episode the same draws.
        self._rng = random.Random(None if seed is None else
                                  hash((seed, os.getpid(), next(_INSTANCES))))
        self._rng_lock = threading.Lock()
        self._images: dict[str, dict[str, bytes]] = {}
        self.started = 0

    def start(self, image: str, limits: Limits | None = None, *, env: dict | None = None,
              workdir: str | None = None, cap_add: list[str] | None = None,
              labels: dict[str, str] | None = None, start_shell: bool = True,
              use_pool: bool = True, **options: Any) -> SimSandbox:
        self._wait(self.start_latency)
        self._maybe_fail("start", None)
        all_labels = {"envfarm.run": self.run, "envfarm.owner": owner_id(),
                      "envfarm.image": image, **(labels or {})}
        box = SimSandbox(self, image, limits or Limits(), all_labels, workdir)
        box._files.update(self._images.get(image, {}))
        with _LIVE_LOCK:
            _LIVE[box.id] = box
        self.started += 1
        return box

    def healthy(self) -> bool:
        return True

    def remove_image(self, image: str) -> None:
        self._images.pop(image, None)

    def _draw(self, latency: Latency | Empirical | None) -> float:
        if latency is None or self.time_scale <= 0:
            return 0.0
        with self._rng_lock:
            return latency.draw(self._rng)

    def _wait(self, latency: Latency | Empirical | None) -> None:
        self._sleep(self._draw(latency))

    def _maybe_fail(self, what: str, box: SimSandbox | None) -> None:
        rate = self.start_failure_rate if what == "start" else self.exec_failure_rate
        if rate <= 0:
            return
        with self._rng_lock:
            hit = self._rng.random() < rate
        if hit:
            raise SandboxError(f"simulated {what} failure")

    def _sleep(self, seconds: float) -> None:
        if self.time_scale > 0 and seconds > 0:
            time.sleep(seconds * self.time_scale)


_PARTS = re.compile(r"\s*(&&|;|\n)\s*")


def _split(command: str) -> list[tuple[str, str]]:
    """`a && b; c` → [("a", ";"), ("b", "&&"), ("c", ";")] (joiner before each part)."""
    pieces = _PARTS.split(command)
    out, joiner = [], ";"
    for piece in pieces:
        if piece in ("&&", ";", "\n"):
            joiner = "&&" if piece == "&&" else ";"
            continue
        out.append((piece, joiner))
        joiner = ";"
    return out
