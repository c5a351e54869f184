"""Stores for the viewer's tests, and a real viewer server on a free port.

`synthetic_store`: a synthetic mixed run written through the store's write path (fast,
no Docker). `rollout_store`: real echo rollouts (oracle and noop) and a real web-dev
oracle rollout (Chromium checks, recording, screenshots) on Docker, plus an episode
tokenized with the tiny model's real tokenizer and chat template and a synthetic mixed
run for the plots. `make_media` makes a real WebM and PNG with ffmpeg for tests
without Docker.
"""

from __future__ import annotations

import html
import math
import random
import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.records import EpisodeRecord
from orchestrator.store import Store
from tests.conftest import MODEL_DIR

ECHO_TASKS = ["echo-alpha", "echo-beta", "echo-gamma"]
UNICODE_NOTE = "naïve café — 你好 ✓ 🚀 done"
"""Multi-byte text whose bytes the tiny BPE splits across tokens."""


@dataclass
class Stores:
    url: str
    path: Path
    store: Store
    artifacts: Path
    oracle_run: str = ""
    noop_run: str = ""
    token_run: str = ""
    webdev_run: str = ""
    synthetic_run: str = ""


@pytest.fixture(scope="session")
def synthetic_store(tmp_path_factory) -> Stores:
    from orchestrator.viewer import synthetic

    path = tmp_path_factory.mktemp("viewer-synth") / "runs.db"
    store = Store(f"sqlite:///{path}")
    synthetic.write_run(store, "run-synthetic", 640, n=8, teacher=True, one_by_one=40,
                        config={"env": "mixed", "n": 8,
                                "policy": {"type": "vllm", "tokenizer": str(MODEL_DIR)}})
    return Stores(store.url, path, store, tmp_path_factory.mktemp("no-artifacts"),
                  synthetic_run="run-synthetic")


def tokenized_record(run_id: str, messages: list[dict], task_id: str) -> EpisodeRecord:
    """`messages` (plus a user turn of multi-byte text) rendered with the tiny model's
    chat template and tokenizer, message by message: assistant tokens get mask 1 and a
    logprob, the rest mask 0; a teacher scores the model tokens."""
    from policies import ChatFormat

    fmt = ChatFormat.from_dir(MODEL_DIR)
    messages = [*messages[:1], {"role": "user", "content": UNICODE_NOTE}, *messages[1:]]
    ids: list[int] = []
    mask: list[int] = []
    done = ""
    for k, msg in enumerate(messages):
        text = fmt.render(messages[:k + 1], add_generation_prompt=False)
        part = text.removeprefix(done)
        done = text
        new = fmt.encode(part)
        ids += new
        mask += [1 if msg["role"] == "assistant" else 0] * len(new)
    rng = random.Random(7)
    lps = [round(-rng.expovariate(2.0), 4) if m else None for m in mask]
    teacher = [None if v is None else round(v + rng.uniform(-1, 1), 4) for v in lps]
    return EpisodeRecord(run_id=run_id, task_id=task_id, sample_index=0, env_id="envfarm/echo-v0",
                         status="ok", reward=1.0, messages=messages, token_ids=ids,
                         loss_mask=mask, token_logprobs=lps, teacher_logprobs=teacher,
                         num_turns=2, timings={"total_s": 1.5})


def make_media(folder: Path) -> tuple[Path, Path]:
    """A 2-second 320x240 WebM and a PNG screenshot, made by ffmpeg."""
    folder.mkdir(parents=True, exist_ok=True)
    video, shot = folder / "video.webm", folder / "final.png"
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is missing; install it (apt-get install ffmpeg)")
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=10:duration=2", "-c:v", "libvpx", "-b:v", "200k",
                    str(video)], check=True, timeout=60)
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=1:duration=1", "-frames:v", "1", str(shot)],
                   check=True, timeout=60)
    return video, shot


