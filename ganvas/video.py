"""Videos through any translator (frame by frame, or sequentially for vid2vid runs) and their flicker figures."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganvas.api import Translator
from ganvas.data.io import tensor_to_uint8
from ganvas.data.video import VideoWriter, probe, read_frames
from ganvas.errors import DataError, OptionsError
from ganvas.metrics import TemporalMeter, image_metrics


@dataclass
class VideoResult:
    """A translated video: where it is, how many frames, at what rate, and how fast they were made."""

    path: Path
    frames: int
    fps: float
    frames_per_second: float
    interrupted: bool = False


def to_tensor(frame: np.ndarray) -> Tensor:
    """An H x W x C uint8 frame as a C x H x W tensor in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1).float() / 127.5 - 1


def _resize(frame: np.ndarray, width: int | None) -> np.ndarray:
    """The frame scaled to `width` pixels wide (aspect ratio kept, even sides), or as it is."""
    if not width or frame.shape[1] == width:
        return frame
    from PIL import Image

    height = max(2, round(frame.shape[0] * width / frame.shape[1] / 2) * 2)
    image = Image.fromarray(frame.squeeze(-1) if frame.shape[-1] == 1 else frame)
    out = np.asarray(image.resize((width, height), Image.BICUBIC))
    return out[..., None] if out.ndim == 2 else out


def translate_video(
    translator: Translator,
    source: Path,
    out: Path,
    width: int | None = None,
    quality: int = 18,
    show_progress: bool = True,
) -> VideoResult:
    """Translate every frame of a video file or frame folder into `out` (a video file or a folder), keeping the
    frame rate and the audio; a sequential run (vid2vid) gets the frames in order as one stream.

    Ctrl-C stops after the frame being made and leaves a playable file of the frames done (raised again
    as KeyboardInterrupt after the file is closed).
    """
    from tqdm import tqdm

    source, out = Path(source), Path(out)
    if translator.takes_labels and not source.is_dir():
        raise OptionsError(
            f"{translator.description} takes label maps, which video codecs do not keep exact; give a folder of "
            f"label map PNGs (one per frame) instead of {source}"
        )
    info = probe(source)
    if out.resolve() == source.resolve():
        raise OptionsError(f"--out {out} is the input video; choose another file name")
    channels = 1 if translator.read_channels == 1 else 3
    start, done = time.perf_counter(), 0
    bar = tqdm(total=info.frames, unit="frame", desc=source.name, disable=not show_progress)
    interrupted = False
    try:
        # Ctrl-C passes through the writer, which closes the file (audio cut at the last frame) and lets it go on.
        with VideoWriter(out, info.fps, audio_from=None if info.is_folder else source, quality=quality) as writer:
            for index, frame in enumerate(_frames_for(translator, source, channels)):
                if translator.takes_labels:  # ids as a tensor in, the image as a tensor out
                    out_tensor = translator.translate(torch.from_numpy(frame)[None, None], stream=(str(source), index))
                    result = tensor_to_uint8(out_tensor[0])
                else:
                    result = np.asarray(translator.translate(_resize(frame, width), stream=(str(source), index)))
                writer.write(result)
                done += 1
                bar.update(1)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    result = VideoResult(out, done, float(info.fps), done / seconds if seconds > 0 else math.inf, interrupted)
    if interrupted:
        raise KeyboardInterrupt(f"stopped after {done} of {info.frames} frames; {out} holds them")
    return result


def _frames_for(translator: Translator, source: Path, channels: int) -> Any:
    """The source's frames as the translator takes them: label maps (ids) from a folder of PNGs, else pixels."""
    if not translator.takes_labels:
        return read_frames(source, channels)
    from ganvas.data.io import read_label_map
    from ganvas.data.video import frame_files

    return (read_label_map(path) for path in frame_files(source))


def _frames(path: Path | None) -> Any:
    return iter(()) if path is None else read_frames(path, 3)


