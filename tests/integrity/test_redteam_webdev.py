"""Red team, round two, web-dev: a page that breaks the browser runner does not dodge
its 0. A script that spins forever once the page has loaded froze the renderer: the
runner gave no result before its time limit, which was an `infra_error` (retried, then
dropped). Now a control run on a blank page shows the browser works, and the episode is
the agent's fault (reward 0, kept)."""

from __future__ import annotations

import pytest

from envs.webdev import WebDevEnv
from envs.webdev.image import ensure_browser_image
from tests.episodes import step_until_done
from tests.integrity.terminal_tasks import FINISH

pytestmark = [pytest.mark.integrity, pytest.mark.docker, pytest.mark.browser]

HANGING_PAGE = """<!doctype html><html><body><div id="count">0</div>
<button id="increment">+</button>
<script>addEventListener('load', () => setTimeout(() => { for (;;) {} }, 50));</script>
</body></html>
"""


@pytest.fixture(scope="module")
def browser_image(base_image) -> str:
    return ensure_browser_image()


def test_a_page_that_hangs_the_browser_is_the_agents_fault(docker_backend, browser_image,
                                                           tmp_path):
    with WebDevEnv(backend=docker_backend, image=browser_image, artifacts_dir=tmp_path,
                   verifier={"timeout_s": 30}) as env:
        env.reset(options={"task_id": "counter"})
        reward, info, _ = step_until_done(env, [
            {"content": "", "tool_calls": [{"name": "str_replace", "arguments": {
                "command": "create", "path": "/workspace/index.html",
                "file_text": HANGING_PAGE}}]}, FINISH])
    assert (reward, info["status"]) == (0.0, "agent_fault"), info
    assert "blank page" in info["error"]
