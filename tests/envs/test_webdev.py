"""The web-dev env on a real Docker engine with Debian's Chromium driven by Playwright.

The browser image is built once per session (minutes on a cold machine, cached after);
every verification is a real one: a fresh offline container, a loopback server, a
recorded browser session. Oracle pages are verified two at a time to save wall time.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from envs.webdev import (
    BrowserVerifier,
    BrowserVerifierConfig,
    VLMJudgeConfig,
    WebDevEnv,
    ensure_browser_image,
    load_tasks,
)
from envs.webdev.tasks import Check

pytestmark = [pytest.mark.docker, pytest.mark.browser, pytest.mark.slow]

TASKS = load_tasks()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"  # EBML, the container of WebM
FRAMES_VIDEO_TASK = "tabs"  # verified with the ffmpeg-from-frames recorder instead


@pytest.fixture(scope="session")
def browser_image(base_image) -> str:
    return ensure_browser_image()


@pytest.fixture(scope="session")
def verifier(docker_backend, browser_image) -> BrowserVerifier:
    return BrowserVerifier(docker_backend, browser_image)


@pytest.fixture(scope="session")
def oracle_results(verifier, tmp_path_factory):
    """Every shipped oracle verified once; {task_id: VerifierResult}."""
    root = tmp_path_factory.mktemp("oracle-artifacts")

    frames_only = BrowserVerifier(verifier.backend, verifier.image,
                                  BrowserVerifierConfig(video="frames"))

    def run(task_id: str):
        task = TASKS[task_id]
        chosen = frames_only if task_id == FRAMES_VIDEO_TASK else verifier
        return task_id, chosen.verify(task, task.oracle_dir, root / task_id)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(run, TASKS))


def _page(tmp_path: Path, task_id: str, extra_body: str) -> Path:
    """The task's oracle with `extra_body` inserted just before `</body>`."""
    workspace = tmp_path / "workspace"
    shutil.copytree(TASKS[task_id].oracle_dir, workspace)
    index = workspace / "index.html"
    index.write_text(index.read_text().replace("</body>", extra_body + "\n</body>"))
    return workspace


@pytest.mark.parametrize("task_id", sorted(TASKS))
def test_every_oracle_page_scores_at_least_0_9(oracle_results, task_id):
    result = oracle_results[task_id]
    failed = [(c["name"], c["error"]) for c in result.details["checks"] if not c["passed"]]
    assert result.status == "ok", result.error
    assert result.reward >= 0.9, failed
    artifacts = result.details["artifacts"]
    assert Path(artifacts["final_screenshot"]).read_bytes().startswith(PNG_MAGIC)
    assert Path(artifacts["video"]).read_bytes().startswith(WEBM_MAGIC)
    # One frame after loading and one per check; a frame whose screenshot times out on
    # a badly loaded machine is skipped, never fatal.
    assert 2 <= len(artifacts["frames"]) <= len(TASKS[task_id].checks) + 1
    assert result.details["blocked_requests"] == [] and result.details["page_errors"] == []


def test_frames_become_a_video_when_playwright_does_not_record(oracle_results):
    artifacts = oracle_results[FRAMES_VIDEO_TASK].details["artifacts"]
    assert artifacts["video_source"] == "frames"
    assert Path(artifacts["video"]).read_bytes().startswith(WEBM_MAGIC)
    others = {r.details["artifacts"]["video_source"] for t, r in oracle_results.items()
              if t != FRAMES_VIDEO_TASK}
    assert others == {"playwright"}


def test_page_that_throws_on_load_loses_the_executability_checks(verifier, tmp_path):
    workspace = _page(tmp_path, "todo-list", '<script>throw new Error("boom on load")</script>')
    result = verifier.verify(TASKS["todo-list"], workspace, tmp_path / "artifacts")
    by_name = {c["name"]: c for c in result.details["checks"]}
    for name in ("loads", "no_uncaught_errors", "no_console_errors"):
        assert not by_name[name]["passed"], name
        assert "boom on load" in by_name[name]["error"]
    assert all(c["passed"] for c in result.details["checks"] if c["group"] != "executability")
    assert result.details["groups"]["executability"] == 0.0
    lost = sum(c["weight"] for c in result.details["checks"] if not c["passed"])
    total = sum(c["weight"] for c in result.details["checks"])
    assert result.reward == pytest.approx(1 - lost / total) and result.reward < 0.9


