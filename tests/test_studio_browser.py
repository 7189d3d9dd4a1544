"""The studio in a real browser: Debian's chromium driven by Playwright, against small trained runs.

CI installs chromium (.ci/run); without it these tests fail there (GANVAS_CI=1) and skip elsewhere.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganvas.studio import Background, prepare

CHROMIUM = os.environ.get("GANVAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def studio(studio_runs):
    running = Background(prepare(studio_runs / "checkpoints", port=0))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        why = "Debian's chromium is not installed: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("GANVAS_CI"):
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, studio):
    # The tests wait on page expressions, which the studio's Content-Security-Policy forbids; the last test runs
    # the page under it.
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(studio.url)
    page.wait_for_function("Number(document.body.dataset.renders) >= 1", timeout=30_000)
    yield page
    page.close()
    assert not errors, errors


# ------------------------------------------------------------------------------------------ helpers


def renders(page) -> int:
    return int(page.get_attribute("body", "data-renders"))


def settle(page, before: int) -> None:
    """Wait until a render newer than `before` is shown and none is pending."""
    page.wait_for_function(
        f"Number(document.body.dataset.renders) > {before} && !window.ganvasStudio.state.pending", timeout=30_000
    )


def open_run(page, key: str) -> dict:
    before = renders(page)
    page.select_option("#model", key)
    settle(page, before)
    return page.evaluate("window.ganvasStudio.state.info")


def data_url_pixels(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(np.int64)


def output(page) -> np.ndarray:
    return data_url_pixels(page.eval_on_selector("#output", "img => img.src"))


def canvas(page) -> np.ndarray:
    """The input canvas's RGB pixels, as the page holds them."""
    width, height, flat = page.evaluate(
        """() => { const c = document.getElementById('input');
        return [c.width, c.height, Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"""
    )
    return np.array(flat, dtype=np.int64).reshape(height, width, 4)[..., :3]


def ids(page) -> np.ndarray:
    width, height, flat = page.evaluate("[window.ganvasStudio.state.width, window.ganvasStudio.state.height, "
                                        "Array.from(window.ganvasStudio.state.ids)]")  # fmt: skip
    return np.array(flat).reshape(height, width)


def inst(page) -> np.ndarray:
    width, height, flat = page.evaluate("[window.ganvasStudio.state.width, window.ganvasStudio.state.height, "
                                        "Array.from(window.ganvasStudio.state.inst)]")  # fmt: skip
    return np.array(flat).reshape(height, width)


def at(page, x: float, y: float) -> tuple[float, float]:
    """The screen point of the centre of canvas pixel (x, y)."""
    box = page.locator("#input").bounding_box()
    width, height = page.evaluate("[window.ganvasStudio.state.width, window.ganvasStudio.state.height]")
    return box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height


def stroke(page, points: list[tuple[int, int]]) -> None:
    """Press at the first canvas pixel, drag through the others, release; wait for the new output."""
    before = renders(page)
    page.mouse.move(*at(page, *points[0]))
    page.mouse.down()
    for point in points[1:]:
        page.mouse.move(*at(page, *point), steps=6)
    page.mouse.up()
    settle(page, before)


def click(page, x: int, y: int, wait: bool = True, **options) -> None:
    before = renders(page)
    page.mouse.click(*at(page, x, y), **options)
    if wait:
        settle(page, before)


def fresh_render(page) -> np.ndarray:
    """The output the server gives now for the page's current label map (a request of the test's own)."""
    url = page.evaluate(
        """async () => { const s = window.ganvasStudio.state; let text = '';
        for (const b of s.ids) text += String.fromCharCode(b);
        const body = {model: s.key, mode: 'labels', width: s.width, height: s.height, ids: btoa(text),
          styles: s.styles, seed: 0, channel: 'check', seq: 0};
        if (s.info.instances) { let inst = '';
          for (const b of new Uint8Array(s.inst.buffer)) inst += String.fromCharCode(b);
          body.inst = btoa(inst); }
        const r = await fetch('/api/render', {method: 'POST', headers: {'X-Ganvas-Token': location.hash.slice(1),
          'Content-Type': 'application/json'}, body: JSON.stringify(body)});
        return (await r.json()).image; }"""
    )
    return data_url_pixels(url)


