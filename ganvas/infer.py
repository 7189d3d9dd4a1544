"""Test and translate: run a trained model over a data set or any image files, keeping their size."""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganvas.api import Translator, inference_dtype, run_translator, warn_alpha_dropped
from ganvas.backends import backend_name, backend_sentences, backend_summary
from ganvas.data import collate_batch, make_dataset
from ganvas.data.datasets import files_by_stem, resize_rule, stem_key
from ganvas.data.io import find_images, read_image, read_image_alpha, read_label_map, save_image
from ganvas.data.transforms import apply_transform, make_params
from ganvas.errors import DataError, OptionsError
from ganvas.files import atomic_write_text
from ganvas.hints import read_hints_file
from ganvas.metrics import TemporalMeter, image_metrics, sample_diversity
from ganvas.models import Model, load_for_inference
from ganvas.options import Options
from ganvas.report import image_table, make_grid, metrics_table, page
from ganvas.speed import autocast

log = logging.getLogger("ganvas")


@dataclass
class TestResult:
    """Where the results page is and the mean metrics against the targets (empty without targets).

    `metrics` scores the model's main output (fake_B); `scores` every scored output by name (a
    CycleGAN's fake_A too).
    """

    page: Path
    metrics: dict[str, float]
    count: int
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    backend: str = "torch"  # what ran the networks (backends.backend_name)
    # Sequences (a temporal data set): warping error and L1 after each sequence's first frame (TemporalScores).
    temporal: dict[str, Any] = field(default_factory=dict)


def results_dir(opt: Options, model: Model | None = None) -> Path:
    """results/<name>/<phase>_<epoch>/, with suffixes so that different results never overwrite each other.

    The model's own suffix first (the test model's generator _G, _A, _B; _BtoA / _AtoB when a CycleGAN
    is run against the direction it was trained in), then _paper for --paper_mode, _bf16 / _fp16 for --precision.
    """
    suffix = model.results_suffix() if model is not None else ""
    if opt.paper_mode:
        suffix += "_paper"
    if opt.precision != "fp32":
        suffix += f"_{opt.precision}"
    return Path(opt.results_dir) / opt.name / f"{opt.phase}_{opt.epoch}{suffix}"


def layer_mode_sentence(opt: Options, model: Model) -> str:
    """Which layer mode made a results page, in plain words, and whether this model's networks care."""
    if opt.paper_mode:
        seed = opt.seed if opt.seed is not None else 0
        sentence = (
            "Layers in the pix2pix paper's test-time mode (--paper_mode): batch norm uses the statistics "
            "of the images being made (each test image on its own) and dropout stays on, seeded by "
            f"--seed {seed}. Without --paper_mode, test, translate, ganvas.load and exported files run "
            "in eval mode (running batch-norm statistics, no dropout)."
        )
    else:
        sentence = (
            "Layers in eval mode: batch norm uses the running statistics from training and dropout is "
            "off, as in translate, ganvas.load and exported files (the default; --paper_mode gives the "
            "pix2pix paper's test-time mode)."
        )
    kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
    if not any(isinstance(m, kinds) for k in model.inference_nets for m in model.nets[k].modules()):
        sentence += " This model's networks have no batch norm or dropout, so both modes give the same images."
    return sentence


