"""`ganvas demo [--model NAME]`: a built-in data set, a few CPU minutes of training, a test page with baselines.

Each model file registers its demos (`register_demo` in ganvas.models.base: a DemoRecipe naming a built-in
set, the training flags and the epochs). This module writes the set, trains, tests, scores the test
outputs and the set's trivial baselines the same way, and writes one page with the figures and pictures.
"""

from __future__ import annotations

import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas import color
from ganvas.checkpoint import atomic_write_text
from ganvas.data.io import find_images, read_image, read_label_map, save_image, save_uint8
from ganvas.data.synthetic import (
    write_color_set,
    write_image_folder,
    write_paired_set,
    write_street_set,
    write_unpaired_set,
    write_video_set,
)
from ganvas.infer import run_test
from ganvas.metrics import image_metrics, sample_diversity, thumbnail_fd
from ganvas.models.base import DemoRecipe
from ganvas.options import resolve_options
from ganvas.registry import DEMOS
from ganvas.report import make_grid, page
from ganvas.train import train

log = logging.getLogger("ganvas")

DEFAULT_DEMO = "pix2pix"


@dataclass(frozen=True)
class Figure:
    """One figure of a demo: how it is named and written, and which way is better."""

    key: str
    label: str
    unit: str = ""
    higher_is_better: bool = True
    digits: int = 2

    def format(self, value: float) -> str:
        return f"{value:.{self.digits}f}{' ' + self.unit if self.unit else ''}"


PSNR = Figure("psnr", "PSNR", "dB")
SSIM = Figure("ssim", "SSIM", digits=3)
FD = Figure("fd", "Fréchet distance of 8x8 thumbnails to held-out photos", higher_is_better=False, digits=3)
DIVERSITY = Figure("diversity", "sample diversity (held-out photos: 1.00)")


def _mean_scores(outputs: list[torch.Tensor], targets: list[torch.Tensor]) -> dict[str, float]:
    scores = [image_metrics(o, t) for o, t in zip(outputs, targets)]
    return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "ssim", "l1")}


def _images(files: list[Path], channels: int = 3) -> list[torch.Tensor]:
    """Images in [-1, 1], as the metrics take them."""
    return [read_image(f, channels) * 2 - 1 for f in files]


