"""Frames per second of reading and writing MP4 (H.264) videos with ganvas.data.video, by frame size.

    python benchmarks/bench_video.py [--frames 60] [--sizes 256x256 512x512 1024x512] [--steps 3] [--quality 18]

Writes --frames frames of textured moving content (smooth stripes with grain, scrolling) through
VideoWriter (RGB to BT.709 4:2:0, libx264 at its default preset, crf --quality, faststart) and reads
them back with read_frames (decode and RGB conversion, frame-threaded), one frame at a time as
`ganvas translate` does; the figures are medians of --steps runs after one warm-up run. Compare them
with a generator's images per second at the same size (`ganvas bench --infer`): video I/O should
take a small share of a translated video's time.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from ganvas.bench import cpu_name, timed  # one timing rule for every benchmark and `ganvas bench`
from ganvas.data.video import VideoWriter, probe, read_frames


def textured_frames(count: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth colour stripes with fixed grain, scrolling 4 pixels a frame: neither flat nor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 9), 128 + 100 * np.cos(y / 7), 128 + 60 * np.sin((x + y) / 13)], -1)
    base += np.random.default_rng(0).normal(0, 12, (height, width, 3)).astype(np.float32)
    return [np.clip(np.roll(base, 4 * i, axis=1), 0, 255).astype(np.uint8) for i in range(count)]


def encode(frames: list[np.ndarray], path: Path, quality: int) -> None:
    with VideoWriter(path, 25, quality=quality) as writer:
        for frame in frames:
            writer.write(frame)


def decode(path: Path) -> int:
    return sum(1 for _ in read_frames(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--sizes", nargs="+", default=["256x256", "512x512", "1024x512"], help="WIDTHxHEIGHT")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--quality", type=int, default=18)
    args = parser.parse_args()
    cpu = torch.device("cpu")
    import av

    print(f"{cpu_name()}, {torch.get_num_threads()} threads, PyAV {av.__version__}, {args.frames} frames per video")
    print("| size | encode frames/s | decode frames/s | MB/frame written | decode check |")
    print("|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            width, height = (int(side) for side in size.split("x"))
            frames = textured_frames(args.frames, height, width)
            path = Path(tmp) / f"bench_{size}.mp4"
            encode_s = timed(lambda: encode(frames, path, args.quality), 1, args.steps, cpu)  # noqa: B023
            decode_s = timed(lambda: decode(path), 1, args.steps, cpu)  # noqa: B023
            info = probe(path)
            check = "ok" if (info.frames, info.width, info.height) == (args.frames, width, height) else f"{info}"
            megabytes = path.stat().st_size / 2**20 / args.frames
            print(
                f"| {width} x {height} | {args.frames / encode_s:.0f} | {args.frames / decode_s:.0f} "
                f"| {megabytes:.3f} | {check} |"
            )


if __name__ == "__main__":
    main()
