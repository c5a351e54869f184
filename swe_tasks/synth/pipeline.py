"""`synthesize`: a Python repository with a test suite -> verified SWE-bench-format instances.

Steps: prepare the clean commit (`source.prepare`); set up its environment once
(`env_setup.set_up`: test dependencies and collection discovered, retried on what pytest
names; the SWE image layer every instance shares, its install_config on every instance); run the suite twice on the clean tree (the
baseline: tests passing in both runs); draw candidate bugs (`candidates.generate`, plus
model rewrites when a `FunctionRewriter` is given); judge each in a fresh sandbox from a
warm pool, `workers` at a time (`evaluate`); keep valid ones whose failing-test signature
is new; write each as an instance with its buggy commit.

Files (resumable; a rerun with the same source, seed and options skips what is decided):
- `out`: the instances, one JSON object per line, SWE-bench format (`envfarm tasks import`);
- `out.decisions.jsonl`: one line per judged candidate (key = SHA-256 of its patch, status);
- `out.baseline.json`: the baseline, reused while the environment image is the same;
- `out.setup.json`: the environment setup (install_config, attempts), reused for the commit.
Lines are appended and flushed as results arrive, so a killed run loses only what was in
flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sandbox import DockerBackend, Limits, WarmPool
from sandbox.errors import InfraError, TaskError
from swe_tasks.instance import SWEInstance
from swe_tasks.repo_spec import spec_for
from swe_tasks.synth import mutations
from swe_tasks.synth.candidates import Candidate, generate
from swe_tasks.synth.env_setup import EnvSetup, pseudo_instance, set_up
from swe_tasks.synth.evaluate import Baseline, Verdict, baseline_from, evaluate
from swe_tasks.synth.instances import IssueWriter, build_instance
from swe_tasks.synth.rewriter import FunctionRewriter, rewrite_candidates
from swe_tasks.synth.source import all_files, prepare, source_files
from swe_tasks.synth.suite import run_suite


class SynthConfig(BaseModel):
    """How one synthesis run draws and judges candidates."""

    model_config = ConfigDict(extra="forbid")

    max_candidates: int = Field(200, ge=1, description="Candidates drawn (decided ones count).")
    workers: int = Field(2, ge=1, description="Candidates judged at once (one sandbox each).")
    seed: int = Field(0, description="Seed of the candidate order.")
    strategies: list[str] | None = Field(None, description="Procedural strategies (None: all).")
    model_candidates: int = Field(0, ge=0, description="Whole-function model rewrites to try.")
    timeout_factor: float = Field(4.0, gt=0, description="Suite limit = factor x baseline time.")
    min_timeout_s: float = Field(45.0, gt=0, description="Lower bound of the suite limit.")
    cpus: float = Field(1.0, gt=0, description="CPUs of each sandbox.")
    memory_mb: int = Field(2048, ge=256, description="Memory of each sandbox.")
    rev: str = Field("HEAD", description="Revision of a git source to start from.")
    setup_attempts: int = Field(6, ge=1, description="Image builds the environment setup may "
                                "try (each retry fixes what the last collection named).")
    ray_address: str | None = Field(None, description="Judge on Ray (`local` starts one); "
                                    "None: local threads.")


@dataclass
class SynthReport:
    """What a run did: counts per status, the instances file, timings."""

    source: str
    out: Path
    image: str
    baseline: Baseline
    setup: EnvSetup | None = None
    statuses: Counter = field(default_factory=Counter)
    instances: int = 0
    judged_now: int = 0
    wall_s: float = 0.0
    candidate_s: list[float] = field(default_factory=list)

    @property
    def candidates_per_min(self) -> float:
        return 60.0 * self.judged_now / self.wall_s if self.wall_s else 0.0


def _sidecar(out: Path, suffix: str) -> Path:
    return out.with_name(out.name + suffix)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that candidate is judged again
    return rows


def synthesize(source: str, out: Path, config: SynthConfig | None = None, *,
               backend: DockerBackend | None = None, rewriter: FunctionRewriter | None = None,
               writer: IssueWriter | None = None,
               progress: Callable[[int, int, Counter], None] | None = None) -> SynthReport:
    """Run the pipeline (module docstring). Raises TaskError when the source cannot be had
    (SetupFailed, a TaskError, when its environment cannot be set up), InfraError when
    Docker fails."""
    config = config or SynthConfig()
    t0 = time.monotonic()
    src = prepare(source, rev=config.rev)
    files, tree = source_files(src), all_files(src)
    backend = backend or DockerBackend(run="swe-synth")
    setup = set_up(src, out, backend=backend, max_attempts=config.setup_attempts)
    spec = spec_for(pseudo_instance(src, setup.install_config))
    image = setup.image
    limits = Limits(cpus=config.cpus, memory_mb=config.memory_mb, pids=1024, network=False,
                    timeout_s=600)
    out.parent.mkdir(parents=True, exist_ok=True)
    decisions_path = _sidecar(out, ".decisions.jsonl")
    decided = {d["key"]: d for d in _read_jsonl(decisions_path) if "key" in d}
    signatures = {d["signature"] for d in decided.values() if d.get("status") == "valid"}

    with WarmPool(backend, image, config.workers, limits, workdir="/testbed",
                  max_starting=config.workers) as pool:
        baseline = _baseline(out, image, pool, spec, tree)
        report = SynthReport(source, out, image, baseline, setup)
        report.statuses.update(d["status"] for d in decided.values())
        report.instances = len(_read_jsonl(out))
        cands = list(_candidates(files, config, rewriter))
        todo = [c for c in cands if c.key not in decided]
        timeout_s = max(config.min_timeout_s, config.timeout_factor * baseline.duration_s)
        lock = threading.Lock()
        with decisions_path.open("a") as dec_f, out.open("a") as out_f:

            def record(cand: Candidate, verdict: Verdict) -> None:
                status = verdict.status
                with lock:
                    if status == "valid" and verdict.signature in signatures:
                        status = "duplicate"
                    if status == "valid":
                        try:
                            inst = build_instance(src, cand, verdict, writer,
                                                  install_config=setup.install_config)
                        except (TaskError, ValueError) as e:  # git refused, or a bad record
                            status, verdict.detail = "instance_error", str(e)
                        else:
                            signatures.add(verdict.signature)
                            out_f.write(json.dumps(inst.to_record()) + "\n")
                            out_f.flush()
                            report.instances += 1
                    row = {"key": cand.key, "status": status, "strategy": cand.strategy,
                           "file": cand.path, "function": cand.function,
                           "mutation": cand.description, "signature": verdict.signature,
                           "n_fail": len(verdict.fail_to_pass), "duration_s": verdict.duration_s,
                           "detail": verdict.detail[:300]}
                    dec_f.write(json.dumps(row) + "\n")
                    dec_f.flush()
                    report.statuses[status] += 1
                    report.judged_now += 1
                    report.candidate_s.append(verdict.duration_s)
                    if progress:
                        progress(len(cands) - len(todo) + report.judged_now, len(cands),
                                 report.statuses)

            if config.ray_address:
                from swe_tasks.synth.ray_judge import RaySubmitter

                ray_sub = RaySubmitter(config.ray_address, image=image, spec=spec,
                                       baseline=baseline, files=tree, timeout_s=timeout_s,
                                       limits=limits, run=backend.run)
                _run_all(todo, config.workers, ray_sub.submit, record)
            else:
                with ThreadPoolExecutor(config.workers, thread_name_prefix="synth") as ex:
                    _run_all(todo, config.workers, lambda c: ex.submit(
                        evaluate, c, pool, spec, baseline, tree, timeout_s=timeout_s), record)
    report.wall_s = time.monotonic() - t0
    return report


def _candidates(files: dict[str, str], config: SynthConfig,
                rewriter: FunctionRewriter | None) -> Iterable[Candidate]:
    yield from generate(files, strategies=mutations.by_name(config.strategies), seed=config.seed,
                        limit=config.max_candidates)
    if rewriter is not None and config.model_candidates:
        yield from rewrite_candidates(files, rewriter, limit=config.model_candidates,
                                      seed=config.seed)


def _baseline(out: Path, image: str, pool: WarmPool, spec, tree: set[str]) -> Baseline:
    path = _sidecar(out, ".baseline.json")
    if path.exists():
        saved = json.loads(path.read_text())
        if saved.get("image") == image:
            return Baseline(**saved["baseline"])
    runs = []
    for _ in range(2):
        with pool.acquire() as sandbox:
            runs.append(run_suite(sandbox, spec, tree, timeout_s=1800))
    bad = [r for r in runs if not r.ran]
    if bad:
        raise InfraError(f"the clean test suite did not run (exit {bad[0].exit_code}): "
                         f"{bad[0].output_tail[-800:]}")
    baseline = baseline_from(runs)
    path.write_text(json.dumps({"image": image, "baseline": baseline.as_dict()}))
    return baseline


def _run_all(todo: list[Candidate], in_flight: int, submit: Callable[[Candidate], Future],
             record: Callable[[Candidate, Verdict], None]) -> None:
    """Keep about 2 x `in_flight` candidates submitted; record each verdict as it arrives. A
    candidate whose sandbox failed (InfraError) is left undecided: a rerun judges it again."""
    pending: dict[Future, Candidate] = {}
    queue = iter(todo)

    def refill() -> None:
        while len(pending) < in_flight * 2:
            cand = next(queue, None)
            if cand is None:
                return
            pending[submit(cand)] = cand

    refill()
    while pending:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for fut in done:
            cand = pending.pop(fut)
            try:
                verdict = fut.result()
            except InfraError:
                continue
            record(cand, verdict)
        refill()


def catalogue_records(out: Path, source: str) -> list:
    """The instances in `out` as catalogue rows (kind "swe", status valid: see the CLI)."""
    rows = []
    for rec in _read_jsonl(out):
        task = SWEInstance.model_validate(rec).to_task(f"synth:{source}")
        rows.append(task.model_copy(update={"status": "valid"}))
    return rows
