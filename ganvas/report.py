"""HTML result pages and loss plots; plain files that open in any browser, no server needed."""

from __future__ import annotations

import csv
import html
import math
import re
from pathlib import Path

import torch
from torch import Tensor

from ganvas.data.io import save_image
from ganvas.files import atomic_write_text

PAGE_STYLE = """<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:4px 8px;text-align:center;vertical-align:top;font-size:13px}
img{image-rendering:pixelated;min-width:128px;max-width:%dpx}h2{margin-top:1.6em;font-size:16px}
.metrics td{text-align:right}</style>"""


def make_grid(images: Tensor, nrow: int | None = None, pad: int = 2) -> Tensor:
    """Tile N x C x H x W images into one C x H' x W' image, `nrow` per row (default: a square), on a white border."""
    n, c, h, w = images.shape
    ncol = min(nrow or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / ncol)
    grid = torch.ones(c, rows * (h + pad) + pad, ncol * (w + pad) + pad, dtype=images.dtype)
    for i, img in enumerate(images.detach().cpu()):
        r, k = divmod(i, ncol)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = img
    return grid


def page(title: str, body: str, image_width: int = 256) -> str:
    """A complete HTML document."""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"{PAGE_STYLE % image_width}</head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def image_table(rows: list[tuple[str, dict[str, str]]], columns: list[str] | None = None) -> str:
    """A table with one row per item and one column per visual; cells are relative image paths."""
    seen = list(dict.fromkeys(k for _, cells in rows for k in cells))
    columns = [c for c in columns or [] if c in seen] + [c for c in seen if c not in (columns or [])]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["", *columns])
    body = []
    for label, cells in rows:
        tds = "".join(
            f"<td><a href='{html.escape(cells[c])}'><img src='{html.escape(cells[c])}'></a></td>"
            if c in cells
            else "<td></td>"
            for c in columns
        )
        body.append(f"<tr><td>{html.escape(label)}</td>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def metrics_table(metrics: dict[str, float]) -> str:
    """A two-column table of metric names and values."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{v:.4g}</td></tr>" for k, v in metrics.items())
    return f"<table class='metrics'>{rows}</table>"


# Tableau's ten: one distinct colour per loss for the models with the most (pix2pixHD, CUT); dashes beyond ten.
PLOT_COLOURS = (
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
)  # fmt: skip
_CHAR_WIDTH = 7  # px per character of 12 px text, to lay out the legend without a browser


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About `count` round values (steps of 1, 2 or 5 times a power of ten) from lo to hi."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [k * step for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """Round values between 10**lo and 10**hi for a logarithmic axis: powers of ten, with 2 and 5 times them
    when the range spans few decades, or plain round values within less than one."""
    for factors in ((1,), (1, 2, 5)):
        ticks = [
            m * 10.0**k
            for k in range(math.floor(lo), math.ceil(hi) + 1)
            for m in factors
            if lo - 1e-9 <= math.log10(m * 10.0**k) <= hi + 1e-9
        ]
        if len(ticks) >= 3:
            return ticks
    return [v for v in nice_ticks(10**lo, 10**hi, 4) if v > 0]


def _legend(names: list[str], left: int, width: int) -> tuple[list[tuple[str, int, int]], int]:
    """(name, x, y) of each legend entry, wrapped into rows that fit `width`; and the legend's height."""
    placed, x, y = [], left, 14
    for name in names:
        entry = 22 + _CHAR_WIDTH * len(name) + 14  # swatch, text, gap
        if x > left and x + entry > width:
            x, y = left, y + 16
        placed.append((name, x, y))
        x += entry
    return placed, y + 8


def loss_plot_svg(csv_path: Path, width: int = 720, height: int = 260, ylabel: str = "loss") -> str:
    """An inline SVG line plot of every loss column of a loss_log.csv against images seen.

    Axes carry their names and round tick labels; the loss axis is logarithmic when every loss is positive
    (losses of very different scales, an L1 x 100 next to D losses, share it) and says so. The legend wraps
    into as many rows as the losses need. `height` is that of the plotting area and its axes.
    """
    if not csv_path.is_file():
        return ""
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) < 2:
        return ""
    names = [k for k in rows[0] if k not in ("epoch", "images", "steps", "time_s", "lr")]
    xs = [float(r["images"]) for r in rows]
    series = {k: [float(r[k]) for r in rows] for k in names}
    finite = [v for vs in series.values() for v in vs if math.isfinite(v)]
    log_scale = bool(finite) and min(finite) > 0
    scale = math.log10 if log_scale else (lambda v: v)
    lo, hi = (min(scale(v) for v in finite), max(scale(v) for v in finite)) if finite else (0.0, 1.0)
    lo, hi = (lo - 0.04 * (hi - lo), hi + 0.04 * (hi - lo)) if hi > lo else (lo - 0.5, hi + 0.5)  # lines off the frame
    x0, x1 = xs[0], (xs[-1] if xs[-1] > xs[0] else xs[0] + 1)
    left, right = 64, width - 12
    entries, top = _legend(names, left, right)
    bottom = top + height - 42  # the plotting area's lower edge; tick labels and the axis name below it

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * (bottom - top)

    parts = [f"<rect x='{left}' y='{top}' width='{right - left}' height='{bottom - top}' fill='none' stroke='#999'/>"]
    for v in log_ticks(lo, hi) if log_scale else nice_ticks(lo, hi):
        y = py(scale(v))
        parts.append(f"<line x1='{left}' x2='{right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>")
        parts.append(f"<text x='{left - 4}' y='{y + 4:.1f}' font-size='11' text-anchor='end'>{v:.3g}</text>")
    for x in nice_ticks(x0, x1):
        parts.append(f"<line x1='{px(x):.1f}' x2='{px(x):.1f}' y1='{bottom}' y2='{bottom + 4}' stroke='#999'/>")
        parts.append(f"<text x='{px(x):.1f}' y='{bottom + 16}' font-size='11' text-anchor='middle'>{x:,.0f}</text>")
    parts.append(
        f"<text x='{(left + right) / 2:.0f}' y='{bottom + 34}' font-size='12' text-anchor='middle'>images seen</text>"
    )
    parts.append(
        f"<text transform='translate(14,{(top + bottom) / 2:.0f}) rotate(-90)' font-size='12' "
        f"text-anchor='middle'>{html.escape(ylabel)}{' (log scale)' if log_scale else ''}</text>"
    )
    for i, ((name, lx, ly), vs) in enumerate(zip(entries, series.values())):
        colour = PLOT_COLOURS[i % len(PLOT_COLOURS)]
        dash = f" stroke-dasharray='{4 * (i // len(PLOT_COLOURS))},3'" if i >= len(PLOT_COLOURS) else ""
        pts = " ".join(
            f"{px(x):.1f},{py(scale(v)):.1f}" for x, v in zip(xs, vs) if math.isfinite(v) and (v > 0 or not log_scale)
        )
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5'{dash} points='{pts}'/>")
        parts.append(
            f"<line x1='{lx}' x2='{lx + 16}' y1='{ly - 4}' y2='{ly - 4}' stroke='{colour}' stroke-width='2'{dash}/>"
        )
        parts.append(f"<text x='{lx + 20}' y='{ly}' font-size='12'>{html.escape(name)}</text>")
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{bottom + 42}' "
        f"font-family='sans-serif' style='border:1px solid #ddd'>{''.join(parts)}</svg>"
    )


