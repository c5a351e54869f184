"""`WebDevEnv` (`envfarm/webdev-v0`): the agent builds a web page; a real browser checks it.

The agent works in a sandbox from the browser image (no network) with `bash`,
`str_replace` and `finish`, writing static files under `/workspace` (entry
`index.html`). When it finishes, its processes are killed and the workspace is copied
out through the archive API (never by `cp` or `du` in its shell: a shim or function
there could bypass the size cap), capped at `max_workspace_mb`, and checked by
`BrowserVerifier` in a fresh container (the agent never sees the checks), the session
is recorded, and the reward is the weighted share of checks passed, optionally mixed
with a VLM judge's score (`judge.weight`). Artifact paths are in
`info["reward_details"]["artifacts"]`.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envs.core import ToolEnv, VerifierResult
from envs.integrity import download_capped, stop_agent, too_large
from envs.tools import BashTool, FinishTool, StrReplaceEditorTool, Tool
from envs.webdev.image import ensure_browser_image
from envs.webdev.judge import VLMJudge, VLMJudgeConfig
from envs.webdev.tasks import TASKS_DIR, WebDevTask, load_task, load_tasks
from envs.webdev.verify import BrowserVerifier, BrowserVerifierConfig
from sandbox import Limits
from sandbox.errors import AgentCaused, TaskError

WORKSPACE = "/workspace"
_TAR_SLACK_BYTES = 4 << 20
"""Archive headers on top of the workspace cap (the size itself is checked on the host)."""

SYSTEM_PROMPT = """\
You are a web developer working in a Linux sandbox without internet access.
Build what the user asks as static files under /workspace; the entry page is \
/workspace/{entry}. Use plain HTML, CSS and JavaScript: no CDNs or other external \
URLs, no build step, no server code. Python 3 and Chromium (/usr/bin/chromium) are \
installed if you want to look at your page.
When you are done, call finish. Your page is then opened in Chromium at \
{width}x{height} and checked automatically: it must load without errors in the \
console, fit the window's width, and do exactly what the request says, using the \
element ids and classes it names."""


class WebDevConfig(BaseModel):
    """Settings of the web-dev env beyond the shared turn and time limits."""

    model_config = ConfigDict(extra="forbid")

    tasks_dir: Path | None = Field(None, description="Task folders (default: the shipped ones).")
    artifacts_dir: Path | None = Field(
        None, description="Where recordings go (default: $ENVFARM_ARTIFACTS or ./artifacts).")
    agent_cpus: float = Field(1.0, gt=0, description="CPU share of the agent's sandbox.")
    agent_memory_mb: int = Field(2048, ge=256, description="Memory cap of the agent's sandbox.")
    command_timeout_s: float = Field(120.0, gt=0, description="Default bash timeout.")
    max_workspace_mb: float = Field(50.0, gt=0, description="Bigger workspaces score 0.")
    verifier: BrowserVerifierConfig = Field(default_factory=BrowserVerifierConfig)
    judge: VLMJudgeConfig = Field(default_factory=VLMJudgeConfig)


