"""Built-in procedural data for the demo and the tests: facades and street scenes; no download, seeded."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np

from ganvas.data.io import is_image_file, save_label_map, save_uint8
from ganvas.errors import DataError
from ganvas.files import atomic_write_text

SKY, WALL, WINDOW, DOOR, BALCONY, CORNICE, PILLAR, SHOP = range(8)
CLASS_NAMES: tuple[str, ...] = ("sky", "wall", "window", "door", "balcony", "cornice", "pillar", "shop")

# Label colours (the A side), in the spirit of the CMP facade maps: saturated and far apart.
_LABEL_COLORS = np.array(
    [
        [0, 0, 170],  # sky / background
        [0, 85, 255],  # wall
        [255, 85, 0],  # window
        [170, 0, 0],  # door
        [85, 255, 170],  # balcony
        [255, 255, 0],  # cornice
        [0, 170, 255],  # pillar
        [170, 255, 85],  # shop
    ],
    dtype=np.uint8,
)

# "Photo" colours in [0, 1] per class: by day (the B side of the paired set, the A side of the
# unpaired one) and by night (lit windows and shops, dark sky and walls; the unpaired B side).
_PHOTO_PALETTES = {
    "day": np.array(
        [
            [0.62, 0.76, 0.92],
            [0.80, 0.66, 0.52],
            [0.22, 0.28, 0.36],
            [0.36, 0.22, 0.14],
            [0.30, 0.30, 0.32],
            [0.90, 0.87, 0.80],
            [0.72, 0.70, 0.66],
            [0.40, 0.50, 0.55],
        ],
        dtype=np.float32,
    ),
    "night": np.array(
        [
            [0.05, 0.07, 0.22],
            [0.24, 0.20, 0.26],
            [0.98, 0.82, 0.40],
            [0.12, 0.08, 0.05],
            [0.10, 0.10, 0.15],
            [0.36, 0.34, 0.42],
            [0.30, 0.29, 0.36],
            [0.95, 0.60, 0.22],
        ],
        dtype=np.float32,
    ),
}
PHOTO_PALETTES: tuple[str, ...] = tuple(_PHOTO_PALETTES)
# How strongly each class darkens towards its bottom.
_VERTICAL_SHADE = np.array([0.30, 0.18, -0.35, 0.10, 0.05, 0.05, 0.15, -0.25], dtype=np.float32)
_FRAMED = np.array([False, False, True, True, True, False, False, True])

_SPLIT_STREAMS = {"train": 0, "test": 1, "val": 2}
_FOLDER_STREAM = 3
_UNPAIRED_STREAM = 4
_DOMAIN_STREAMS = {"A": 0, "B": 1}
_STREET_STREAM = 5
_COLOR_STREAM = 6


def label_colors() -> np.ndarray:
    """The fixed uint8 palette (num_classes x 3) the label maps are drawn with."""
    return _LABEL_COLORS.copy()


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Paint an H x W map of class ids with label_colors() as uint8 H x W x 3."""
    return _LABEL_COLORS[labels]


