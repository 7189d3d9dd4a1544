"""Does mixed precision train as well as fp32? The demo's pix2pix run, once per precision, same steps.

    python benchmarks/bench_amp_quality.py [--amp bf16] [--epochs 8] [--gpu_ids -1] [--out DIR]

Runs `ganvas demo` (ganvas.demo.run_demo: the built-in paired set, unet_64, ngf = ndf = 32, batch 4,
same seed and data order) first in plain fp32, then with `--amp`, for the same number of steps; tests
both on the held-out pairs (fp32 inference, so that only training differs) and prints each one's
training wall time, test PSNR and SSIM, and the PSNR difference. Issue 6 asks for it within 0.3 dB.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

from ganvas.demo import run_demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amp", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--epochs", type=int, default=8, help="constant-rate epochs; as many decay epochs follow")
    parser.add_argument("--gpu_ids", default="-1")
    parser.add_argument("--out", type=Path, help="where to keep the runs (a temporary folder by default)")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, gpu_ids {args.gpu_ids}, {2 * args.epochs} epochs"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        rows = {
            amp: run_demo(out / amp, epochs=args.epochs, gpu_ids=args.gpu_ids, show_progress=False, amp=amp)
            for amp in ("off", args.amp)
        }
    print(f"{'training':<10} {'wall s':>8} {'PSNR dB':>8} {'SSIM':>7}")
    for amp, summary in rows.items():
        print(
            f"{'fp32' if amp == 'off' else amp:<10} {summary['train_seconds']:>8.1f} {summary['psnr']:>8.2f} "
            f"{summary['ssim']:>7.3f}"
        )
    print(f"PSNR difference ({args.amp} - fp32): {rows[args.amp]['psnr'] - rows['off']['psnr']:+.2f} dB")


if __name__ == "__main__":
    main()
