"""`ganvas eval`: FID, KID, PSNR, SSIM and L1 of a run's test outputs or of two folders, with the protocol written
beside every figure, and runs compared in one table.

FID and KID use FID's Inception-v3 from a local file (ganvas.nets.inception): `--inception_weights PATH`, else
the cache path `weights_path()`; without the file they are skipped with one line saying where to put it, and
`--download` fetches it from pytorch-fid's release (its SHA-256 checked) with a progress bar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganvas.data.download import fetch, file_sha256, official_or_mirror
from ganvas.data.io import find_images, read_image
from ganvas.errors import DataError, OptionsError
from ganvas.files import atomic_write_text
from ganvas.metrics import feature_statistics, frechet_distance, image_metrics, inception_features, kernel_distance
from ganvas.nets.inception import WEIGHTS_FILE, load_fid_inception

log = logging.getLogger("ganvas")

SET_METRICS = ("fid", "kid")
PAIRED_METRICS = ("psnr", "ssim", "l1", "lpips")
METRICS = SET_METRICS + PAIRED_METRICS
LOWER_IS_BETTER = ("fid", "kid", "l1", "lpips")
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
WEIGHTS_SHA256_PREFIX = "6726825d"  # the hash prefix in the file's name, as torch.hub names files
RESIZE = "clean-fid: each channel as float, PIL bicubic to 299 x 299, clipped, not quantised"
EVAL_FILE = "eval.json"


def weights_path(name: str = WEIGHTS_FILE) -> Path:
    """Where a weights file is looked for when no path is given: $GANVAS_HOME/weights/<name> (~/.cache/ganvas)."""
    home = Path(os.environ.get("GANVAS_HOME") or Path.home() / ".cache" / "ganvas")
    return home / "weights" / name


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip().lower() for m in text.split(",") if m.strip())
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise OptionsError(f"unknown metric {unknown[0] if unknown else text!r}; choose from {', '.join(METRICS)}")
    return names


@dataclass(frozen=True)
class Weights:
    """FID's Inception file to use (None: not there, the set metrics are skipped) and why."""

    path: Path | None
    note: str = ""


def find_weights(given: Path | None, download: bool = False, mirror: str | None = None) -> Weights:
    """The Inception file: given, or the cache path (fetched there with `download`); else a note on what to do."""
    if given is not None:
        if not Path(given).is_file():
            raise DataError(f"--inception_weights {given} does not exist; pass the path of {WEIGHTS_FILE}")
        return Weights(Path(given))
    cached = weights_path()
    if not cached.is_file() and download:
        fetch(official_or_mirror(WEIGHTS_URL, mirror), cached, sha256=WEIGHTS_SHA256_PREFIX)
    if cached.is_file():
        return Weights(cached)
    return Weights(
        None,
        f"FID and KID skipped: they need {WEIGHTS_FILE}; download it from {WEIGHTS_URL} to {cached} "
        f"(or pass --download, or --inception_weights PATH)",
    )


@dataclass(frozen=True)
class LpipsFiles:
    """LPIPS's two files (None: missing, LPIPS is skipped) and why."""

    backbone: Path | None
    heads: Path | None
    note: str = ""


def find_lpips(
    backbone: Path | None = None, heads: Path | None = None, download: bool = False, mirror: str | None = None
) -> LpipsFiles:
    """LPIPS's AlexNet weights and linear heads: given, or in the cache folder (fetched there with `download`)."""
    from ganvas.nets.lpips import BACKBONE_FILE, BACKBONE_SHA256_PREFIX, BACKBONE_URL, HEADS_FILE, HEADS_URL

    found = []
    for given, name, url, flag in (
        (backbone, BACKBONE_FILE, BACKBONE_URL, "--lpips_backbone"),
        (heads, HEADS_FILE, HEADS_URL, "--lpips_heads"),
    ):
        if given is not None:
            if not Path(given).is_file():
                raise DataError(f"{flag} {given} does not exist; download {url} and pass its path")
            found.append(Path(given))
            continue
        cached = weights_path(name)
        if not cached.is_file() and download:
            # AlexNet's file is named by its hash, as torch.hub names files; the heads file's hash is published nowhere
            fetch(
                official_or_mirror(url, mirror), cached, sha256=BACKBONE_SHA256_PREFIX if name == BACKBONE_FILE else ""
            )
        found.append(cached if cached.is_file() else None)
    if all(found):
        return LpipsFiles(found[0], found[1])
    return LpipsFiles(
        None,
        None,
        f"LPIPS skipped: it needs {BACKBONE_URL} and {HEADS_URL} (the lpips package's weights/v0.1/alex.pth) in "
        f"{weights_path(BACKBONE_FILE).parent} as {BACKBONE_FILE} and {HEADS_FILE} (or pass --download, or "
        f"--lpips_backbone and --lpips_heads)",
    )


