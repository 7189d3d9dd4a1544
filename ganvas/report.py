"""HTML result pages and loss plots; plain files that open in any browser, no server needed."""

from __future__ import annotations

import csv
import html
import math
import re
from pathlib import Path

import torch
from torch import Tensor

from ganvas.checkpoint import atomic_write_text
from ganvas.data.io import save_image

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


def loss_plot_svg(csv_path: Path, width: int = 720, height: int = 260) -> str:
    """An inline SVG line plot of every loss column of a loss_log.csv against images seen."""
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
    # Losses of very different scales (L1 x 100 next to D losses) share the plot on a log axis.
    log_scale = bool(finite) and min(finite) > 0
    scale = (lambda v: math.log10(v)) if log_scale else (lambda v: v)
    series = {
        k: [scale(v) if math.isfinite(v) and (v > 0 or not log_scale) else math.nan for v in vs]
        for k, vs in series.items()
    }
    lo, hi = (min(scale(v) for v in finite), max(scale(v) for v in finite)) if finite else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1
    label = (lambda v: f"{10**v:.3g}") if log_scale else (lambda v: f"{v:.3g}")
    x0, x1 = xs[0], xs[-1] if xs[-1] > xs[0] else xs[0] + 1
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    lines, legend = [], []
    for i, (k, vs) in enumerate(series.items()):
        pts = " ".join(
            f"{40 + (x - x0) / (x1 - x0) * (width - 50):.1f},{height - 20 - (v - lo) / (hi - lo) * (height - 30):.1f}"
            for x, v in zip(xs, vs)
            if math.isfinite(v)
        )
        colour = colours[i % len(colours)]
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='1.5' points='{pts}'/>")
        legend.append(f"<text x='{45 + 110 * i}' y='12' fill='{colour}' font-size='12'>{html.escape(k)}</text>")
    axes = (
        f"<text x='2' y='{height - 20}' font-size='11'>{label(lo)}</text>"
        f"<text x='2' y='24' font-size='11'>{label(hi)}</text>"
        f"<text x='{width - 220}' y='{height - 4}' font-size='11'>images seen: {int(x1)}"
        f"{' (log scale)' if log_scale else ''}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"style='border:1px solid #ddd'>{''.join(legend)}{axes}{''.join(lines)}</svg>"
    )


_VISUAL_FILE = re.compile(r"epoch(\d+)_images(\d+)_(.+)\.png$")


def write_training_page(
    web_dir: Path, name: str, epoch: int, images_seen: int, visuals: dict[str, Tensor], loss_csv: Path
) -> Path:
    """Save this step's visuals and rebuild web/index.html (newest first, with the loss plot)."""
    image_dir = web_dir / "images"
    for key, batch in visuals.items():
        save_image(make_grid(batch.float()), image_dir / f"epoch{epoch:03d}_images{images_seen:09d}_{key}.png")
    groups: dict[tuple[int, int], dict[str, str]] = {}
    for f in image_dir.glob("*.png"):
        m = _VISUAL_FILE.match(f.name)
        if m:
            groups.setdefault((int(m[1]), int(m[2])), {})[m[3]] = f"images/{f.name}"
    rows = [(f"epoch {e}, {n} images", groups[(e, n)]) for e, n in sorted(groups, reverse=True)]
    body = loss_plot_svg(loss_csv) + "<h2>training visuals</h2>" + image_table(rows, list(visuals))
    index = web_dir / "index.html"
    atomic_write_text(index, page(f"training of {name}", body))
    return index