_VISUAL_FILE = re.compile(r"epoch(\d+)_images(\d+)_(.+)\.png$")


def write_training_page(
    web_dir: Path,
    name: str,
    epoch: int,
    images_seen: int,
    visuals: dict[str, Tensor],
    loss_csv: Path,
    eval_csv: Path | None = None,
) -> Path:
    """Save this step's visuals and rebuild web/index.html (newest first, with the loss plot and, with
    --eval_freq, the plot of the test figures)."""
    image_dir = web_dir / "images"
    for key, batch in visuals.items():
        save_image(make_grid(batch.float()), image_dir / f"epoch{epoch:03d}_images{images_seen:09d}_{key}.png")
    groups: dict[tuple[int, int], dict[str, str]] = {}
    for f in image_dir.glob("*.png"):
        m = _VISUAL_FILE.match(f.name)
        if m:
            groups.setdefault((int(m[1]), int(m[2])), {})[m[3]] = f"images/{f.name}"
    rows = [(f"epoch {e}, {n} images", groups[(e, n)]) for e, n in sorted(groups, reverse=True)]
    figures = loss_plot_svg(eval_csv, ylabel="test figure") if eval_csv is not None else ""
    figures = f"<h2>test figures (--eval_freq)</h2>{figures}" if figures else ""
    body = loss_plot_svg(loss_csv) + figures + "<h2>training visuals</h2>" + image_table(rows, list(visuals))
    index = web_dir / "index.html"
    atomic_write_text(index, page(f"training of {name}", body))
    return index
