"""SVG charts drawn on the server (pure): a campaign's timeline and its funnel. Numbers and
labels are escaped; sizes are attributes (the pages' CSP allows no inline styles)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from markupsafe import Markup, escape

W, H, PAD_L, PAD_B, PAD_T = 720, 220, 48, 28, 12
SERIES = (("sent", "#0b5cad"), ("read", "#1a7f37"), ("clicked", "#8250df"), ("errored", "#b3261e"))


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def timeline(buckets: Sequence[dict[str, Any]], title: str = "Timeline") -> Markup:
    """Bars of messages sent per bucket, lines of read, clicked and errored."""
    n = len(buckets)
    top = max([1, *(int(b.get(k) or 0) for b in buckets for k, _ in SERIES)])
    inner_w, inner_h = W - PAD_L - 8, H - PAD_B - PAD_T
    step = inner_w / max(n, 1)

    def y(v: float) -> float:
        return PAD_T + inner_h - inner_h * v / top

    parts = [f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="tl-t tl-d"'
             ' xmlns="http://www.w3.org/2000/svg">',
             f'<title id="tl-t">{escape(title)}</title>',
             f'<desc id="tl-d">{n} time buckets; at most {_fmt(top)} in one bucket</desc>',
             f'<line x1="{PAD_L}" y1="{PAD_T + inner_h}" x2="{W - 8}" y2="{PAD_T + inner_h}" stroke="#d0d7de"/>',
             f'<text x="{PAD_L - 6}" y="{PAD_T + 10}" text-anchor="end" font-size="11" fill="#57606a">{_fmt(top)}</text>',
             f'<text x="{PAD_L - 6}" y="{PAD_T + inner_h}" text-anchor="end" font-size="11" fill="#57606a">0</text>']
    for i, b in enumerate(buckets):
        v = int(b.get("sent") or 0)
        x = PAD_L + i * step + step * 0.15
        parts.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{max(step * 0.7, 1):.1f}" '
                     f'height="{PAD_T + inner_h - y(v):.1f}" fill="#0b5cad" opacity="0.35">'
                     f'<title>{escape(b.get("at", ""))}: {_fmt(v)} sent</title></rect>')
    for key, color in SERIES[1:]:
        pts = " ".join(f"{PAD_L + (i + 0.5) * step:.1f},{y(int(b.get(key) or 0)):.1f}" for i, b in enumerate(buckets))
        if pts:
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="2"/>')
    if n:
        parts.append(f'<text x="{PAD_L}" y="{H - 8}" font-size="11" fill="#57606a">{escape(buckets[0].get("at", ""))}</text>')
        if n > 1:
            parts.append(f'<text x="{W - 8}" y="{H - 8}" text-anchor="end" font-size="11" fill="#57606a">'
                         f'{escape(buckets[-1].get("at", ""))}</text>')
    else:
        parts.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#57606a">Nothing sent yet</text>')
    for i, (key, color) in enumerate(SERIES):
        parts.append(f'<rect x="{PAD_L + 8 + i * 90}" y="2" width="10" height="10" fill="{color}"/>'
                     f'<text x="{PAD_L + 22 + i * 90}" y="11" font-size="11">{key}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def funnel(steps: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, each step as a share of the first."""
    base = max(steps[0][1], 1) if steps else 1
    row_h, label_w, bar_w = 30, 130, 480
    h = row_h * len(steps) + 8
    parts = [f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 110} {h}" role="img" aria-label="Funnel"'
             ' xmlns="http://www.w3.org/2000/svg">']
    for i, (label, v) in enumerate(steps):
        w = bar_w * min(v / base, 1.0)
        yy = 4 + i * row_h
        pct = 100.0 * v / base
        parts.append(f'<text x="{label_w - 8}" y="{yy + 18}" text-anchor="end" font-size="13">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{yy + 4}" width="{max(w, 1):.1f}" height="{row_h - 10}" fill="#0b5cad"/>'
                     f'<text x="{label_w + w + 6:.1f}" y="{yy + 18}" font-size="12">{_fmt(v)} ({pct:.1f} %)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
