"""The pass-rate curve of a train-demo run: a text table and a PNG plot.

The farm's venv has no plotting library, so the PNG is drawn with Pillow in the
trainers' venv (a dependency of verl's): this module hands it the points as JSON.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def table(points: list[dict[str, Any]]) -> str:
    lines = [
        "iteration  held-out  training rollouts  mismatch/update",
        "---------  --------  -----------------  ---------------",
    ]
    for p in points:
        train = f"{p['train']:.3f}" if "train" in p else "-"
        extra = ""
        if "t_loss" in p:
            extra = f"loss {p['t_loss']:+.4f}, {p['t_train_rows']} rows"
        held = f"{p['held_out']:.3f}" if "held_out" in p else "-"
        lines.append(f"{p['iteration']:>9}  {held:>8}  {train:>17}  {extra}")
    return "\n".join(lines)


_DRAW = r"""
import json, sys
from PIL import Image, ImageDraw, ImageFont
points, path = json.loads(sys.stdin.read()), sys.argv[1]
W, H, L, R, T, B = 720, 440, 70, 30, 50, 60
img = Image.new("RGB", (W, H), "white")
d = ImageDraw.Draw(img)
font = ImageFont.load_default()
n = max(len(points) - 1, 1)
x = lambda i: L + (W - L - R) * i / n
y = lambda v: T + (H - T - B) * (1 - v)
for v in [i / 10 for i in range(11)]:
    d.line([(L, y(v)), (W - R, y(v))], fill=(225, 225, 225))
    d.text((L - 34, y(v) - 6), f"{v:.1f}", fill="black", font=font)
d.line([(L, T), (L, H - B), (W - R, H - B)], fill="black", width=2)
for i in range(len(points)):
    d.text((x(i) - 3, H - B + 8), str(points[i]["iteration"]), fill="black", font=font)
d.text((W // 2 - 30, H - 25), "iteration", fill="black", font=font)
d.text((L, 15), "SmolLM2-135M on envfarm/echo-v0: pass rate per iteration", fill="black", font=font)
series = [("held-out", "held_out", (200, 40, 40)), ("training rollouts", "train", (40, 90, 200))]
for j, (label, key, color) in enumerate(series):
    pts = [(x(i), y(p[key])) for i, p in enumerate(points) if key in p]
    if len(pts) > 1:
        d.line(pts, fill=color, width=3)
    for px, py in pts:
        d.ellipse([px - 4, py - 4, px + 4, py + 4], fill=color)
    d.line([(W - 200, 30 + 16 * j), (W - 175, 30 + 16 * j)], fill=color, width=3)
    d.text((W - 170, 24 + 16 * j), label, fill="black", font=font)
img.save(path)
"""


def plot(points: list[dict[str, Any]], path: Path, python: Path) -> None:
    """Write the PNG at `path` (held-out and training pass rate per iteration)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [str(python), "-c", _DRAW, str(path)], input=json.dumps(points), text=True, check=True
    )