class WebDevEnv(ToolEnv):
    """Build a web page to a request; scored by browser checks (and optionally a VLM)."""

    tool_classes = (BashTool, StrReplaceEditorTool, FinishTool)
    verifier_quota = "browser"  # rollouts may cap browser verifications cluster-wide

    def __init__(self, *, tasks_dir: str | Path | None = None, artifacts_dir: str | Path | None = None,
                 judge: VLMJudgeConfig | dict | None = None,
                 verifier: BrowserVerifierConfig | dict | None = None,
                 image: str | None = None, **kwargs: Any) -> None:
        extra = {k: kwargs.pop(k) for k in list(kwargs)
                 if k in ("agent_cpus", "agent_memory_mb", "command_timeout_s",
                          "max_workspace_mb")}
        super().__init__(**kwargs)
        self.webdev = WebDevConfig(
            tasks_dir=tasks_dir, artifacts_dir=artifacts_dir,
            judge=VLMJudgeConfig.model_validate(judge or {}),
            verifier=BrowserVerifierConfig.model_validate(verifier or {}), **extra)
        self._image = image
        self._tasks: dict[str, WebDevTask] | None = None
        self.task: WebDevTask | None = None
        self.episode_id: str | None = None

    # -- tasks ---------------------------------------------------------------------------

    def tasks(self) -> dict[str, WebDevTask]:
        """The env's task folders by id (loaded once)."""
        if self._tasks is None:
            self._tasks = load_tasks(self.webdev.tasks_dir or TASKS_DIR)
        return self._tasks

    def get_task(self, task_id: str) -> WebDevTask:
        """A task from the folders, else from the catalogue (`kind="webdev"` records)."""
        if task_id in self.tasks():
            return self.tasks()[task_id]
        try:
            record = self.catalogue().get(task_id)
        except KeyError:
            raise TaskError(f"no web-dev task {task_id!r}; known: {', '.join(self.tasks())}") \
                from None
        folder = record.data.get("folder")
        if record.kind != "webdev" or not folder:
            raise TaskError(f"catalogue task {task_id!r} is not a web-dev task folder")
        return load_task(folder)

    def oracle_actions(self, task_id: str) -> list[dict[str, Any]]:
        """Assistant turns that write the task's oracle files, then finish."""
        task = self.get_task(task_id)
        if task.oracle_dir is None:
            raise TaskError(f"web-dev task {task_id} has no oracle/ folder")
        turns: list[dict[str, Any]] = []
        for path in sorted(p for p in task.oracle_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(task.oracle_dir).as_posix()
            turns.append({"content": f"Writing {rel}.", "tool_calls": [{
                "name": "str_replace",
                "arguments": {"command": "create", "path": f"{WORKSPACE}/{rel}",
                              "file_text": path.read_text()}}]})
        turns.append({"content": "The page is done.",
                      "tool_calls": [{"name": "finish", "arguments": {}}]})
        return turns

    # -- ToolEnv hooks ---------------------------------------------------------------------

    def image(self) -> str:
        if self._image is None:
            self._image = ensure_browser_image()
        return self._image

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        if task_id is None:
            ids = list(self.tasks())
            task_id = ids[int(self.np_random.integers(len(ids)))]
        self.task = self.get_task(task_id)
        self.task_id = self.task.id
        self.episode_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        limits = Limits(cpus=self.webdev.agent_cpus, memory_mb=self.webdev.agent_memory_mb,
                        pids=1024, network=False, timeout_s=self.webdev.command_timeout_s)
        self.sandbox = self.backend.start(self.image(), limits, workdir=WORKSPACE,
                                            labels={"envfarm.role": "webdev-agent"})
        self.sandbox.exec(f"mkdir -p {WORKSPACE} && cd {WORKSPACE}")
        system = SYSTEM_PROMPT.format(entry=self.task.entry, width=self.task.viewport.width,
                                      height=self.task.viewport.height)
        messages = [{"role": "system", "content": system},
                    {"role": "user", "content": self.task.prompt.strip()}]
        tools = [BashTool(default_timeout_s=self.webdev.command_timeout_s),
                 StrReplaceEditorTool(), FinishTool()]
        return messages, tools

    def _verify(self) -> VerifierResult:
        task = self.task
        if task is None or self.sandbox is None:
            return VerifierResult(0.0, {}, "infra_error", "no episode to verify")
        cap = int(self.webdev.max_workspace_mb * 1e6)
        local = Path(tempfile.mkdtemp(prefix="webdev-ws-"))
        try:
            size = self._export_workspace(local, cap)
        except BaseException:
            shutil.rmtree(local, ignore_errors=True)
            raise
        base = {"task_id": task.id, "category": task.category, "workspace_bytes": size}
        if size > cap:
            shutil.rmtree(local, ignore_errors=True)
            return VerifierResult(0.0, {**base, "error": f"workspace is over "
                                        f"{self.webdev.max_workspace_mb:.0f} MB"})
        try:
            verifier = BrowserVerifier(self.backend, self.image(), self.webdev.verifier)
            result = verifier.verify(task, local, self._artifacts_dir())
        finally:
            shutil.rmtree(local, ignore_errors=True)
        result.details = {**base, **result.details}
        if result.status != "ok" or not self.webdev.judge.enabled or result.details.get("gate"):
            return result  # a page that does nothing asked gets no style points either
        return self._with_judge(task, result)

    def _export_workspace(self, local: Path, cap: int) -> int:
        """Copy /workspace to `local` from outside the agent's reach; its size in bytes
        (cap + 1 when it is over `cap`). Absolute links and special files are dropped
        first (in the agent's container, its processes killed before and after); links
        left that point out of the workspace make the export the agent's fault."""
        stop_agent(self.sandbox, self.backend)
        self.sandbox.exec(f"find {WORKSPACE} \\( -lname '/*' -o ! -type f ! -type d ! -type l \\)"
                          " -delete 2>/dev/null; true", timeout_s=60)
        stop_agent(self.sandbox, self.backend)
        try:
            download_capped(self.sandbox, WORKSPACE, local, cap + _TAR_SLACK_BYTES)
        except FileNotFoundError:
            return 0
        except tarfile.TarError as exc:
            raise AgentCaused(f"the workspace cannot be exported: {exc}") from exc
        except AgentCaused as exc:
            if too_large(exc):
                return cap + 1
            raise
        return sum(p.lstat().st_size for p in local.rglob("*") if p.is_file()
                   and not p.is_symlink())

    def _with_judge(self, task: WebDevTask, result: VerifierResult) -> VerifierResult:
        judge = VLMJudge(self.webdev.judge)
        artifacts = result.details.get("artifacts", {})
        images = [Path(p) for p in artifacts.get("frames", [])]
        if artifacts.get("final_screenshot"):
            images.append(Path(artifacts["final_screenshot"]))
        verdict = judge.score(task, images, result.details.get("checks", []))
        weight = self.webdev.judge.weight
        checks_reward = result.reward
        result.reward = (1 - weight) * checks_reward + weight * verdict["score"]
        result.details["judge"] = {**verdict, "weight": weight}
        return result

    def _artifacts_dir(self) -> Path:
        root = self.webdev.artifacts_dir or Path(os.environ.get("ENVFARM_ARTIFACTS", "artifacts"))
        return Path(root).resolve() / "webdev" / (self.task_id or "task") / (self.episode_id or "x")