def _mean_image(images: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(images).mean(0)


# ------------------------------------------------------------------------ built-in sets


@dataclass(frozen=True)
class BuiltinSet:
    """A built-in data set: how to write it, its trivial baselines and the example inputs for `ganvas translate`.

    `write(folder, seed, **args)` returns the --dataroot to train on; `baselines(dataroot)` scores each
    trivial predictor on the test split the way `ganvas test` scores the model; `translate_args(dataroot)`
    are the inputs of a `ganvas translate` command for the trained model (empty: it samples, nothing to
    translate). `figures` are what is compared, the first being the headline.
    """

    write: Callable[..., Path]
    baselines: Callable[[Path], dict[str, dict[str, float]]]
    translate_args: Callable[[Path], list[str]]
    figures: tuple[Figure, ...] = (PSNR, SSIM)
    # The test page's images shown side by side in the demo's picture (none: its grid of samples).
    picture: tuple[str, ...] = ()


def _write_paired(folder: Path, seed: int, size: int = 64, n_train: int = 200, n_test: int = 20) -> Path:
    root = write_paired_set(folder, n_train=n_train, n_test=n_test, size=size, seed=seed)
    # The A halves of a few test pairs, as a user's own label maps to translate.
    for f in find_images(root / "test")[:4]:
        image = read_image(f, 3)
        save_image(image[:, :, : image.shape[2] // 2] * 2 - 1, root / "examples" / f.name)
    return root


def _paired_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    def target(f: Path) -> torch.Tensor:
        image = read_image(f, 3) * 2 - 1
        return image[:, :, image.shape[2] // 2 :]

    mean = _mean_image([target(f) for f in find_images(dataroot / "train")])
    tests = [target(f) for f in find_images(dataroot / "test")]
    return {"the mean training photo": _mean_scores([mean] * len(tests), tests)}


def _write_unpaired(folder: Path, seed: int, size: int = 64, n_train: int = 200, n_test: int = 20) -> Path:
    return write_unpaired_set(folder, n_train=n_train, n_test=n_test, size=size, seed=seed)


def _unpaired_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    """The input left as it is, and the mean training B image, each against the true B rendering of the input."""
    inputs = find_images(dataroot / "testA")
    truth = _images([dataroot / "truth" / "testB" / f.name for f in inputs])
    mean = _mean_image(_images(find_images(dataroot / "trainB")))
    return {
        "the input, unchanged": _mean_scores(_images(inputs), truth),
        "the mean training B image": _mean_scores([mean] * len(truth), truth),
    }


def _write_street(folder: Path, seed: int, size: int = 64, n_train: int = 200, n_test: int = 20) -> Path:
    return write_street_set(folder, n_train=n_train, n_test=n_test, size=(size, 2 * size), seed=seed)


def _street_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    """The mean training photo, and each test label map painted with every class's mean training colour."""
    photos = _images(find_images(dataroot / "train_img"))
    tests = _images(find_images(dataroot / "test_img"))
    labels = [torch.from_numpy(read_label_map(f).astype(np.int64)) for f in find_images(dataroot / "train_label")]
    classes = int(max(int(label.max()) for label in labels)) + 1
    sums, counts = torch.zeros(classes, 3), torch.zeros(classes)
    for photo, label in zip(photos, labels):
        sums.index_add_(0, label.flatten(), photo.flatten(1).T)
        counts += torch.bincount(label.flatten(), minlength=classes)
    colours = sums / counts.clamp(min=1)[:, None]
    painted = [
        colours[torch.from_numpy(read_label_map(f).astype(np.int64)).clamp(max=classes - 1)].permute(2, 0, 1)
        for f in find_images(dataroot / "test_label")
    ]
    return {
        "the mean training photo": _mean_scores([_mean_image(photos)] * len(tests), tests),
        "the label map in each class's mean training colour": _mean_scores(painted, tests),
    }


def _write_images(folder: Path, seed: int, size: int = 32, n_train: int = 2000, n_test: int = 256) -> Path:
    # Held-out photos (another seed's stream) to score samples against; the model trains on train/.
    write_image_folder(folder / "test", n_test, size=size, seed=seed + 1_000_003)
    return write_image_folder(folder / "train", n_train, size=size, seed=seed)


def sample_figures(samples: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """FD of 8x8 thumbnails to `real` and diversity relative to `real`'s (N x C x H x W in [-1, 1])."""
    return {"fd": thumbnail_fd(samples, real), "diversity": sample_diversity(samples) / sample_diversity(real)}


def trivial_sample_sets(train_images: torch.Tensor, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """n samples of two trivial generators for N x C x H x W training images: the mean image every time
    (collapse), and every pixel drawn from the same position of a random training image (right colours,
    no structure)."""
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randint(len(train_images), (n, 1, *train_images.shape[2:]), generator=gen)
    structureless = torch.gather(train_images, 0, pick.expand(n, train_images.shape[1], -1, -1).contiguous())
    return {"collapse": train_images.mean(0, keepdim=True).expand(n, -1, -1, -1), "structureless": structureless}


def _image_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    """A collapsed generator (the mean training photo every time) and one that knows each pixel but not images."""
    train_images = torch.stack(_images(find_images(dataroot)))
    real = torch.stack(_images(find_images(dataroot.parent / "test")))
    trivial = trivial_sample_sets(train_images, len(real))
    return {
        "the mean training photo every time (collapse)": sample_figures(trivial["collapse"], real),
        "pixels drawn independently from the training photos": sample_figures(trivial["structureless"], real),
    }


def _write_photos(folder: Path, seed: int, size: int = 64, n_train: int = 200, n_test: int = 20) -> Path:
    """Colour photos in the colourisation layout: <root>/train/ and <root>/test/."""
    write_image_folder(folder / "test", n_test, size=size, seed=seed + 1_000_003)
    write_image_folder(folder / "train", n_train, size=size, seed=seed)
    return folder


def _photo_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    """Each test photo's own L without colour, and with the mean training colour (ab) at each pixel."""
    tests = _images(find_images(dataroot / "test"))
    light = [color.encode(t[None])[0] for t in tests]
    mean_ab = _mean_image([color.encode(t[None])[1][0] for t in _images(find_images(dataroot / "train"))])
    return {
        "the grey photo (its L, no colour)": _mean_scores(
            [color.decode(lt, torch.zeros(1, 2, *lt.shape[-2:]))[0] for lt in light], tests
        ),
        "its L with the mean training colour": _mean_scores(
            [color.decode(lt, mean_ab[None])[0] for lt in light], tests
        ),
    }


def _write_color(folder: Path, seed: int, size: int = 64, n_train: int = 400, n_test: int = 20) -> Path:
    return write_color_set(folder, n_train=n_train, n_test=n_test, size=size, seed=seed)


def _write_video(
    folder: Path, seed: int, size: int = 64, n_train: int = 24, n_test: int = 4, n_frames: int = 12
) -> Path:
    return write_video_set(folder, n_train=n_train, n_test=n_test, n_frames=n_frames, size=(size, size), seed=seed)


def _video_baselines(dataroot: Path) -> dict[str, dict[str, float]]:
    """Each test sequence's first real frame frozen, and the mean training frame, against frames 1 and on (frame 0
    is given to the model as its first frame, and not scored)."""
    sequences = [sorted(find_images(folder)) for folder in sorted((dataroot / "test_B").iterdir())]
    later = [f for frames in sequences for f in frames[1:]]
    frozen = [read_image(frames[0], 3) * 2 - 1 for frames in sequences for _ in frames[1:]]
    mean = _mean_image(_images(find_images(dataroot / "train_B")))
    return {
        "the first frame, frozen": _mean_scores(frozen, _images(later)),
        "the mean training frame": _mean_scores([mean] * len(later), _images(later)),
    }


BUILTIN_SETS: dict[str, BuiltinSet] = {
    "paired": BuiltinSet(
        _write_paired,
        _paired_baselines,
        lambda root: [str(root / "examples")],
        picture=("real_A", "fake_B", "real_B"),
    ),
    "unpaired": BuiltinSet(
        _write_unpaired,
        _unpaired_baselines,
        lambda root: [str(root / "testA")],
        picture=("real_A", "fake_B", "truth_B"),
    ),
    "street": BuiltinSet(
        _write_street,
        _street_baselines,
        lambda root: [str(root / "test_label"), "--instance_dir", str(root / "test_inst")],
        picture=("input_label", "fake_B", "real_B"),
    ),
    "images": BuiltinSet(_write_images, _image_baselines, lambda root: [], figures=(FD, DIVERSITY)),
    "photos": BuiltinSet(
        _write_photos, _photo_baselines, lambda root: [str(root / "test")], picture=("real_A", "fake_B", "real_B")
    ),
    # Shapes whose colours only hints can tell: scored with 10 hints, shown beside no hints.
    "color": BuiltinSet(
        _write_color,
        _photo_baselines,
        lambda root: [str(root / "test")],
        picture=("real_A", "hints_10", "fake_B_10", "fake_B_0", "real_B"),
    ),
    "video": BuiltinSet(
        _write_video,
        _video_baselines,
        lambda root: [],  # videos go through `ganvas video translate` (see the README)
        picture=("real_A", "fake_B", "real_B"),
    ),
}


# ------------------------------------------------------------------------ running a demo


def demo_names() -> tuple[str, ...]:
    return DEMOS.names()


def demo_recipe(name: str) -> DemoRecipe:
    return DEMOS.entry(name).meta["recipe"]


def _model_scores(builtin: BuiltinSet, result, dataroot: Path) -> dict[str, float]:
    if builtin.figures[0] is PSNR:
        return result.metrics
    samples = torch.stack(_images(sorted((result.page.parent / "images").glob("sample_*.png"))))
    real = torch.stack(_images(find_images(dataroot.parent / "test")))
    return sample_figures(samples, real)


def run_demo(
    out: Path,
    model: str = DEFAULT_DEMO,
    epochs: int | None = None,
    seed: int = 0,
    gpu_ids: str = "-1",
    show_progress: bool = True,
    amp: str = "off",
) -> dict[str, Any]:
    """Write the demo's data, train (with --amp `amp`), test in fp32, score the baselines and write the demo page.

    Returns the summary: the model's figures, each baseline's, the margin of the headline figure over the
    best baseline, the pages, the commands to go on with and the training's wall seconds.
    """
    out = Path(out)
    recipe = demo_recipe(model)
    builtin = BUILTIN_SETS[recipe.data]
    dataroot = builtin.write(out / "data" / model, seed, **recipe.data_args)
    epochs = recipe.epochs if epochs is None else epochs
    run = f"demo_{model}"
    common = {
        "name": run,
        "checkpoints_dir": str(out / "checkpoints"),
        "results_dir": str(out / "results"),
        "gpu_ids": gpu_ids,
        "seed": seed,
    }
    # A demo run starts afresh each time (--overwrite): it is a showcase, not a run to resume.
    flags = {"num_threads": 0, "save_latest_freq": 100_000, "save_epoch_freq": 1000, **recipe.flags}
    opt = resolve_options(
        {
            **common,
            **flags,
            "dataroot": str(dataroot),
            "n_epochs": epochs,
            "n_epochs_decay": epochs,
            "overwrite": True,
            "amp": amp,
        },
        "train",
    )
    log.info("demo %s: %s", model, recipe.shows)
    started = time.perf_counter()
    train(opt, show_progress=show_progress)
    train_seconds = time.perf_counter() - started
    test_opt = resolve_options({**common, **recipe.test_flags}, "test")
    for step in recipe.prepare:
        step(test_opt)
    result = run_test(test_opt)
    scores = _model_scores(builtin, result, dataroot)
    baselines = builtin.baselines(dataroot)
    head = builtin.figures[0]
    best = (max if head.higher_is_better else min)(b[head.key] for b in baselines.values())
    margin = scores[head.key] - best if head.higher_is_better else best - scores[head.key]
    summary = {
        "demo": model,
        "shows": recipe.shows,
        **{k: scores[k] for k in scores},
        "baselines": baselines,
        "headline": head.key,
        "best_baseline": best,
        "margin": margin,
        "test_page": str(result.page),
        "count": result.count,
        "train_seconds": train_seconds,
        "next_steps": next_steps(out, run, dataroot, builtin, recipe),
    }
    summary["picture"] = str(write_picture(result.page.parent, builtin.picture, out / "results" / run / "demo.png"))
    summary["page"] = str(write_demo_page(out / "results" / run / "demo.html", summary, builtin, result.page))
    atomic_write_text(out / "results" / run / "summary.json", json.dumps(summary, indent=2))
    return summary


def write_picture(test_dir: Path, keys: tuple[str, ...], path: Path, rows: int = 4, scale: int = 2) -> Path:
    """The demo at a glance: `keys` of the first `rows` test images side by side (or 8 samples a row), enlarged."""
    images = test_dir / "images"
    if keys:
        stems = sorted(f.name[: -len(f"_{keys[0]}.png")] for f in images.glob(f"*_{keys[0]}.png"))
        # images with every key (a video's first frames, given to the model, have no target to show)
        stems = [stem for stem in stems if all((images / f"{stem}_{k}.png").is_file() for k in keys)][:rows]
        files, per_row = [images / f"{stem}_{k}.png" for stem in stems for k in keys], len(keys)
    else:
        files, per_row = sorted(images.glob("sample_*.png"))[: 8 * rows], 8
    grid = make_grid(torch.stack([read_image(f, 3) for f in files]), nrow=per_row)
    array = (grid * 255).round().byte().permute(1, 2, 0).numpy()
    save_uint8(array.repeat(scale, axis=0).repeat(scale, axis=1), path)
    return path


def flags_to_argv(flags: dict[str, Any]) -> list[str]:
    """Options as command-line flags (`--no_vgg_loss` for a true switch, `--ngf 16` for a value)."""
    argv: list[str] = []
    for key, value in flags.items():
        if value is True:
            argv.append(f"--{key}")
        else:
            argv += [f"--{key}", str(value)]
    return argv


def train_command(name: str, dataroot: Path) -> str:
    """The `ganvas train` command line of demo `name` on the data at `dataroot`."""
    recipe = demo_recipe(name)
    epochs = ["--n_epochs", str(recipe.epochs), "--n_epochs_decay", str(recipe.epochs)]
    return " ".join(
        ["ganvas", "train", "--dataroot", str(dataroot), "--name", name, *flags_to_argv(recipe.flags), *epochs]
    )


def next_steps(out: Path, run: str, dataroot: Path, builtin: BuiltinSet, recipe: DemoRecipe) -> list[str]:
    """`ganvas` commands that work as printed on the trained demo run."""
    where = f"--name {run} --checkpoints_dir {out / 'checkpoints'}"
    test = " ".join(["ganvas test", where, "--results_dir", str(out / "results"), *flags_to_argv(recipe.test_flags)])
    steps = [test]
    inputs = builtin.translate_args(dataroot)
    if inputs:
        steps.insert(0, f"ganvas translate {where} {' '.join(inputs)} --out {out / 'translated' / run}")
    return steps


def write_demo_page(path: Path, summary: dict[str, Any], builtin: BuiltinSet, test_page: Path) -> Path:
    """The demo's page: what it shows, the figures against the baselines (with units), the test images."""
    rows = [("ganvas (this run)", summary)] + list(summary["baselines"].items())
    head = "".join(f"<th>{html.escape(f.label)}</th>" for f in builtin.figures)
    body_rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td>{html.escape(f.format(values[f.key]))}</td>" for f in builtin.figures)
        + "</tr>"
        for name, values in rows
    )
    figure = builtin.figures[0]
    better = "higher" if figure.higher_is_better else "lower"
    rel = test_page.relative_to(path.parent)
    body = (
        f"<p>{html.escape(summary['shows'])}</p>"
        f"<p>Trained for {summary['train_seconds']:.0f} s; scored on {summary['count']} held-out test images "
        f"the model never saw ({figure.label}: {better} is better).</p>"
        f"<table border=1 cellpadding=4><tr><th></th>{head}</tr>{body_rows}</table>"
        f"<p>Margin of {figure.label} over the best baseline: {html.escape(figure.format(summary['margin']))}.</p>"
        f"<p><img src='{html.escape(Path(summary['picture']).name)}' style='max-width:100%'></p>"
        f"<p>Every test image: <a href='{html.escape(str(rel))}'>{html.escape(str(rel))}</a></p>"
        f"<iframe src='{html.escape(str(rel))}' style='width:100%;height:1400px;border:0'></iframe>"
    )
    atomic_write_text(path, page(f"ganvas demo: {summary['demo']}", body))
    return path
