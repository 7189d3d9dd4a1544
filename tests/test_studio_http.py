"""The studio over HTTP: the Guard's checks (Host, token, body cap), the JSON API, and what its renders show.

Starlette's TestClient drives `prepare(...).app` in process (nothing listens on the bound socket), with the
base URL the studio printed so that the Host header is the right one unless a test changes it. Every bad
request must get its status code and {"error": one sentence naming the problem}, and the studio must go on
serving afterwards. The runs are the small ones of the session fixture `studio_runs` (tests/conftest.py).
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import io
import json
import os
import re
import struct
import uuid
import warnings
import zlib
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # newer Starlette asks for httpx2; the client is the same
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from starlette.testclient import TestClient

import ganvas.studio.catalog as catalog  # noqa: E402
from ganvas.errors import OptionsError  # noqa: E402
from ganvas.studio import Launch, prepare  # noqa: E402

RUNS = {"facades": "pix2pix", "streets": "pix2pixhd", "hints": "colorization_hints", "cycle": "cycle_gan"}
SMALL_BODY_MB = 1
SMALL_PIXELS = 512 * 512


# ---------------------------------------------------------------------------------------------------
# A studio to talk to


class Studio:
    """A prepared studio and a client for it; every response is checked for CORS headers on the way."""

    def __init__(self, launch: Launch) -> None:
        self.launch = launch
        self.port = launch.sock.getsockname()[1]
        launch.sock.close()  # the app is driven in process; nothing serves the socket
        self.client = TestClient(launch.app, base_url=f"http://127.0.0.1:{self.port}", raise_server_exceptions=False)
        self.client.event_hooks = {"response": [_no_cors]}
        self.auth = {"X-Ganvas-Token": launch.token}

    def get(self, path: str, **headers: str):
        return self.client.get(path, headers={**self.auth, **headers})

    def post(self, path: str, body: dict, **headers: str):
        return self.client.post(path, json=body, headers={**self.auth, **headers})

    def ok(self, path: str, body: dict | None = None) -> dict:
        """The JSON of a request that must succeed."""
        response = self.get(path) if body is None else self.post(path, body)
        assert response.status_code == 200, response.text
        return response.json()

    def serving(self) -> None:
        """The studio still answers a good request (after a bad one)."""
        response = self.get("/api/models")
        assert response.status_code == 200, response.text
        assert {m["id"] for m in response.json()["models"]} == set(RUNS)


def _no_cors(response) -> None:
    assert not any(k.lower().startswith("access-control-") for k in response.headers), dict(response.headers)


def refused(response, status: int, *words: str) -> str:
    """Assert the status and an {"error": sentence} body naming the problem (each of `words`); the sentence."""
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert list(body) == ["error"], body
    sentence = body["error"]
    assert isinstance(sentence, str) and 15 <= len(sentence) <= 300, sentence
    assert "\n" not in sentence and not re.search(r"[.!?]\s+[A-Z]", sentence), f"not one sentence: {sentence}"
    for word in words:
        assert word.lower() in sentence.lower(), f"{word!r} not in {sentence!r}"
    return sentence


@pytest.fixture(scope="module")
def studio(studio_runs) -> Studio:
    return Studio(prepare(studio_runs / "checkpoints"))


@pytest.fixture(scope="module")
def small(studio_runs) -> Studio:
    """A studio with small limits: 1 MB bodies, 512 x 512 pixels."""
    return Studio(prepare(studio_runs / "checkpoints", max_body_mb=SMALL_BODY_MB, max_pixels=SMALL_PIXELS))


# ---------------------------------------------------------------------------------------------------
# Encoding helpers


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return b64(buffer.getvalue())


def decode(data_url: str) -> np.ndarray:
    """A render's data URL as an H x W x 3 float array (checking it is a PNG data URL)."""
    head, payload = data_url.split(",", 1)
    assert head == "data:image/png;base64"
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB")).astype(np.float64)


def ids_field(ids: np.ndarray) -> str:
    return b64(np.ascontiguousarray(ids, np.uint8).tobytes())


def inst_field(inst: np.ndarray) -> str:
    return b64(np.ascontiguousarray(inst, "<i4").tobytes())


def bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of zeros, crafted row by row: a few KB to send, width x height pixels once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row, packer = b"\0" * (1 + (width + 7) // 8), zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def box_distance(shape: tuple[int, int], top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """Each pixel's distance (chessboard) to the box rows top..bottom-1, columns left..right-1; 0 inside."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return np.maximum(np.maximum(top - yy, yy - (bottom - 1)), np.maximum(left - xx, xx - (right - 1)))


def street_scene(studio: Studio) -> tuple[dict, np.ndarray, np.ndarray]:
    """The first example scene of the streets run: (a labels render request, label ids, instance ids)."""
    example = studio.ok("/api/models/streets/examples")["examples"][0]
    width, height = example["width"], example["height"]
    ids = np.frombuffer(base64.b64decode(example["ids"]), np.uint8).reshape(height, width)
    inst = np.frombuffer(base64.b64decode(example["inst"]), "<i4").reshape(height, width)
    request = {"model": "streets", "mode": "labels", "width": width, "height": height, "seed": 0}
    return {**request, "ids": example["ids"], "inst": example["inst"]}, ids, inst


def example_image(studio: Studio, key: str) -> str:
    return studio.ok(f"/api/models/{key}/examples")["examples"][0]["image"]


# ---------------------------------------------------------------------------------------------------
# 1. Listing and describing


def test_listing_and_descriptions(studio):
    listing = studio.ok("/api/models")["models"]
    assert {m["id"]: m["kind"] for m in listing} == RUNS
    expected = {
        "facades": {"modes": ["labels", "translate"], "label_encoding": "colours", "classes": 8},
        "streets": {"modes": ["labels"], "label_encoding": "ids", "classes": 8, "styles": True},
        "hints": {"modes": ["colourise", "translate"], "label_encoding": "", "classes": 0},
        "cycle": {"modes": ["sketch", "translate"], "label_encoding": "", "directions": ["AtoB", "BtoA"]},
    }
    for key, want in expected.items():
        info = studio.ok(f"/api/models/{key}")
        assert info["id"] == key and info["kind"] == RUNS[key] and info["loaded"] is True
        assert sorted(info["modes"]) == sorted(want["modes"]), key
        assert info["label_encoding"] == want["label_encoding"], key
        assert len(info["classes_list"]) == want.get("classes", 0), key
        assert info["directions"] == want.get("directions", []), key
        assert info["styles"] is want.get("styles", False), key
        assert info["instances"] is (key == "streets") and info["objects"] is (key == "streets"), key
        assert (info["width"], info["height"]) == ((64, 32) if key == "streets" else (32, 32)), key
    facades = studio.ok("/api/models/facades")["classes_list"]
    assert [c["id"] for c in facades] == list(range(8)) and facades[0]["name"] == "sky"
    assert studio.ok("/api/models/streets")["style_source"] == "inst"
    objects = studio.ok("/api/models/streets/objects")["objects"]
    assert objects and {o["cls"] for o in objects} <= set(range(8))
    for obj in objects:
        mask = base64.b64decode(obj["mask"])
        assert len(mask) == obj["width"] * obj["height"] and set(mask) <= {0, 1} and 1 in mask
    assert studio.ok("/api/models/facades/objects")["objects"] == []
    scenes = studio.ok("/api/models/streets/examples")["examples"]
    assert scenes and all(s["kind"] == "labels" and s["ids"] and s["inst"] for s in scenes)
    photos = studio.ok("/api/models/cycle/examples")["examples"]
    assert photos and all(p["kind"] == "image" and p["image"].startswith("data:image/png;base64,") for p in photos)


# ---------------------------------------------------------------------------------------------------
# 2. Token, Host, page, CORS


def test_token_is_required(studio):
    refused(studio.client.get("/api/models"), 403, "token")
    refused(studio.client.get("/api/models", headers={"X-Ganvas-Token": studio.auth["X-Ganvas-Token"][:-1]}), 403)
    refused(studio.client.get("/api/models", headers={"X-Ganvas-Token": "x" * 200}), 403, "token")
    refused(studio.client.get("/api/models/streets", headers={"X-Ganvas-Token": ""}), 403, "token")
    refused(studio.client.post("/api/render", json={"model": "streets"}), 403, "token")
    studio.serving()


@pytest.mark.parametrize("path", ["/", "/api/models", "/static/studio.js"])
def test_host_header_is_checked(studio, path):
    for host in (
        f"evil.example:{studio.port}",
        f"127.0.0.1:{studio.port + 1}",
        "127.0.0.1",
        f"127.0.0.2:{studio.port}",
    ):
        refused(studio.get(path, Host=host), 421, host, f"127.0.0.1:{studio.port}")
        studio.serving()
    for host in (f"127.0.0.1:{studio.port}", f"localhost:{studio.port}", f"[::1]:{studio.port}"):
        assert studio.get(path, Host=host).status_code == 200, host


def test_page_needs_no_token(studio):
    page = studio.client.get("/", headers={"Origin": "http://evil.example"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<html" in page.text.lower() and studio.launch.token not in page.text
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    assert studio.launch.url == f"http://127.0.0.1:{studio.port}/#{studio.launch.token}"


def test_no_cors_headers(studio):
    origin = {"Origin": "http://evil.example"}
    for response in (
        studio.get("/api/models", **origin),
        studio.get("/api/models/nope", **origin),
        studio.post("/api/render", {"model": "cycle", "mode": "translate", "image": example_image(studio, "cycle")}),
        studio.client.get("/api/models", headers=origin),
        studio.client.options(
            "/api/render", headers={**origin, **studio.auth, "Access-Control-Request-Method": "POST"}
        ),
    ):
        assert "access-control-allow-origin" not in response.headers  # also checked by every client's hook
    studio.serving()


# ---------------------------------------------------------------------------------------------------
# 3. Body cap


def test_body_over_the_cap_with_content_length(small):
    cap = SMALL_BODY_MB * 2**20
    response = small.client.post("/api/render", content=b"x" * (cap + 1), headers=small.auth)
    refused(response, 413, "limit", f"{SMALL_BODY_MB} MB")
    small.serving()
    # Just under the cap is read, also when sent without a Content-Length.
    good = {"model": "cycle", "mode": "translate", "image": example_image(small, "cycle")}
    padded = (b'{"pad": "' + b" " * (cap - 20_000) + b'", ' + _json(good)[1:]).ljust(cap - 10, b" ")
    assert small.client.post("/api/render", content=padded, headers=small.auth).status_code == 200
    streamed = small.client.post("/api/render", content=iter([_json(good)]), headers=small.auth)
    assert streamed.status_code == 200 and streamed.request.headers.get("transfer-encoding") == "chunked"


def _json(data: dict) -> bytes:
    return json.dumps(data).encode()


def test_streamed_body_over_the_cap(small):
    chunks = (b"x" * 2**16 for _ in range(SMALL_BODY_MB * 16 + 4))  # no Content-Length: read past the cap
    response = small.client.post("/api/render", content=chunks, headers=small.auth)
    assert response.request.headers.get("transfer-encoding") == "chunked"
    small.serving()
    refused(response, 413, "limit", f"{SMALL_BODY_MB} MB")


# ---------------------------------------------------------------------------------------------------
# 4-5. Images: decompression bombs, formats


def test_bomb_is_refused_before_decoding(studio, small):
    assert np.asarray(Image.open(io.BytesIO(bomb(64, 48)))).shape == (48, 64)  # the crafting makes real PNGs
    over_pillow, over_limit = bomb(16000, 16000), bomb(4000, 4000)
    assert len(over_pillow) < 2**20 and len(over_limit) < 2**20
    cases = [(studio, over_pillow), (small, over_limit), (small, over_pillow)]
    for server, data in cases:
        for path, body, what in (
            ("/api/render", {"model": "cycle", "mode": "translate", "image": b64(data)}, "the image"),
            ("/api/render", {"model": "hints", "mode": "colourise", "image": b64(data), "hints": []}, "the image"),
            ("/api/suggest", {"model": "hints", "image": b64(data), "x": 0, "y": 0}, "the image"),
            ("/api/labels", {"model": "streets", "label": b64(data)}, "the label map"),
        ):
            sentence = refused(server.post(path, body), 400, what, "pixels")
            assert "limit" in sentence or "allows" in sentence, sentence
            server.serving()
    sentence = refused(small.post("/api/labels", {"model": "streets", "label": b64(over_limit)}), 400)
    assert "4000 x 4000" in sentence and f"{SMALL_PIXELS:,}" in sentence


def test_other_formats_are_refused(studio):
    image = Image.new("RGB", (32, 32), (10, 120, 200))
    buffers = {"text": b64(b"hello, this is no image at all\n" * 4), "empty PNG": b64(b"\x89PNG\r\n\x1a\n")}
    for fmt in ("GIF", "BMP", "TIFF"):
        buffers[fmt] = png(image, fmt)
    for name, data in buffers.items():
        for path, body, what in (
            ("/api/render", {"model": "cycle", "mode": "translate", "image": data}, "the image"),
            ("/api/labels", {"model": "facades", "label": data}, "the label map"),
        ):
            sentence = refused(studio.post(path, body), 400, what, "PNG")
            assert "not a readable" in sentence, (name, sentence)
            studio.serving()
    refused(
        studio.post("/api/render", {"model": "cycle", "mode": "translate", "image": "%%% no base64"}), 400, "base64"
    )
    refused(studio.post("/api/render", {"model": "cycle", "mode": "translate"}), 400, "the image is missing")
    for fmt in ("PNG", "JPEG", "WEBP"):  # what is allowed, also as a data URL
        data = png(image, fmt)
        for value in (data, f"data:image/{fmt.lower()};base64,{data}"):
            answer = studio.ok("/api/render", {"model": "cycle", "mode": "translate", "image": value})
            assert decode(answer["image"]).shape == (32, 32, 3)


# ---------------------------------------------------------------------------------------------------
# 6. Unknown runs and path-like keys


@contextlib.contextmanager
def watching_files(monkeypatch):
    """Records the paths opened, listed or stat'ed meanwhile; loading a run or its options fails."""
    seen: list[str] = []

    def spy(real):
        def wrapper(path=".", *args, **kwargs):
            seen.append(str(path))
            return real(path, *args, **kwargs)

        return wrapper

    def no_load(*args, **kwargs):
        raise AssertionError(f"a run was loaded: {args}")

    with monkeypatch.context() as patch:
        patch.setattr(catalog, "load", no_load)
        patch.setattr(catalog, "load_saved_options", no_load)
        for module, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "stat"), (os, "scandir")):
            patch.setattr(module, name, spy(getattr(module, name)))
        patch.setattr(os, "listdir", spy(os.listdir))
        yield seen


KEYS = ["nope", "Streets", "../streets", "/etc/passwd", "streets/../../x", "..", "./streets", "streets\x00", "streets "]


def test_unknown_and_path_like_keys(studio_runs, monkeypatch):
    fresh = Studio(prepare(studio_runs / "checkpoints"))  # nothing loaded yet: nothing may load below
    with watching_files(monkeypatch) as seen:
        ask_for_unknown_runs(fresh)
    touched = [p for p in seen if str(studio_runs) in p or "passwd" in p or ".." in p]
    assert touched == [], touched
    fresh.serving()
    assert not any(m["loaded"] for m in fresh.ok("/api/models")["models"])


def ask_for_unknown_runs(fresh: Studio) -> None:
    for key in KEYS:
        for suffix in ("", "/objects", "/examples"):
            response = fresh.get(f"/api/models/{quote(key, safe='')}{suffix}")
            assert response.status_code == 404, (key, suffix, response.text)
            # a key the URL normalises away (slashes, dots) matches no route; the others are looked up, not found
            sentence = refused(response, 404)
            assert "no such page" in sentence or "runs: cycle, facades, hints, streets" in sentence, sentence
        for path, extra in (
            ("/api/render", {"mode": "labels", "width": 4, "height": 4, "ids": ids_field(np.zeros(16))}),
            ("/api/styles", {"instance": 5001}),
            ("/api/suggest", {"x": 0, "y": 0}),
            ("/api/labels", {"label": png(Image.new("L", (4, 4)))}),
        ):
            refused(fresh.post(path, {"model": key, **extra}), 404, "there is no run", repr(key)[1:-1][:20])
    for value in (None, 3, ["streets"], {"key": "streets"}, "streets/", "checkpoints/streets"):
        refused(fresh.post("/api/render", {"model": value, "mode": "labels"}), 404, "there is no run")


# ---------------------------------------------------------------------------------------------------
# 7. Bad scenes and bodies


def test_bad_scene_requests(studio, small):
    scene, ids, _ = street_scene(studio)
    bad = ids.copy()
    bad[3, 5] = 9
    refused(studio.post("/api/render", {**scene, "ids": ids_field(bad)}), 400, "class 9", "0 to 7")
    studio.serving()
    square = np.zeros((32, 32), np.uint8)
    square[:4] = 9
    facades = {"model": "facades", "mode": "labels", "width": 32, "height": 32, "ids": ids_field(square)}
    refused(studio.post("/api/render", facades), 400, "class 9", "facades")
    refused(studio.post("/api/render", {**scene, "ids": ids_field(ids)[:-4]}), 400, "bytes", "64 x 32")
    refused(studio.post("/api/render", {**scene, "width": 63}), 400, "bytes", "63 x 32")
    refused(studio.post("/api/render", {**scene, "inst": inst_field(np.full(ids.shape, -1))}), 400, "negative")
    refused(studio.post("/api/render", {**scene, "inst": inst_field(np.zeros(5))}), 400, "instance map", "bytes")
    refused(studio.post("/api/render", {**scene, "ids": "not base64!"}), 400, "label map", "base64")
    refused(studio.post("/api/render", {**scene, "width": "wide"}), 400, "width", "whole number")
    refused(studio.post("/api/render", {**scene, "mode": "sketch"}), 400, "sketch", "labels")
    refused(studio.post("/api/render", {**scene, "styles": [1, 2]}), 400, "styles")
    refused(studio.post("/api/render", {**scene, "styles": {"5001": 99}}), 400, "style", "0 to 2")
    # The canvas is checked before its ids are read.
    for width, height in ((1024, 1024), (513, 512), (0, 16), (-64, 32)):
        big = {**scene, "width": width, "height": height, "ids": ""}
        refused(small.post("/api/render", big), 400, f"{width} x {height} canvas", f"{SMALL_PIXELS:,} pixels")
    refused(studio.post("/api/render", {**scene, "width": 5000, "height": 1}), 400, "5000 x 1", "4096")
    small.serving()
    for raw in (b"{not json", b"\xff\xfe\x00", b"", b"[1, 2]", b'"streets"', b"null"):
        refused(studio.client.post("/api/render", content=raw, headers=studio.auth), 400, "JSON")
        studio.serving()


def test_negative_seed_is_named(studio):
    scene, _, _ = street_scene(studio)
    refused(studio.post("/api/render", {**scene, "seed": -5}), 400, "seed")


# ---------------------------------------------------------------------------------------------------
# 8-9. Label renders and styles on streets


def test_label_render_size_locality_and_determinism(studio):
    scene, ids, inst = street_scene(studio)
    first = studio.ok("/api/render", {**scene, "channel": "locality", "seq": 1})
    assert first["seq"] == 1 and first["notes"] == [] and first["ms"] >= 0
    again = studio.ok("/api/render", {**scene, "channel": "locality", "seq": 2})
    assert again["image"] == first["image"]  # byte for byte
    before = decode(first["image"])
    assert before.shape == (ids.shape[0], ids.shape[1], 3)
    top, left, bottom, right = 4, 8, 16, 24
    painted, painted_inst = ids.copy(), inst.copy()
    other = 0 if int(np.bincount(ids[top:bottom, left:right].ravel()).argmax()) != 0 else 1
    painted[top:bottom, left:right] = other
    painted_inst[top:bottom, left:right] = other
    edit = {**scene, "ids": ids_field(painted), "inst": inst_field(painted_inst)}
    after = decode(studio.ok("/api/render", edit)["image"])
    change = np.abs(after - before).mean(-1)
    distance = box_distance(change.shape, top, left, bottom, right)
    inside, far = change[distance <= 0].mean(), change[distance >= 8].mean()
    assert inside > 5 and inside > 2 * far, (inside, far)
    # Other canvas sizes render at their size too.
    for width, height in ((37, 21), (1, 1)):
        blank = {"model": "streets", "mode": "labels", "width": width, "height": height}
        answer = studio.ok("/api/render", {**blank, "ids": ids_field(np.ones((height, width)))})
        assert decode(answer["image"]).shape == (height, width, 3)


def test_styles_of_an_object(studio):
    scene, _, inst = street_scene(studio)
    objects = [int(i) for i in np.unique(inst) if i >= 1000]
    assert objects, "the example scene has no objects"
    instance = max(objects, key=lambda i: int((inst == i).sum()))
    answer = studio.ok("/api/styles", {**scene, "instance": instance})
    assert answer["instance"] == instance and answer["chosen"] is None
    top, left, bottom, right = answer["box"]
    rows, cols = np.nonzero((inst == instance).any(1))[0], np.nonzero((inst == instance).any(0))[0]
    assert top <= rows[0] and rows[-1] < bottom and left <= cols[0] and cols[-1] < right
    assert len(answer["previews"]) == 3
    previews = [decode(p) for p in answer["previews"]]
    assert all(p.shape == (bottom - top, right - left, 3) for p in previews)
    assert len({p.tobytes() for p in previews}) == 3
    # The styles' renders differ around the object; pix2pixHD's instance norm moves every pixel a little.
    renders = [decode(studio.ok("/api/render", {**scene, "styles": {str(instance): k}})["image"]) for k in (0, 1)]
    assert np.array_equal(renders[0][top:bottom, left:right], previews[0])
    change = np.abs(renders[1] - renders[0]).mean(-1)
    distance = box_distance(change.shape, rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    inside, outside = change[distance <= 0].mean(), change[distance >= 4].mean()
    assert inside > 2 and inside > 2 * outside, (inside, outside)
    assert change[distance >= 8].max() < change[distance <= 0].max()
    refused(studio.post("/api/styles", {**scene, "instance": 4321}), 400, "no instance 4321")
    refused(studio.post("/api/styles", {**scene}), 400, "instance id", "whole number")
    facades = {"model": "facades", "mode": "labels", "width": 32, "height": 32, "ids": ids_field(np.zeros((32, 32)))}
    refused(studio.post("/api/styles", {**facades, "instance": 1}), 400, "no styles", "--instance_feat")
    studio.serving()


# ---------------------------------------------------------------------------------------------------
# 10. Label uploads


def test_label_uploads(studio):
    palette = np.array([c["color"] for c in studio.ok("/api/models/facades")["classes_list"]], np.uint8)
    ids = np.random.default_rng(0).integers(0, 8, (32, 40)).astype(np.uint8)

    def upload(image: Image.Image, key: str = "facades", **extra) -> dict:
        return studio.ok("/api/labels", {"model": key, "label": png(image), **extra})

    def ids_of(answer: dict) -> np.ndarray:
        assert (answer["width"], answer["height"]) == (40, 32)
        return np.frombuffer(base64.b64decode(answer["ids"]), np.uint8).reshape(32, 40)

    as_ids, as_colours = upload(Image.fromarray(ids)), upload(Image.fromarray(palette[ids]))
    assert np.array_equal(ids_of(as_ids), ids) and np.array_equal(ids_of(as_colours), ids)
    assert as_ids["notes"] == [] and as_colours["notes"] == []
    off = palette[ids].copy()
    off[0, :3] = (1, 2, 3)
    noted = upload(Image.fromarray(off))
    assert len(noted["notes"]) == 1 and "#010203 (3 px)" in noted["notes"][0] and "nearest class" in noted["notes"][0]
    assert np.array_equal(ids_of(noted)[1:], ids[1:])
    wrong = ids.copy()
    wrong[5, 5] = 200
    refused(studio.post("/api/labels", {"model": "facades", "label": png(Image.fromarray(wrong))}), 400, "id 200")
    studio.serving()
    # An id map and its instance map (16 bit) on streets come back as they were.
    inst = (ids.astype(np.int32) * 1000 + (np.arange(40) // 10)).astype(np.uint16)
    scene = upload(Image.fromarray(ids), "streets", inst=png(Image.fromarray(inst)))
    assert np.array_equal(np.frombuffer(base64.b64decode(scene["inst"]), "<i4").reshape(32, 40), inst)
    colour_inst = png(Image.fromarray(palette[ids]))
    refused(
        studio.post("/api/labels", {"model": "streets", "label": png(Image.fromarray(ids)), "inst": colour_inst}), 400
    )
    refused(studio.post("/api/labels", {"model": "hints", "label": png(Image.fromarray(ids))}), 400, "no label maps")
    studio.serving()


# ---------------------------------------------------------------------------------------------------
# 11. Colour suggestions and hints


def test_suggestions_and_hints(studio):
    image = example_image(studio, "hints")
    colours = studio.ok("/api/suggest", {"model": "hints", "image": image, "x": 10, "y": 12, "k": 5})["colors"]
    assert len(colours) == 5 and len({tuple(c["rgb"]) for c in colours}) == 5
    assert all(len(c["rgb"]) == 3 and all(0 <= v <= 255 for v in c["rgb"]) for c in colours)
    assert all(0 <= c["p"] <= 1 for c in colours) and sum(c["p"] for c in colours) <= 1 + 5 * 5e-5
    assert [c["p"] for c in colours] == sorted((c["p"] for c in colours), reverse=True)
    refused(studio.post("/api/suggest", {"model": "hints", "image": image, "x": 32, "y": 0}), 400, "outside")
    refused(studio.post("/api/suggest", {"model": "hints", "image": image, "x": "left", "y": 0}), 400, "x", "whole")
    refused(
        studio.post("/api/suggest", {"model": "streets", "image": image, "x": 0, "y": 0}), 400, "colorization_hints"
    )
    studio.serving()
    plain = {"model": "hints", "mode": "colourise", "image": image}
    before = decode(studio.ok("/api/render", plain)["image"])
    hint = {"x": 8, "y": 8, "rgb": [0, 200, 0], "patch": 5}
    after = decode(studio.ok("/api/render", {**plain, "hints": [hint]})["image"])
    change = np.abs(after - before).mean(-1)
    distance = box_distance(change.shape, 8, 8, 9, 9)
    near, far = change[distance <= 3].mean(), change[distance >= 10].mean()
    assert near > 5 and near > 10 * far, (near, far)
    refused(studio.post("/api/render", {**plain, "hints": [{**hint, "x": 99}]}), 400, "outside")
    refused(studio.post("/api/render", {**plain, "hints": [{**hint, "rgb": [300, 0, 0]}]}), 400, "colour")
    refused(studio.post("/api/render", {**plain, "hints": [{**hint, "patch": 0}]}), 400, "patch")
    refused(studio.post("/api/render", {**plain, "hints": "green"}), 400, "hints")
    studio.serving()


# ---------------------------------------------------------------------------------------------------
# 12-13. Directions, superseded renders


def test_cycle_directions(studio):
    photo = {"model": "cycle", "mode": "translate", "image": example_image(studio, "cycle")}
    own = studio.ok("/api/render", photo)["image"]
    forward = studio.ok("/api/render", {**photo, "direction": "AtoB"})["image"]
    backward = studio.ok("/api/render", {**photo, "direction": "BtoA"})["image"]
    assert forward == own
    assert np.abs(decode(backward) - decode(forward)).mean() > 1
    refused(studio.post("/api/render", {**photo, "direction": "CtoD"}), 400, "CtoD", "AtoB or BtoA")
    facades = {"model": "facades", "mode": "translate", "image": photo["image"], "direction": "BtoA"}
    refused(studio.post("/api/render", facades), 400, "BtoA", "one way")
    studio.serving()


def test_older_render_is_superseded(studio):
    photo = {"model": "cycle", "mode": "translate", "image": example_image(studio, "cycle")}
    channel = uuid.uuid4().hex
    assert "image" in studio.ok("/api/render", {**photo, "channel": channel, "seq": 5})
    assert studio.ok("/api/render", {**photo, "channel": channel, "seq": 3}) == {"superseded": True, "seq": 3}
    assert studio.ok("/api/render", {**photo, "channel": channel, "seq": 5})["seq"] == 5
    assert "image" in studio.ok("/api/render", {**photo, "channel": uuid.uuid4().hex, "seq": 3})
    assert studio.ok("/api/render", {**photo, "channel": channel, "seq": 6})["seq"] == 6
    assert studio.ok("/api/render", {**photo, "channel": channel, "seq": 5}).get("superseded") is True


# ---------------------------------------------------------------------------------------------------
# prepare()


def test_prepare_refuses_remote_hosts_and_empty_folders(tmp_path, studio_runs):
    with pytest.raises(OptionsError, match="--allow-remote"):
        prepare(studio_runs / "checkpoints", host="0.0.0.0")
    with pytest.raises(OptionsError, match="--allow-remote"):
        prepare(studio_runs / "checkpoints", host="192.168.1.20")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "half-run").mkdir()  # a folder without opt.yaml is no run
    with pytest.raises(OptionsError, match="--demo") as caught:
        prepare(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(caught.value)


def test_prepare_names_a_local_address(studio_runs):
    launch = prepare(studio_runs / "checkpoints", host="localhost")
    try:
        host, port = launch.sock.getsockname()[:2]
        assert host == "127.0.0.1" and launch.url == f"http://127.0.0.1:{port}/#{launch.token}"
        assert len(launch.token) >= 32
    finally:
        launch.sock.close()


def test_requests_are_bounded_in_hints_and_instances(studio):
    scene, _, _ = street_scene(studio)
    ids = np.zeros((64, 80), np.uint8)
    many = np.arange(ids.size, dtype=np.int64).reshape(ids.shape) + 1000  # 5120 instances, one per pixel
    body = {**scene, "width": 80, "height": 64, "ids": ids_field(ids), "inst": inst_field(many)}
    refused(studio.post("/api/render", body), 400, "4096 instances")
    image = example_image(studio, "hints")
    hints = [{"x": 1, "y": 1, "rgb": [10, 20, 30]}] * 1001
    body = {"model": "hints", "mode": "colourise", "image": image, "hints": hints}
    refused(studio.post("/api/render", body), 400, "1001 hints")
    refused(studio.post("/api/suggest", {"model": "hints", "image": image, "x": 1, "y": 1, "hints": hints}), 400)
    studio.serving()


def test_every_object_of_a_scene_takes_its_chosen_style_in_one_request(studio):
    scene, _, inst = street_scene(studio)
    objects = [int(i) for i in np.unique(inst) if i >= 1000]
    assert len(objects) >= 2
    renders = [studio.ok("/api/render", {**scene, "styles": {str(i): k for i in objects}})["image"] for k in range(3)]
    assert len(set(renders)) == 3
    refused(studio.post("/api/render", {**scene, "styles": {str(objects[0]): 7}}), 400, "choose 0 to 2")


def test_a_palette_png_of_colours_is_matched_for_a_run_on_colour_label_maps(studio):
    info = studio.ok("/api/models/facades")
    ids = np.zeros((8, 12), np.uint8)
    ids[:, 6:] = 2
    colours = np.array([c["color"] for c in info["classes_list"]], np.uint8)
    paletted = Image.fromarray(colours[ids]).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    got = studio.ok("/api/labels", {"model": "facades", "label": png(paletted)})
    assert np.array_equal(np.frombuffer(base64.b64decode(got["ids"]), np.uint8).reshape(8, 12), ids)


def test_photos_come_upright_and_transparent_pixels_white(studio):
    pixels = np.zeros((16, 32, 3), np.uint8)
    pixels[:, :16] = 255
    rotated = Image.fromarray(pixels)
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to show
    buffer = io.BytesIO()
    rotated.save(buffer, format="JPEG", exif=exif.tobytes())
    body = {"model": "cycle", "mode": "translate", "image": b64(buffer.getvalue())}
    assert decode(studio.ok("/api/render", body)["image"]).shape[:2] == (32, 16)
    clear = np.zeros((16, 16, 4), np.uint8)  # black under full transparency: shown white
    white = np.full((16, 16, 3), 255, np.uint8)
    plain = studio.ok("/api/render", {**body, "image": png(Image.fromarray(white))})["image"]
    assert studio.ok("/api/render", {**body, "image": png(Image.fromarray(clear))})["image"] == plain