def test_page_that_reaches_for_the_network_gets_nothing(verifier, tmp_path):
    script = """
<p id="net">pending</p>
<img src="https://cdn.example.org/logo.png" alt="">
<script>
  fetch("http://example.com/track?x=1").then(() => "reached", () => "offline")
    .then((state) => { document.getElementById("net").textContent = state; });
</script>"""
    workspace = _page(tmp_path, "counter", script)
    task = TASKS["counter"]
    probe = Check(name="the request failed inside the page",
                  steps=[{"expect_text": "#net", "equals": "offline"}])
    task = task.model_copy(update={"checks": [*task.checks, probe]})
    result = verifier.verify(task, workspace, tmp_path / "artifacts")
    blocked = result.details["blocked_requests"]
    assert any(u.startswith("http://example.com/track") for u in blocked), blocked
    assert "https://cdn.example.org/logo.png" in blocked
    failed = [(c["name"], c["error"]) for c in result.details["checks"] if not c["passed"]]
    assert failed == [] and result.reward == 1.0


def test_oracle_episode_end_to_end_with_the_judge(docker_backend, browser_image, tmp_path):
    from tests.envs.test_webdev_tasks import FakeVLMServer

    server = FakeVLMServer(['{"visual": 10, "function": 10, "executability": 5}'])
    judge = VLMJudgeConfig(enabled=True, base_url=server.url, weight=0.2, max_frames=3)
    env = WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path,
                    judge=judge, max_turns=10)
    try:
        messages, info = env.reset(options={"task_id": "tabs"})
        assert "aria-selected" in messages[-1]["content"]
        assert {t["function"]["name"] for t in info["tools"]} == {"bash", "str_replace", "finish"}
        for turn in env.oracle_actions("tabs"):
            _, reward, terminated, truncated, info = env.step(turn)
    finally:
        env.close()
        server.close()
    assert terminated and not truncated and info["status"] == "ok"
    details = info["reward_details"]
    assert details["checks_reward"] == 1.0 and details["judge"]["score"] == pytest.approx(25 / 30)
    assert reward == pytest.approx(0.8 * 1.0 + 0.2 * 25 / 30)
    assert len(server.requests[0]["body"]["messages"][0]["content"]) == 1 + 3
    screenshot = Path(details["artifacts"]["final_screenshot"])
    assert screenshot.is_relative_to(tmp_path) and screenshot.read_bytes().startswith(PNG_MAGIC)


def test_an_empty_workspace_scores_zero(verifier, tmp_path):
    (tmp_path / "empty").mkdir()
    result = verifier.verify(TASKS["todo-list"], tmp_path / "empty", tmp_path / "artifacts")
    assert result.status == "ok" and result.reward == 0.0
    assert not any(c["passed"] for c in result.details["checks"])
    assert result.details["gate"].startswith("behaviour checks passed 0 of")


def test_a_workspace_without_a_page_scores_zero(docker_backend, browser_image, tmp_path):
    """No index.html, only odd files an agent might leave (a fifo, links): reward 0, no crash."""
    env = WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path)
    odd = ("mkfifo /workspace/pipe && ln -s /etc/hostname /workspace/host && "
           "ln -s /nowhere /workspace/dangling && mkdir -p /workspace/sub && echo hi > sub/a.txt")
    try:
        env.reset(options={"task_id": "counter"})
        env.step({"content": "", "tool_calls": [{"name": "bash", "arguments": {"command": odd}}]})
        _, reward, terminated, _, info = env.step(
            {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]})
    finally:
        env.close()
    assert terminated and info["status"] == "ok" and reward == 0.0
    checks = info["reward_details"]["checks"]
    assert not any(c["passed"] for c in checks)
    assert "there is no /workspace/index.html" in checks[0]["error"]
