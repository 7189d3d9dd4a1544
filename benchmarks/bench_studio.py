"""Studio render latency: stroke end (or hint click) to the displayed output, in Debian's chromium, at 256 px.

    python benchmarks/bench_studio.py --out ganvas_demo [--strokes 20] [--screenshots docs/images]

Uses the runs `ganvas studio --demo` trains (and trains them if they are missing). For each run it paints
(labels), adds hints (colourise) or re-renders an image (translate) on a 256 x 256 canvas and prints the
median and 90th percentile of the latency the page measured (stroke end to the output image decoded),
beside the model's own time. `--screenshots` saves a picture of each mode for the README.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import shutil
import statistics
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ganvas.studio import Background, prepare
from ganvas.studio.demo import demo_runs

SIZE = 256


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def at(page, x: float, y: float) -> tuple[float, float]:
    box = page.locator("#input").bounding_box()
    width, height = page.evaluate("[window.ganvasStudio.state.width, window.ganvasStudio.state.height]")
    return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


def wait_shown(page, before: int) -> None:
    page.wait_for_function(
        f"Number(document.body.dataset.renders) > {before} && !window.ganvasStudio.state.pending", timeout=60_000
    )


def renders(page) -> int:
    return int(page.get_attribute("body", "data-renders"))


def model_ms(page) -> float:
    text = page.inner_text("#timing")
    return float(text.split("model ")[1].split(" ms")[0]) if "model" in text else float("nan")


def measure(page, key: str, strokes: int) -> dict:
    before = renders(page)
    page.select_option("#model", key)
    wait_shown(page, before)
    info = page.evaluate("window.ganvasStudio.state.info")
    mode = info["modes"][0]
    if mode in ("labels", "sketch"):
        before = renders(page)
        page.select_option("#canvas-size", f"{SIZE}x{SIZE}")
        wait_shown(page, before)
        if mode == "labels":  # start from an example scene scaled to the canvas, when the run has one
            page.click("#palette button >> nth=1")
    else:
        photo = page.evaluate("window.ganvasStudio.state.photo")
        image = Image.open(io.BytesIO(base64.b64decode(photo.split(",", 1)[1]))).convert("RGB")
        path = Path(tempfile.mkdtemp()) / "photo.png"
        image.resize((SIZE, SIZE), Image.BICUBIC).save(path)
        before = renders(page)
        page.set_input_files("#upload-photo", str(path))
        wait_shown(page, before)
    page.evaluate("window.ganvasStudio.latencies.length = 0")
    models = []
    for n in range(strokes):
        before = renders(page)
        y = 20 + (n * 37) % (SIZE - 40)
        if mode == "colourise":
            page.mouse.click(*at(page, 30 + (n * 53) % (SIZE - 60), y))
        else:
            page.mouse.move(*at(page, 20, y))
            page.mouse.down()
            page.mouse.move(*at(page, SIZE - 20, y + 10), steps=8)
            page.mouse.up()
        wait_shown(page, before)
        models.append(model_ms(page))
    latencies = page.evaluate("window.ganvasStudio.latencies")[-strokes:]
    return {
        "run": key,
        "mode": mode,
        "median_ms": statistics.median(latencies),
        "p90_ms": percentile(latencies, 0.9),
        "model_ms": statistics.median(models),
    }


def click_class(page, name: str) -> None:
    page.click(f"#palette button:has-text('{name}')")


def drag(page, points: list[tuple[int, int]]) -> None:
    before = renders(page)
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(page, *point), steps=8)
    page.mouse.up()
    wait_shown(page, before)


def colourful_points(pixels: np.ndarray, count: int, apart: int = 12) -> list[tuple[int, int]]:
    """The most saturated pixels of a photo, at least `apart` pixels from each other (hints a user would give)."""
    saturation = pixels.max(-1).astype(int) - pixels.min(-1)
    chosen: list[tuple[int, int]] = []
    for index in np.argsort(-saturation, axis=None):
        y, x = divmod(int(index), pixels.shape[1])
        if all(max(abs(x - cx), abs(y - cy)) >= apart for cx, cy in chosen):
            chosen.append((x, y))
        if len(chosen) == count:
            break
    return chosen


def screens(page, keys: list[str], shots: Path) -> None:
    """A picture of each mode at the run's own size, after a few edits a newcomer would make."""
    for key in keys:
        before = renders(page)
        page.select_option("#model", key)
        wait_shown(page, before)
        info = page.evaluate("window.ganvasStudio.state.info")
        mode = info["modes"][0]
        names = [c["name"] for c in info["classes_list"]]
        if mode == "labels" and info["styles"]:
            inst = page.evaluate("Array.from(window.ganvasStudio.state.inst)")
            width = info["width"]
            cars = [i for i, v in enumerate(inst) if v // 1000 == names.index("car")]
            page.click("button[data-tool='object']")
            pick = cars[len(cars) // 2] if cars else len(inst) // 2
            page.mouse.click(*at(page, pick % width, pick // width))
            page.wait_for_selector("#styles button >> nth=1")
            before = renders(page)
            page.click("#styles button >> nth=1")
            wait_shown(page, before)
            name = "scene"
        elif mode == "labels":
            click_class(page, "window")
            page.fill("#size", "5")
            page.dispatch_event("#size", "input")
            drag(page, [(10, 44), (26, 44)])
            click_class(page, "door")
            drag(page, [(40, 56), (40, 62)])
            name = "labels"
        else:
            before = renders(page)
            page.click("#examples button >> nth=0")
            wait_shown(page, before)
            photo = page.evaluate("window.ganvasStudio.state.photo")
            pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(photo.split(",", 1)[1]))).convert("RGB"))
            for x, y in colourful_points(pixels, 3):
                page.fill("#picker", "#" + "".join(f"{int(v):02x}" for v in pixels[y, x]))
                before = renders(page)
                page.mouse.click(*at(page, x, y))
                wait_shown(page, before)
            page.fill("#compare", "50")
            page.dispatch_event("#compare", "input")
            name = mode
        page.screenshot(path=str(shots / f"studio_{name}.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("ganvas_demo"))
    parser.add_argument("--strokes", type=int, default=20)
    parser.add_argument("--backend", default=None, help="inference backend (default: the studio's, auto)")
    parser.add_argument("--screenshots", type=Path, default=None)
    parser.add_argument("--chromium", default=os.environ.get("GANVAS_CHROMIUM") or shutil.which("chromium"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = demo_runs(args.out, show_progress=False)
    running = Background(prepare(None, runs, port=0, backend=args.backend))
    if args.screenshots:
        args.screenshots.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            # bypass_csp: the benchmark waits on page expressions, which the studio's policy forbids
            page = browser.new_page(viewport={"width": 1280, "height": 760}, bypass_csp=True)
            page.goto(running.url)
            page.wait_for_function("Number(document.body.dataset.renders) >= 1", timeout=120_000)
            keys = page.eval_on_selector_all("#model option", "options => options.map(o => o.value)")
            rows = [measure(page, key, args.strokes) for key in keys]
            if args.screenshots:
                page.set_viewport_size({"width": 1280, "height": 720})
                screens(page, keys, args.screenshots)
            browser.close()
    finally:
        running.stop()
    print(f"stroke end to displayed output at {SIZE} x {SIZE}, {args.strokes} strokes each")
    print(f"{'run':<28} {'mode':<10} {'median':>8} {'p90':>8} {'model':>8}")
    for r in rows:
        print(f"{r['run']:<28} {r['mode']:<10} {r['median_ms']:>6.0f}ms {r['p90_ms']:>6.0f}ms {r['model_ms']:>6.0f}ms")


if __name__ == "__main__":
    main()