def choose_class(page, name: str) -> int:
    info = page.evaluate("window.ganvasStudio.state.info")
    cls = next(c["id"] for c in info["classes_list"] if c["name"] == name)
    page.click(f"#palette button[data-cls='{cls}']")
    return cls


def downloaded(page, button: str, path: Path) -> Path:
    """Click a download button and save what the browser downloads to path."""
    with page.expect_download() as download:
        page.click(button)
    download.value.save_as(path)
    return path


def distance_from(mask: np.ndarray) -> np.ndarray:
    """Chebyshev distance of every pixel to the nearest True pixel of mask."""
    ys, xs = np.nonzero(mask)
    yy, xx = np.mgrid[: mask.shape[0], : mask.shape[1]]
    return np.min(np.maximum(np.abs(yy[..., None] - ys), np.abs(xx[..., None] - xs)), axis=-1)


# ------------------------------------------------------------------------------------------ label maps


def test_a_brush_stroke_changes_the_output_inside_the_stroke_and_little_far_from_it(page):
    open_run(page, "facades")
    choose_class(page, "shop")
    before_ids, before = ids(page), output(page)
    stroke(page, [(6, 8), (14, 8), (14, 12)])
    changed = ids(page) != before_ids
    assert changed.sum() >= 20
    diff = np.abs(output(page) - before).mean(-1)
    far = distance_from(changed) > 8
    assert far.sum() > 100
    assert diff[changed].mean() > 20
    assert diff[changed].mean() > 4 * diff[far].mean(), (diff[changed].mean(), diff[far].mean())


def test_the_label_canvas_holds_only_palette_colours_after_strokes(page):
    info = open_run(page, "facades")
    choose_class(page, "door")
    page.fill("#size", "7")
    page.dispatch_event("#size", "input")
    stroke(page, [(2, 3), (29, 27), (5, 30)])
    colours = {tuple(c["color"]) for c in info["classes_list"]}
    shown = {tuple(p) for p in canvas(page).reshape(-1, 3).tolist()}
    assert shown <= colours, shown - colours
    door = next(c["color"] for c in info["classes_list"] if c["name"] == "door")
    assert tuple(door) in shown


def test_undo_and_redo_restore_the_outputs_exactly(page):
    open_run(page, "facades")
    first, first_ids = output(page), ids(page)
    choose_class(page, "window")
    stroke(page, [(3, 20), (28, 20)])
    second, second_ids = output(page), ids(page)
    assert np.abs(second - first).sum() > 0
    before = renders(page)
    page.click("#undo")
    settle(page, before)
    assert np.array_equal(output(page), first) and np.array_equal(ids(page), first_ids)
    before = renders(page)
    page.click("#redo")
    settle(page, before)
    assert np.array_equal(output(page), second) and np.array_equal(ids(page), second_ids)


def test_undo_after_strokes_faster_than_renders_shows_the_restored_scenes_output(page):
    open_run(page, "facades")
    choose_class(page, "door")
    before = renders(page)
    for row in (6, 16):  # the second stroke starts before the first one's output is back
        page.mouse.move(*at(page, 3, row))
        page.mouse.down()
        page.mouse.move(*at(page, 28, row), steps=2)
        page.mouse.up()
    settle(page, before)
    before = renders(page)
    page.click("#undo")
    settle(page, before)
    page.wait_for_timeout(200)
    assert np.array_equal(output(page), fresh_render(page))


def test_fill_paints_the_clicked_region_and_nothing_else(page):
    info = open_run(page, "facades")
    sky = next(c["id"] for c in info["classes_list"] if c["name"] == "sky")
    start = ids(page)
    assert start[0, 0] == sky
    shop = choose_class(page, "shop")
    page.click("button[data-tool='fill']")
    click(page, 0, 0)
    after = ids(page)
    assert (after == sky).sum() == 0  # the sky is one connected region
    assert np.array_equal(after[start != sky], start[start != sky])
    assert np.all(after[start == sky] == shop)


