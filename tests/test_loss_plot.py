"""The training page's loss plot: named axes with tick labels, the log axis said, a legend that fits ten losses."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ganvas.report import loss_plot_svg

# Ten losses, as a CycleGAN run with pix2pixHD's feature losses would log them; the longest names of any model.
LOSSES = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B", "G_GAN_Feat", "G_VGG"]
SVG = "{http://www.w3.org/2000/svg}"


def loss_log(path: Path, losses: list[str], value) -> Path:  # type: ignore[no-untyped-def]
    rows = ["epoch,images,steps,time_s,lr," + ",".join(losses)]
    for step in range(1, 41):
        rows.append(f"1,{step * 250},{step},{step / 10},0.0002," + ",".join(str(value(step, i)) for i in range(10)))
    path.write_text("\n".join(rows) + "\n")
    return path


def texts(svg: ET.Element) -> list[ET.Element]:
    return list(svg.iter(f"{SVG}text"))


def test_ten_losses_get_a_legend_that_fits_and_named_axes(tmp_path) -> None:
    csv = loss_log(tmp_path / "loss_log.csv", LOSSES, lambda step, i: (i + 1) * 0.3 * math.exp(-step / 30) + 0.01)
    svg = ET.fromstring(loss_plot_svg(csv))
    width = float(svg.get("width"))
    legend = [t for t in texts(svg) if t.text in LOSSES]
    assert sorted(t.text for t in legend) == sorted(LOSSES)
    for t in legend:  # inside the drawing, at 12 px text of at most 7 px a character
        assert 0 <= float(t.get("x")) and float(t.get("x")) + 7 * len(t.text) <= width, t.text
    places = [(float(t.get("y")), float(t.get("x"))) for t in legend]
    assert len(set(places)) == len(places) and len({y for y, _ in places}) >= 2  # wrapped into rows, none on another
    colours = {line.get("stroke") for line in svg.iter(f"{SVG}polyline")}
    assert len(colours) == len(LOSSES)  # one colour per loss
    labels = {t.text: t for t in texts(svg)}
    assert "images seen" in labels and "rotate(-90)" in labels["loss (log scale)"].get("transform", "")
    numbers = [t for t in texts(svg) if t.text and re.fullmatch(r"-?[\d.,e+-]+", t.text)]
    assert len({t.get("y") for t in numbers}) >= 3 and len({t.get("x") for t in numbers}) >= 3  # y and x ticks


def test_losses_below_zero_get_a_linear_axis_that_says_so(tmp_path) -> None:
    csv = loss_log(tmp_path / "loss_log.csv", LOSSES, lambda step, i: math.sin(step + i) - 0.5)
    svg = ET.fromstring(loss_plot_svg(csv))
    labels = [t.text for t in texts(svg)]
    assert "loss" in labels and "loss (log scale)" not in labels and "images seen" in labels
    assert not any("log" in (label or "") for label in labels)
