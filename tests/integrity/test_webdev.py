"""Red team, web-dev env (issue 12, item 6 and class l's `du`): a page that only shows the
initial state scores 0; a `du`/`cp` shim or function cannot slip a workspace past the
size cap; the oracle still scores 1.0. Acts only through `env.step`."""

from __future__ import annotations

import pytest

from envs.webdev import WebDevEnv
from envs.webdev.image import ensure_browser_image
from tests.episodes import step_until_done
from tests.integrity.terminal_tasks import FINISH, bash

pytestmark = [pytest.mark.integrity, pytest.mark.docker, pytest.mark.browser]

STATIC_COUNTER = """<!doctype html><html><head><meta charset="utf-8"><title>Counter</title>
<style>body{font-family:sans-serif;text-align:center}#count{font-size:4em}</style></head>
<body><div id="count">0</div>
<label for="step">Step</label> <input id="step" type="number" value="1" min="1">
<button id="decrement" disabled>-</button><button id="increment">+</button>
<button id="reset">Reset</button></body></html>
"""


@pytest.fixture(scope="module")
def browser_image(base_image) -> str:
    return ensure_browser_image()


def write(path: str, text: str) -> dict:
    return {"content": "", "tool_calls": [{"name": "str_replace", "arguments": {
        "command": "create", "path": path, "file_text": text}}]}


def test_a_static_page_of_the_initial_state_scores_zero(docker_backend, browser_image, tmp_path):
    with WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path) as env:
        env.reset(options={"task_id": "counter"})
        reward, info, _ = step_until_done(env, [write("/workspace/index.html", STATIC_COUNTER),
                                                FINISH])
    details = info["reward_details"]
    assert (reward, info["status"]) == (0.0, "ok"), details.get("gate")
    assert any(c["passed"] for c in details["checks"])  # the initial render does pass
    assert details["gate"].startswith("behaviour checks passed 0 of")


def test_a_du_or_cp_shim_does_not_bypass_the_workspace_cap(docker_backend, browser_image,
                                                             tmp_path):
    shims = ("for t in du cp cut find; do printf '#!/bin/sh\\necho 1\\n' > /usr/local/bin/$t; "
             "chmod +x /usr/local/bin/$t; done; du() { echo 1; }; export -f du")
    with WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path,
                   max_workspace_mb=1) as env:
        env.reset(options={"task_id": "counter"})
        reward, info, _ = step_until_done(env, [
            bash("head -c 3000000 /dev/urandom > /workspace/blob.bin"),
            write("/workspace/index.html", STATIC_COUNTER), bash(shims), FINISH])
    assert (reward, info["status"]) == (0.0, "ok"), info
    assert "over 1 MB" in info["reward_details"]["error"]


def test_the_oracle_still_scores_one(docker_backend, browser_image, tmp_path):
    with WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path) as env:
        env.reset(options={"task_id": "counter"})
        reward, info, _ = step_until_done(env, env.oracle_actions("counter"))
    assert (reward, info["status"]) == (1.0, "ok"), info["reward_details"].get("gate")
