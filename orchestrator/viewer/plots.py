"""Plots as inline SVG, drawn on the server: no chart library, nothing fetched by the
browser, and every bar carries a <title> so hovering shows its exact value."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from markupsafe import Markup

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 560, 180, 44, 30, 10, 10
MAX_BUCKETS = 240


def _frame(body: list[str], label: str, y_max: float) -> Markup:
    inner_h = H - PAD_B - PAD_T
    axis = [(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" '
             'class="axis"/>'),
            f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" class="axis"/>']
    for frac in (0, 0.5, 1):
        y = H - PAD_B - frac * inner_h
        axis.append(f'<text x="{PAD_L - 4}" y="{y + 4:.1f}" text-anchor="end">'
                    f'{_fmt(y_max * frac)}</text>')
    return Markup(f'<svg class="plot" viewBox="0 0 {W} {H}" role="img" '
                  f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
                  + "".join(axis + body) + "</svg>")


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v >= 10 or v == int(v) else f"{v:.1f}"


def histogram_svg(bins: list[tuple[float, float, int]]) -> Markup:
    """Bars of (low, high, count); empty markup when there is nothing to draw."""
    if not bins:
        return Markup('<p class="muted">no scored episodes</p>')
    top = max(n for _, _, n in bins) or 1
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    bw = inner_w / len(bins)
    body = []
    for i, (lo, hi, n) in enumerate(bins):
        h = inner_h * n / top
        x = PAD_L + i * bw
        body.append(f'<rect class="bar" x="{x + 1:.1f}" y="{H - PAD_B - h:.1f}" '
                    f'width="{max(bw - 2, 1):.1f}" height="{h:.1f}" data-count="{n}">'
                    f'<title>reward {lo:.2f}–{hi:.2f}: {n} episodes</title></rect>')
    lo, hi = bins[0][0], bins[-1][1]
    for frac in (0, 0.5, 1):
        x = PAD_L + frac * inner_w
        body.append(f'<text x="{x:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">'
                    f'{lo + frac * (hi - lo):.2g}</text>')
    body.append(f'<text x="{PAD_L + inner_w / 2:.1f}" y="{H - 2}" text-anchor="middle" '
                'class="label">reward</text>')
    return _frame(body, "reward histogram", top)


def rebucket(points: list[tuple[str, int]]) -> tuple[list[tuple[datetime, float]], int]:
    """Per-minute counts ("YYYY-MM-DD HH:MM", n) as at most MAX_BUCKETS buckets of
    whole minutes, gaps filled with 0: ((start, episodes per minute), minutes a bucket)."""
    if not points:
        return [], 1
    parsed = [(datetime.strptime(m[:16], "%Y-%m-%d %H:%M"), n) for m, n in points]
    first, last = parsed[0][0], parsed[-1][0]
    minutes = int((last - first).total_seconds() // 60) + 1
    size = max(1, -(-minutes // MAX_BUCKETS))
    counts = [0] * (-(-minutes // size))
    for t, n in parsed:
        counts[int((t - first).total_seconds() // 60) // size] += n
    return [(first + timedelta(minutes=i * size), n / size) for i, n in enumerate(counts)], size


def timeline_svg(points: list[tuple[str, int]]) -> Markup:
    """Episodes stored per minute over the run's wall time, as bars."""
    buckets, size = rebucket(points)
    if not buckets:
        return Markup('<p class="muted">no episodes yet</p>')
    top = max(r for _, r in buckets) or 1
    inner_w, inner_h = W - PAD_L - PAD_R, H - PAD_B - PAD_T
    bw = inner_w / len(buckets)
    unit = "min" if size == 1 else f"{size} min"
    body = []
    for i, (t, rate) in enumerate(buckets):
        h = inner_h * rate / top
        body.append(f'<rect class="bar rate" x="{PAD_L + i * bw:.2f}" y="{H - PAD_B - h:.1f}" '
                    f'width="{max(bw - 0.5, 0.5):.2f}" height="{h:.1f}">'
                    f'<title>{t:%H:%M} (+{unit}): {rate:.1f} episodes/min</title></rect>')
    start, end = buckets[0][0], buckets[-1][0]
    body.append(f'<text x="{PAD_L}" y="{H - PAD_B + 14}" text-anchor="start">{start:%m-%d %H:%M}'
                '</text>')
    body.append(f'<text x="{W - PAD_R}" y="{H - PAD_B + 14}" text-anchor="end">'
                f'{end:%m-%d %H:%M}</text>')
    body.append(f'<text x="{PAD_L + inner_w / 2:.1f}" y="{H - 2}" text-anchor="middle" '
                f'class="label">episodes per minute (UTC, {unit} buckets)</text>')
    return _frame(body, "episodes per minute", top)