def test_an_uploaded_id_png_becomes_the_canvas(page, tmp_path):
    info = open_run(page, "facades")
    labels = np.zeros((24, 40), np.uint8)
    labels[:, 20:] = 1
    labels[8:16, 4:12] = 2
    Image.fromarray(labels).save(tmp_path / "ids.png")
    before = renders(page)
    page.set_input_files("#upload-labels", str(tmp_path / "ids.png"))
    settle(page, before)
    assert np.array_equal(ids(page), labels)
    palette = {c["id"]: c["color"] for c in info["classes_list"]}
    assert np.array_equal(canvas(page), np.array([palette[i] for i in range(3)])[labels])
    assert output(page).shape == (24, 40, 3)


def test_the_newest_stroke_wins_and_the_shown_output_is_the_final_scenes(page):
    open_run(page, "facades")
    choose_class(page, "balcony")
    before = renders(page)
    for row in range(4, 28, 4):  # strokes faster than renders
        page.mouse.move(*at(page, 2, row))
        page.mouse.down()
        page.mouse.move(*at(page, 29, row), steps=2)
        page.mouse.up()
    settle(page, before)
    page.wait_for_timeout(300)
    assert np.array_equal(output(page), fresh_render(page))


# ------------------------------------------------------------------------------------------ objects and styles


def test_picking_a_style_for_an_object_changes_that_object_only(page):
    open_run(page, "streets")
    scene = inst(page)
    objects = [i for i in np.unique(scene) if i >= 1000]
    target = max(objects, key=lambda i: (scene == i).sum())
    mask = scene == target
    ys, xs = np.nonzero(mask)
    pick = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    page.click("button[data-tool='object']")
    page.mouse.click(*at(page, int(xs[pick]), int(ys[pick])))
    page.wait_for_selector("#styles button >> nth=2")
    assert page.locator("#styles button").count() == 3
    base = output(page)
    changes = []
    for k in range(3):
        before = renders(page)
        page.click(f"#styles button[data-style='{k}']")
        settle(page, before)
        changes.append(np.abs(output(page) - base).mean(-1))
    diff = max(changes, key=lambda d: d[mask].mean())
    assert diff[mask].mean() > 5
    # pix2pixHD's instance norm ties every pixel to the whole image's statistics, so far pixels move a little
    far = distance_from(mask) > 10
    assert diff[mask].mean() > 3 * diff[far].mean(), (diff[mask].mean(), diff[far].mean())
    assert page.evaluate("window.ganvasStudio.state.styles")[str(target)] in (0, 1, 2)


def test_an_object_given_a_style_then_another_class_renders_and_stale_previews_are_dropped(page):
    info = open_run(page, "streets")
    scene = inst(page)
    objects = sorted((i for i in np.unique(scene) if i >= 1000), key=lambda i: -(scene == i).sum())[:3]
    page.click("button[data-tool='object']")
    for target in objects:  # quick clicks on three objects: one row of previews, the last one's
        y, x = np.argwhere(scene == target)[0]
        page.mouse.click(*at(page, int(x), int(y)))
    page.wait_for_selector("#styles button >> nth=2")
    page.wait_for_timeout(500)
    assert page.locator("#styles button").count() == 3
    before = renders(page)
    page.click("#styles button[data-style='1']")
    settle(page, before)
    other = (
        "person"
        if objects[-1] // 1000 != next(c["id"] for c in info["classes_list"] if c["name"] == "person")
        else "car"
    )
    choose_class(page, other)
    before = renders(page)
    page.click("#relabel")
    settle(page, before)
    assert page.is_hidden("#error")
    assert other in page.inner_text("#object-info")


