"""The studio's runs: found under a checkpoints folder (and files given by name), loaded once, rendered on request.

Everything here goes through the public API: `ganvas.load` for translators and the scene editor
(`Translator.editor`, `ganvas.edit.ObjectLibrary`) for label maps, objects and styles. A request names a
run by the key this catalog gave it, never by a path, so nothing but the listed runs (and, for a run, the
classes.json and instance maps of the data set its options name) is ever read.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganvas.api import Translator, load
from ganvas.data.io import find_images, image_size, tensor_to_uint8
from ganvas.edit import ObjectLibrary
from ganvas.errors import DataError, GanvasError, OptionsError
from ganvas.models.pix2pixhd import label_palette
from ganvas.options import OPT_FILE, load_saved_options
from ganvas.safe import load_json
from ganvas.studio.uploads import encode_ids, id_map, image_bytes, photo_bytes, png_data_url

log = logging.getLogger("ganvas")

CLASSES_FILE = "classes.json"
MAX_SIDE = 4096
OBJECTS_PER_CLASS = 6
MAX_INSTANCES = 4096
MAX_HINTS = 1000


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: pixels of an image or canvas (checked before decoding)."""

    max_pixels: int = 2048 * 2048


# ---------------------------------------------------------------------------------------------------
# Classes


