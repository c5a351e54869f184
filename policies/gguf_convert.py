"""Convert a GGUF checkpoint into a Hugging Face folder vLLM CPU serves (run in .venv-vllm).

Standalone on purpose: it runs under the vLLM venv's interpreter (which has
torch, transformers and gguf) and imports nothing of ours. Usage::

    .venv-vllm/bin/python policies/gguf_convert.py FILE.gguf OUT_DIR [--dtype bfloat16]

Writes `config.json`, `generation_config.json`, `model.safetensors`,
`tokenizer.json`, `tokenizer_config.json` and `chat_template.jinja` into a
temporary sibling and renames it into place, so a crash leaves no half folder.
The weights are dequantized (GGUF Q4_1 -> float) once here; vLLM then serves
plain safetensors. transformers 5 refuses to save a model loaded from GGUF while
it still carries the GGUF quantizer, so the quantizer and the config's
`quantization_config` are dropped before saving (the weights are already float).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def convert(gguf: Path, out: Path, dtype: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    folder, name = str(gguf.parent), gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch_dtype)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, str) and not (tmp / "chat_template.jinja").exists():
        (tmp / "chat_template.jinja").write_text(template)
    (tmp / "envfarm-source.json").write_text(
        json.dumps({"gguf": name, "dtype": dtype}, indent=2) + "\n"
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("gguf", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dtype", default="float32", choices=["bfloat16", "float32", "float16"])
    args = ap.parse_args(argv)
    convert(args.gguf, args.out, args.dtype)
    print(f"converted {args.gguf.name} -> {args.out} ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
