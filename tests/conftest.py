"""Session fixtures on a real Docker engine. Every container started here carries the
session's run label and is removed at the end, whatever happened.

Tests that need the project's data (`../shared/data`, or `$ENVFARM_DATA`) or tools ask for
them through `require_data(...)`, the `needs_data(...)` marker or `missing(...)`: without
them a test skips with the fix on a workstation and FAILS under `CI=true`, because CI
installs everything and a skip there would hide a moved folder or a broken install. As a
safety net, under CI any skip whose reason names the data folder fails too.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("ENVFARM_DATA", ROOT.parent / "shared" / "data"))
"""The project's reference data (SWE-bench records, Terminal-Bench and Harbor tasks)."""


def in_ci() -> bool:
    """Whether this is a CI run (`CI` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str) -> None:
    """Something a test needs is not here: skip with `what` (which should say the fix)
    on a workstation, fail under CI. Never returns."""
    if in_ci():
        pytest.fail(f"{what} (CI=true: a test that needs the project's data or tools fails "
                    "instead of skipping)", pytrace=False)
    pytest.skip(what)


def require_data(*parts: str) -> Path:
    """`DATA/parts...`, which must exist; otherwise `missing(...)` with the fix."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        missing(f"project data not found: {path}; put the data folder at {DATA} or set "
                "ENVFARM_DATA")
    return path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_data(*parts): the test needs DATA/parts (skip locally, fail in CI)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("needs_data"):
        require_data(*mark.args)


_DATA_WORDS = ("shared/data", str(DATA))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Under CI, a skip that blames missing project data is a failure (the safety net for
    tests that still use a plain `skipif` on the data folder)."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(word in reason for word in _DATA_WORDS):
        report.outcome = "failed"
        report.longrepr = (f"skipped for missing project data under CI=true: {reason}; "
                           f"put the data at {DATA} or set ENVFARM_DATA")


@pytest.fixture(scope="session")
def docker_client():
    from sandbox import connect

    return connect()


@pytest.fixture(scope="session")
def base_image(docker_client) -> str:
    from sandbox import base_image as ensure

    return ensure(docker_client)


@pytest.fixture(scope="session")
def docker_backend(docker_client):
    from sandbox import DockerBackend
    from sandbox.gc import gc_containers

    backend = DockerBackend(docker_client, run=f"pytest-{uuid.uuid4().hex[:8]}")
    try:
        yield backend
    finally:
        gc_containers(docker_client, run=backend.run)


# ENVFARM_TINY_MODEL points the tests at a freshly rebuilt model (scripts/tiny_model).
MODEL_DIR = Path(os.environ.get("ENVFARM_TINY_MODEL", ROOT / "tests" / "fixtures" / "tiny_model"))
MAX_MODEL_LEN = 2048


@dataclass
class VLLMServer:
    url: str
    """Server root, e.g. http://127.0.0.1:PORT (append /v1 for the OpenAI client)."""
    model_dir: Path
    model: str
    max_model_len: int
    log_path: Path


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """The real vLLM CPU server (`.venv-vllm`) serving the tiny model, once per session for
    every test folder. Without `.venv-vllm` the tests skip with the fix; under CI they
    fail instead, because CI runs `make setup` and a skip would hide a broken install."""
    from policies.local_server import LocalVLLMServer, ServerStartError, vllm_python

    if not vllm_python().exists():
        missing(f"vLLM venv missing ({vllm_python()}); run `make setup` (scripts/setup.d/vllm.sh)")
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    server = LocalVLLMServer(MODEL_DIR, max_model_len=MAX_MODEL_LEN, log_path=log_path)
    try:
        server.start()
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield VLLMServer(server.url, MODEL_DIR, server.served_name, MAX_MODEL_LEN, log_path)
    finally:
        server.stop()