def _rgb8(path: Path) -> np.ndarray:
    return (read_image(path, 3).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def set_figures(
    real: list[Path], fake: list[Path], weights: Path, device: str = "cpu", kid_subsets: int = 100
) -> dict[str, Any]:
    """FID and KID of two image sets, with the protocol: counts, resize, weights file and hash, KID's subsets."""
    if len(real) < 2 or len(fake) < 2:
        raise DataError(f"FID and KID need at least 2 images a side, got {len(real)} real and {len(fake)} generated")
    net = load_fid_inception(weights, device)
    features_real = inception_features([_rgb8(p) for p in real], net)
    features_fake = inception_features([_rgb8(p) for p in fake], net)
    fid = frechet_distance(*feature_statistics(features_real), *feature_statistics(features_fake))
    kid, kid_std, subset = kernel_distance(features_real, features_fake, subsets=kid_subsets)
    protocol = {
        "real_images": len(real),
        "generated_images": len(fake),
        "resize": RESIZE,
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
        "kid": {"subsets": kid_subsets, "subset_size": subset, "seed": 2020, "kernel": "(x.y / 2048 + 1)^3"},
    }
    if min(len(real), len(fake)) < 2048:
        protocol["warning"] = (
            f"FID from {min(len(real), len(fake))} images is biased upwards and not comparable with figures from "
            f"other counts; compare runs at one count, or use KID"
        )
    return {"fid": fid, "kid": kid, "kid_std": kid_std, "protocol": protocol}


def paired_figures(real: dict[str, Path], fake: dict[str, Path], lpips: LpipsFiles | None = None) -> dict[str, Any]:
    """Mean PSNR, SSIM and L1 (and LPIPS, given its files) of the generated images against the real ones of the
    same name."""
    import torch

    from ganvas.nets.lpips import load_lpips

    net = load_lpips(lpips.backbone, lpips.heads) if lpips is not None and lpips.backbone is not None else None
    names = sorted(set(real) & set(fake))
    if not names:
        raise DataError("no generated image has a real image of the same name to be scored against")
    scores = []
    for name in names:
        out, target = read_image(fake[name], 3) * 2 - 1, read_image(real[name], 3) * 2 - 1
        if out.shape != target.shape:
            raise DataError(
                f"{fake[name]} is {tuple(out.shape[1:])} and {real[name]} {tuple(target.shape[1:])} (H x W); paired "
                f"figures need images of one size"
            )
        scores.append(image_metrics(out, target))
        if net is not None:
            with torch.no_grad():
                scores[-1]["lpips"] = float(net(out[None], target[None])[0])
    means = {k: float(np.mean([s[k] for s in scores])) for k in PAIRED_METRICS if k in scores[0]}
    return {**means, "pairs": len(names)}


def evaluate(
    real: list[Path],
    fake: list[Path],
    metrics: tuple[str, ...],
    weights: Weights,
    pairs: tuple[dict[str, Path], dict[str, Path]] | None = None,
    device: str = "cpu",
    lpips: LpipsFiles | None = None,
) -> dict[str, Any]:
    """The chosen figures of generated images against real ones; `notes` says what was skipped and why."""
    result: dict[str, Any] = {"metrics": {}, "notes": []}
    if any(m in SET_METRICS for m in metrics):
        if weights.path is None:
            result["notes"].append(weights.note)
        else:
            figures = set_figures(real, fake, weights.path, device)
            result["metrics"].update({k: figures[k] for k in ("fid", "kid", "kid_std") if k[:3] in metrics})
            result["protocol"] = figures["protocol"]
            if "warning" in figures["protocol"]:
                result["notes"].append(figures["protocol"]["warning"])
    if any(m in PAIRED_METRICS for m in metrics):
        if "lpips" in metrics and (lpips is None or lpips.backbone is None):
            result["notes"].append(lpips.note if lpips is not None else "LPIPS skipped: no LPIPS files were looked for")
            lpips = None
        if pairs is None:
            result["notes"].append("PSNR, SSIM, L1 and LPIPS skipped: the generated images have no paired targets")
        else:
            figures = paired_figures(*pairs, lpips if "lpips" in metrics else None)
            result["metrics"].update({k: figures[k] for k in PAIRED_METRICS if k in metrics and k in figures})
            result["pairs"] = figures["pairs"]
    return result


def by_name(files: list[Path], root: Path, suffix: str = "") -> dict[str, Path]:
    """Files keyed by their path below root without the extension (and without `suffix` at the end of the stem)."""
    keyed = {}
    for path in files:
        key = path.relative_to(root).with_suffix("").as_posix()
        keyed[key[: -len(suffix)] if suffix and key.endswith(suffix) else key] = path
    return keyed


def evaluate_folders(
    real: Path,
    fake: Path,
    metrics: tuple[str, ...],
    weights: Weights,
    device: str = "cpu",
    lpips: LpipsFiles | None = None,
) -> dict:
    """Figures of every image under `fake` against every image under `real` (paired by relative name)."""
    real_files, fake_files = _images(real, "--real"), _images(fake, "--fake")
    pairs = by_name(real_files, real), by_name(fake_files, fake)
    paired = bool(set(pairs[0]) & set(pairs[1]))
    result = evaluate(real_files, fake_files, metrics, weights, pairs if paired else None, device, lpips)
    return {"real": str(real), "fake": str(fake), **result}


def evaluate_test_page(
    test_dir: Path,
    metrics: tuple[str, ...],
    weights: Weights,
    device: str = "cpu",
    lpips: LpipsFiles | None = None,
    dataroot: Path | None = None,
) -> dict:
    """Figures of a `ganvas test` result folder: its fake_B images against its real_B images (the targets of a
    paired run, the target domain's test images of an unpaired one), paired by name where the run is paired; a
    generator from noise: its samples against the images under `dataroot` (FID and KID only)."""
    images = test_dir / "images"
    fake = sorted(images.glob("*_fake_B.png"))
    real = sorted(images.glob("*_real_B.png"))
    samples = sorted(images.glob("sample_*.png"))
    if not fake and samples and dataroot is not None:
        summary = json.loads((test_dir / "metrics.json").read_text()) if (test_dir / "metrics.json").is_file() else {}
        result = evaluate(_images(Path(dataroot), "--dataroot"), samples, metrics, weights, None, device, lpips)
        return {"test": str(test_dir), "epoch": summary.get("epoch"), "name": summary.get("name"), **result}
    if not fake or not real:
        raise DataError(f"{images} has no *_fake_B.png and *_real_B.png images; run `ganvas test` for this run first")
    summary = json.loads((test_dir / "metrics.json").read_text()) if (test_dir / "metrics.json").is_file() else {}
    # The test page names what fake_B is scored against: real_B for a paired run, the kept-aside truth_B of a
    # built-in unpaired set; an unpaired run's real_B are other scenes, for FID and KID only.
    target = summary.get("by_output", {}).get("fake_B", {}).get("target")
    truths = sorted(images.glob(f"*_{target}.png")) if target else []
    pairs = (by_name(truths, images, f"_{target}"), by_name(fake, images, "_fake_B")) if truths else None
    result = evaluate(real, fake, metrics, weights, pairs, device, lpips)
    return {"test": str(test_dir), "epoch": summary.get("epoch"), "name": summary.get("name"), **result}


def _images(folder: Path, flag: str) -> list[Path]:
    if not Path(folder).is_dir():
        raise DataError(f"{flag} {folder} is no folder; pass a folder of images")
    files = find_images(Path(folder))
    if not files:
        raise DataError(f"{flag} {folder} holds no images")
    return files


def write_eval(result: dict[str, Any], path: Path) -> Path:
    atomic_write_text(path, json.dumps(result, indent=2))
    return path


def format_table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """One table of runs' figures: a column per metric any of them has."""
    columns = [m for m in METRICS if any(m in r["metrics"] for _, r in rows)]
    width = max(12, *(len(name) for name, _ in rows))
    lines = [f"{'run':<{width}} " + " ".join(f"{c.upper():>10}" for c in columns)]
    for name, result in rows:
        cells = []
        for column in columns:
            value = result["metrics"].get(column)
            cells.append(f"{'-':>10}" if value is None else f"{value:>10.4f}")
        lines.append(f"{name:<{width}} " + " ".join(cells))
    return "\n".join(lines)


def fingerprint(result: dict[str, Any]) -> str:
    """A short hash of a result's protocol, so that tables say when figures were measured differently."""
    protocol = json.dumps(result.get("protocol", {}), sort_keys=True, default=str)
    return hashlib.sha256(protocol.encode()).hexdigest()[:8]
