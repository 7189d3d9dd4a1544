"""Does mixed precision train as well as fp32? The demo's pix2pix run, once per precision, same steps.

    python benchmarks/bench_amp_quality.py [--amp bf16] [--epochs 8] [--gpu_ids -1] [--out DIR]

Trains `ganvas demo`'s setting (the built-in paired set, unet_64, ngf = ndf = 32, batch 4, same seed
and data order) first in plain fp32, then with `--amp`, for the same number of steps, tests both on
the held-out pairs (fp32 inference, so that only training differs) and prints each one's wall time,
test PSNR and SSIM, and the PSNR difference. Issue 6 asks for a difference within 0.3 dB.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from ganvas.data.synthetic import write_paired_set
from ganvas.demo import DEMO_FLAGS, DEMO_SIZE
from ganvas.infer import run_test
from ganvas.options import resolve_options
from ganvas.train import train


def train_and_test(out: Path, dataroot: Path, amp: str, epochs: int, gpu_ids: str) -> tuple[float, dict]:
    """(training wall seconds, test metrics) of one run of the demo's setting with `amp`."""
    common = {"name": f"quality_{amp}", "checkpoints_dir": str(out / "checkpoints"),
              "results_dir": str(out / "results"), "gpu_ids": gpu_ids, "seed": 0}
    opt = resolve_options({**common, **DEMO_FLAGS, "dataroot": str(dataroot), "n_epochs": epochs,
                           "n_epochs_decay": epochs, "amp": amp, "overwrite": True}, "train")
    start = time.perf_counter()
    train(opt, show_progress=False)
    seconds = time.perf_counter() - start
    return seconds, run_test(resolve_options(common, "test")).metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--amp", choices=["bf16", "fp16"], default="bf16")
    parser.add_argument("--epochs", type=int, default=8, help="constant-rate epochs; as many decay epochs follow")
    parser.add_argument("--gpu_ids", default="-1")
    parser.add_argument("--out", type=Path, help="where to keep the runs (a temporary folder by default)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, gpu_ids {args.gpu_ids}, {2 * args.epochs} epochs")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        dataroot = write_paired_set(out / "data", n_train=200, n_test=20, size=DEMO_SIZE, seed=0)
        rows = [(amp, *train_and_test(out, dataroot, amp, args.epochs, args.gpu_ids)) for amp in ("off", args.amp)]
    print(f"{'training':<10} {'wall s':>8} {'PSNR dB':>8} {'SSIM':>7}")
    for amp, seconds, metrics in rows:
        print(f"{'fp32' if amp == 'off' else amp:<10} {seconds:>8.1f} {metrics['psnr']:>8.2f} {metrics['ssim']:>7.3f}")
    print(f"PSNR difference ({args.amp} - fp32): {rows[1][2]['psnr'] - rows[0][2]['psnr']:+.2f} dB")


if __name__ == "__main__":
    main()
