"""Inline SVG charts for the monitor's static pages: no JavaScript, nothing fetched at view time.

Each function takes plain data and returns an `<svg>` element as text. Colours are fixed per
metric (`COLOURS`), so a reader (and the screenshot test) finds the same series in the same
colour on every page: the line and points in the metric's colour, its interval as a band of the
same colour at 25 % opacity, an alert threshold as a dashed red line, alerts and alarms as red
rings around their points.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

#: Series colour per metric.
COLOURS = {
    "ece": "#1f77b4",
    "brier": "#ff7f0e",
    "accuracy": "#2ca02c",
    "auroc": "#9467bd",
    "mean_confidence": "#8c564b",
    "overconfidence": "#e377c2",
}
#: Thresholds, alerts and alarms.
ALERT = "#d62728"
#: Reliability-diagram bars.
BARS = "#17becf"
WIDTH, HEIGHT = 330, 210
LEFT, RIGHT, TOP, BOTTOM = 46, 12, 26, 38


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    step = (hi - lo) / n
    return [lo + i * step for i in range(n + 1)]


def _frame(title: str, y_lo: float, y_hi: float, y_label: str) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="16" font-size="12" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999999" stroke-width="1"/>',
        f'<text x="10" y="{TOP + plot_h / 2:.1f}" font-size="10" transform="rotate(-90 10 '
        f'{TOP + plot_h / 2:.1f})" text-anchor="middle">{escape(y_label)}</text>',
    ]
    for tick in _ticks(y_lo, y_hi):
        y = TOP + plot_h * (1 - (tick - y_lo) / (y_hi - y_lo))
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            'stroke="#e5e5e5" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="9" text-anchor="end">'
            f"{tick:.2f}</text>"
        )
    return parts


def _range(values: Sequence[float], extra: Sequence[float]) -> tuple[float, float]:
    finite = [v for v in (*values, *extra) if v is not None and np.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = max((hi - lo) * 0.1, 0.02)
    return max(lo - pad, -1.0), min(hi + pad, 1.0)


def series_chart(
    x: Sequence[float],
    x_labels: Sequence[str],
    estimate: Sequence[float | None],
    low: Sequence[float | None],
    high: Sequence[float | None],
    title: str,
    colour: str,
    threshold: float | None = None,
    flagged: Sequence[bool] = (),
) -> str:
    """A metric over time: points at positions `x` (any unit, e.g. days) labelled `x_labels`,
    joined by a line, the interval low..high as a band, `threshold` as a dashed red line and
    red rings around `flagged` points. None values are skipped."""
    keep = [i for i, e in enumerate(estimate) if e is not None and np.isfinite(e)]
    lo_hi = [v for i in keep for v in (low[i], high[i])]
    y_lo, y_hi = _range([estimate[i] for i in keep], [*lo_hi, *([threshold] if threshold else [])])
    parts = _frame(title, y_lo, y_hi, title.split(" (")[0])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x0, x1 = (min(x), max(x)) if len(x) else (0.0, 1.0)
    span = (x1 - x0) or 1.0

    def px(v: float) -> float:
        return LEFT + plot_w * (0.5 if x1 == x0 else 0.04 + 0.92 * (v - x0) / span)

    def py(v: float) -> float:
        return TOP + plot_h * (1 - (min(max(v, y_lo), y_hi) - y_lo) / (y_hi - y_lo))

    shown = sorted({0, len(x) // 2, len(x) - 1}) if len(x) > 2 else list(range(len(x)))
    for i in shown:
        anchor = "start" if i == 0 and len(x) > 1 else "end" if i == len(x) - 1 else "middle"
        parts.append(
            f'<text x="{px(x[i]):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="9" '
            f'text-anchor="{anchor}">{escape(x_labels[i])}</text>'
        )
    band = [i for i in keep if low[i] is not None and high[i] is not None]
    if band:
        upper = [f"{px(x[i]):.1f},{py(high[i]):.1f}" for i in band]
        lower = [f"{px(x[i]):.1f},{py(low[i]):.1f}" for i in reversed(band)]
        if len(band) == 1:  # one point: an error bar instead of a band
            i = band[0]
            parts.append(
                f'<rect x="{px(x[i]) - 6:.1f}" y="{py(high[i]):.1f}" width="12" '
                f'height="{max(py(low[i]) - py(high[i]), 1):.1f}" fill="{colour}" '
                'fill-opacity="0.25"/>'
            )
        else:
            parts.append(
                f'<polygon points="{" ".join(upper + lower)}" fill="{colour}" '
                'fill-opacity="0.25" stroke="none"/>'
            )
    if threshold is not None:
        y = py(threshold)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{ALERT}" stroke-width="2" stroke-dasharray="6 4"/>'
        )
    if len(keep) > 1:
        points = " ".join(f"{px(x[i]):.1f},{py(estimate[i]):.1f}" for i in keep)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2.5"/>'
        )
    for i in keep:
        parts.append(
            f'<circle cx="{px(x[i]):.1f}" cy="{py(estimate[i]):.1f}" r="4" fill="{colour}"/>'
        )
        if i < len(flagged) and flagged[i]:
            parts.append(
                f'<circle cx="{px(x[i]):.1f}" cy="{py(estimate[i]):.1f}" r="8" '
                f'fill="none" stroke="{ALERT}" stroke-width="2.5"/>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def reliability_chart(
    bin_low: Sequence[float],
    bin_high: Sequence[float],
    accuracy: Sequence[float],
    ci_low: Sequence[float],
    ci_high: Sequence[float],
    count: Sequence[int],
    title: str,
) -> str:
    """A reliability diagram: per non-empty bin, a bar up to its accuracy with its interval as
    a whisker, over the diagonal of perfect calibration; the count under each bar."""
    parts = _frame(title, 0.0, 1.0, "accuracy")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(v: float) -> float:
        return LEFT + plot_w * v

    def py(v: float) -> float:
        return TOP + plot_h * (1 - v)

    for tick in _ticks(0.0, 1.0):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{HEIGHT - BOTTOM + 14}" font-size="9" '
            f'text-anchor="middle">{tick:.2f}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="10" '
        'text-anchor="middle">confidence</text>'
    )
    for lo, hi, acc, c_lo, c_hi, n in zip(
        bin_low, bin_high, accuracy, ci_low, ci_high, count, strict=True
    ):
        if not n:
            continue
        parts.append(
            f'<rect x="{px(lo) + 1:.1f}" y="{py(acc):.1f}" width="{px(hi) - px(lo) - 2:.1f}" '
            f'height="{py(0) - py(acc):.1f}" fill="{BARS}"/>'
        )
        mid = px((lo + hi) / 2)
        parts.append(
            f'<line x1="{mid:.1f}" x2="{mid:.1f}" y1="{py(c_lo):.1f}" y2="{py(c_hi):.1f}" '
            'stroke="#333333" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{mid:.1f}" y="{py(0) - 3:.1f}" font-size="7" text-anchor="middle">{n}</text>'
        )
    parts.append(
        f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="#555555" '
        'stroke-width="1.5" stroke-dasharray="4 3"/>'
    )
    parts.append("</svg>")
    return "\n".join(parts)
