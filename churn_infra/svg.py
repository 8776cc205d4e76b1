"""Server-side SVG charts, shared by the staff pages (campaigns.charts) and the admin (model reports).

Rendered on the server so that the pages need no chart library and no JavaScript, print and
scale on a phone (viewBox + width 100%), and show the same numbers as text for screen readers.
Colours come from CSS classes in static/css/staff.css. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from django.utils.safestring import SafeString, mark_safe

Formatter = Callable[[float], str]


def _number(value: float) -> str:
    return f"{value:,.0f}"


def percent(value: float) -> str:
    return f"{value:.0%}"


def _svg(
    width: int, height: int, title: str, body: list[str], css: str = "chart", aspect: str = "xMinYMin meet"
) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated label is escaped above
        f'<svg class="{css}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'preserveAspectRatio="{aspect}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
        + "".join(body)
        + "</svg>"
    )


def horizontal_bars(
    items: Sequence[tuple[str, float, str]], *, title: str, fmt: Formatter = _number, maximum: float | None = None
) -> SafeString:
    """One bar per (label, value, css class), longest first as given."""
    label_w, bar_w, row_h = 110, 300, 30
    width = label_w + bar_w + 90
    height = row_h * len(items) + 10
    top = maximum if maximum is not None else max((v for _, v, _ in items), default=0) or 1
    body = []
    for i, (label, value, css) in enumerate(items):
        y = 5 + i * row_h
        w = max(0.0, bar_w * value / top) if top else 0.0
        body.append(
            f'<text class="label" x="{label_w - 8}" y="{y + 19}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="bar {escape(css)}" x="{label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 10}" rx="3">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
            f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 19}">{escape(fmt(value))}</text>'
        )
    return _svg(width, height, title, body)


def stacked_columns(
    columns: Sequence[tuple[str, Sequence[float]]],
    *,
    series: Sequence[tuple[str, str]],
    title: str,
    label_every: int = 5,
) -> SafeString:
    """Columns of stacked values (e.g. per day), with a legend of (series name, css class)."""
    left, bottom, top_pad, plot_h = 34, 34, 26, 150
    col_w = 16
    width = left + col_w * max(1, len(columns)) + 10
    height = top_pad + plot_h + bottom
    peak = max((sum(values) for _, values in columns), default=0) or 1
    body = []
    for frac in (0.0, 0.5, 1.0):
        y = top_pad + plot_h * (1 - frac)
        body.append(
            f'<line class="grid" x1="{left}" x2="{width - 6}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_number(peak * frac)}</text>'
        )
    for i, (label, values) in enumerate(columns):
        x = left + i * col_w + 2
        y = top_pad + plot_h
        tip = f"{label}: " + ", ".join(f"{name} {v:,.0f}" for (name, _), v in zip(series, values, strict=True))
        for (_, css), value in zip(series, values, strict=True):
            h = plot_h * value / peak
            y -= h
            if h > 0:
                body.append(
                    f'<rect class="bar {escape(css)}" x="{x}" y="{y:.1f}" width="{col_w - 4}" height="{h:.1f}">'
                    f"<title>{escape(tip)}</title></rect>"
                )
        if i % label_every == 0 or i == len(columns) - 1:
            body.append(
                f'<text class="axis" x="{x + (col_w - 4) / 2}" y="{top_pad + plot_h + 16}" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    legend_x = left
    for name, css in series:
        body.append(
            f'<rect class="bar {escape(css)}" x="{legend_x}" y="6" width="12" height="12" rx="2"/>'
            f'<text class="label" x="{legend_x + 16}" y="16">{escape(name)}</text>'
        )
        legend_x += 24 + 8 * len(name)
    return _svg(width, height, title, body)


def grouped_bars(
    groups: Sequence[tuple[str, Sequence[tuple[str, float | None, str]]]],
    *,
    title: str,
    fmt: Formatter = percent,
    maximum: float = 1.0,
) -> SafeString:
    """Per group (e.g. a campaign), one bar per (name, value or None, css class); None draws 'n/a'."""
    label_w, bar_w, bar_h, gap = 150, 260, 16, 14
    per_group = max((len(bars) for _, bars in groups), default=1)
    group_h = per_group * (bar_h + 4) + gap
    width = label_w + bar_w + 130  # room for 'Treatment 100%' after a full bar
    height = group_h * max(1, len(groups)) + 6
    body = []
    for gi, (label, bars) in enumerate(groups):
        y0 = 4 + gi * group_h
        short = label if len(label) <= 22 else label[:21] + "…"
        body.append(f'<text class="label" x="{label_w - 8}" y="{y0 + 14}" text-anchor="end">{escape(short)}</text>')
        for bi, (name, value, css) in enumerate(bars):
            y = y0 + bi * (bar_h + 4)
            text = fmt(value) if value is not None else "n/a"
            w = max(0.0, bar_w * value / maximum) if value is not None and maximum else 0.0
            body.append(
                f'<rect class="bar {escape(css)}" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" '
                f'rx="2"><title>{escape(label)}, {escape(name)}: {escape(text)}</title></rect>'
                f'<text class="value" x="{label_w + w + 5:.1f}" y="{y + 12}">{escape(name)} {escape(text)}</text>'
            )
    return _svg(width, height, title, body)


def progress_bar(segments: Sequence[tuple[str, float, str]], *, title: str) -> SafeString:
    """One horizontal bar split into segments (label, count, css class) by share of the total."""
    width, height = 400, 22
    total = sum(v for _, v, _ in segments) or 1
    body, x = [], 0.0
    for label, value, css in segments:
        w = width * value / total
        if w > 0:
            body.append(
                f'<rect class="bar {escape(css)}" x="{x:.1f}" y="0" width="{w:.1f}" height="{height}">'
                f"<title>{escape(label)}: {value:,.0f} ({value / total:.0%})</title></rect>"
            )
        x += w
    return _svg(width, height, title, body, css="chart progress", aspect="none")


def risk_trend(points: Sequence[tuple[str, float, str]], *, title: str) -> SafeString:
    """Churn probability over time: one point per (date label, probability, risk level), oldest first.

    The risk levels' bands (30%, 60%, 80%) are drawn behind the line, so a rise into a new level shows.
    """
    width, height, left, right, top, bottom = 560, 200, 36, 12, 10, 26
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(p: float) -> float:
        return top + plot_h * (1 - max(0.0, min(1.0, p)))

    body = []
    for cut in (0.3, 0.6, 0.8):
        y = y_of(cut)
        body.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 4}" y="{y + 3:.1f}" text-anchor="end">{cut:.0%}</text>'
        )
    if not points:
        return _svg(width, height, title, body)
    step = plot_w / max(1, len(points) - 1)
    coords = [(left + (i * step if len(points) > 1 else plot_w / 2), y_of(p)) for i, (_, p, _) in enumerate(points)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    body.append(f'<polyline class="trend" fill="none" points="{path}"/>')
    for (label, p, level), (x, y) in zip(points, coords, strict=True):
        body.append(
            f'<circle class="dot {escape(level)}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>{escape(label)}: {escape(percent(p))} ({escape(level)})</title></circle>"
        )
    first, last = points[0][0], points[-1][0]
    body.append(f'<text class="axis" x="{left}" y="{height - 6}">{escape(first)}</text>')
    if len(points) > 1:
        body.append(f'<text class="axis" x="{width - right}" y="{height - 6}" text-anchor="end">{escape(last)}</text>')
    return _svg(width, height, title, body)


def line_chart(
    series: Sequence[tuple[str, Sequence[tuple[float, float]], str]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    diagonal: bool = False,
    fmt: Formatter = percent,
) -> SafeString:
    """Lines of (x, y) points in [0, 1] x [0, 1], one per (name, points, css class), with a legend;
    ``diagonal`` draws y = x (the random model of a gains curve, perfect calibration)."""
    left, bottom, top_pad, size = 44, 36, 26, 220
    width, height = left + size + 150, top_pad + size + bottom
    body = []
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top_pad + size * (1 - frac)
        x = left + size * frac
        body.append(
            f'<line class="grid" x1="{left}" x2="{left + size}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(frac))}</text>'
            f'<text class="axis" x="{x:.1f}" y="{top_pad + size + 14}" text-anchor="middle">{escape(fmt(frac))}</text>'
        )
    body.append(
        f'<text class="label" x="{left + size / 2}" y="{height - 4}" text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="label" x="10" y="{top_pad - 8}">{escape(y_label)}</text>'
    )
    if diagonal:
        body.append(
            f'<line class="grid diagonal" x1="{left}" y1="{top_pad + size}" x2="{left + size}" y2="{top_pad}" '
            'stroke-dasharray="4 3"/>'
        )
    for index, (name, points, css) in enumerate(series):
        coords = " ".join(
            f"{left + size * min(max(x, 0.0), 1.0):.1f},{top_pad + size * (1 - min(max(y, 0.0), 1.0)):.1f}"
            for x, y in points
        )
        body.append(
            f'<polyline class="line {escape(css)}" fill="none" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        for x, y in points:
            body.append(
                f'<circle class="dot {escape(css)}" r="2.5" cx="{left + size * min(max(x, 0.0), 1.0):.1f}" '
                f'cy="{top_pad + size * (1 - min(max(y, 0.0), 1.0)):.1f}">'
                f"<title>{escape(name)}: {escape(fmt(x))}, {escape(fmt(y))}</title></circle>"
            )
        ly = top_pad + 14 + index * 18
        body.append(
            f'<rect class="bar {escape(css)}" x="{left + size + 14}" y="{ly - 10}" width="12" height="12" rx="2"/>'
            f'<text class="label" x="{left + size + 30}" y="{ly}">{escape(name)}</text>'
        )
    return _svg(width, height, title, body)
