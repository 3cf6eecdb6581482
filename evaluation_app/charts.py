"""Charts of a comparison report drawn on the server as inline SVG.

Why SVG strings and not the vendored uPlot the job pages use: the report is also exported as ONE self-contained
HTML file that must open anywhere with no script and no other file, and the same markup then serves the page and
the export. Every user-written label is escaped (``escape``); numbers are formatted here.

- ``delta_chart``: one row per metric, a bar from zero to the candidate − baseline delta and a whisker over its 95%
  interval. Metrics live on different scales (accuracy 0..1, BLEU 0..100), so each row is drawn on its own scale
  with zero in the middle; the numbers are printed beside each row.
- ``bars_chart``: baseline and candidate scores side by side per category or tag.
"""

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH = 680
LABEL_W = 150
PLOT_W = 330
ROW_H = 26
GOOD, BAD, NEUTRAL = "#16a34a", "#dc2626", "#64748b"
BASELINE_FILL, CANDIDATE_FILL = "#94a3b8", "#2563eb"


def _num(value) -> str:
    if not isinstance(value, int | float):
        return "—"
    return f"{value:+.3f}" if abs(value) < 1000 else f"{value:+.3g}"


def _svg(height: int, label: str, body: list[str]) -> SafeString:
    head = (f'<svg class="chart-svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>')  # fmt: skip
    return mark_safe(head + "".join(body) + "</svg>")  # every label below is escaped


def _colour(metric: dict) -> str:
    delta = metric.get("delta")
    if not isinstance(delta, int | float) or delta == 0:
        return NEUTRAL
    better = (delta > 0) == bool(metric.get("higher_is_better", True))
    return GOOD if better else BAD


def delta_chart(metrics: list[dict]) -> SafeString:
    """Deltas with their confidence intervals; empty string when there is nothing to draw."""
    rows = [m for m in metrics or [] if isinstance(m.get("delta"), int | float)]
    if not rows:
        return mark_safe("")
    height = ROW_H * len(rows) + 24
    mid = LABEL_W + PLOT_W / 2
    body = [f'<line x1="{mid}" y1="4" x2="{mid}" y2="{height - 18}" stroke="#94a3b8" stroke-dasharray="3 3"/>',
            f'<text x="{mid}" y="{height - 4}" font-size="11" text-anchor="middle" fill="#64748b">0 (each row '
            "on its own scale)</text>"]  # fmt: skip
    for i, m in enumerate(rows):
        y = 8 + i * ROW_H
        low, high, delta = m.get("low"), m.get("high"), m["delta"]
        bounds = [abs(v) for v in (low, high, delta) if isinstance(v, int | float)]
        scale = (PLOT_W / 2 - 6) / (max(bounds) or 1.0)
        x_delta = mid + delta * scale
        colour = _colour(m)
        body.append(f'<text x="{LABEL_W - 8}" y="{y + 14}" font-size="12" text-anchor="end">'
                    f"{escape(str(m.get('name', '')))}</text>")  # fmt: skip
        body.append(f'<rect x="{min(mid, x_delta):.1f}" y="{y + 5}" width="{abs(x_delta - mid):.1f}" height="10" '
                    f'fill="{colour}" opacity="{1 if m.get("significant") else 0.45}"/>')  # fmt: skip
        if isinstance(low, int | float) and isinstance(high, int | float):
            x1, x2 = mid + low * scale, mid + high * scale
            body.append(f'<line class="whisker" x1="{x1:.1f}" y1="{y + 10}" x2="{x2:.1f}" y2="{y + 10}" '
                        f'stroke="#0f172a" stroke-width="1.5"/>'
                        f'<line x1="{x1:.1f}" y1="{y + 4}" x2="{x1:.1f}" y2="{y + 16}" stroke="#0f172a"/>'
                        f'<line x1="{x2:.1f}" y1="{y + 4}" x2="{x2:.1f}" y2="{y + 16}" stroke="#0f172a"/>')  # fmt: skip
        interval = f" [{_num(low)}, {_num(high)}]" if isinstance(low, int | float) else ""
        body.append(f'<text x="{LABEL_W + PLOT_W + 8}" y="{y + 14}" font-size="11" fill="{colour}">'
                    f"{_num(delta)}{interval}</text>")  # fmt: skip
    return _svg(height, "Candidate minus baseline per metric, with 95% intervals", body)


