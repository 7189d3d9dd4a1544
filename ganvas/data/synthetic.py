"""Built-in procedural facades (label map -> photo) for the demo and the tests: no download, seeded."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from ganvas.data.io import is_image_file, save_uint8
from ganvas.errors import DataError

SKY, WALL, WINDOW, DOOR, BALCONY, CORNICE, PILLAR, SHOP = range(8)
CLASS_NAMES: tuple[str, ...] = ("sky", "wall", "window", "door", "balcony", "cornice", "pillar", "shop")

# Label colours (the A side), in the spirit of the CMP facade maps: saturated and far apart.
_LABEL_COLORS = np.array([
    [0, 0, 170],      # sky / background
    [0, 85, 255],     # wall
    [255, 85, 0],     # window
    [170, 0, 0],      # door
    [85, 255, 170],   # balcony
    [255, 255, 0],    # cornice
    [0, 170, 255],    # pillar
    [170, 255, 85],   # shop
], dtype=np.uint8)

# "Photo" colours in [0, 1] per class: by day (the B side of the paired set, the A side of the
# unpaired one) and by night (lit windows and shops, dark sky and walls; the unpaired B side).
_PHOTO_PALETTES = {
    "day": np.array([
        [0.62, 0.76, 0.92],
        [0.80, 0.66, 0.52],
        [0.22, 0.28, 0.36],
        [0.36, 0.22, 0.14],
        [0.30, 0.30, 0.32],
        [0.90, 0.87, 0.80],
        [0.72, 0.70, 0.66],
        [0.40, 0.50, 0.55],
    ], dtype=np.float32),
    "night": np.array([
        [0.05, 0.07, 0.22],
        [0.24, 0.20, 0.26],
        [0.98, 0.82, 0.40],
        [0.12, 0.08, 0.05],
        [0.10, 0.10, 0.15],
        [0.36, 0.34, 0.42],
        [0.30, 0.29, 0.36],
        [0.95, 0.60, 0.22],
    ], dtype=np.float32),
}
PHOTO_PALETTES: tuple[str, ...] = tuple(_PHOTO_PALETTES)
# How strongly each class darkens towards its bottom.
_VERTICAL_SHADE = np.array([0.30, 0.18, -0.35, 0.10, 0.05, 0.05, 0.15, -0.25], dtype=np.float32)
_FRAMED = np.array([False, False, True, True, True, False, False, True])

_SPLIT_STREAMS = {"train": 0, "test": 1, "val": 2}
_FOLDER_STREAM = 3
_UNPAIRED_STREAM = 4
_DOMAIN_STREAMS = {"A": 0, "B": 1}


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
        labels[top:, left:left + width] = PILLAR
        labels[top:, right - width:right] = PILLAR
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

    labels[top:top + band, left:right] = CORNICE
    labels[ground - band:ground, left:right] = CORNICE

    # Ground floor: one door in a random bay, shop windows in the others or plain wall.
    door_col = int(rng.integers(0, n_cols))
    door_top = ground + int((size - ground) * rng.uniform(0.15, 0.35))
    door_cols = _bands(win_left[door_col:door_col + 1], win_right[door_col:door_col + 1], size)
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


def render_facade(labels: np.ndarray, rng: np.random.Generator, palette: str = "day") -> np.ndarray:
    """A "photo" (uint8 H x W x 3) of a label map in one of PHOTO_PALETTES: mostly a fixed, learnable function of the labels.

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


def write_paired_set(root: Path, n_train: int = 200, n_test: int = 20, n_val: int = 0, size: int = 64,
                     seed: int = 0) -> Path:
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
    return root


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
        folders = {"A": (root / f"{split}A", root / "truth" / f"{split}B"),
                   "B": (root / f"{split}B", root / "truth" / f"{split}A")}
        for folder in (path for pair in folders.values() for path in pair):
            _check_only_ours(folder, set(names))
        for domain, (images, truths) in folders.items():
            for index, name in enumerate(names):
                day, night = _day_and_night(seed, split, domain, index, size)
                own, other = (day, night) if domain == "A" else (night, day)
                save_uint8(own, images / name)
                save_uint8(other, truths / name)
    return root
