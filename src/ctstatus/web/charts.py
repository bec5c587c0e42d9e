"""Small inline SVG charts: no JavaScript library, no external service, readable offline."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape


def bars(
    series: Sequence[tuple[str, Sequence[float]]],
    labels: Sequence[str],
    *,
    colors: Sequence[str] = ("var(--ok)", "var(--bad)", "var(--warn)"),
    width: int = 560,
    height: int = 120,
    title: str = "",
) -> str:
    """Stacked bars, one column per label; each series a colour; a tooltip per column."""
    count = max(len(labels), 1)
    totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
    top = max([*totals, 1.0])
    gap = 2
    bar_width = max((width - gap * count) / count, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height + 16}" role="img" '
        f'aria-label="{escape(title)}">'
    ]
    for i, label in enumerate(labels):
        x = i * (bar_width + gap)
        y = float(height)
        tip = [label] + [f"{name}: {values[i]:g}" for name, values in series]
        parts.append(f"<g><title>{escape(' · '.join(tip))}</title>")
        for (_, values), color in zip(series, colors, strict=False):
            h = values[i] / top * (height - 4)
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{h:.1f}" '
                f'rx="1.5" fill="{color}"/>'
            )
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{bar_width:.1f}" height="{height}" '
            'fill="transparent"/></g>'
        )
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>')
    if labels:
        parts.append(f'<text x="0" y="{height + 13}" class="tick">{escape(labels[0])}</text>')
        parts.append(
            f'<text x="{width}" y="{height + 13}" class="tick" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    parts.append(
        f'<text x="{width}" y="10" class="tick" text-anchor="end">max {top:g}</text></svg>'
    )
    return "".join(parts)


def line(
    values: Sequence[float | None],
    *,
    width: int = 560,
    height: int = 120,
    color: str = "var(--accent)",
    unit: str = "",
    title: str = "",
) -> str:
    """A line over time; gaps (None) break it."""
    points = [v for v in values if v is not None]
    top = max([*points, 1e-9])
    step = width / max(len(values) - 1, 1)
    paths: list[str] = []
    current: list[str] = []
    for i, value in enumerate(values):
        if value is None:
            if current:
                paths.append(" ".join(current))
            current = []
            continue
        y = height - value / top * (height - 6) - 2
        current.append(f"{'M' if not current else 'L'}{i * step:.1f},{y:.1f}")
    if current:
        paths.append(" ".join(current))
    body = "".join(
        f'<path d="{d}" fill="none" stroke="{color}" stroke-width="1.8"/>' for d in paths
    )
    last = f"{points[-1]:.3g}{unit}" if points else "no data yet"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height + 16}" role="img" '
        f'aria-label="{escape(title)}">{body}'
        f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" class="axis"/>'
        f'<text x="{width}" y="10" class="tick" text-anchor="end">max {top:.3g}{unit}</text>'
        f'<text x="0" y="{height + 13}" class="tick">now: {escape(last)}</text></svg>'
    )