def bars_chart(rows: list[dict], title: str) -> SafeString:
    """Baseline and candidate bars per row (``{"name", "baseline", "candidate"}``)."""
    rows = [r for r in rows or [] if isinstance(r.get("baseline"), int | float) or
            isinstance(r.get("candidate"), int | float)]  # fmt: skip
    if not rows:
        return mark_safe("")
    values = [v for r in rows for v in (r.get("baseline"), r.get("candidate")) if isinstance(v, int | float)]
    top = max(max(values), 1.0 if max(values) <= 1 else 0.0) or 1.0
    row_h = 30
    height = row_h * len(rows) + 30
    body = [f'<rect x="{LABEL_W}" y="4" width="10" height="10" fill="{BASELINE_FILL}"/>'
            f'<text x="{LABEL_W + 14}" y="13" font-size="11">baseline</text>'
            f'<rect x="{LABEL_W + 80}" y="4" width="10" height="10" fill="{CANDIDATE_FILL}"/>'
            f'<text x="{LABEL_W + 94}" y="13" font-size="11">candidate</text>']  # fmt: skip
    for i, r in enumerate(rows):
        y = 22 + i * row_h
        body.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" font-size="12" text-anchor="end">'
                    f"{escape(str(r.get('name', '')))}</text>")  # fmt: skip
        for j, (side, fill) in enumerate((("baseline", BASELINE_FILL), ("candidate", CANDIDATE_FILL))):
            value = r.get(side)
            if not isinstance(value, int | float):
                continue
            w = max(value, 0) / top * PLOT_W
            body.append(f'<rect class="bar-{side}" x="{LABEL_W}" y="{y + j * 11}" width="{w:.1f}" height="10" '
                        f'fill="{fill}"/><text x="{LABEL_W + w + 4:.1f}" y="{y + j * 11 + 9}" font-size="10">'
                        f"{value:.3f}</text>")  # fmt: skip
    return _svg(height, title, body)


def _ticks(low: float, high: float) -> tuple[float, float]:
    if low == high:
        pad = abs(low) * 0.1 or 1.0
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def scatter_chart(
    points: list[dict], *, title: str, x_label: str, y_label: str, line: bool = False
) -> SafeString:
    """Points ``{"x", "y", "label"?}`` on linear axes, one labelled dot each; ``line`` joins them in x order
    instead (a curve: dots and labels left out). Points without numeric x and y are skipped; empty string when
    none is left. The axes' ends are printed as numbers."""
    kept = [
        p for p in points or [] if isinstance(p.get("x"), int | float) and isinstance(p.get("y"), int | float)
    ]
    if not kept:
        return mark_safe("")
    left, top, plot_w, plot_h = 70, 12, WIDTH - 190, 240
    height = top + plot_h + 44
    x0, x1 = _ticks(min(p["x"] for p in kept), max(p["x"] for p in kept))
    y0, y1 = _ticks(min(p["y"] for p in kept), max(p["y"] for p in kept))

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    body = [f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#cbd5e1"/>',
            f'<text x="{left}" y="{top + plot_h + 14}" font-size="10" fill="#64748b">{x0:.4g}</text>',
            f'<text x="{left + plot_w}" y="{top + plot_h + 14}" font-size="10" text-anchor="end" fill="#64748b">'
            f"{x1:.4g}</text>",
            f'<text x="{left + plot_w / 2}" y="{height - 6}" font-size="11" text-anchor="middle">{escape(x_label)}</text>',
            f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="#64748b">{y0:.4g}</text>',
            f'<text x="{left - 4}" y="{top + 10}" font-size="10" text-anchor="end" fill="#64748b">{y1:.4g}</text>',
            f'<text x="14" y="{top + plot_h / 2}" font-size="11" text-anchor="middle" '
            f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>']  # fmt: skip
    if line:
        path = " ".join(f"{px(p['x']):.1f},{py(p['y']):.1f}" for p in sorted(kept, key=lambda p: p["x"]))
        body.append(
            f'<polyline class="curve" points="{path}" fill="none" stroke="{CANDIDATE_FILL}" stroke-width="1.5"/>'
        )
        return _svg(height, title, body)
    for p in kept:
        x, y, label = px(p["x"]), py(p["y"]), escape(str(p.get("label", "")))
        body.append(f'<g class="point" data-label="{label}"><circle cx="{x:.1f}" cy="{y:.1f}" r="5" '
                    f'fill="{CANDIDATE_FILL}"><title>{label}: {p["x"]:.4g}, {p["y"]:.4g}</title></circle>'
                    f'<text x="{x + 8:.1f}" y="{y + 4:.1f}" font-size="11">{label}</text></g>')  # fmt: skip
    return _svg(height, title, body)
