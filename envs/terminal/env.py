"""`TerminalEnv` (`envfarm/terminal-v0`): a Harbor or Terminal-Bench 1 task in its own image.

The agent gets `bash` and `finish` in a container of the task's image, for the task's
agent timeout. When it finishes (or runs out of turns or time) its processes are
killed, its changes checked against the protected-path policy (`tampered`), and the
tests run in a fresh container made from a snapshot of its filesystem, never in its
shell or container; `envs.terminal.verify` says how and decides the reward.

Tasks come from the catalogue (`kind="terminal"`, imported with `envfarm tasks
import-dir`), from folders given as `task_dirs`, or a folder path as the task id;
with none of these the bundled example task is used (so `check_env` can run it).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tarfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from envs.core import ToolEnv, VerifierResult
from envs.terminal.image import TerminalImages
from envs.terminal.task import TerminalTask, find_tasks, load_task
from envs.terminal.verify import verify_episode
from envs.tools import BashTool, FinishTool, Tool
from sandbox.errors import TaskError

EXAMPLE_TASKS = Path(__file__).parent / "example"
SYSTEM_PROMPT = (
    "You are an autonomous agent in a Linux container (Debian, bash). Solve the task below "
    "by running shell commands with the bash tool. There is no human to answer questions. "
    "When the task is done, call finish. Your work is checked by tests after you finish."
)

ROOT_CAPS = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "SETUID", "SETGID", "KILL",
             "NET_BIND_SERVICE", "SETFCAP", "AUDIT_WRITE", "SYS_CHROOT"]
"""Docker's default capabilities less NET_RAW, MKNOD and SETPCAP. Terminal tasks assume the
root shell Docker normally gives (tar restoring owners, apt dropping to `_apt`, writing
into read-only-mode folders); the sandbox's all-dropped default breaks their oracles."""

_images_lock = threading.Lock()
_shared_images: TerminalImages | None = None


def shared_images() -> TerminalImages:
    """One image cache per process, so concurrent envs build each image once."""
    global _shared_images
    with _images_lock:
        if _shared_images is None:
            _shared_images = TerminalImages()
        return _shared_images