def _bands(starts: np.ndarray, stops: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask over range(length) that is True inside any [start, stop) band."""
    coords = np.arange(length)[None, :]
    return ((coords >= starts[:, None]) & (coords < stops[:, None])).any(axis=0)


def facade_labels(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random facade as an H x W uint8 map of class ids: sky, wall, windows, door, balconies, ..."""
    labels = np.full((size, size), SKY, dtype=np.uint8)
    top = int(rng.uniform(0.04, 0.22) * size)
    left, right = int(rng.uniform(0.0, 0.1) * size), size - int(rng.uniform(0.0, 0.1) * size)
    band = max(1, round(0.035 * size))
    labels[top:, left:right] = WALL

    if rng.random() < 0.6:  # pillars framing the facade
        width = max(1, round(rng.uniform(0.03, 0.06) * size))
        labels[top:, left : left + width] = PILLAR
        labels[top:, right - width : right] = PILLAR
        inner_left, inner_right = left + width, right - width
    else:
        inner_left, inner_right = left, right

    ground = size - int((size - top) * rng.uniform(0.2, 0.3))
    n_rows, n_cols = int(rng.integers(2, 6)), int(rng.integers(2, 7))
    floor_edges = np.linspace(top + band, ground - band, n_rows + 1)
    col_edges = np.linspace(inner_left, inner_right, n_cols + 1)
    floor_h, col_w = np.diff(floor_edges), np.diff(col_edges)
    win_h, win_w = rng.uniform(0.45, 0.7), rng.uniform(0.35, 0.7)
    win_top = np.round(floor_edges[:-1] + floor_h * (1 - win_h) * 0.4).astype(int)
    win_bottom = np.round(floor_edges[:-1] + floor_h * (1 - (1 - win_h) * 0.6)).astype(int)
    win_left = np.round(col_edges[:-1] + col_w * (1 - win_w) / 2).astype(int)
    win_right = np.round(col_edges[1:] - col_w * (1 - win_w) / 2).astype(int)
    rows, cols = _bands(win_top, win_bottom, size), _bands(win_left, win_right, size)
    labels[rows[:, None] & cols[None, :]] = WINDOW

    balcony_floors = rng.random(n_rows) < rng.uniform(0.0, 0.7)
    if balcony_floors.any():  # railings across the lower part of the windows
        rail = max(1, round(floor_h.mean() * 0.18))
        bottoms = win_bottom[balcony_floors] + 1
        rail_rows = _bands(bottoms - rail, bottoms, size)
        if rng.random() < 0.5:
            rail_cols = _bands(win_left - 1, win_right + 1, size)
        else:
            rail_cols = _bands(np.array([inner_left]), np.array([inner_right]), size)
        labels[rail_rows[:, None] & rail_cols[None, :]] = BALCONY

    labels[top : top + band, left:right] = CORNICE
    labels[ground - band : ground, left:right] = CORNICE

    # Ground floor: one door in a random bay, shop windows in the others or plain wall.
    door_col = int(rng.integers(0, n_cols))
    door_top = ground + int((size - ground) * rng.uniform(0.15, 0.35))
    door_cols = _bands(win_left[door_col : door_col + 1], win_right[door_col : door_col + 1], size)
    labels[door_top:, door_cols] = DOOR
    if rng.random() < 0.5:
        shop_top, shop_bottom = ground + max(1, band), size - max(1, band)
        shop_cols = _bands(np.delete(win_left, door_col), np.delete(win_right, door_col), size)
        labels[shop_top:shop_bottom, shop_cols] = SHOP
    return labels


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another class, or vice versa."""
    edge = np.zeros(labels.shape, dtype=bool)
    vertical = labels[1:, :] != labels[:-1, :]
    horizontal = labels[:, 1:] != labels[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def touching_boundaries(labels: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour (or left or upper) is another instance of the same class: the
    boundaries between touching objects that the label map does not show."""
    edge = np.zeros(instances.shape, dtype=bool)
    vertical = (instances[1:, :] != instances[:-1, :]) & (labels[1:, :] == labels[:-1, :])
    horizontal = (instances[:, 1:] != instances[:, :-1]) & (labels[:, 1:] == labels[:, :-1])
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def render_facade(labels: np.ndarray, rng: np.random.Generator, palette: str = "day") -> np.ndarray:
    """A "photo" (uint8 H x W x 3) of a label map in one of PHOTO_PALETTES: mostly a fixed, learnable function
    of the labels.

    The palette only changes the colour of each class; shading, frames, brick courses and the
    draws from rng (tint, noise) are the same, so two palettes with equal rng states differ by a
    per-class colour map.
    """
    if palette not in _PHOTO_PALETTES:
        raise ValueError(f"unknown facade palette {palette!r}; use one of {', '.join(PHOTO_PALETTES)}")
    height, width = labels.shape
    y = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    shade = 1.0 - _VERTICAL_SHADE[labels] * y
    photo = _PHOTO_PALETTES[palette][labels] * shade[..., None]

    # Frames: windows, doors, balconies and shops get dark outlines, other class edges a soft line.
    edge = _boundaries(labels)
    framed = edge & _FRAMED[labels]
    photo[framed] *= 0.45
    photo[edge & ~framed] *= 0.85

    # Brick courses on the wall, every fourth row.
    courses = (np.arange(height) % 4 == 3)[:, None] & (labels == WALL)
    photo[courses] *= 0.9

    tint = 1.0 + rng.normal(0.0, 0.03, size=3).astype(np.float32)  # slight per-scene colour jitter
    noise = rng.normal(0.0, 0.02, size=(height, width, 1)).astype(np.float32)
    photo = photo * tint + noise
    return np.clip(np.rint(photo * 255.0), 0, 255).astype(np.uint8)


def _check_only_ours(folder: Path, names: set[str]) -> None:
    """DataError if folder already holds images this call would not rewrite (a stale or foreign set)."""
    if not folder.is_dir():
        return
    others = sorted(p.name for p in folder.iterdir() if is_image_file(p) and p.name not in names)
    if others:
        raise DataError(
            f"{folder} already holds {len(others)} images this synthetic set would not overwrite "
            f"(first: {', '.join(others[:3])}); pick an empty folder or remove them"
        )


def _file_names(n: int) -> list[str]:
    """0000.png, 0001.png, ... (wider when n needs it)."""
    digits = max(4, len(str(max(n - 1, 0))))
    return [f"{i:0{digits}d}.png" for i in range(n)]


def write_paired_set(
    root: Path, n_train: int = 200, n_test: int = 20, n_val: int = 0, size: int = 64, seed: int = 0
) -> Path:
    """Write <root>/{train,test,val}/NNNN.png as A|B (A = coloured labels, B = photo); return root.

    Every image has its own generator (seed, split, index), so the same seed gives byte-identical
    files and changing one split's count leaves the others unchanged.
    """
    root = Path(root)
    for split, count in (("train", n_train), ("test", n_test), ("val", n_val)):
        if count <= 0:
            continue
        names = _file_names(count)
        _check_only_ours(root / split, set(names))
        for index, name in enumerate(names):
            rng = np.random.default_rng([seed, _SPLIT_STREAMS[split], index])
            labels = facade_labels(rng, size)
            pair = np.concatenate([colorize_labels(labels), render_facade(labels, rng)], axis=1)
            save_uint8(pair, root / split / name)
    write_classes(root, CLASS_NAMES, _LABEL_COLORS)
    return root


def write_classes(root: Path, names: tuple[str, ...], colours: np.ndarray) -> Path:
    """<root>/classes.json: each class's id, name and label colour (what the studio's palette shows)."""
    rows = [{"id": i, "name": n, "color": [int(c) for c in colours[i]]} for i, n in enumerate(names)]
    path = Path(root) / "classes.json"
    atomic_write_text(path, json.dumps({"classes": rows}, indent=1))
    return path


def write_image_folder(root: Path, n: int, size: int = 64, seed: int = 0) -> Path:
    """Write n facade photos as <root>/NNNN.png (for unconditional GANs); return root."""
    root = Path(root)
    names = _file_names(n)
    _check_only_ours(root, set(names))
    for index, name in enumerate(names):
        rng = np.random.default_rng([seed, _FOLDER_STREAM, index])
        save_uint8(render_facade(facade_labels(rng, size), rng), root / name)
    return root


def _day_and_night(seed: int, split: str, domain: str, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene of an unpaired split and domain, rendered by day and by night with the same tint and noise."""
    rng = np.random.default_rng([seed, _UNPAIRED_STREAM, _SPLIT_STREAMS[split], _DOMAIN_STREAMS[domain], index])
    labels = facade_labels(rng, size)
    day = render_facade(labels, copy.deepcopy(rng), "day")
    return day, render_facade(labels, rng, "night")


def write_unpaired_set(root: Path, n_train: int = 200, n_test: int = 20, size: int = 64, seed: int = 0) -> Path:
    """Write day facades to <root>/<split>A, night facades of other scenes to <root>/<split>B, and truth; return root.

    <root>/truth/<split>B/<name> is the night render of the scene in <split>A/<name> and
    <root>/truth/<split>A/<name> the day render of the scene in <split>B/<name>, for scoring a
    translation against what it should have produced. The A and B scenes of a split are drawn from
    separate generators (seed, split, domain, index), so no label map is shared, the same seed
    gives byte-identical files and changing one split's count leaves the others unchanged.
    """
    root = Path(root)
    for split, count in (("train", n_train), ("test", n_test)):
        if count <= 0:
            continue
        names = _file_names(count)
        # Each domain's own images by its own style, their truth by the other's.
        folders = {
            "A": (root / f"{split}A", root / "truth" / f"{split}B"),
            "B": (root / f"{split}B", root / "truth" / f"{split}A"),
        }
        for folder in (path for pair in folders.values() for path in pair):
            _check_only_ours(folder, set(names))
        for domain, (images, truths) in folders.items():
            for index, name in enumerate(names):
                day, night = _day_and_night(seed, split, domain, index, size)
                own, other = (day, night) if domain == "A" else (night, day)
                save_uint8(own, images / name)
                save_uint8(other, truths / name)
    return root


# ---------------------------------------------------------------- street scenes (pix2pixHD layout)

STREET_CLASSES: tuple[str, ...] = ("sky", "road", "sidewalk", "building", "vegetation", "car", "pole", "person")
_STREET_SKY, _ROAD, _SIDEWALK, _BUILDING, _VEGETATION, _CAR, _POLE, _PERSON = range(len(STREET_CLASSES))
# How label maps of street scenes are shown: Cityscapes' colours of the same classes.
STREET_LABEL_COLORS = np.array(
    [
        [70, 130, 180],
        [128, 64, 128],
        [244, 35, 232],
        [70, 70, 70],
        [107, 142, 35],
        [0, 0, 142],
        [153, 153, 153],
        [220, 20, 60],
    ],
    dtype=np.uint8,
)
# Classes drawn as separately numbered objects: instance id = class * 1000 + k, as Cityscapes numbers them.
STREET_THINGS: tuple[str, ...] = ("vegetation", "car", "person")
_INSTANCE_BASE = 1000

# Parts of an object that only the photo shows (the label map has the object's class there).
_WHEEL, _CAR_WINDOW, _FACADE_WINDOW, _TRUNK, _LANE, _HEAD = range(1, 7)

_STREET_COLORS = np.array(
    [
        [0.55, 0.72, 0.92],  # sky
        [0.32, 0.32, 0.35],  # road
        [0.63, 0.60, 0.56],  # sidewalk
        [0.70, 0.62, 0.52],  # building (replaced per scene)
        [0.25, 0.50, 0.22],  # vegetation (varied per tree)
        [0.60, 0.10, 0.10],  # car (replaced per car)
        [0.25, 0.25, 0.27],  # pole
        [0.30, 0.30, 0.55],  # person (replaced per person)
    ],
    dtype=np.float32,
)
_BUILDING_COLORS = np.array(
    [[0.72, 0.64, 0.52], [0.62, 0.34, 0.26], [0.58, 0.58, 0.60], [0.82, 0.78, 0.66]], dtype=np.float32
)
_CAR_PAINTS = np.array(
    [
        [0.75, 0.08, 0.08],
        [0.10, 0.22, 0.65],
        [0.92, 0.92, 0.90],
        [0.08, 0.08, 0.09],
        [0.62, 0.64, 0.66],
        [0.90, 0.75, 0.10],
        [0.12, 0.45, 0.22],
    ],
    dtype=np.float32,
)
_PART_COLORS = {
    _WHEEL: [0.06, 0.06, 0.07],
    _CAR_WINDOW: [0.20, 0.26, 0.32],
    _TRUNK: [0.36, 0.25, 0.16],
    _LANE: [0.90, 0.90, 0.86],
    _HEAD: [0.86, 0.68, 0.55],
}
# The gap between two parked cars or two tree crowns (render_street's seams): one colour, whatever the paints.
_SEAM_COLOR = np.array([0.05, 0.05, 0.06], dtype=np.float32)
# How strongly each class darkens towards its bottom (the sky lightens towards the horizon).
_STREET_SHADE = np.array([-0.35, -0.25, 0.10, 0.20, 0.30, 0.35, 0.10, 0.20], dtype=np.float32)


class _Street:
    """A street scene being drawn: class ids, instance ids and photo-only parts, all H x W."""

    def __init__(self, size: tuple[int, int], n_classes: int) -> None:
        """An empty sky of the given (height, width)."""
        self.labels = np.full(size, _STREET_SKY, dtype=np.uint8)
        self.instances = np.zeros(size, dtype=np.int64)  # 0 = not an object; filled from labels at the end
        self.parts = np.zeros(size, dtype=np.uint8)
        self.n_classes = n_classes
        self.counts: dict[int, int] = {}
        self.rows, self.cols = np.mgrid[0 : size[0], 0 : size[1]]

    def paint(self, mask: np.ndarray, label: int, instance: int = 0, part: int = 0) -> None:
        """Draw class label (with an instance id and photo part) over mask, unless the scene has no such class."""
        if label >= self.n_classes:
            return
        self.labels[mask] = label
        self.instances[mask] = instance
        self.parts[mask] = part

    def new_instance(self, label: int) -> int:
        """The next instance id of class label: label * 1000 + k."""
        k = self.counts.get(label, 0)
        self.counts[label] = k + 1
        return label * _INSTANCE_BASE + k

    def box(self, top: float, bottom: float, left: float, right: float) -> np.ndarray:
        """Pixels inside [top, bottom) x [left, right)."""
        return (self.rows >= top) & (self.rows < bottom) & (self.cols >= left) & (self.cols < right)

    def ellipse(self, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
        """Pixels inside an axis-aligned ellipse."""
        return ((self.rows - cy) / max(ry, 0.5)) ** 2 + ((self.cols - cx) / max(rx, 0.5)) ** 2 <= 1.0


def _draw_buildings(street: _Street, rng: np.random.Generator, horizon: int) -> None:
    """A row of blocks along the skyline, some gaps, with a grid of windows the photo shows."""
    height, width = street.labels.shape
    x = float(rng.uniform(0.0, 0.08) * width)
    while x < width:
        block = rng.uniform(0.10, 0.26) * width
        if rng.random() < 0.85:
            top = rng.uniform(0.05, 0.65) * horizon
            street.paint(street.box(top, horizon, x, x + block), _BUILDING)
            pitch_y, pitch_x = max(3.0, 0.09 * height), max(3.0, rng.uniform(0.05, 0.08) * width)
            in_block = street.box(top + pitch_y * 0.5, horizon - pitch_y * 0.5, x + 1, x + block - 1)
            grid = ((street.rows - top) % pitch_y < pitch_y * 0.5) & ((street.cols - x) % pitch_x < pitch_x * 0.5)
            street.paint(in_block & grid, _BUILDING, part=_FACADE_WINDOW)
        x += block + (rng.uniform(0.02, 0.1) * width if rng.random() < 0.3 else 0.0)


def _draw_tree(street: _Street, rng: np.random.Generator, base: float, cx: float, scale: float) -> None:
    """A trunk and an elliptic crown, one vegetation instance."""
    height = street.labels.shape[0]
    ry = max(2.0, 0.2 * height * scale)
    rx, trunk = ry * rng.uniform(0.7, 1.2), ry * rng.uniform(0.6, 1.0)
    instance = street.new_instance(_VEGETATION)
    half = max(0.6, rx * 0.12)
    street.paint(street.box(base - trunk - ry * 0.5, base, cx - half, cx + half), _VEGETATION, instance, _TRUNK)
    street.paint(street.ellipse(base - trunk - ry, cx, ry, rx), _VEGETATION, instance)


def _draw_car(
    street: _Street, base: float, cx: float, car_width: float, cabin_shift: float = 0.0, wheel_shift: float = 0.0
) -> None:
    """A body, a cabin with windows and two wheels, one car instance; the shifts (fractions of the width)
    move the cabin and the wheels along the body."""
    body = car_width * 0.32
    wheel = body * 0.42
    left, right = cx - car_width / 2, cx + car_width / 2
    bottom = base - wheel * 0.6
    instance = street.new_instance(_CAR)
    cabin_left, cabin_right = left + car_width * (0.2 + cabin_shift), right - car_width * (0.18 - cabin_shift)
    cabin = street.box(bottom - body - body * 0.75, bottom - body + 1, cabin_left, cabin_right)
    street.paint(cabin, _CAR, instance)
    street.paint(
        street.box(
            bottom - body - body * 0.6, bottom - body, cabin_left + car_width * 0.05, cabin_right - car_width * 0.05
        ),
        _CAR,
        instance,
        _CAR_WINDOW,
    )
    street.paint(street.box(bottom - body, bottom, left, right), _CAR, instance)
    for wheel_x in (left + car_width * (0.22 + wheel_shift), right - car_width * (0.22 - wheel_shift)):
        street.paint(street.ellipse(bottom, wheel_x, wheel, wheel), _CAR, instance, _WHEEL)


def _draw_person(street: _Street, rng: np.random.Generator, base: float, cx: float, scale: float) -> None:
    """A body and a head, one person instance."""
    tall = max(4.0, 0.32 * street.labels.shape[0] * scale * rng.uniform(0.85, 1.1))
    half = max(0.8, tall * 0.13)
    head = max(0.8, tall * 0.11)
    instance = street.new_instance(_PERSON)
    street.paint(street.box(base - tall + 2 * head, base, cx - half, cx + half), _PERSON, instance)
    street.paint(street.ellipse(base - tall + head, cx, head, head), _PERSON, instance, _HEAD)


def _draw_tree_row(street: _Street, rng: np.random.Generator, base: float, x: float, scale: float) -> None:
    """Two to four trees from column x rightwards, spaced closer than their crowns are wide, so the crowns
    overlap into one vegetation region that only the instance map (and the photo's seams) divides."""
    height = street.labels.shape[0]
    scale = 0.4 + 0.6 * scale
    spacing = max(2.0, 0.2 * height * scale) * rng.uniform(0.9, 1.3)
    for k in range(int(rng.integers(2, 5))):
        _draw_tree(street, rng, base + rng.uniform(-0.5, 0.5), x + k * spacing, scale)


def _draw_parked_row(street: _Street, rng: np.random.Generator, base: float, scale: float) -> None:
    """Cars of one width parked bumper to bumper across the image, cabins and wheels shifted per car, so
    the label map barely shows where one car ends: the instance map does (and the photo's seams)."""
    width = street.labels.shape[1]
    car_width = max(6.0, width * 0.3 * (0.4 + 0.6 * scale) * rng.uniform(0.9, 1.1))
    left = -rng.uniform(0.0, car_width)
    while left < width:
        cabin_shift, wheel_shift = rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06)
        _draw_car(street, base, left + car_width / 2, car_width, cabin_shift, wheel_shift)
        left += car_width


def street_scene(
    rng: np.random.Generator,
    size: tuple[int, int] = (64, 128),
    n_classes: int = len(STREET_CLASSES),
    touching: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random street as (class ids uint8, instance ids int64, photo-only parts uint8), each H x W.

    Classes are STREET_CLASSES[:n_classes] (later ones are not drawn). Instance ids are
    class * 1000 + k for the objects of STREET_THINGS and the class id elsewhere, as in Cityscapes.
    With touching, cars stand in rows bumper to bumper and trees in rows of overlapping crowns, so
    objects of one class touch and only the instance map tells them apart (the default scenes,
    unchanged, keep cars apart).
    """
    if not 2 <= n_classes <= len(STREET_CLASSES):
        raise ValueError(
            f"n_classes={n_classes} is outside 2..{len(STREET_CLASSES)}; the classes are {', '.join(STREET_CLASSES)}"
        )
    height, width = size
    street = _Street(size, n_classes)
    horizon = int(height * rng.uniform(0.38, 0.5))
    _draw_buildings(street, rng, horizon)

    # The ground: a road narrowing to a vanishing point on the horizon, sidewalks either side.
    vanish_x = width * rng.uniform(0.35, 0.65)
    spread_left, spread_right = rng.uniform(0.45, 0.8, size=2) * width
    # Depth below the horizon: 0 there, 1 at the bottom row.
    depth = np.clip((street.rows - horizon + 1) / (height - horizon), 0.0, 1.0)
    road_left, road_right = vanish_x - depth * spread_left, vanish_x + depth * spread_right
    ground = street.rows >= horizon
    on_road = ground & (street.cols >= road_left) & (street.cols < road_right)
    street.paint(ground, _ROAD)
    street.paint(ground & ~on_road, _SIDEWALK)
    centre = vanish_x + depth * (spread_right - spread_left) / 2
    dashes = np.floor(np.log(np.maximum(depth, 1e-3)) * 4.0) % 2 == 0
    street.paint(
        on_road & dashes & (np.abs(street.cols - centre) < np.maximum(0.6, depth * width * 0.012)), _ROAD, part=_LANE
    )

    def base_at(low: float) -> tuple[float, float]:
        """A ground row below the horizon (nearer than fraction low of the ground) and its depth."""
        row = horizon + rng.uniform(low, 1.0) * (height - horizon)
        return row, (row - horizon) / (height - horizon)

    def sidewalk_x(row_depth: float) -> float:
        """A column on the left or right sidewalk at that depth (the image edge if it is out of view)."""
        if rng.random() < 0.5:
            return float(rng.uniform(0.0, max(1.0, vanish_x - row_depth * spread_left)))
        return float(rng.uniform(min(width - 1.0, vanish_x + row_depth * spread_right), width))

    if touching:
        for base, scale in sorted(base_at(0.1) for _ in range(int(rng.integers(1, 3)))):
            _draw_tree_row(street, rng, base, sidewalk_x(scale), scale)
    else:
        for base, scale in sorted(base_at(0.1) for _ in range(int(rng.integers(2, 5)))):
            _draw_tree(street, rng, base, sidewalk_x(scale), 0.4 + 0.6 * scale)
    for _ in range(int(rng.integers(0, 3))):
        base, scale = base_at(0.2)
        half = max(0.6, 0.01 * width * (0.4 + 0.6 * scale))
        x = sidewalk_x(scale)
        street.paint(street.box(base - 0.75 * height * (0.4 + 0.6 * scale), base, x - half, x + half), _POLE)

    if touching:
        for base, scale in sorted(base_at(0.3) for _ in range(int(rng.integers(1, 3)))):
            _draw_parked_row(street, rng, base, scale)
    else:
        # Cars, far to near, each centred in its own slot across the image so none hides another.
        n_cars = int(rng.integers(2, 5))
        slot = width / n_cars
        cars = sorted((base_at(0.3), position) for position in range(n_cars))
        for (base, scale), position in cars:
            cx = (position + 0.5 + rng.uniform(-0.15, 0.15)) * slot
            _draw_car(street, base, cx, min(slot * 1.1, width * 0.3 * (0.4 + 0.6 * scale)))
    for base, scale in sorted(base_at(0.3) for _ in range(int(rng.integers(0, 4)))):
        _draw_person(street, rng, base, sidewalk_x(scale), 0.4 + 0.6 * scale)

    things = street.instances >= _INSTANCE_BASE
    street.instances[~things] = street.labels[~things]
    return street.labels, street.instances, street.parts


def render_street(
    labels: np.ndarray, instances: np.ndarray, parts: np.ndarray, rng: np.random.Generator, seams: bool = False
) -> np.ndarray:
    """A "photo" (uint8 H x W x 3) of a street: class colours, a colour per car, tree and person, shading, noise.

    The per-object colours are the style pix2pixHD's encoder can pick up from the instance map. With
    seams, the boundaries between touching objects of one class (touching_boundaries) are drawn as a
    dark gap, the same in every photo, so a generator can draw them exactly where the instance map has them.
    """
    height, width = labels.shape
    photo = _STREET_COLORS[labels].copy()
    photo[labels == _BUILDING] = _BUILDING_COLORS[rng.integers(len(_BUILDING_COLORS))]
    for instance in np.unique(instances[instances >= _INSTANCE_BASE]):
        label = int(instance) // _INSTANCE_BASE
        if label == _CAR:
            color = _CAR_PAINTS[rng.integers(len(_CAR_PAINTS))]
        elif label == _VEGETATION:
            color = _STREET_COLORS[_VEGETATION] * rng.uniform(0.7, 1.3, size=3).astype(np.float32)
        else:
            color = rng.uniform(0.1, 0.9, size=3).astype(np.float32)
        photo[instances == instance] = color
    facade_windows = parts == _FACADE_WINDOW
    photo[facade_windows] = photo[facade_windows] * 0.45 + np.array([0.10, 0.14, 0.20], dtype=np.float32)
    for part, color in _PART_COLORS.items():
        photo[parts == part] = color
    if seams:
        photo[touching_boundaries(labels, instances)] = _SEAM_COLOR

    y = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    photo *= (1.0 - _STREET_SHADE[labels] * y)[..., None]
    photo[_boundaries(instances)] *= 0.7  # outlines between objects, also between two cars side by side

    tint = 1.0 + rng.normal(0.0, 0.03, size=3).astype(np.float32)
    noise = rng.normal(0.0, 0.02, size=(height, width, 1)).astype(np.float32)
    return np.clip(np.rint((photo * tint + noise) * 255.0), 0, 255).astype(np.uint8)


def write_street_set(
    root: Path,
    n_train: int = 200,
    n_test: int = 20,
    size: tuple[int, int] = (64, 128),
    seed: int = 0,
    n_classes: int = len(STREET_CLASSES),
    touching: bool = False,
) -> Path:
    """Write street scenes in pix2pixHD's layout <root>/<split>_label, _inst and _img (NNNN.png); return root.

    Label maps are 8-bit class ids (STREET_CLASSES[:n_classes]), instance maps 16-bit ids
    (class * 1000 + k for STREET_THINGS, the class id elsewhere), photos 8-bit RGB of
    size = (height, width). Every scene has its own generator (seed, split, index), so the same seed
    gives byte-identical files and changing one split's count leaves the others unchanged. touching
    draws rows of parked cars and of trees whose instances touch (see street_scene).
    """
    root = Path(root)
    for split, count in (("train", n_train), ("test", n_test)):
        if count <= 0:
            continue
        names = _file_names(count)
        folders = [root / f"{split}_{kind}" for kind in ("label", "inst", "img")]
        for folder in folders:
            _check_only_ours(folder, set(names))
        for index, name in enumerate(names):
            rng = np.random.default_rng([seed, _STREET_STREAM, _SPLIT_STREAMS[split], index])
            labels, instances, parts = street_scene(rng, size, n_classes, touching)
            save_label_map(labels, folders[0] / name, bits=8)
            save_label_map(instances, folders[1] / name, bits=16)
            save_uint8(render_street(labels, instances, parts, rng, seams=touching), folders[2] / name)
    write_classes(root, STREET_CLASSES[:n_classes], STREET_LABEL_COLORS)
    return root


# ---------------------------------------------------------------------------------------------------
# Shapes of one lightness in different colours: a set where only colour hints can tell the colours


def color_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(H x W x 3 uint8 photo, H x W shape ids, 0 for the background) of one image of the colour set.

    A textured grey background (lightness 45-75, hardly any colour); two to four discs and rectangles,
    each filled with lightness 60 in its own colour (any hue, chroma 40, kept inside the sRGB gamut)
    and outlined by a dark border: their outlines show in L, their colours do not.
    """
    import torch

    from ganvas import color

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    light = 60 + 8 * np.sin(xx / rng.uniform(2, 5) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(2, 5))
    light += rng.normal(0, 3, (size, size))
    ab = np.stack([np.full((size, size), rng.uniform(-4, 4)), np.full((size, size), rng.uniform(-4, 4))], -1)
    ids = np.zeros((size, size), np.int64)
    for shape in range(1, int(rng.integers(2, 5)) + 1):
        r = rng.uniform(0.12, 0.22) * size
        cy, cx = rng.uniform(r, size - r, 2)
        if rng.random() < 0.5:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
            border = ((yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 1.5) ** 2) & ~inside
        else:
            inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r * 0.8)
            border = (np.abs(yy - cy) <= r + 1.5) & (np.abs(xx - cx) <= r * 0.8 + 1.5) & ~inside
        hue = rng.uniform(0, 2 * np.pi)
        light[border], ab[border] = 25, 0
        light[inside] = 60
        ab[inside] = 40 * np.array([np.cos(hue), np.sin(hue)])
        ids[border], ids[inside] = 0, shape
    lab = torch.from_numpy(np.concatenate([light[..., None], ab], -1).transpose(2, 0, 1)[None].astype(np.float32))
    rgb = color.lab_to_rgb(lab)[0].numpy().transpose(1, 2, 0)
    return (np.clip(rgb * 255 + 0.5, 0, 255)).astype(np.uint8), ids


def write_color_set(root: Path, n_train: int = 400, n_test: int = 20, size: int = 64, seed: int = 0) -> Path:
    """Write <root>/train/ and <root>/test/ of color_shapes images (the colourisation layout); return root."""
    root = Path(root)
    for split, count in (("train", n_train), ("test", n_test)):
        names = _file_names(count)
        _check_only_ours(root / split, set(names))
        for index, name in enumerate(names):
            rng = np.random.default_rng([seed, _COLOR_STREAM, _SPLIT_STREAMS[split], index])
            save_uint8(color_shapes(rng, size)[0], root / split / name)
    return root


# ---------------------------------------------------------------------------------------------------
# Videos: textured shapes moving over a panning textured background, with their exact optical flow

VIDEO_CLASSES: tuple[str, ...] = ("ground", "band", "disc", "box", "bar")
_GROUND, _BAND, _DISC, _BOX, _BAR = range(len(VIDEO_CLASSES))
_VIDEO_STREAM = 7
# Photo colours in [0, 1] per class; every object adds its own tint and texture.
_VIDEO_COLORS = np.array(
    [
        [0.36, 0.46, 0.30],  # ground
        [0.66, 0.58, 0.42],  # band
        [0.80, 0.26, 0.20],  # disc
        [0.22, 0.38, 0.74],  # box
        [0.88, 0.76, 0.24],  # bar
    ],
    dtype=np.float32,
)


def video_label_colors() -> np.ndarray:
    """The uint8 palette (len(VIDEO_CLASSES) x 3) of the video label maps: the first colours of label_colors()."""
    return _LABEL_COLORS[: len(VIDEO_CLASSES)].copy()


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of an H x W float32 image (separable, edges repeated)."""
    radius = max(1, int(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    kernel /= kernel.sum()
    for axis in (0, 1):
        padded = np.pad(image, [(radius, radius) if a == axis else (0, 0) for a in (0, 1)], mode="edge")
        length = image.shape[axis]
        image = sum(
            w * (padded[i : i + length] if axis == 0 else padded[:, i : i + length]) for i, w in enumerate(kernel)
        )
    return image.astype(np.float32)


def _moving_texture(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """An H x W float32 texture around 0: smooth random blotches at two scales plus fine grain, fixed in place.

    Drawn once per object and moved with it, so a frame's texture follows from the previous frame's by the
    motion alone (no noise is drawn per frame). Random rather than periodic, so motion is unambiguous.
    """
    texture = np.zeros(shape, np.float32)
    for sigma, strength in ((1.5, 0.10), (4.0, 0.12)):
        blotches = _blur(rng.normal(0.0, 1.0, shape).astype(np.float32), sigma)
        texture += strength * blotches / max(float(blotches.std()), 1e-6)
    return texture + rng.normal(0.0, 0.03, shape).astype(np.float32)


def _textured_photo(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3: each class's colour with an own tint plus one moving texture, per channel in own strength."""
    tint = 1.0 + rng.uniform(-0.1, 0.1, size=3).astype(np.float32)
    gain = rng.uniform(0.7, 1.3, size=3).astype(np.float32)
    photo = _VIDEO_COLORS[labels] * tint + _moving_texture(rng, labels.shape)[..., None] * gain
    return np.clip(np.rint(photo * 255.0), 0, 255).astype(np.uint8)


def _bounce(start: int, velocity: int, low: int, high: int, n_frames: int) -> np.ndarray:
    """Integer positions start + velocity * t reflected into [low, high] (a ball bouncing between two walls)."""
    span = high - low
    if span <= 0:
        return np.full(n_frames, low)
    u = np.mod(start - low + velocity * np.arange(n_frames), 2 * span)
    return low + np.where(u <= span, u, 2 * span - u)


def _velocity(rng: np.random.Generator, low: int, high: int) -> int:
    """A random integer speed in [low, high] pixels per frame, either way."""
    return int(rng.integers(low, high + 1)) * (1 if rng.random() < 0.5 else -1)


class _Sprite:
    """One moving object: its class, a local mask and texture centred on its position, and its path."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], n_frames: int) -> None:
        """A disc, box or bar of random size, texture and path (integer 1-4 pixel steps in x and y)."""
        height, width = size
        side = min(height, width)
        self.label = int(rng.integers(_DISC, _BAR + 1))
        if self.label == _DISC:
            half_y = half_x = max(2, round(rng.uniform(0.1, 0.18) * side))
        elif self.label == _BOX:
            half_y, half_x = (max(2, round(rng.uniform(0.08, 0.16) * side)) for _ in range(2))
        else:  # a long thin bar, lying or standing
            half_y, half_x = max(1, round(0.05 * side)), max(3, round(rng.uniform(0.18, 0.26) * side))
            if rng.random() < 0.5:
                half_y, half_x = half_x, half_y
        yy, xx = np.mgrid[-half_y : half_y + 1, -half_x : half_x + 1]
        if self.label == _DISC:
            self.mask = yy**2 + xx**2 <= half_y**2
        else:
            self.mask = np.ones(yy.shape, bool)
        self.half = (half_y, half_x)
        self.photo = _textured_photo(rng, np.full(self.mask.shape, self.label, np.uint8))
        start_y, start_x = int(rng.integers(0, height)), int(rng.integers(0, width))
        self.path = np.stack(
            [
                _bounce(start_y, _velocity(rng, 1, 4), 0, height - 1, n_frames),
                _bounce(start_x, _velocity(rng, 1, 4), 0, width - 1, n_frames),
            ],
            axis=-1,
        )

    def place(self, t: int, size: tuple[int, int]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """(frame slices, local slices) of the part of the sprite inside a frame of that size at frame t."""
        spans = []
        for axis in (0, 1):
            first = int(self.path[t, axis]) - self.half[axis]
            low, high = max(0, first), min(size[axis], first + 2 * self.half[axis] + 1)
            spans.append((slice(low, max(low, high)), slice(low - first, max(low, high) - first)))
        return (spans[0][0], spans[1][0]), (spans[0][1], spans[1][1])


def _background_canvas(
    rng: np.random.Generator, size: tuple[int, int], n_frames: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels, photo, origin (y, x) of frame 0 in the canvas, pan velocity (y, x)) of the panning background.

    Two classes in a coarse pattern of blobs (two crossed waves), so the pan shows in the labels whatever
    its direction; the canvas holds everything any frame shows.
    """
    height, width = size
    velocity = np.zeros(2, np.int64)
    while not velocity.any():
        velocity = rng.integers(-3, 4, size=2)
    reach = np.abs(velocity) * (n_frames - 1)
    canvas = (height + reach[0], width + reach[1])
    # Frame t shows the canvas from origin - velocity * t on: content moves by +velocity per frame.
    origin = np.maximum(velocity, 0) * (n_frames - 1)
    yy, xx = np.mgrid[0 : canvas[0], 0 : canvas[1]].astype(np.float32)
    period = rng.uniform(0.6, 1.2, size=2) * np.array(size, np.float32)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    wave = np.sin(yy * (2 * np.pi / period[0]) + phase[0]) + np.sin(xx * (2 * np.pi / period[1]) + phase[1])
    labels = np.where(wave > rng.uniform(0.0, 0.6), _BAND, _GROUND).astype(np.uint8)
    return labels, _textured_photo(rng, labels), origin, velocity


def moving_shapes_video(
    rng: np.random.Generator, n_frames: int = 12, size: tuple[int, int] = (64, 64)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic video as (labels T x H x W uint8 VIDEO_CLASSES ids, photos T x H x W x 3 uint8,
    backward flows T x H x W x 2 float32, validity T x H x W bool).

    Two to four textured discs, boxes and bars move in front of a textured background that pans, each
    with its own constant integer velocity (1-4 pixels per frame in x and y, bouncing off the frame's
    edges; the background 0-3 in each, never standing still). Every texture is fixed to its object, so
    warping frame t-1 by frame t's flow (nets.flow.warp) gives frame t exactly at its valid pixels: those
    whose point was inside frame t-1 and visible there on the same object. Frame 0's flow is zero and
    nothing valid.
    """
    height, width = size
    if n_frames < 1 or height < 1 or width < 1:
        raise ValueError(f"cannot draw {n_frames} frames of {height} x {width}; give at least one frame of 1 x 1")
    bg_labels, bg_photo, origin, pan = _background_canvas(rng, size, n_frames)
    sprites = [_Sprite(rng, size, n_frames) for _ in range(int(rng.integers(2, 5)))]
    labels = np.empty((n_frames, height, width), np.uint8)
    photos = np.empty((n_frames, height, width, 3), np.uint8)
    owners = np.empty((n_frames, height, width), np.int64)  # 0 background, k sprite k-1
    for t in range(n_frames):
        top, left = origin - pan * t
        labels[t] = bg_labels[top : top + height, left : left + width]
        photos[t] = bg_photo[top : top + height, left : left + width]
        owners[t] = 0
        for k, sprite in enumerate(sprites, start=1):  # later sprites in front
            frame_part, local_part = sprite.place(t, size)
            inside = sprite.mask[local_part]
            labels[t][frame_part][inside] = sprite.label
            photos[t][frame_part][inside] = sprite.photo[local_part][inside]
            owners[t][frame_part][inside] = k

    flows = np.zeros((n_frames, height, width, 2), np.float32)
    valid = np.zeros((n_frames, height, width), bool)
    yy, xx = np.mgrid[0:height, 0:width]
    for t in range(1, n_frames):
        # Each owner's step from t-1 to t, as (y, x); the backward flow is its negative in (x, y).
        steps = np.stack([pan] + [sprite.path[t] - sprite.path[t - 1] for sprite in sprites])
        step = steps[owners[t]]
        src_y, src_x = yy - step[..., 0], xx - step[..., 1]
        inside = (src_y >= 0) & (src_y < height) & (src_x >= 0) & (src_x < width)
        same = np.zeros((height, width), bool)
        same[inside] = owners[t - 1][src_y[inside], src_x[inside]] == owners[t][inside]
        flows[t] = -step[..., ::-1]
        valid[t] = same
    return labels, photos, flows, valid


def _check_only_our_sequences(folder: Path, sequences: set[str]) -> None:
    """DataError if folder holds sequence folders or images this call would not rewrite (a stale or foreign set)."""
    if not folder.is_dir():
        return
    others = sorted(
        p.name
        for p in folder.iterdir()
        if not p.name.startswith(".") and (p.is_dir() or is_image_file(p)) and p.name not in sequences
    )
    if others:
        raise DataError(
            f"{folder} already holds {len(others)} sequences or images this synthetic video set would not "
            f"overwrite (first: {', '.join(others[:3])}); pick an empty folder or remove them"
        )


def _check_only_our_flows(folder: Path, names: set[str]) -> None:
    """DataError if folder already holds flow files or images this call would not rewrite."""
    if not folder.is_dir():
        return
    others = sorted(
        p.name for p in folder.iterdir() if (is_image_file(p) or p.suffix.lower() == ".flo") and p.name not in names
    )
    if others:
        raise DataError(
            f"{folder} already holds {len(others)} flow or mask files this synthetic video set would not "
            f"overwrite (first: {', '.join(others[:3])}); pick an empty folder or remove them"
        )


def _sequence_names(n: int) -> list[str]:
    """seq_0000, seq_0001, ... (wider when n needs it)."""
    return [f"seq_{name[:-4]}" for name in _file_names(n)]


def write_video_set(
    root: Path,
    n_train: int = 16,
    n_test: int = 4,
    n_frames: int = 12,
    size: tuple[int, int] = (64, 64),
    seed: int = 0,
) -> Path:
    """Write moving_shapes_video sequences in vid2vid's layout; return root.

    <root>/<split>_A/<seq>/NNNN.png are label videos (RGB, one video_label_colors() colour per
    VIDEO_CLASSES class), <root>/<split>_B/<seq>/NNNN.png the rendered frames and
    <root>/<split>_flow/<seq>/NNNN.flo with NNNN_valid.png the exact backward flow and validity of
    frames 1 and later (data.flow.read_flo / read_valid), for split train and test and <seq> seq_0000, ...
    Every sequence has its own generator (seed, split, index), so the same seed gives byte-identical
    files and changing one split's count leaves the others unchanged.
    """
    from ganvas.data.flow import flow_file_names, write_flo, write_valid

    root = Path(root)
    palette = video_label_colors()
    frame_names = _file_names(n_frames)
    flow_names = {name for frame in frame_names[1:] for name in flow_file_names(Path(frame))}
    for split, count in (("train", n_train), ("test", n_test)):
        if count <= 0:
            continue
        sequences = _sequence_names(count)
        folders = {kind: root / f"{split}_{kind}" for kind in ("A", "B", "flow")}
        for kind, folder in folders.items():
            _check_only_our_sequences(folder, set(sequences))
            for sequence in sequences:
                if kind == "flow":
                    _check_only_our_flows(folder / sequence, flow_names)
                else:
                    _check_only_ours(folder / sequence, set(frame_names))
        for index, sequence in enumerate(sequences):
            rng = np.random.default_rng([seed, _VIDEO_STREAM, _SPLIT_STREAMS[split], index])
            labels, photos, flows, valid = moving_shapes_video(rng, n_frames, size)
            for t, name in enumerate(frame_names):
                save_uint8(palette[labels[t]], folders["A"] / sequence / name)
                save_uint8(photos[t], folders["B"] / sequence / name)
                if t >= 1:
                    flo_name, valid_name = flow_file_names(Path(name))
                    write_flo(folders["flow"] / sequence / flo_name, flows[t])
                    write_valid(folders["flow"] / sequence / valid_name, valid[t])
    return root
