"""vid2vid's data layout (`--dataset_mode temporal`): sequences of frames, with reference flows for training.

<dataroot>/<phase>_A/<sequence>/* are the input frames (label maps with --label_nc N, else images),
<phase>_B/<sequence>/* the frames to produce, <phase>_inst/<sequence>/* optional instance maps; one
leaf folder is one sequence, its frames sorted by name. A video file directly in <phase>_A (and its
partner of the same stem in <phase>_B) is a sequence too: its frames are extracted once into
<dataroot>/.ganvas_frames/ and extracted again when the video changes.

Training items are chunks of clips. Each epoch every sequence gives one clip (a random start and
frame spacing from (seed, epoch, sequence)) of `frames_total(epoch)` frames plus the n_frames_G - 1
before them; a clip is cut into chunks of --max_frames_per_gpu frames, each with the n_frames_G - 1
frames before it. `epoch_order` keeps the chunks of a clip in order, so a model can carry its last
outputs from one chunk (one training step) to the next. Flows of B (each frame back to the previous
loaded one) come with every training item: DIS flow cached in <phase>_flow/<sequence>/<preset>/, or
the data set's own files with --flow gt.

Test items are single frames in order, with the sequence name ("stream") and the frame index, so a
sequential model translates each sequence from its first frame.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ganvas.data.datasets import ImageDataset
from ganvas.data.io import image_size, is_image_file, label_map_size, read_image, read_label_map, save_uint8
from ganvas.data.transforms import apply_transform, crop_applies, resized_size
from ganvas.data.video import frame_files, is_video_file, read_frames
from ganvas.errors import DataError, GanvasError
from ganvas.files import atomic_write_text
from ganvas.registry import DATASETS
from ganvas.safe import load_json

FRAMES_CACHE = ".ganvas_frames"


def extract_frames(video: Path, cache: Path) -> list[Path]:
    """The frames of a video file as PNGs in `cache` (written once; again when the video's size or time changes)."""
    stat = video.stat()
    stamp = {"source": video.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    record = cache / "source.json"
    if record.is_file():
        try:
            saved = load_json(record, "frame cache record", "the frames are extracted again")
        except GanvasError:
            saved = None
        if isinstance(saved, dict) and {k: saved.get(k) for k in stamp} == stamp:
            frames = [cache / str(name) for name in saved.get("frames", [])]
            if frames and all(p.is_file() for p in frames):
                return frames
    names = []
    for index, frame in enumerate(read_frames(video)):
        name = f"{index:06d}.png"
        save_uint8(frame, cache / name)
        names.append(name)
    for stale in cache.glob("*.png"):
        if stale.name not in set(names):
            stale.unlink()
    atomic_write_text(record, json.dumps({**stamp, "frames": names}))
    return [cache / name for name in names]


def find_sequences(folder: Path, root: Path, labels: bool = False) -> dict[str, list[Path]]:
    """The sequences under `folder` by name: leaf folders of images (frames in data.video.frame_files' order) and
    video files (not for `labels`: codecs do not keep label ids)."""
    if not folder.is_dir():
        raise DataError(f"sequence folder {folder} does not exist; check --dataroot/--phase")
    sequences: dict[str, list[Path]] = {}
    for path in sorted(folder.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(folder).parts) or not path.is_file():
            continue
        name = path.parent.relative_to(folder).as_posix()
        if is_image_file(path) and name not in sequences:
            sequences[name] = frame_files(path.parent)
        elif is_video_file(path):
            if labels:
                raise DataError(
                    f"{path} is a video, but this run takes label maps, whose ids video codecs do not keep; give "
                    f"each sequence as a folder of label map PNGs ({folder}/<sequence>/0000.png ...)"
                )
            name = path.relative_to(folder).with_suffix("").as_posix()
            sequences[name] = extract_frames(path, root / FRAMES_CACHE / folder.name / name)
            if not sequences[name]:
                raise DataError(f"video {path} has no frames; re-encode it or remove it from {folder}")
    if not sequences:
        raise DataError(
            f"found no sequences in {folder}: put each sequence's frames in its own folder "
            f"({folder}/<sequence>/0000.png ...) or video files in {folder}"
        )
    return dict(sorted(sequences.items()))


def transform_flow(flow: torch.Tensor, source: tuple[int, int], size: tuple[int, int], params: dict, crop: int | None):
    """A 2 x H x W flow of a frame of size `source` through the frame's resize (vectors scaled), crop and flip."""
    if tuple(flow.shape[-2:]) != size:
        scale = torch.tensor([size[1] / source[1], size[0] / source[0]]).view(2, 1, 1)
        flow = F.interpolate(flow[None], size=size, mode="bilinear", align_corners=False)[0] * scale
    if crop is not None:
        x, y = params["crop_pos"]
        flow = flow[:, y : y + crop, x : x + crop]
    if params.get("flip", False):
        flow = flow.flip(-1) * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
    return flow.contiguous()


@DATASETS.register("temporal")
class TemporalDataset(ImageDataset):
    """Sequences of frames in vid2vid's layout; see the module docstring."""

    @classmethod
    def resize_rule(cls, opt: Any) -> dict[str, Any]:
        """pix2pixHD's sizes, rounded to the multiple of the coarse-to-fine generator."""
        multiple = 2 ** int(getattr(opt, "n_downsample_G", 0)) * 2 ** (int(getattr(opt, "n_scales_spatial", 1)) - 1)
        return {"rule": "pix2pixhd", "multiple": multiple}

    def __init__(self, opt: Any, train: bool) -> None:
        super().__init__(opt, train)
        root = Path(opt.dataroot)
        self.root = root
        self.label_nc = int(getattr(opt, "label_nc", 0))
        self.n_frames_G = int(getattr(opt, "n_frames_G", 1))
        self.use_instance = bool(getattr(opt, "use_instance", False))
        a_dir, b_dir, inst_dir = (root / f"{opt.phase}_{k}" for k in ("A", "B", "inst"))
        self.sequences_a = find_sequences(a_dir, root, labels=bool(self.label_nc))
        self.names = sorted(self.sequences_a)
        self.sequences_b: dict[str, list[Path]] = {}
        if b_dir.is_dir() or train:
            self.sequences_b = self._partner(find_sequences(b_dir, root), b_dir, a_dir)
        self.sequences_inst: dict[str, list[Path]] = {}
        if self.use_instance:
            self.sequences_inst = self._partner(find_sequences(inst_dir, root, labels=True), inst_dir, a_dir)
        limit = getattr(opt, "max_dataset_size", math.inf)
        self.names = self.names[: int(min(limit, len(self.names)))]
        for name in self.names:
            self._check_headers(name)
        self.flow_mode = getattr(opt, "flow", "medium")
        if not train and self.sequences_b:  # test: flows of the real frames, for the warping error
            # the data set's own where it has them, else computed (DIS medium for a run trained with --flow gt)
            computed = "medium" if self.flow_mode == "gt" else self.flow_mode
            self.flow_mode = "gt" if self._has_gt_flows() else computed
            self._prepare_flows()
        if train:
            short = [n for n in self.names if len(self.sequences_a[n]) < self.n_frames_G + 1]
            if short:
                raise DataError(
                    f"sequence {a_dir / short[0]} has {len(self.sequences_a[short[0]])} frame(s), but training "
                    f"needs at least --n_frames_G + 1 = {self.n_frames_G + 1} (the previous frames and one to "
                    f"make); add frames, lower --n_frames_G or remove the sequence"
                )
            self._prepare_flows()
        self.frame_index = [(name, t) for name in self.names for t in range(len(self.sequences_a[name]))]

    # --- layout checks ----------------------------------------------------------------------------
    def _partner(self, found: dict[str, list[Path]], folder: Path, a_dir: Path) -> dict[str, list[Path]]:
        """Sequences of another folder matched to A's by name and frame count."""
        missing = [n for n in self.sequences_a if n not in found]
        if missing:
            raise DataError(
                f"sequence {missing[0]!r} of {a_dir} has no partner in {folder}; give each sequence the same "
                f"name in both folders"
            )
        for name in self.sequences_a:
            na, nb = len(self.sequences_a[name]), len(found[name])
            if na != nb:
                raise DataError(
                    f"sequence {name!r} has {na} frames in {a_dir} but {nb} in {folder}; every input frame "
                    f"needs its partner, so make both sequences the same length"
                )
        return found

    def _check_headers(self, name: str) -> None:
        """Every frame of a sequence has the size of its first (headers only)."""
        read_size = label_map_size if self.label_nc else image_size
        first = read_size(self.sequences_a[name][0])
        groups = ((self.sequences_a, read_size), (self.sequences_b, image_size), (self.sequences_inst, label_map_size))
        for group, reader in groups:
            for path in group.get(name, []):
                size = reader(path)
                if size != first:
                    raise DataError(
                        f"{path} is {size[1]}x{size[0]} but the first frame of its sequence "
                        f"{self.sequences_a[name][0]} is {first[1]}x{first[0]}; give every frame one size"
                    )

    def _prepare_flows(self) -> None:
        """Check (gt) or compute once and cache (DIS) the flows of every B sequence."""
        from ganvas.data import flow as flows

        mode = self.flow_mode
        for name in self.names:
            frames = self.sequences_b[name]
            folder = self._flow_dir(name)
            if mode == "gt":
                for path in frames[1:]:
                    if not (folder / f"{path.stem}.flo").is_file():
                        raise DataError(
                            f"flow file {folder / (path.stem + '.flo')} is missing for --flow gt; add it, or pass "
                            f"--flow medium to compute flows with OpenCV instead"
                        )
            else:
                flows.update_flow_cache(frames, folder, self._method())

    def _has_gt_flows(self) -> bool:
        """Whether every sequence has the data set's own flow files (then test scores with them)."""
        return all(
            (self._flow_dir(n) / f"{self.sequences_b[n][t].stem}.flo").is_file()
            for n in self.names
            for t in range(1, len(self.sequences_b[n]))
        )

    def flow_source(self) -> str:
        """In words: which flows the items carry."""
        if self.flow_mode == "gt":
            return f"the data set's own flows ({self.root / (self.opt.phase + '_flow')})"
        if self.flow_mode == "file":
            return f"the flow network {self.opt.flow_net}'s flows of the real frames"
        return f"OpenCV DIS ({self.flow_mode}) flows of the real frames"

    def _method(self):  # type: ignore[no-untyped-def]
        """The DIS preset or flow network (--flow file) that computes this data set's flows."""
        from ganvas.data.flow import flow_method

        return flow_method(self.flow_mode, getattr(self.opt, "flow_net", ""))

    def _flow_dir(self, name: str) -> Path:
        return self.root / f"{self.opt.phase}_flow" / name

    # --- epochs -----------------------------------------------------------------------------------
    def frames_total(self, epoch: int | None = None) -> int:
        """Frames to make per clip in `epoch`: --n_frames_total doubled every --niter_step epochs, as the original."""
        opt, epoch = self.opt, self.epoch if epoch is None else epoch
        grown = opt.n_frames_total * 2 ** (max(epoch - 1, 0) // max(opt.niter_step, 1))
        # One clip length for every sequence (batches stack clips), at most 128 frames as the original's.
        shortest = min(128, *(len(self.sequences_a[n]) for n in self.names))
        return max(1, min(grown, shortest - self.n_frames_G + 1))

    def clip_shape(self, epoch: int | None = None) -> tuple[int, int]:
        """(frames per chunk, chunks per clip) in `epoch`."""
        total = self.frames_total(epoch)
        per_chunk = min(self.opt.max_frames_per_gpu, total)
        return per_chunk, total // per_chunk

    def __len__(self) -> int:
        if not self.train:
            return len(self.frame_index)
        return len(self.names) * self.clip_shape()[1]

    def epoch_order(self, epoch: int, permutation: Callable[[int], list[int]], group: int) -> list[int]:
        """Items of `epoch`: clips in the trainer's order for the epoch (`permutation(n)`), `group` clips side by
        side (batch size x processes), chunk after chunk, so each batch holds the same chunk of its clips and the
        next batch the next one."""
        _, chunks = self.clip_shape(epoch)
        clips = permutation(len(self.names))
        if len(clips) < group:
            raise DataError(
                f"{self.root} has {len(clips)} training sequences but a step takes {group} (--batch_size x "
                f"processes); add sequences or lower --batch_size"
            )
        clips = clips[: len(clips) // group * group]  # whole groups, as drop_last
        return [
            clip * chunks + chunk
            for start in range(0, len(clips), group)
            for chunk in range(chunks)
            for clip in clips[start : start + group]
        ]

    # --- items ------------------------------------------------------------------------------------
    def _read_a(self, path: Path) -> torch.Tensor:
        if self.label_nc:
            return torch.from_numpy(read_label_map(path))[None]
        return read_image(path, self.opt.input_nc)

    def _transform_a(self, image: torch.Tensor, params: dict) -> torch.Tensor:
        if not self.label_nc:
            return self.transform(image, params)
        opt = self.opt
        return apply_transform(
            image, params, opt.preprocess, self.load_size, opt.crop_size, "nearest", **self.size_rule
        )

    def _transform_ids(self, ids: torch.Tensor, params: dict) -> torch.Tensor:
        opt = self.opt
        return apply_transform(ids, params, opt.preprocess, self.load_size, opt.crop_size, "nearest", **self.size_rule)

    def _flow(self, name: str, frames: list[int], t: int, params: dict) -> tuple:
        """(2 x h x w flow, 1 x h x w validity) of loaded frame t back to loaded frame t - 1, transformed."""
        from ganvas.data import flow as flows

        paths = self.sequences_b[name]
        cur, prev = frames[t], frames[t - 1]
        if self.flow_mode == "gt" or cur - prev == 1:
            folder = self._flow_dir(name)
            if self.flow_mode != "gt":
                folder = folder / flows.method_name(self._method())
            stem = paths[cur].stem
            flow = flows.read_flo(folder / f"{stem}.flo")
            valid_path = folder / f"{stem}_valid.png"
            valid = flows.read_valid(valid_path) if valid_path.is_file() else np.ones(flow.shape[:2], bool)
        else:  # frames skipped by --max_t_step: their flow is not cached
            load = lambda p: (read_image(p, 3).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            flow, valid = flows.flow_and_validity(load(paths[prev]), load(paths[cur]), self._method())
        source = tuple(flow.shape[:2])
        opt = self.opt
        resized = resized_size(source, opt.preprocess, self.load_size, opt.crop_size, **self.size_rule)
        crop = opt.crop_size if crop_applies(resized, opt.preprocess, opt.crop_size, self.size_rule["rule"]) else None
        flow_t = transform_flow(
            torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1), source, resized, params, crop
        )
        valid_t = self._transform_ids(torch.from_numpy(valid.astype(np.float32))[None], params)
        return flow_t, valid_t

    def __getitem__(self, index: int) -> dict:
        if not self.train:
            return self._test_item(index)
        per_chunk, chunks = self.clip_shape()
        clip, chunk = divmod(index, chunks)
        name = self.names[clip]
        n_seq, tG = len(self.sequences_a[name]), self.n_frames_G
        loaded = per_chunk * chunks + tG - 1  # frames of the whole clip
        rng = self.item_rng(clip)
        max_step = max(1, min(self.opt.max_t_step, (n_seq - 1) // max(loaded - 1, 1)))
        step = int(rng.integers(max_step)) + 1
        start = int(rng.integers(max(1, n_seq - (loaded - 1) * step)))
        window = [start + (chunk * per_chunk + j) * step for j in range(per_chunk + tG - 1)]
        frames_a = [self._read_a(self.sequences_a[name][t]) for t in window]
        # the crop and flip depend on the frames' size only, which every frame of the sequence shares
        params = self.item_params(frames_a[0].float(), clip, self.sequences_a[name][window[0]], rng)
        a = torch.stack([self._transform_a(frame, params) for frame in frames_a])
        b = torch.stack(
            [self.transform(read_image(self.sequences_b[name][t], self.opt.output_nc), params) for t in window]
        )
        flows, valids = [torch.zeros(2, *b.shape[-2:])], [torch.zeros(1, *b.shape[-2:])]
        for t in range(1, len(window)):
            f, v = self._flow(name, window, t, params)
            flows.append(f)
            valids.append(v)
        item = {
            "A": a,
            "B": b,
            "flow": torch.stack(flows),
            "valid": torch.stack(valids),
            "clip": clip,
            "chunk": chunk,
            "A_paths": str(self.sequences_a[name][window[tG - 1]]),
            "B_paths": str(self.sequences_b[name][window[tG - 1]]),
        }
        if self.use_instance:
            item["inst"] = torch.stack(
                [
                    self._transform_ids(torch.from_numpy(read_label_map(self.sequences_inst[name][t]))[None], params)
                    for t in window
                ]
            )
        return item

    def _test_item(self, index: int) -> dict:
        name, t = self.frame_index[index]
        path = self.sequences_a[name][t]
        a = self._read_a(path)
        params = self.item_params(a.float(), index, path)
        item: dict[str, Any] = {"A": self._transform_a(a, params), "stream": name, "frame": t, "A_paths": str(path)}
        item["path"] = str(path)
        if name in self.sequences_b:
            b_path = self.sequences_b[name][t]
            item["B"] = self.transform(read_image(b_path, self.opt.output_nc), params)
            item["B_paths"] = str(b_path)
            if t > 0:
                item["flow"], item["valid"] = self._flow(name, [t - 1, t], 1, params)
            else:
                item["flow"], item["valid"] = (
                    torch.zeros(2, *item["B"].shape[-2:]),
                    torch.zeros(1, *item["B"].shape[-2:]),
                )
        if self.use_instance:
            item["inst"] = self._transform_ids(
                torch.from_numpy(read_label_map(self.sequences_inst[name][t]))[None], params
            )
        return item