def test_relabelling_an_object_and_stamping_one_give_new_instances(page):
    info = open_run(page, "streets")
    car = next(c["id"] for c in info["classes_list"] if c["name"] == "car")
    page.click("button[data-tool='stamp']")
    page.wait_for_selector("#objects button")
    page.click("#objects button >> nth=0")
    stamped_cls = page.evaluate("window.ganvasStudio.state.objects[0].cls")
    before_inst = inst(page)
    click(page, 32, 16)
    new = set(np.unique(inst(page)).tolist()) - set(np.unique(before_inst).tolist())
    assert len(new) == 1 and next(iter(new)) // 1000 == stamped_cls
    (stamped,) = new
    page.click("button[data-tool='object']")
    stamped_mask = inst(page) == stamped
    where = np.argwhere(stamped_mask)[0]
    page.mouse.click(*at(page, int(where[1]), int(where[0])))
    other = choose_class(page, "person" if stamped_cls == car else "car")
    before = renders(page)
    page.click("#relabel")
    settle(page, before)
    after = inst(page)
    relabelled = int(after[where[0], where[1]])
    # the whole object, and only it, becomes a fresh object of the chosen class
    assert stamped not in after and relabelled // 1000 == other and relabelled not in before_inst
    assert np.array_equal(after == relabelled, stamped_mask) and np.all(ids(page)[stamped_mask] == other)


# ------------------------------------------------------------------------------------------ colour hints


def test_a_colour_hint_pulls_the_output_near_it_towards_the_chosen_colour(page):
    open_run(page, "hints")
    photo = data_url_pixels(page.evaluate("window.ganvasStudio.state.photo"))
    x, y = 16, 16
    chosen = (40, 200, 40)
    page.fill("#picker", "#28c828")
    before = output(page)
    click(page, x, y)
    after = output(page)
    near = (slice(y - 2, y + 3), slice(x - 2, x + 3))

    def chroma_towards(image):
        # the share of the chosen colour's direction (green minus the pixel's grey) in the output
        grey = image[near].mean(-1, keepdims=True)
        return float(((image[near] - grey) * (np.array(chosen) - np.mean(chosen))).sum(-1).mean())

    assert photo.shape == after.shape
    assert chroma_towards(after) > chroma_towards(before) + 100, (chroma_towards(before), chroma_towards(after))
    assert page.evaluate("window.ganvasStudio.state.hints.length") == 1
    # right click removes the hint and gives back the output without it
    click(page, x, y, button="right")
    assert np.array_equal(output(page), before)


def test_a_hint_moves_with_a_drag_and_grows_with_the_wheel(page):
    open_run(page, "hints")
    click(page, 10, 10)
    before = renders(page)
    page.mouse.move(*at(page, 10, 10))
    page.mouse.down()
    page.mouse.move(*at(page, 20, 22), steps=5)
    page.mouse.up()
    settle(page, before)
    hint = page.evaluate("window.ganvasStudio.state.hints[0]")
    assert (hint["x"], hint["y"]) == (20, 22)
    moved = output(page)
    before = renders(page)
    page.mouse.wheel(0, -100)
    settle(page, before)
    assert page.evaluate("window.ganvasStudio.state.hints[0].patch") == hint["patch"] + 1
    assert np.abs(output(page) - moved).sum() > 0


def test_a_sketch_stroke_is_black_on_white_and_changes_the_output(page):
    open_run(page, "cycle")
    before = renders(page)
    page.click("#modes button[data-mode='sketch']")
    settle(page, before)
    blank = output(page)
    stroke(page, [(4, 4), (27, 27)])
    shown = {tuple(p) for p in canvas(page).reshape(-1, 3).tolist()}
    assert shown == {(0, 0, 0), (255, 255, 255)}
    assert np.abs(output(page) - blank).sum() > 0


def test_undo_brings_back_the_photo_an_example_replaced(page):
    open_run(page, "hints")
    first = page.evaluate("window.ganvasStudio.state.photo")
    click(page, 12, 12)
    before = renders(page)
    page.click("#examples button >> nth=1")
    settle(page, before)
    assert page.evaluate("window.ganvasStudio.state.photo") != first
    before = renders(page)
    page.click("#hint-undo")
    settle(page, before)
    assert page.evaluate("window.ganvasStudio.state.photo") == first
    assert page.evaluate("window.ganvasStudio.state.hints.length") == 1