class TerminalEnv(ToolEnv):
    """Harbor / Terminal-Bench 1 tasks; tools `bash`, `finish`.

    Args:
        task_dirs: task folders, or folders of task folders, to draw tasks from.
        from_map: FROM image → replacement, on top of the default (unpullable → terminal base).
        run: the `envfarm.run` label of the sandboxes (for `envfarm sandbox gc`); default:
            the rollout run driving this episode.
        **kwargs: `ToolEnv` limits; `time_limit_s` is lowered to the task's agent timeout.
    """

    tool_classes = (BashTool, FinishTool)

    def __init__(self, *, task_dirs: list[str] | None = None, from_map: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._task_paths: dict[str, Path] = {}
        for root in task_dirs or []:
            for path in find_tasks(root):
                task = load_task(path)
                self._task_paths[task.id] = path
        self._images = TerminalImages(from_map=from_map) if from_map else None
        self.task: TerminalTask | None = None
        self.image: str | None = None
        self.image_notes: list[str] = []
        self._workdir = "/"
        self._image_env: dict[str, str] = {}
        self._limits: Any = None

    @classmethod
    def prepare_image(cls, task_id: str, options: Mapping[str, Any]) -> str | None:
        """The task's image, built by content without an episode (the one `reset` starts
        from; a second call finds it). Raises ImageBuildError (a TaskError)."""
        task = _find_task(task_id, options)
        from_map = options.get("from_map")
        images = TerminalImages(from_map=from_map) if from_map else shared_images()
        return images.ensure(task)[0]

    # -- ToolEnv hooks ------------------------------------------------------------------

    def _begin(self, task_id: str | None, seed: int | None) -> tuple[list[dict], list[Tool]]:
        from sandbox import Limits

        task = self._resolve(task_id)
        images = self._images or shared_images()
        self.image, self.image_notes = images.ensure(task)
        self._workdir, self._image_env = _image_config(images.builder.client, self.image)
        limits = Limits(cpus=task.cpus or float(os.cpu_count() or 1), memory_mb=task.memory_mb,
                        network=task.allow_internet,
                        timeout_s=min(120.0, task.agent_timeout_s))
        self._limits = limits
        self.sandbox = self.backend.start(self.image, limits, cap_add=list(ROOT_CAPS),
                                           labels={"envfarm.task": task.id[:200],
                                                   "envfarm.role": "agent"})
        self.task, self.task_id = task, task.id
        self.time_limit_s = min(self.config.time_limit_s, task.agent_timeout_s)
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": task.instruction}]
        return messages, [BashTool(max_timeout_s=task.agent_timeout_s), FinishTool()]

    def _verify(self) -> VerifierResult:
        if self.task is None or self.sandbox is None or self.image is None:
            return VerifierResult(0.0, {}, "infra_error", "no sandbox to verify in")
        agent, self.sandbox = self.sandbox, None  # verify_episode closes it
        result = verify_episode(self.backend, agent, self.task, image=self.image,
                                workdir=self._workdir, image_env=self._image_env,
                                limits=self._limits, cap_add=ROOT_CAPS)
        if self.image_notes:
            result.details["image_notes"] = list(self.image_notes)
        return result

    # -- helpers ------------------------------------------------------------------------

    def _resolve(self, task_id: str | None) -> TerminalTask:
        if task_id is None:
            paths = self._task_paths or {t.id: p for p in find_tasks(EXAMPLE_TASKS)
                                         for t in [load_task(p)]}
            ids = sorted(paths)
            task_id = ids[int(self.np_random.integers(0, len(ids)))]
            return load_task(paths[task_id])
        if task_id in self._task_paths:
            return load_task(self._task_paths[task_id])
        if Path(task_id).is_dir():
            return load_task(task_id)
        record = self.catalogue().get(task_id)
        return TerminalTask.model_validate(record.data)

    def oracle_actions(self, task_id: str | None = None) -> list[dict]:
        """The reference solution of `task_id` (default: this episode's task) as actions.

        Raises TaskError when the task has no reference solution (Harbor tasks may not)."""
        task = self._resolve(task_id) if task_id is not None else self.task
        if task is None:
            raise RuntimeError("give a task id or call reset() first")
        actions = oracle_actions(task)
        if not actions:
            raise TaskError(f"terminal task {task.id} has no reference solution")
        return actions


def _find_task(task_id: str, options: Mapping[str, Any]) -> TerminalTask:
    """`task_id` as an env built with `options` would resolve it: from its `task_dirs`,
    a folder path, or the catalogue at `catalogue_url`."""
    for root in options.get("task_dirs") or []:
        for path in find_tasks(root):
            task = load_task(path)
            if task.id == task_id:
                return task
    if Path(task_id).is_dir():
        return load_task(task_id)
    from swe_tasks.catalogue import Catalogue

    record = Catalogue(options.get("catalogue_url")).get(task_id)
    return TerminalTask.model_validate(record.data)


def oracle_actions(task: TerminalTask) -> list[dict]:
    """Actions that run the task's reference solution, then finish. Empty when it has none.

    The solution is packed into the command itself (base64 tar), so any policy can
    replay it without a side channel into the sandbox."""
    if task.solution is None:
        return []
    script = Path(task.solution)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        if task.format == "harbor" and task.solution_dir:
            tar.add(task.solution_dir, arcname=".")
        else:
            tar.add(script, arcname=script.name)
    payload = base64.b64encode(buf.getvalue()).decode()
    command = (f"mkdir -p /oracle && echo {payload} | base64 -d | tar -xz -C /oracle && "
               f"bash /oracle/{script.name}")
    return [
        {"content": "", "tool_calls": [{"name": "bash", "arguments": {
            "command": command, "timeout": task.agent_timeout_s}}]},
        {"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]},
    ]


def noop_actions() -> list[dict]:
    """Doing nothing: finish at once."""
    return [{"content": "", "tool_calls": [{"name": "finish", "arguments": {}}]}]


def image_key(task: TerminalTask) -> str:
    """Tasks with the same Dockerfile text share an image (used to group scheduling)."""
    text = (Path(task.context_dir) / task.dockerfile).read_bytes()
    return "terminal:" + hashlib.sha256(text).hexdigest()[:16]


def _image_config(client: Any, tag: str) -> tuple[str, dict[str, str]]:
    """The image's working directory and configured environment (its Dockerfile's ENV)."""
    config = client.images.get(tag).attrs.get("Config", {}) or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    return config.get("WorkingDir") or "/", env
