"""gVisor (`runsc`) beside the default runtime (runc), measured in the same run.

Per-command latency of the persistent shell, start → first command, and a small test
suite's time (200 unittest cases doing file and process work inside the sandbox),
interleaved round by round so machine load hits both alike. Writes a table to
benchmarks/results/gvisor.md (`--out`).

    .venv/bin/python benchmarks/gvisor.py [--rounds 3] [--commands 200]
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

from sandbox import Limits, base_image, make_backend  # noqa: E402
from sandbox.gc import gc_containers  # noqa: E402

SUITE = '''
import os, subprocess, tempfile, unittest

class T(unittest.TestCase):
    pass

def make(i):
    def test(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "f.txt")
            with open(p, "w") as f:
                f.write("x" * 1000 * (i % 7 + 1))
            self.assertEqual(os.path.getsize(p) % 1000, 0)
            if i % 20 == 0:
                self.assertEqual(subprocess.run(["true"]).returncode, 0)
    return test

for i in range(200):
    setattr(T, f"test_{i}", make(i))

if __name__ == "__main__":
    unittest.main(verbosity=0)
'''


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(backend, image: str, commands: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"start": [], "cmd": [], "suite": []}
    t = time.perf_counter()
    with backend.start(image, Limits(timeout_s=300), use_pool=False) as box:
        box.exec("true")
        out["start"].append(time.perf_counter() - t)
        for _ in range(commands):
            t = time.perf_counter()
            box.exec("true")
            out["cmd"].append(time.perf_counter() - t)
        box.write_file("/tmp/suite.py", SUITE)
        t = time.perf_counter()
        r = box.exec("python3 /tmp/suite.py 2>&1 | tail -1")
        out["suite"].append(time.perf_counter() - t)
        if "OK" not in r.output:
            raise RuntimeError(f"suite failed under {backend.name}: {r.output}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--commands", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/gvisor.md")
    args = ap.parse_args()
    run = f"bench-gvisor-{uuid.uuid4().hex[:8]}"
    image = base_image()
    backends = {"runc (docker)": make_backend("docker", run=run),
                "runsc (gvisor, ptrace)": make_backend("gvisor", run=run)}
    results = {name: {"start": [], "cmd": [], "suite": []} for name in backends}
    try:
        for _ in range(args.rounds):
            for name, backend in backends.items():
                for key, values in measure(backend, image, args.commands).items():
                    results[name][key].extend(values)
    finally:
        gc_containers(backends["runc (docker)"].client, run=run)
    base = results["runc (docker)"]
    rows = []
    for name, r in results.items():
        rows.append(
            f"| {name} | {1000 * statistics.median(r['cmd']):.2f} | {1000 * pct(r['cmd'], 0.9):.2f} "
            f"| {statistics.median(r['start']):.2f} | {statistics.median(r['suite']):.2f} "
            f"| {statistics.median(r['cmd']) / statistics.median(base['cmd']):.1f}× "
            f"| {statistics.median(r['suite']) / statistics.median(base['suite']):.1f}× |")
    load = os.getloadavg()
    text = (
        "# gVisor beside runc\n\nWritten by `benchmarks/gvisor.py`; interleaved rounds in one run, "
        "same image (envfarm base), same limits.\n\n"
        f"## Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} — {os.cpu_count()} cores, "
        f"load {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n\n"
        f"{args.rounds} rounds; {args.commands} commands a round; the suite is 200 unittest "
        "cases writing temporary files (every 20th spawns a process).\n\n"
        "| runtime | command p50 (ms) | command p90 (ms) | start → first command (s) "
        "| 200-test suite (s) | command × runc | suite × runc |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n"
        "- gVisor runs with `--platform=ptrace` (the KVM platform does not start in this "
        "Firecracker VM), `--overlay2=none --file-access=shared` and the loop-mounted disk cap; "
        "networked sandboxes stay on runc.\n")
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