def webdev_record(run_id: str, video: Path, shot: Path) -> EpisodeRecord:
    checks = [{"name": "loads", "group": "executability", "weight": 1.0, "passed": True,
               "error": None, "duration_ms": 120},
              {"name": "adds_item", "group": "function", "weight": 2.0, "passed": False,
               "error": "expected 3 items in #list, got 0", "duration_ms": 3010}]
    details = {"checks": checks, "checks_reward": 1 / 3, "checks_passed": 1, "checks_total": 2,
               "artifacts": {"dir": str(video.parent), "video": str(video),
                             "final_screenshot": str(shot), "frames": [],
                             "video_source": "playwright"}}
    return EpisodeRecord(
        run_id=run_id, task_id="todo-list", sample_index=0, env_id="envfarm/webdev-v0",
        status="ok", reward=round(1 / 3, 6), reward_details=details,
        messages=[{"role": "user", "content": "Build a todo list in /workspace/index.html."},
                  {"role": "assistant", "content": "", "tool_calls": [{
                      "id": "c1", "type": "function", "function": {
                          "name": "finish", "arguments": "{}"}}]}],
        num_turns=1, timings={"total_s": 9.0})


@pytest.fixture(scope="session")
def rollout_store(tmp_path_factory, base_image) -> Stores:
    from orchestrator.policy_spec import PolicySpec
    from orchestrator.runner import RolloutConfig, RolloutRunner
    from orchestrator.viewer import synthetic

    root = tmp_path_factory.mktemp("viewer-rollouts")
    path = root / "runs.db"
    store = Store(f"sqlite:///{path}")
    stores = Stores(store.url, path, store, root / "artifacts")
    for policy in ("oracle", "noop"):
        config = RolloutConfig(env="echo", task_ids=ECHO_TASKS, n=2, concurrency=3,
                               executor="threads", policy=PolicySpec(type=policy))
        summary = RolloutRunner(config, store, show_progress=False).run()
        setattr(stores, f"{policy}_run", summary.run_id)
    oracle = next(store.episodes(stores.oracle_run))
    stores.token_run = "run-tokens"
    store.create_run(stores.token_run, {"env": "echo", "n": 1, "policy": {
        "type": "vllm", "tokenizer": str(MODEL_DIR)}})
    store.save_episode(tokenized_record(stores.token_run, oracle.messages, oracle.task_id))
    from envs.webdev import ensure_browser_image

    ensure_browser_image()  # built once per machine (minutes), shared with tests/envs
    webdev = RolloutConfig(env="webdev", task_ids=["counter"], n=1, executor="threads",
                           policy=PolicySpec(type="oracle"),
                           env_kwargs={"artifacts_dir": str(stores.artifacts)})
    stores.webdev_run = RolloutRunner(webdev, store, show_progress=False).run().run_id
    stores.synthetic_run = "run-synthetic-mixed"
    synthetic.write_run(store, stores.synthetic_run, 960, n=8, teacher=True, one_by_one=20,
                        per_minute=60, config={"env": "mixed (synthetic)", "n": 8,
                                               "policy": {"type": "vllm"}})
    synthetic.catalogue_tasks(store.url, 960 // 8)
    return stores


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def viewer_url(rollout_store):
    """`envfarm view`'s app served by uvicorn on a free port, over `rollout_store`."""
    import uvicorn

    from orchestrator.viewer import ViewerConfig, create_app

    app = create_app(ViewerConfig(store=rollout_store.url,
                                  artifacts_roots=[rollout_store.artifacts]))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the viewer server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def isclose(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b))


def shown_bytes(inner: str) -> bytes:
    """A token span's bytes: text as UTF-8, each <b class="raw">\\xNN</b> as its byte."""
    out = b""
    for raw, text in re.findall(r'<b class="raw">\\x([0-9a-f]{2})</b>|([^<]+)', inner):
        out += bytes([int(raw, 16)]) if raw else html.unescape(text).encode()
    return out