def video_metrics(
    output: Path,
    reference: Path | None = None,
    source: Path | None = None,
    preset: str = "medium",
    show_progress: bool = True,
) -> dict[str, Any]:
    """Flicker and fidelity of a translated video.

    Warping error (Lai et al. 2018): each output frame against the previous one warped by the flow of
    the source video (else of the reference), where that flow is valid; the reference's own figure is
    given beside it. tOF (TecoGAN): the output's flow against the reference's. L1, PSNR and SSIM per
    frame against the reference: a frozen video has a low warping error, so fidelity goes with it.
    """
    from tqdm import tqdm

    from ganvas.data.flow import flow_and_validity

    paths = {"output": Path(output), "reference": reference, "source": source}
    infos = {k: probe(Path(p)) for k, p in paths.items() if p is not None}
    count = infos["output"].frames
    for key, info in infos.items():
        if info.frames != count or (info.height, info.width) != (infos["output"].height, infos["output"].width):
            raise DataError(
                f"the {key} video {info.path} has {info.frames} frames of {info.width}x{info.height} but the output "
                f"{infos['output'].path} has {count} of {infos['output'].width}x{infos['output'].height}; compare "
                f"videos of the same length and size"
            )
    flow_from = "source" if source is not None else "reference" if reference is not None else None
    meter, reference_meter = TemporalMeter(preset), TemporalMeter(preset)
    fidelity: dict[str, list[float]] = {"l1": [], "psnr": [], "ssim": []}
    previous_flow_frame = None
    streams = zip(_frames(paths["output"]), *(_frames(Path(paths[k])) for k in ("reference", "source") if paths[k]))
    bar = tqdm(total=count, unit="frame", desc="metrics", disable=not show_progress)
    for frames in streams:
        out_frame = frames[0]
        ref_frame = frames[1] if reference is not None else None
        flow_frame = frames[-1] if flow_from is not None else None
        flow = valid = None
        if flow_frame is not None and previous_flow_frame is not None:
            f, v = flow_and_validity(previous_flow_frame, flow_frame, preset)
            flow, valid = torch.from_numpy(f).permute(2, 0, 1), torch.from_numpy(v)[None]
        previous_flow_frame = flow_frame
        out_t = to_tensor(out_frame)
        ref_t = to_tensor(ref_frame) if ref_frame is not None else None
        meter.add(out_t, ref_t, flow=flow, valid=valid)
        if ref_t is not None:
            reference_meter.add(ref_t, flow=flow, valid=valid)
            for key, value in image_metrics(out_t, ref_t).items():
                fidelity[key].append(value)
        bar.update(1)
    bar.close()
    figures = meter.result()
    result: dict[str, Any] = {"frames": count, "preset": preset, "flow_from": flow_from}
    if flow_from is not None:
        result["warping_error"] = figures.get("warping_error")
        if reference is not None:
            result["warping_error_reference"] = reference_meter.result().get("warping_error")
    if reference is not None:
        result["tof"] = figures.get("tof")
        for key, values in fidelity.items():
            finite = [v for v in values if math.isfinite(v)]
            result[key] = float(np.mean(finite)) if finite else math.inf
    return result


def metrics_lines(result: dict[str, Any]) -> list[str]:
    """The figures of video_metrics as lines for the terminal, each saying what it measures."""
    lines = [f"{result['frames']} frames"]
    if result.get("warping_error") is not None:
        line = f"warping error {result['warping_error'] * 1e3:.3f} (x1e-3, flow of the {result['flow_from']})"
        if result.get("warping_error_reference") is not None:
            line += f"; the reference's own: {result['warping_error_reference'] * 1e3:.3f}"
        lines.append(line)
    else:
        lines.append("warping error: needs --source or --reference (the flow it warps by)")
    if result.get("tof") is not None:
        lines.append(f"tOF {result['tof']:.3f} px (flow of the output against the reference's)")
    if "l1" in result:
        lines.append(
            f"against the reference: L1 {result['l1']:.4f}, PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
        )
    else:
        lines.append(
            "fidelity (L1, PSNR, SSIM) and tOF need --reference: a frozen video would score a low warping error"
        )
    return lines