def _json_safe(value):
    """Metrics as JSON allows them: an infinite PSNR (identical images) becomes null."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value if not isinstance(value, float) or math.isfinite(value) else None


class TemporalScores:
    """Flicker and fidelity of the outputs of a sequence data set whose items name their "stream" and carry the real
    frames' flows: the warping error (Lai et al. 2018, metrics.TemporalMeter) and L1 to the real frames.

    The first `given` frames of each sequence (copied from the real ones by a sequential run) are not scored,
    nor is a pair of two of them; L1 counts from the frame after the first (which a sequential run is given).
    """

    def __init__(self, given: int = 0) -> None:
        self.given = max(given, 1)
        self.meter = TemporalMeter()
        self.l1: list[float] = []
        self.stream: str | None = None
        self.index = 0

    def add(self, batch: dict, output: torch.Tensor) -> None:
        if "flow" not in batch:  # no real frames to take flows from
            return
        output = output.detach().float().cpu()
        if batch["stream"][0] != self.stream:
            self.meter.end_sequence()
            self.stream, self.index = batch["stream"][0], 0
        scored = self.index >= self.given  # a pair with at least one frame made; without a flow no pair counts
        self.meter.add(output, flow=batch["flow"][0] if scored else None, valid=batch["valid"][0])
        if scored and "B" in batch:
            self.l1.append(float(((output - batch["B"][0].float()).abs() / 2).mean()))
        self.index += 1

    def result(self, flows: str) -> dict[str, Any] | None:
        figures = self.meter.result()
        if figures.get("warping_error") is None:
            return None
        return {
            "warping_error": figures["warping_error"],
            "l1_after_first": float(np.mean(self.l1)) if self.l1 else None,
            "videos": figures["videos"],
            "flows": flows,
        }


def temporal_sentence(video: dict[str, Any]) -> str:
    """The temporal figures of a test in words."""
    text = (
        f"Over {video['videos']} sequences: warping error {video['warping_error'] * 1e3:.3f} x 1e-3 (each frame "
        f"against the one before warped by {video['flows']}; lower flickers less)"
    )
    if video.get("l1_after_first") is not None:
        text += (
            f", L1 of the frames made to the real ones {video['l1_after_first']:.4f} (a frozen video flickers little)"
        )
    return text + "."


def run_test(opt: Options, model: Model | None = None) -> TestResult:
    """Translate the --phase split (or sample a GAN), write images, metrics.json and index.html."""
    model = model or load_for_inference(opt)
    if not model.conditional:
        return _sample_test(opt, model)
    out = results_dir(opt, model)
    dtype = inference_dtype(opt.precision, model.device)
    dataset = make_dataset(opt, train=False)
    count = int(min(len(dataset), opt.num_test))
    rows, used = [], set()
    per_image: dict[str, dict[str, dict[str, float]]] = {}  # output -> image -> metrics
    targets: dict[str, str] = {}
    scored_files: set[tuple[str, str]] = set()
    temporal = None
    if getattr(dataset, "flow_source", None) is not None:  # sequences: how much the outputs flicker
        temporal = TemporalScores(model.inference_spec().given_frames)
    for i in range(count):
        batch = collate_batch([dataset[i]])
        a, b = ("B_paths", "A_paths") if opt.direction == "BtoA" and "B_paths" in batch else ("A_paths", "B_paths")
        sources = {"fake_B": a, "fake_A": b}  # the file each output was translated from
        with torch.no_grad(), autocast(model.device, dtype):
            visuals = {k: v.float() for k, v in model.translate(batch).items()}
        stem = Path(batch[a][0]).stem  # named after the image G translates (and its sequence)
        stem = f"{batch['stream'][0]}_{stem}" if "stream" in batch else stem
        stem = stem if stem not in used else f"{stem}_{i}"
        used.add(stem)
        cells = {}
        for key, image in visuals.items():
            save_image(image[0], out / "images" / f"{stem}_{key}.png")
            cells[key] = f"images/{stem}_{key}.png"
        rows.append((stem, cells))
        if temporal is not None:
            temporal.add(batch, visuals["fake_B"][0])
        for output, target in model.scored:
            if output not in visuals or target not in visuals:
                continue
            # Each translated file once, under its own name: with unaligned folders of different
            # sizes the smaller side comes round again.
            source = batch[sources.get(output, a)][0]
            if (output, source) in scored_files:
                continue
            scored_files.add((output, source))
            name = Path(source).stem
            name = name if name not in per_image.get(output, {}) else f"{name}_{i}"
            targets[output] = target
            per_image.setdefault(output, {})[name] = image_metrics(visuals[output][0], visuals[target][0])
    scores = {
        output: {k: float(np.mean([m[k] for m in images.values()])) for k in ("psnr", "ssim", "l1")}
        for output, images in per_image.items()
    }
    main = next(iter(scores), None)
    mean = scores[main] if main else {}
    video = temporal.result(dataset.flow_source()) if temporal is not None else None
    nets = {k: model.nets[k] for k in model.inference_nets}
    summary = {
        "name": opt.name,
        "epoch": opt.epoch,
        "phase": opt.phase,
        "count": count,
        "eval_mode": not opt.paper_mode,
        "layers": layer_mode_sentence(opt, model),
        "notes": model.test_notes(),
        "backend": backend_summary(nets),
        "mean": mean,
        "per_image": per_image.get(main, {}),
        "by_output": {o: {"target": targets[o], "mean": scores[o], "per_image": per_image[o]} for o in scores},
    }
    if video:
        summary["temporal"] = video
    atomic_write_text(out / "metrics.json", json.dumps(_json_safe(summary), indent=2, allow_nan=False))
    tables = "".join(
        f"<h3>{html.escape(o)} against {html.escape(targets[o])}</h3>" + metrics_table(m) for o, m in scores.items()
    )
    body = (
        f"<p>{count} images of {html.escape(opt.dataroot)} ({opt.phase}), epoch {opt.epoch}.</p>"
        f"<p>{html.escape(layer_mode_sentence(opt, model))}</p>"
        + "".join(f"<p>{html.escape(note)}</p>" for note in model.test_notes() + backend_sentences(nets))
        + (f"<p>{html.escape(temporal_sentence(video))}</p>" if video else "")
        + tables
        + image_table(rows)
    )
    index = out / "index.html"
    atomic_write_text(index, page(f"{opt.name}: {opt.model} test results", body))
    return TestResult(index, mean, count, scores, backend_name(nets), video or {})


def _sample_test(opt: Options, model: Model) -> TestResult:
    """A generator from noise: write num_test samples and a grid of them."""
    out = results_dir(opt, model)
    count = int(opt.num_test if math.isfinite(opt.num_test) else 64)
    samples = model.sample(count, seed=opt.seed if opt.seed is not None else 0)
    for i, image in enumerate(samples):
        save_image(image, out / "images" / f"sample_{i:04d}.png")
    save_image(make_grid(samples.float()), out / "samples_grid.png")
    figures = _sample_set_figures(opt, samples) if count >= 2 else {}
    layers = layer_mode_sentence(opt, model)
    nets = {k: model.nets[k] for k in model.inference_nets}
    summary = {
        "name": opt.name,
        "epoch": opt.epoch,
        "count": count,
        "eval_mode": not opt.paper_mode,
        "layers": layers,
        "backend": backend_summary(nets),
    }
    atomic_write_text(out / "metrics.json", json.dumps({**summary, **figures}))
    body = (
        f"<p>{count} samples, epoch {opt.epoch}.</p><p>{html.escape(layers)}</p>"
        + "".join(f"<p>{html.escape(text)}</p>" for text in _sample_sentences(figures) + backend_sentences(nets))
        + "<img src='samples_grid.png' style='max-width:100%'>"
    )
    index = out / "index.html"
    atomic_write_text(index, page(f"{opt.name}: samples", body, image_width=1024))
    return TestResult(index, figures, count, backend=backend_name(nets))


def _sample_set_figures(opt: Options, samples: torch.Tensor) -> dict[str, float]:
    """Diversity of the samples, and of as many training images (when the --dataroot folder is there) as a reference."""
    figures = {"diversity": sample_diversity(samples)}
    files = find_images(Path(opt.dataroot))[: len(samples)] if Path(opt.dataroot).is_dir() else []
    size = tuple(samples.shape[-2:])
    real = [read_image(f, samples.shape[1]) for f in files]
    real = [r * 2 - 1 for r in real if tuple(r.shape[-2:]) == size]
    if len(real) >= 2:
        figures["real_diversity"] = sample_diversity(torch.stack(real))
    return figures


def _sample_sentences(figures: dict[str, float]) -> list[str]:
    if "diversity" not in figures:
        return []
    text = (
        "Sample diversity (mean L1 distance between two samples, 0 when the generator has collapsed): "
        f"{figures['diversity']:.3f}"
    )
    if "real_diversity" in figures:
        text += f"; {figures['real_diversity']:.3f} between training images of that size"
    return [text + "."]


def expand_inputs(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """(image file, output name) for the files named and every image under the folders named.

    Output names keep the subfolders below a named folder, so same-named files never collide.
    """
    files: list[tuple[Path, Path]] = []
    for path in inputs:
        if path.is_dir():
            files.extend((f, f.relative_to(path).with_suffix(".png")) for f in find_images(path))
        elif path.is_file():
            files.append((path, Path(path.stem + ".png")))
        else:
            raise DataError(f"{path} does not exist; name image files or folders of images")
    if not files:
        raise DataError("no input images were given; name image files or folders after the options")
    return files


def _instance_maps(files: list[tuple[Path, Path]], instance_dir: Path | None) -> list[Path | None]:
    """For each (label map, output name), the map in instance_dir with its stem (Cityscapes endings understood)."""
    if instance_dir is None:
        return [None] * len(files)
    if not instance_dir.is_dir():
        raise DataError(f"instance map folder {instance_dir} does not exist; check --instance_dir")
    by_stem = files_by_stem(instance_dir)
    found: list[Path | None] = []
    for path, name in files:
        key = stem_key(path, path.parents[len(name.parts) - 1])  # relative to the folder named, as name is
        if key not in by_stem:
            raise DataError(
                f"{instance_dir} has no instance map for {path} (looked for the stem {key!r}); add it, "
                f"or drop --instance_dir to use the class boundaries"
            )
        found.append(by_stem[key])
    return found


def translate_files(
    opt: Options,
    inputs: list[Path],
    out_dir: Path,
    translator: Translator | None = None,
    instance_dir: Path | None = None,
    hints_file: Path | None = None,
) -> list[Path]:
    """Translate each image (or label map) into `out_dir` as PNG, at the input's size unless --preprocess resizes.

    Label translators (pix2pixHD) read label maps and take each one's instance map from
    `instance_dir` by file stem. A user-guided colouriser takes the hints of `hints_file` (hints.json,
    in the pixels of each input as read) with every input.
    """
    files = expand_inputs(inputs)
    translator = translator or run_translator(opt)
    labels = translator.takes_labels
    if instance_dir is not None and not labels:
        raise OptionsError("--instance_dir goes with pix2pixHD label maps; this model translates images")
    instances = _instance_maps(files, instance_dir)
    sizes = resize_rule(opt)  # pix2pixHD runs resize as pix2pixHD does
    written: list[Path] = []
    transparent: list[str] = []  # inputs whose alpha channel the model does not take: said once, at the end
    for (path, name), inst_file in zip(files, instances):
        if labels:
            image = torch.from_numpy(read_label_map(path))[None].float()
        else:
            image, dropped = read_image_alpha(path, translator.read_channels)
            if dropped:
                transparent.append(str(path))
        params = make_params(
            tuple(image.shape[-2:]),
            opt.preprocess,
            opt.load_size,
            opt.crop_size,
            True,
            False,
            np.random.default_rng(0),
            **sizes,
        )
        method = "nearest" if labels else "bicubic"
        image = apply_transform(image, params, opt.preprocess, opt.load_size, opt.crop_size, method, **sizes)
        if labels:
            inst = None
            if inst_file is not None:
                inst = torch.from_numpy(read_label_map(inst_file))[None].float()
                inst = apply_transform(
                    inst, params, opt.preprocess, opt.load_size, opt.crop_size, "nearest", **sizes
                ).long()
            fake = translator.translate(image.long()[None], None if inst is None else inst[None], name=str(path))[0]
        else:
            points = read_hints_file(hints_file, image.shape[-1], image.shape[-2]) if hints_file else None
            fake = translator.translate(translator.from_pixels(image[None] * 2 - 1), name=str(path), hints=points)[0]
        target, n = out_dir / name, 1
        while target in written:  # photo.jpg and photo.png named side by side
            target, n = out_dir / name.with_name(f"{name.stem}_{n}.png"), n + 1
        save_image(fake, target)
        written.append(target)
    warn_alpha_dropped(transparent, translator.input_nc)
    return written