def read_classes(path: Path, count: int | None) -> list[dict[str, Any]]:
    """The classes of a classes.json: {"classes": [{"id", "name", "color": [r, g, b]}, ...]}, checked.

    `count` (a label run's --label_nc) bounds the ids; image runs take the colours as they are drawn.
    """
    fix = 'write {"classes": [{"id": 0, "name": "sky", "color": [70, 130, 180]}, ...]}'
    document = load_json(path, "the class list", fix)
    rows = document.get("classes") if isinstance(document, dict) else None
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path} holds no list of classes; {fix}")
    classes, seen_ids, seen_colours = [], set(), set()
    for row in rows:
        try:
            cid, name, rgb = int(row["id"]), str(row["name"]), tuple(int(c) for c in row["color"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: the class {row!r} needs an integer id, a name and a colour [r, g, b]") from None
        if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise DataError(f"{path}: class {name!r} has the colour {list(rgb)}; give three values from 0 to 255")
        if cid < 0 or (count is not None and cid >= count) or cid > 255:
            bound = count - 1 if count is not None else 255
            raise DataError(f"{path}: class {name!r} has the id {cid}; ids run from 0 to {bound}")
        if cid in seen_ids or rgb in seen_colours:
            raise DataError(f"{path}: class {name!r} repeats an id or a colour of another class; give each its own")
        seen_ids.add(cid)
        seen_colours.add(rgb)
        classes.append({"id": cid, "name": name, "color": list(rgb)})
    return sorted(classes, key=lambda c: c["id"])


def generated_classes(count: int) -> list[dict[str, Any]]:
    """Names and colours for a label run without a classes.json: 'class 0' ... in pix2pixHD's colours."""
    colours = ((label_palette(count) + 1) * 127.5).round().int().tolist()
    return [{"id": i, "name": f"class {i}", "color": rgb} for i, rgb in enumerate(colours)]


# ---------------------------------------------------------------------------------------------------
# One run


@dataclass
class Entry:
    """A run folder or a generator file the studio offers: listed without loading, loaded on first use."""

    key: str
    path: Path
    options: dict[str, Any]  # the run's saved options ({} for a bare file)
    backend: str | None = None
    device: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    translators: dict[str, Translator] = field(default_factory=dict)
    description: dict[str, Any] | None = None
    object_list: list[dict[str, Any]] | None = None  # the objects to stamp, found once

    # --- listing ----------------------------------------------------------------------------------
    @property
    def is_run(self) -> bool:
        return self.path.is_dir()

    def summary(self) -> dict[str, Any]:
        """What the picker shows before the run is loaded: its name, kind, size on disk, classes."""
        files = sorted(self.path.glob("latest_net_G*.pth")) if self.is_run else [self.path]
        size = sum(f.stat().st_size for f in files if f.is_file())
        opt = self.options
        return {
            "id": self.key,
            "name": self.path.name if self.is_run else self.path.stem,
            "kind": str(opt.get("model", "generator file")),
            "size_mb": round(size / 2**20, 2),
            "classes": int(opt.get("label_nc", 0) or 0) or self._palette_size(),
            "loaded": self.description is not None,
        }

    def _palette_size(self) -> int:
        """The classes of a classes.json an image run paints label maps with (0 without one or with a bad one)."""
        path = _classes_file(self)
        try:
            return len(read_classes(path, None)) if path else 0
        except GanvasError:
            return 0  # describe() names the problem when the run is opened

    # --- loading ----------------------------------------------------------------------------------
    def translator(self, direction: str = "") -> Translator:
        """The run's translator for a direction ("" for the run's own), loaded once; call with the lock held."""
        if direction not in self.translators:
            extra: dict[str, Any] = {}
            if self.backend is not None:
                extra["backend"] = self.backend
            if direction and self.is_run:
                extra["direction"] = direction
            self.translators[direction] = load(self.path, device=self.device, **extra)
        return self.translators[direction]

    def describe(self) -> dict[str, Any]:
        """What the page needs to edit with this run: modes, classes, canvas size, directions, styles, objects."""
        if self.description is None:
            t = self.translator()
            modes, classes, encoding = _modes(t, self)
            model = t.model
            directions = []
            if model is not None and getattr(model, "reversible", False):
                own = str(self.options.get("direction", "AtoB"))
                directions = [own, "BtoA" if own == "AtoB" else "AtoB"]
            styles = bool(model is not None and t.takes_labels and getattr(model, "style", None))
            height, width = _canvas_size(self.options, t)
            self.description = {
                **self.summary(),
                "loaded": True,
                "modes": modes,
                "classes_list": classes,
                "label_encoding": encoding,
                "width": width,
                "height": height,
                "directions": directions,
                "styles": styles,
                "style_source": getattr(model, "style", None) if styles else None,
                "objects": bool(self._find_objects()),
                "instances": bool(t.takes_labels),
                "parameters": int(sum(p.numel() for p in t.network.parameters())),
                "about": t.description,
            }
        return self.description

    def _find_objects(self) -> list[dict[str, Any]]:
        """Objects of the run's training instance maps (the largest few of each class), for stamping; read once."""
        if self.object_list is not None:
            return self.object_list
        root = Path(str(self.options.get("dataroot", "")))
        folder = root / "train_inst"
        label_run = int(self.options.get("label_nc", 0) or 0) > 0
        found = label_run and self.is_run and root.parts and folder.is_dir()
        library = ObjectLibrary.from_folder(folder) if found else ObjectLibrary([])
        chosen: list[dict[str, Any]] = []
        for cls in library.classes():
            biggest = sorted(library.of_class(cls), key=lambda o: -int(o.mask.sum()))[:OBJECTS_PER_CLASS]
            for obj in biggest:
                chosen.append(
                    {
                        "cls": int(cls),
                        "width": int(obj.mask.shape[1]),
                        "height": int(obj.mask.shape[0]),
                        "mask": encode_ids(obj.mask.numpy().astype(np.uint8), "u1"),
                        "from": obj.source.name,
                    }
                )
        self.object_list = chosen
        return chosen

    def objects(self) -> list[dict[str, Any]]:
        self.describe()
        return self._find_objects()

    def examples(self, limits: Limits, count: int = 4) -> list[dict[str, Any]]:
        """A few test inputs of the run's data set to start from: scenes for label modes, photos otherwise."""
        info = self.describe()
        root = Path(str(self.options.get("dataroot", "")))
        if not str(self.options.get("dataroot", "")) or not root.is_dir():
            return []
        found: list[dict[str, Any]] = []
        if "labels" in info["modes"] and info["label_encoding"] == "ids":
            for path in _first_files(root, ("test_label", "val_label", "train_label"), count):
                inst_path = path.parent.parent / path.parent.name.replace("_label", "_inst") / path.name
                request = {"label": _file_field(path), "inst": _file_field(inst_path) if inst_path.is_file() else None}
                found.append({"kind": "labels", "name": path.name, **self.decode_labels(request, limits)})
            return found
        for path in _first_files(root, ("test", "testA", "val", "train", "trainA"), count):
            image = Image.open(path)
            if image.width * image.height > limits.max_pixels:
                continue
            image = image.convert("RGB")
            if self.options.get("dataset_mode") == "aligned" and path.parent.name in ("test", "val", "train"):
                # the input half of an aligned A|B pair: A, or B for --direction BtoA
                left = image.width // 2 if self.options.get("direction") == "BtoA" else 0
                image = image.crop((left, 0, left + image.width // 2, image.height))
            entry = {"kind": "image", "name": path.name, "image": png_data_url(image)}
            if info["label_encoding"] == "colours":
                ids, _ = _match_colours(np.asarray(image), info["classes_list"])
                entry.update(kind="labels", width=image.width, height=image.height, ids=encode_ids(ids, "u1"))
            found.append(entry)
        return found

    # --- requests ---------------------------------------------------------------------------------
    def render(self, request: dict[str, Any], limits: Limits) -> tuple[Image.Image, list[str]]:
        """The output image of one request's input (labels, sketch, photo with hints, or image)."""
        info = self.describe()
        mode = request.get("mode")
        if mode not in info["modes"]:
            raise DataError(f"the run {info['name']} offers {', '.join(info['modes'])}, not {mode!r}")
        direction = _direction(request, info)
        with _notes() as notes:
            if mode == "labels":
                image = self._render_labels(request, info, limits)
            else:
                t = self.translator(direction)
                given = photo_bytes(request.get("image"), "the image", limits.max_pixels)
                try:
                    if mode == "colourise":
                        image = t.translate(given, hints=_hints(request))
                    else:
                        image = t.translate(given)
                except RuntimeError as err:  # a size the network cannot take (layers left with one pixel)
                    raise DataError(
                        f"{info['name']} cannot translate a {given.width} x {given.height} image "
                        f"({str(err).splitlines()[0]}); give a larger one"
                    ) from None
        return image, notes

    def _scene(self, request: dict[str, Any], info: dict[str, Any], limits: Limits):
        """(label ids, instance ids or None) of a request, checked against the canvas limits and the classes."""
        width, height = _size(request, limits)
        ids = id_map(request.get("ids"), width, height, "u1", "the label map")
        known = {c["id"] for c in info["classes_list"]}
        unknown = sorted(set(np.unique(ids).tolist()) - known)
        if unknown:
            names = ", ".join(map(str, unknown[:5]))
            raise DataError(
                f"the label map holds class {names}, which {info['name']} does not have; use classes "
                f"{min(known)} to {max(known)}"
            )
        inst = None
        if request.get("inst") is not None:
            inst = id_map(request.get("inst"), width, height, "i4", "the instance map")
            if int(inst.min()) < 0:
                raise DataError("the instance map holds a negative id; ids are class * 1000 + k or the class")
            if len(np.unique(inst)) > MAX_INSTANCES:
                raise DataError(
                    f"the instance map holds more than {MAX_INSTANCES} instances; a scene's objects are numbered "
                    f"class * 1000 + k"
                )
        return ids, inst

    def _editor(self, request: dict[str, Any], info: dict[str, Any], limits: Limits):
        ids, inst = self._scene(request, info, limits)
        seed = _int(request.get("seed", 0), "seed")
        if not 0 <= seed < 2**31:
            raise DataError(f"seed {seed} is outside 0 to {2**31 - 1}; styles are drawn from a non-negative seed")
        editor = self.translator().editor(ids, inst, seed=seed)
        styles = request.get("styles") or {}
        if not isinstance(styles, dict):
            raise DataError("styles must map instance ids to style numbers, such as {'5001': 2}")
        present = set(editor.instances())
        chosen = {_int(key, "an instance id"): _int(cluster, "a style number") for key, cluster in styles.items()}
        editor.set_styles({instance: cluster for instance, cluster in chosen.items() if instance in present})
        return editor

    def _render_labels(self, request: dict[str, Any], info: dict[str, Any], limits: Limits) -> Image.Image:
        if info["label_encoding"] == "ids":
            editor = self._editor(request, info, limits)
            return Image.fromarray(tensor_to_uint8(editor.render()))
        # An image run trained on colour label maps (pix2pix on facades): the ids painted in its colours.
        ids, _ = self._scene(request, info, limits)
        colours = np.zeros((256, 3), np.uint8)
        for c in info["classes_list"]:
            colours[c["id"]] = c["color"]
        t = self.translator(_direction(request, info))
        return t.translate(Image.fromarray(colours[ids]))

    def style_previews(self, request: dict[str, Any], limits: Limits, margin: float = 0.5) -> dict[str, Any]:
        """The scene rendered with each style of one instance, cut to the instance's box and a margin around it."""
        info = self.describe()
        if not info["styles"]:
            raise OptionsError(f"the run {info['name']} has no styles to choose (train it with --instance_feat)")
        editor = self._editor(request, info, limits)
        instance = _int(request.get("instance"), "the instance id")
        where = editor.inst == instance
        if not where.any():
            raise DataError(f"there is no instance {instance} in the scene; click on an object")
        count = editor.style_count(instance)
        chosen = editor.styles.get(instance if info["style_source"] != "label" else editor.instance_class(instance))
        rows, cols = torch.nonzero(where.any(1)).flatten(), torch.nonzero(where.any(0)).flatten()
        top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        pad_y, pad_x = int((bottom - top) * margin) + 2, int((right - left) * margin) + 2
        height, width = where.shape
        box = (max(0, top - pad_y), max(0, left - pad_x), min(height, bottom + pad_y), min(width, right + pad_x))
        previews = []
        for cluster in range(count):
            editor.set_style(instance, cluster)
            image = tensor_to_uint8(editor.render())[box[0] : box[2], box[1] : box[3]]
            previews.append(png_data_url(Image.fromarray(image)))
        return {"instance": instance, "box": list(box), "previews": previews, "chosen": chosen}

    def suggest(self, request: dict[str, Any], limits: Limits) -> list[dict[str, Any]]:
        """The colours a colouriser finds likely at one pixel, with the hints given so far."""
        info = self.describe()
        if "colourise" not in info["modes"]:
            raise OptionsError(f"the run {info['name']} suggests no colours; that takes a colorization_hints run")
        image = photo_bytes(request.get("image"), "the image", limits.max_pixels)
        x, y = _int(request.get("x"), "x"), _int(request.get("y"), "y")
        k = min(max(_int(request.get("k", 9), "k"), 1), 32)
        found = self.translator().suggest(image, x, y, k=k, hints=_hints(request))
        return [{"rgb": list(rgb), "p": round(p, 4)} for rgb, p in found]

    def decode_labels(self, request: dict[str, Any], limits: Limits) -> dict[str, Any]:
        """An uploaded label map as ids: an id PNG as it is, a colour PNG matched to the classes' colours."""
        info = self.describe()
        if "labels" not in info["modes"]:
            raise OptionsError(f"the run {info['name']} takes no label maps")
        image = image_bytes(request.get("label"), "the label map", limits.max_pixels)
        notes: list[str] = []
        # Ids: grayscale PNGs, and palette PNGs of a run on ids (their indices); colours are matched to the classes.
        ids_png = image.mode in ("L", "I") or image.mode.startswith("I;16")
        if ids_png or (image.mode == "P" and info["label_encoding"] == "ids"):
            ids = np.asarray(image).astype(np.int64)
        else:
            ids, notes = _match_colours(np.asarray(image.convert("RGB")), info["classes_list"])
        known = {c["id"] for c in info["classes_list"]}
        unknown = sorted(set(np.unique(ids).tolist()) - known)
        if unknown:
            raise DataError(
                f"the label map holds the id {unknown[0]}, which {info['name']} has no class for (classes "
                f"{min(known)} to {max(known)}); remap it, or upload a colour map in the palette's colours"
            )
        result: dict[str, Any] = {"width": int(ids.shape[1]), "height": int(ids.shape[0]), "notes": notes}
        result["ids"] = encode_ids(ids, "u1")
        if request.get("inst"):
            inst_image = image_bytes(request.get("inst"), "the instance map", limits.max_pixels)
            if not (inst_image.mode in ("L", "P", "I") or inst_image.mode.startswith("I;16")):
                raise DataError("the instance map must be a grayscale PNG of ids (8 or 16 bit), not a colour image")
            inst = np.asarray(inst_image).astype(np.int64)
            if inst.shape != ids.shape:
                raise DataError(
                    f"the instance map is {inst.shape[1]} x {inst.shape[0]} and the label map {ids.shape[1]} x "
                    f"{ids.shape[0]}; upload the pair of one scene"
                )
            result["inst"] = encode_ids(inst, "i4")
        return result


@contextlib.contextmanager
def _notes() -> Iterator[list[str]]:
    """The warnings ganvas logs in this thread while the block runs (a hint snapped into the gamut ...)."""
    notes: list[str] = []
    thread = threading.get_ident()

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.thread == thread and record.levelno >= logging.WARNING:
                notes.append(record.getMessage())

    handler = Collect()
    log.addHandler(handler)
    try:
        yield notes
    finally:
        log.removeHandler(handler)


def _first_files(root: Path, folders: tuple[str, ...], count: int) -> list[Path]:
    """The first `count` images of the first of `folders` under root that has any."""
    for name in folders:
        if (root / name).is_dir():
            files = find_images(root / name, max_dataset_size=count)
            if files:
                return files
    return []


def _file_field(path: Path) -> str:
    """A file's bytes as the base64 field a request would carry (examples go through the upload checks)."""
    return base64.b64encode(path.read_bytes()).decode()


def _match_colours(rgb: np.ndarray, classes: list[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """Class ids of a colour label map by exact colour; other colours go to the nearest class, and are named."""
    palette = np.array([c["color"] for c in classes], dtype=np.int64)
    ids_of = np.array([c["id"] for c in classes], dtype=np.int64)
    flat = rgb.reshape(-1, 3).astype(np.int64)
    colours, inverse, counts = np.unique(flat, axis=0, return_inverse=True, return_counts=True)
    distance = ((colours[:, None, :] - palette[None, :, :]) ** 2).sum(-1)
    nearest = distance.argmin(1)
    ids = ids_of[nearest][inverse.reshape(-1)].reshape(rgb.shape[:2])
    off = [(int(n), c) for c, n, d in zip(colours, counts, distance.min(1)) if d > 0]
    notes = []
    if off:
        total = sum(n for n, _ in off)
        shown = ", ".join(f"#{c[0]:02x}{c[1]:02x}{c[2]:02x} ({n} px)" for n, c in sorted(off, key=lambda t: -t[0])[:5])
        notes.append(
            f"{total} pixels in {len(off)} colours that are no class's colour ({shown}) were given the nearest class"
        )
    return ids, notes


def _modes(t: Translator, entry: Entry) -> tuple[list[str], list[dict[str, Any]], str]:
    """(modes, classes, label encoding) of a loaded translator, from what it takes, not its model's name."""
    classes_file = _classes_file(entry)
    if t.takes_labels:
        classes = read_classes(classes_file, t.label_nc) if classes_file else generated_classes(t.label_nc)
        if t.label_nc > 256:
            raise OptionsError(f"the studio paints up to 256 classes; {entry.path.name} has {t.label_nc}")
        return ["labels"], classes, "ids"
    if t.takes_hints:
        return ["colourise", "translate"], [], ""
    if t.image_space:  # photos given as something else (their lightness): nothing to draw
        return ["translate"], [], ""
    classes = read_classes(classes_file, None) if classes_file else []
    # A run on colour label maps paints labels; others may be runs on edges: they get the sketch pad.
    modes = ["labels", "translate"] if classes else ["translate", "sketch"]
    return modes, classes, "colours" if classes else ""


def _classes_file(entry: Entry) -> Path | None:
    """The classes.json of a run: in its folder, else beside its data set."""
    candidates = [entry.path / CLASSES_FILE] if entry.is_run else [entry.path.parent / CLASSES_FILE]
    root = str(entry.options.get("dataroot", ""))
    if root:
        candidates.append(Path(root) / CLASSES_FILE)
    return next((p for p in candidates if p.is_file()), None)


def _canvas_size(options: dict[str, Any], t: Translator) -> tuple[int, int]:
    """(height, width) of a new canvas: a test (or training) input's size, else the run's crop size."""
    root = Path(str(options.get("dataroot", "")))
    if str(options.get("dataroot", "")):
        for folder in ("test_label", "train_label", "test", "train", "testA", "trainA"):
            files = find_images(root / folder, max_dataset_size=1) if (root / folder).is_dir() else []
            if files:
                height, width = image_size(files[0])
                aligned = folder in ("test", "train") and options.get("dataset_mode") == "aligned"
                return height, width // 2 if aligned else width
    side = int(options.get("crop_size", 256) or 256)
    return side, side


def _direction(request: dict[str, Any], info: dict[str, Any]) -> str:
    direction = request.get("direction") or ""
    if direction and direction not in info["directions"]:
        raise DataError(f"the run {info['name']} runs {' or '.join(info['directions']) or 'one way'}, not {direction}")
    return "" if not info["directions"] or direction == info["directions"][0] else direction


def _hints(request: dict[str, Any]) -> list:
    hints = request.get("hints") or []
    if isinstance(hints, list) and len(hints) > MAX_HINTS:
        raise DataError(f"{len(hints)} hints is more than the studio takes ({MAX_HINTS}); remove some")
    return hints


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"{what} must be a whole number, not {value!r}")
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{what} must be a whole number, not {value!r}") from None


def _size(request: dict[str, Any], limits: Limits) -> tuple[int, int]:
    width, height = _int(request.get("width"), "width"), _int(request.get("height"), "height")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE) or width * height > limits.max_pixels:
        raise DataError(
            f"a {width} x {height} canvas is outside this studio's limits (sides up to {MAX_SIDE}, "
            f"{limits.max_pixels:,} pixels); choose a smaller size"
        )
    return width, height


# ---------------------------------------------------------------------------------------------------
# The catalog


class Catalog:
    """The runs under a checkpoints folder and the generator files given by name, keyed for requests."""

    def __init__(
        self,
        checkpoints_dir: Path | None = None,
        files: list[Path] | None = None,
        backend: str | None = None,
        device: str | None = None,
    ) -> None:
        self.entries: dict[str, Entry] = {}
        found: list[tuple[Path, dict[str, Any]]] = []
        if checkpoints_dir is not None:
            if not Path(checkpoints_dir).is_dir():
                raise DataError(f"{checkpoints_dir} is no folder; pass --checkpoints_dir with the runs to offer")
            for opt_file in sorted(Path(checkpoints_dir).glob(f"*/{OPT_FILE}")):
                try:
                    options = load_saved_options(opt_file)
                except GanvasError as err:
                    log.warning("studio: skipping %s (%s)", opt_file.parent, err)
                    continue
                if any(opt_file.parent.glob("latest_net_*.pth")):
                    found.append((opt_file.parent, options))
        for path in files or []:
            path = Path(path)
            if path.is_dir() and (path / OPT_FILE).is_file():
                found.append((path, load_saved_options(path / OPT_FILE)))
            elif path.is_file():
                found.append((path, {}))
            else:
                raise DataError(
                    f"{path} is neither a run folder (with {OPT_FILE}) nor a file; pass --checkpoint with a run "
                    f"folder or a generator file such as latest_net_G.pth"
                )
        for path, options in found:
            key = _unique(re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name if path.is_dir() else path.stem), self.entries)
            self.entries[key] = Entry(key, path, options, backend=backend, device=device)

    def listing(self) -> list[dict[str, Any]]:
        return [entry.summary() for entry in self.entries.values()]

    def entry(self, key: Any) -> Entry:
        if not isinstance(key, str) or key not in self.entries:
            known = ", ".join(self.entries) or "none"
            raise UnknownRun(f"there is no run {str(key)[:80]!r} in this studio (runs: {known})")
        return self.entries[key]


class UnknownRun(GanvasError):
    """A request named a run this studio does not offer."""


def _unique(name: str, taken: dict[str, Any]) -> str:
    key, n = name or "run", 2
    while key in taken:
        key, n = f"{name}-{n}", n + 1
    return key
