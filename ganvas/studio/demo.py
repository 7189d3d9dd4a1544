"""`ganvas studio --demo`: the built-in runs the studio shows a newcomer, trained once and reused."""

from __future__ import annotations

import logging
from pathlib import Path

from ganvas.options import OPT_FILE

log = logging.getLogger("ganvas")

# Drawing facade label maps (pix2pix), editing street scenes with objects and styles (pix2pixHD), colourising
# with hints: the demos `ganvas demo --model NAME` trains, in the order the studio lists them.
STUDIO_DEMOS = ("pix2pix", "pix2pixhd", "colorization_hints")


def demo_runs(out: Path, gpu_ids: str = "-1", show_progress: bool = True) -> list[Path]:
    """The run folders of the studio's demos under out/checkpoints, training those not yet trained there."""
    from ganvas.demo import run_demo

    runs = []
    for name in STUDIO_DEMOS:
        run = Path(out) / "checkpoints" / f"demo_{name}"
        summary = Path(out) / "results" / f"demo_{name}" / "summary.json"
        if summary.is_file() and (run / OPT_FILE).is_file():
            log.info("studio: using the trained demo run %s", run)
        else:
            log.info("studio: training the %s demo (a few CPU minutes, once; later launches reuse it)", name)
            run_demo(Path(out), model=name, gpu_ids=gpu_ids, show_progress=show_progress)
        runs.append(run)
    return runs