def test_suggested_colours_appear_for_a_hint(page):
    open_run(page, "hints")
    click(page, 8, 8)
    page.wait_for_selector("#suggestions button")
    assert page.locator("#suggestions button").count() >= 2


# ------------------------------------------------------------------------------------------ files


def test_download_returns_the_displayed_output(page, tmp_path):
    open_run(page, "facades")
    choose_class(page, "door")
    stroke(page, [(10, 10), (20, 20)])
    path = downloaded(page, "#download-output", tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(path).convert("RGB")), output(page))


def test_the_downloaded_label_map_is_an_id_png_of_the_canvas(page, tmp_path):
    open_run(page, "streets")
    choose_class(page, "car")
    stroke(page, [(5, 5), (40, 20)])
    saved = Image.open(downloaded(page, "#download-labels", tmp_path / "labels.png"))
    assert saved.mode == "L"
    assert np.array_equal(np.asarray(saved), ids(page))


def test_a_downloaded_session_reloads_the_same_scene_and_output(page, tmp_path):
    open_run(page, "streets")
    choose_class(page, "road")
    stroke(page, [(4, 24), (60, 24)])
    shown, scene = output(page), inst(page)
    path = downloaded(page, "#download-session", tmp_path / "session.json")
    assert json.loads(path.read_text())["run"] == "streets"
    open_run(page, "facades")
    before = renders(page)
    page.set_input_files("#load-session", str(path))
    settle(page, before)
    page.wait_for_function("window.ganvasStudio.state.key === 'streets'")
    assert np.array_equal(inst(page), scene)
    assert np.array_equal(output(page), shown)


def test_a_bad_session_changes_nothing_and_says_why(page, tmp_path):
    open_run(page, "facades")
    choose_class(page, "door")
    stroke(page, [(4, 4), (20, 20)])
    scene, shown = ids(page), output(page)
    bad = {"format": "ganvas.studio.session", "version": 1, "run": "streets", "mode": "labels", "width": 64,
           "height": 32, "ids": "AAAA", "inst": "AAAAAA==", "styles": {}}  # fmt: skip
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    page.set_input_files("#load-session", str(tmp_path / "bad.json"))
    page.wait_for_selector("#error:not([hidden])")
    assert "maps are not its size" in page.inner_text("#error")
    assert page.evaluate("window.ganvasStudio.state.key") == "facades"
    assert np.array_equal(ids(page), scene) and np.array_equal(output(page), shown)


def test_a_bad_upload_shows_one_sentence_and_the_page_goes_on(page, tmp_path):
    open_run(page, "facades")
    (tmp_path / "notes.png").write_text("not an image")
    page.set_input_files("#upload-labels", str(tmp_path / "notes.png"))
    page.wait_for_selector("#error:not([hidden])")
    assert "not a readable PNG" in page.inner_text("#error")
    choose_class(page, "door")
    stroke(page, [(10, 10), (20, 12)])
    assert page.is_hidden("#error")


def test_cycle_gan_runs_both_directions(page):
    info = open_run(page, "cycle")
    assert info["directions"] == ["AtoB", "BtoA"]
    forward = output(page)
    before = renders(page)
    page.select_option("#direction", "BtoA")
    settle(page, before)
    assert np.abs(output(page) - forward).sum() > 0


def test_the_page_without_its_token_says_how_to_open_it(browser, studio):
    page = browser.new_page()
    page.goto(studio.url.split("#")[0])
    page.wait_for_selector("#error:not([hidden])")
    assert "token" in page.inner_text("#error")
    page.close()


def test_the_page_works_under_its_content_security_policy(browser, studio):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(studio.url)
    page.wait_for_selector("#output[src^='data:image/png']", timeout=30_000)
    page.close()
    assert not errors, errors
