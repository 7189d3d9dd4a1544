"""Every `ganvas demo --model NAME` (or the ones named), over one or more seeds: figures, baselines, margin, time.

    python benchmarks/bench_demos.py                       # every demo, seed 0
    python benchmarks/bench_demos.py cycle_gan cut --seeds 0 1 2

Prints one row per demo and seed: the headline figure, the best trivial baseline's, the margin (positive:
the model beats every baseline), the second figure, the training seconds and PASS or FAIL (margin > 0).
The exit status is the number of FAILs. Run on a quiet machine; the figures go into RESULTS.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from ganvas.demo import BUILTIN_SETS, demo_names, demo_recipe, run_demo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", nargs="*", help="demo names (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    names = args.demos or list(demo_names())
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        print(
            f"{'demo':<10} {'seed':>4} {'figure':>8} {'model':>8} {'baseline':>9} {'margin':>8} {'second':>16} {'s':>6}"
        )
        for name in names:
            figures = BUILTIN_SETS[demo_recipe(name).data].figures
            for seed in args.seeds:
                s = run_demo(out / f"seed{seed}", model=name, seed=seed, show_progress=False)
                head, second = figures[0], figures[1]
                ok = s["margin"] > 0
                failures += not ok
                print(
                    f"{name:<10} {seed:>4} {head.key:>8} {s[head.key]:>8.3f} {s['best_baseline']:>9.3f} "
                    f"{s['margin']:>+8.3f} "
                    f"{second.key + ' ' + format(s[second.key], '.3f'):>16} {s['train_seconds']:>6.0f} "
                    f"{'PASS' if ok else 'FAIL'}",
                    flush=True,
                )
    return failures


if __name__ == "__main__":
    sys.exit(main())
