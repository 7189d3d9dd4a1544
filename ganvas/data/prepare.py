"""Data sets made from files a user has: A and B folders combined into A|B pairs (as the original
`combine_A_and_B.py`), in parallel, each image written atomically; Cityscapes' zip files in pix2pixHD's layout."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ganvas.data.io import find_images, is_image_file, save_uint8
from ganvas.errors import DataError

log = logging.getLogger("ganvas")


@dataclass(frozen=True)
class Combined:
    """What combine_folders did: pairs written per split, and A images without a B counterpart."""

    written: dict[str, int]
    unmatched: dict[str, list[str]]


def combine_folders(
    fold_a: Path,
    fold_b: Path,
    fold_ab: Path,
    num_imgs: int | None = None,
    use_ab: bool = False,
    workers: int = 0,
) -> Combined:
    """Write fold_ab/<split>/<name>: the image of fold_a/<split>/<name> beside fold_b's of the same name.

    Splits are the subfolders of fold_a (train, val, test ...). With `use_ab` the files are named
    <stem>_A.<ext> and <stem>_B.<ext> and the pair is written as <stem>.<ext>, as the original script's
    --use_AB. `num_imgs` caps the images per split; `workers` processes write them (0: one per CPU,
    1: in this process).
    """
    fold_a, fold_b, fold_ab = Path(fold_a), Path(fold_b), Path(fold_ab)
    for folder, flag in ((fold_a, "--fold_A"), (fold_b, "--fold_B")):
        if not folder.is_dir():
            raise DataError(f"{folder} is no folder; pass {flag} with one subfolder per split (train, test ...)")
    splits = sorted(p.name for p in fold_a.iterdir() if p.is_dir())
    if not splits:
        raise DataError(f"{fold_a} has no split subfolders (train, val, test ...); put the A images in them")
    jobs, written, unmatched = [], {}, {}
    for split in splits:
        images = find_images(fold_a / split)
        if use_ab:
            images = [p for p in images if p.stem.endswith("_A")]
        images = images[:num_imgs] if num_imgs else images
        written[split], unmatched[split] = 0, []
        for path_a in images:
            name_b = path_a.name.replace("_A.", "_B.") if use_ab else path_a.name
            name_ab = path_a.name.replace("_A.", ".") if use_ab else path_a.name
            path_b = fold_b / split / name_b
            if not path_b.is_file():
                unmatched[split].append(path_a.name)
                continue
            jobs.append((path_a, path_b, fold_ab / split / name_ab))
            written[split] += 1
    if not jobs:
        raise DataError(f"no image of {fold_a} has a namesake in {fold_b}; pairs are matched by split and file name")
    if workers == 1:
        for job in jobs:
            _combine_pair(job)
    else:
        with ProcessPoolExecutor(max_workers=workers or None) as pool:
            list(pool.map(_combine_pair, jobs, chunksize=16))
    for split, names in unmatched.items():
        if names:
            log.warning("%d images of %s have no namesake in %s (first: %s)", len(names), fold_a / split,
                        fold_b / split, names[0])  # fmt: skip
    return Combined(written, unmatched)


def _combine_pair(job: tuple[Path, Path, Path]) -> None:
    path_a, path_b, path_ab = job
    a, b = _read_rgb(path_a), _read_rgb(path_b)
    if a.shape != b.shape:
        raise DataError(
            f"{path_a} is {a.shape[1]} x {a.shape[0]} and {path_b} {b.shape[1]} x {b.shape[0]}; a pair needs one "
            f"size: resize one of them"
        )
    save_uint8(np.concatenate([a, b], axis=1), path_ab)


def _read_rgb(path: Path) -> np.ndarray:
    if not is_image_file(path):
        raise DataError(f"{path} is not an image file ganvas reads")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except OSError as err:
        raise DataError(f"cannot read {path} ({err}); re-export it or remove it from the folder") from None


# ---------------------------------------------------------------------------------------------------
# Cityscapes in pix2pixHD's layout

CITYSCAPES_SPLITS = {"train": "train", "val": "test"}  # Cityscapes' test labels are withheld: val is the test set
_CITYSCAPES_FILES = {"label": "_gtFine_labelIds.png", "inst": "_gtFine_instanceIds.png", "img": "_leftImg8bit.png"}


def prepare_cityscapes(gtfine: Path, leftimg: Path, out: Path, force: bool = False) -> dict[str, int]:
    """Copy Cityscapes' labelIds, instanceIds and photos into out/<phase>_label, _inst and _img (pix2pixHD's layout).

    `gtfine` and `leftimg` are the official zip files (gtFine_trainvaltest.zip, leftImg8bit_trainvaltest.zip) or
    folders holding their gtFine/ and leftImg8bit/ trees. The files keep their names (ganvas pairs them by name);
    train becomes train_*, val becomes test_*. The folders appear together, once all are written.
    Returns the scenes per phase.
    """
    with contextlib.ExitStack() as archives:  # the zip files stay open while their members are copied
        return _prepare_cityscapes(Path(gtfine), Path(leftimg), Path(out), force, archives)


def _prepare_cityscapes(
    gtfine: Path, leftimg: Path, out: Path, force: bool, archives: contextlib.ExitStack
) -> dict[str, int]:
    sources = {
        "label": _cityscapes_files(gtfine, "gtFine", archives),
        "img": _cityscapes_files(leftimg, "leftImg8bit", archives),
    }
    targets = [out / f"{phase}_{kind}" for phase in CITYSCAPES_SPLITS.values() for kind in _CITYSCAPES_FILES]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise DataError(f"{existing[0]} exists already; move it away or pass --force to replace it")
    staging = out / f".preparing-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    counts = {}
    try:
        for split, phase in CITYSCAPES_SPLITS.items():
            scenes = 0
            labels = {k: v for k, v in sources["label"].items() if k[0] == split and k[2] == "label"}
            for (_, stem, _), read_label in sorted(labels.items()):
                read_inst = sources["label"].get((split, stem, "inst"))
                read_img = sources["img"].get((split, stem, "img"))
                if read_inst is None or read_img is None:
                    missing = "instanceIds" if read_inst is None else "leftImg8bit photo"
                    raise DataError(f"{stem} of {split} has labelIds but no {missing}; pass the matching zip files")
                for kind, read in (("label", read_label), ("inst", read_inst), ("img", read_img)):
                    path = staging / f"{phase}_{kind}" / f"{stem}{_CITYSCAPES_FILES[kind]}"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(read())
                scenes += 1
            counts[phase] = scenes
        if not counts.get("train"):
            raise DataError(
                f"{gtfine} holds no gtFine/train/<city>/*_gtFine_labelIds.png; pass gtFine_trainvaltest.zip"
            )
        for target in targets:
            if target.exists():
                shutil.rmtree(target)
            if (staging / target.name).is_dir():
                os.replace(staging / target.name, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return counts


def _cityscapes_files(source: Path, tree: str, archives: contextlib.ExitStack) -> dict[tuple[str, str, str], Any]:
    """{(split, stem, kind): read()} of the Cityscapes files of one tree (gtFine or leftImg8bit), zip or folder."""
    found: dict[tuple[str, str, str], Any] = {}

    def add(relative: str, read) -> None:
        parts = relative.split("/")
        if len(parts) < 4 or parts[-4] != tree:
            return
        split, name = parts[-3], parts[-1]
        for kind, ending in _CITYSCAPES_FILES.items():
            if name.endswith(ending):
                found[(split, name[: -len(ending)], kind)] = read

    if source.is_file() and zipfile.is_zipfile(source):
        archive = archives.enter_context(zipfile.ZipFile(source))
        for member in archive.namelist():
            add(member, lambda m=member: archive.read(m))
    elif source.is_dir():
        root = source if source.name == tree else source / tree
        for path in sorted(root.rglob("*.png")):
            add(f"{tree}/{path.relative_to(root).as_posix()}", path.read_bytes)
    else:
        raise DataError(f"{source} is neither a zip file nor a folder; pass the official {tree} zip or its folder")
    if not found:
        raise DataError(f"{source} holds no {tree}/<split>/<city>/ files; pass the official {tree}_trainvaltest zip")
    return found
