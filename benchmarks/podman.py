"""Podman beside Docker, measured in the same run: what a sandbox costs on each engine.

Start → first command (default limits: the loop-mounted disk cap on both engines),
per-command latency of the persistent shell, a file written and read back through the
archive API, and close (remove). Engines alternate sandbox by sandbox, so machine load
hits both alike. Writes a table to benchmarks/results/podman.md (`--out`).

    .venv/bin/python benchmarks/podman.py [--sandboxes 8] [--commands 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

# benchmarks/ holds a sandbox.py: keep the folder off sys.path so `sandbox` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [str(_HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != _HERE)]

from sandbox import Limits, base_image, make_backend
from sandbox.gc import gc_containers

KEYS = ("start", "cmd", "file", "get", "close")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(backend, image: str, commands: int, out: dict[str, list[float]]) -> None:
    t = time.perf_counter()
    box = backend.start(image, Limits(timeout_s=60), use_pool=False)
    try:
        box.exec("true")
        out["start"].append(time.perf_counter() - t)
        for _ in range(commands):
            t = time.perf_counter()
            box.exec("true")
            out["cmd"].append(time.perf_counter() - t)
        payload = os.urandom(64 << 10)
        for i in range(10):
            t = time.perf_counter()
            box.write_file(f"/tmp/f{i}.bin", payload)
            if box.read_file(f"/tmp/f{i}.bin") != payload:
                raise RuntimeError(f"{backend.name}: file came back different")
            out["file"].append(time.perf_counter() - t)
            t = time.perf_counter()  # one archive GET, what a read costs with no link hops
            stream, _ = backend.client.api.get_archive(box.id, f"/tmp/f{i}.bin")
            b"".join(stream)
            out["get"].append(time.perf_counter() - t)
    finally:
        t = time.perf_counter()
        box.close()
        out["close"].append(time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sandboxes", type=int, default=8, help="sandboxes per engine")
    ap.add_argument("--commands", type=int, default=200, help="commands per sandbox")
    ap.add_argument("--out", default="benchmarks/results/podman.md")
    args = ap.parse_args()
    run = f"bench-podman-{uuid.uuid4().hex[:8]}"
    image = base_image()
    backends = {"docker": make_backend("docker", run=run),
                "podman": make_backend("podman", run=run)}
    podman = backends["podman"]
    had = podman.client.api.images(quiet=True, filters={"reference": image})
    t = time.perf_counter()
    podman.ensure_image(image)  # the one-time copy from Docker, timed apart
    copy_s = time.perf_counter() - t
    results = {name: {k: [] for k in KEYS} for name in backends}
    try:
        for _ in range(args.sandboxes):
            for name, backend in backends.items():
                measure(backend, image, args.commands, results[name])
    finally:
        for backend in backends.values():
            gc_containers(backend.client, run=run)
    base = results["docker"]
    med = {n: {k: statistics.median(r[k]) for k in KEYS} for n, r in results.items()}
    rows = []
    for name, r in results.items():
        m = med[name]
        rows.append(
            f"| {name} | {m['start']:.3f} | {1000 * m['cmd']:.2f} | {1000 * pct(r['cmd'], 0.9):.2f} "
            f"| {1000 * m['file']:.1f} | {1000 * m['get']:.1f} | {1000 * m['close']:.0f} "
            f"| {m['start'] / med['docker']['start']:.2f}× | {m['cmd'] / med['docker']['cmd']:.2f}× "
            f"| {m['file'] / med['docker']['file']:.2f}× | {m['get'] / med['docker']['get']:.2f}× |")
    load = os.getloadavg()
    text = (
        "# Podman beside Docker\n\nWritten by `benchmarks/podman.py`; engines alternate sandbox "
        "by sandbox in one run, same image (envfarm base), same limits (defaults: disk cap "
        "by loop-mounted layer on both).\n\n"
        f"## Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {os.cpu_count()} cores, "
        f"load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n\n"
        f"{args.sandboxes} sandboxes per engine; {args.commands} commands (`true`) per sandbox; "
        "10 files of 64 KiB written and read back per sandbox. Medians; ratios against Docker "
        "measured in the same run.\n\n"
        "| engine | start → first command (s) | command p50 (ms) | command p90 (ms) "
        "| write+read 64 KiB (ms) | one archive GET (ms) | close (ms) | start × docker "
        "| command × docker | write+read × docker | GET × docker |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n"
        f"- Podman {podman.client.version().get('Version')} (Debian), rootful, compatible API "
        f"over a unix socket, OCI runtime `{podman.client.info().get('DefaultRuntime')}`, "
        f"Docker {backends['docker'].client.version().get('Version')} with runc.\n"
        + (f"- The base image was already in Podman's store (same content id): checking "
           f"both ids took {copy_s:.2f} s.\n" if had else
           f"- The base image's one-time copy from Docker into Podman's store (by content "
           f"id) took {copy_s:.1f} s.\n") +
        f"- Samples: {len(base['start'])} starts and {len(base['cmd'])} commands per engine.\n")
    Path(args.out).write_text(text + _notes(args.out))
    print(text)


def _notes(path: str) -> str:
    """Keep the hand-written sections of the results file (everything from `## Notes`)."""
    try:
        old = Path(path).read_text()
    except OSError:
        return ""
    i = old.find("\n## Notes")
    return old[i:] if i >= 0 else ""


if __name__ == "__main__":
    main()
