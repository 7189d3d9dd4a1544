"""The `ganvas` command: parse, call the library, and tell the user what happened."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ganvas import __version__
from ganvas.errors import GanvasError
from ganvas.options import ArgumentParser, parse_options

log = logging.getLogger("ganvas")

USAGE = """usage: ganvas <command> [flags]

commands:
  train      train a model:       ganvas train --dataroot DIR --name RUN --model MODEL
  test       test a trained run:  ganvas test --name RUN   (writes results/RUN/test_latest/index.html)
  translate  run a model on files: ganvas translate --name RUN img1.png folder/ --out out/
                                  (or --checkpoint latest_net_G.pth: a file of the original code bases)
  colorize   colour photos:       ganvas colorize --name RUN old_photo.jpg --out out/   (a --model colorization run)
  export     ONNX / TorchScript:  ganvas export --name RUN --format onnx   (or --checkpoint latest_net_G.pth)
  bench      speed and memory:    ganvas bench --model cycle_gan --size 256 --amp bf16 --baseline
  encode-features  cluster a pix2pixHD run's instance styles: ganvas encode-features --name RUN
  demo       train a model (--model, default pix2pix) on a built-in data set, test it, print the results page
  video      videos:              ganvas video translate --name RUN in.mp4 --out out.mp4
                                  ganvas video metrics out.mp4 --reference truth.mp4 --source in.mp4
  data       data tools:          ganvas data synth --out datasets/synth_facades
  eval       FID, KID, PSNR, SSIM: ganvas eval --name RUN   (or --real DIR --fake DIR; --compare RUN1 RUN2)
  studio     draw, edit, colourise in the browser: ganvas studio --checkpoints_dir ./checkpoints  (or --demo)

`ganvas <command> --help` lists the command's flags; `ganvas train --model MODEL --help` adds the model's."""


def _train(argv: Sequence[str]) -> int:
    from ganvas.train import train

    opt, _ = parse_options(argv, "train")
    if not opt.dataroot:
        raise GanvasError("ganvas train needs --dataroot, the folder of the data set")
    main_process = os.environ.get("RANK", "0") == "0"
    result = train(opt, show_progress=sys.stderr.isatty() and main_process)
    p = result.progress
    # The shell's convention for a process ended by a signal: 128 + its number (130 Ctrl-C, 143 SIGTERM), once saved.
    code = 128 + (result.stop_signal or signal.SIGINT) if result.interrupted else 0
    if not main_process:
        return code
    if result.interrupted:
        other = result.stop_signal not in (None, signal.SIGINT)
        cause = f"stopped by {signal.Signals(result.stop_signal).name}" if other else "interrupted"
        print(
            f"{cause} in epoch {p.epoch} after {p.steps} steps; saved {result.run_dir}. Resume with the same "
            f"command plus --continue_train."
        )
        return code
    print(f"trained {opt.name}: {p.steps} steps, {p.images} images; checkpoints in {result.run_dir}")
    return 0


def _test(argv: Sequence[str]) -> int:
    from ganvas.infer import run_test

    opt, _ = parse_options(argv, "test")
    result = run_test(opt)
    for output, m in result.scores.items():
        scored = f" ({output})" if len(result.scores) > 1 else ""
        images = f"{result.count} image{'' if result.count == 1 else 's'}"
        print(f"{images}{scored}: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.3f}, L1 {m['l1']:.4f}")
    if result.temporal:
        from ganvas.infer import temporal_sentence

        print(temporal_sentence(result.temporal))
    print(f"results page: {result.page} (backend: {result.backend})")
    return 0


def _given(argv: Sequence[str], flag: str) -> bool:
    """True when the command line names flag (as --flag or --flag=value)."""
    return any(a.partition("=")[0] == flag for a in argv)


def _checkpoint_flags(parser: ArgumentParser) -> None:
    """--checkpoint and the flags that describe a bare pix2pixHD file (a run folder has its own)."""
    parser.add_argument(
        "--checkpoint",
        type=Path,
        help="a bare generator file (latest_net_G.pth, .safetensors) of "
        "ganvas or the original code bases, run without --name or architecture flags",
    )
    files = parser.add_argument_group("with --checkpoint: a pix2pixHD generator file")
    files.add_argument(
        "--label_nc",
        dest="checkpoint_label_nc",
        type=int,
        metavar="N",
        help="classes of its label maps (default: its input channels less the instance channel)",
    )
    files.add_argument(
        "--no_instance",
        dest="checkpoint_no_instance",
        action="store_true",
        help="it takes no instance boundary channel",
    )


def _refuse_file_flags_for_runs(checkpoint: Path | None, extra) -> None:  # type: ignore[no-untyped-def]
    """--label_nc / --no_instance describe a bare file; a run folder's own options say what it takes."""
    if checkpoint is None and (
        getattr(extra, "checkpoint_label_nc", None) is not None or getattr(extra, "checkpoint_no_instance", False)
    ):
        raise GanvasError("--label_nc and --no_instance describe a --checkpoint file; a run (--name) has its own")


def _file_translator(checkpoint: Path, argv: Sequence[str], extra, **kwargs):  # type: ignore[no-untyped-def]
    """The translator of a bare generator file (--checkpoint); pix2pixHD flags only where given."""
    from ganvas.api import load

    if _given(argv, "--name"):
        raise GanvasError("pass --name RUN or --checkpoint FILE, not both")
    return load(
        checkpoint,
        label_nc=getattr(extra, "checkpoint_label_nc", None),
        instance=False if getattr(extra, "checkpoint_no_instance", False) else None,
        **kwargs,
    )


def _translator(opt, argv: Sequence[str], extra, batch_size: int = 8):  # type: ignore[no-untyped-def]
    """The translator of --checkpoint FILE or of the run --name names, with the run-level flags given."""
    from ganvas.api import run_translator
    from ganvas.speed import select_device

    checkpoint = getattr(extra, "checkpoint", None)
    _refuse_file_flags_for_runs(checkpoint, extra)
    if checkpoint is None:
        return run_translator(opt, batch_size=batch_size)
    return _file_translator(
        checkpoint,
        argv,
        extra,
        device=select_device(opt.gpu_ids),
        dtype=opt.precision,
        paper_mode=opt.paper_mode,
        seed=opt.seed or 0,
        backend=opt.backend,
        num_threads_infer=opt.num_threads_infer,
        batch_size=batch_size,
    )


def _translate(argv: Sequence[str], colorize: bool = False) -> int:
    """ganvas translate (and ganvas colorize: the same for colourisation runs and files only)."""
    from ganvas.infer import expand_inputs, translate_files

    def own(parser: ArgumentParser) -> None:
        parser.add_argument(
            "inputs", nargs="*", type=Path, help="image files or folders of images (pix2pixHD: label maps)"
        )
        parser.add_argument("--out", type=Path, help="folder for the translated images (default: translated/)")
        _checkpoint_flags(parser)
        parser.add_argument(
            "--instance_dir",
            type=Path,
            help="pix2pixHD: folder of instance maps, matched to the "
            "label maps by file name (default: class boundaries stand for instance boundaries)",
        )
        if colorize:
            parser.add_argument(
                "--hints",
                type=Path,
                help='colour hints for a --model colorization_hints run: a JSON file {"points": [{"x", "y", '
                '"rgb", "patch"}]} in the input image\'s pixels',
            )

    prog = "ganvas colorize" if colorize else "ganvas translate"
    opt, extra = parse_options(argv, "translate", prog=prog, add_own=own)
    out = getattr(extra, "out", None) or Path("colorized" if colorize else "translated")
    checkpoint = getattr(extra, "checkpoint", None)
    if checkpoint is None:
        expand_inputs(list(getattr(extra, "inputs", [])))  # a missing input is named before the run loads
    translator = _translator(opt, argv, extra)
    if colorize and translator.image_space != "lab_l":
        raise GanvasError(
            f"{translator.description} does not colourise (it takes {translator.input_nc}-channel images to "
            f"{translator.output_nc}); colourise with a --model colorization run, or use ganvas translate"
        )
    written = translate_files(
        opt,
        list(getattr(extra, "inputs", [])),
        out,
        translator,
        getattr(extra, "instance_dir", None),
        getattr(extra, "hints", None),
    )
    done = "colourised" if colorize else "translated"
    print(f"{done} {len(written)} image{'' if len(written) == 1 else 's'} into {out} (backend: {translator.backend})")
    return 0


def _video(argv: Sequence[str]) -> int:
    """ganvas video translate (any run, frame by frame or sequentially) and ganvas video metrics."""
    tools = ("translate", "metrics")
    if not argv or argv[0] not in tools:
        print(
            "usage: ganvas video translate --name RUN in.mp4 --out out.mp4 [--width W]\n"
            "       ganvas video metrics out.mp4 [--reference truth.mp4] [--source in.mp4] [--flow medium]",
            file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout,
        )
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "metrics":
        return _video_metrics(argv[1:])
    return _video_translate(argv[1:])


def _video_translate(argv: Sequence[str]) -> int:
    from ganvas.video import translate_video

    def own(parser: ArgumentParser) -> None:
        parser.add_argument("input", type=Path, help="a video file (mp4, webm, mkv, mov, avi) or a folder of frames")
        parser.add_argument("--out", type=Path, required=True, help="the video file (or folder of frames) to write")
        parser.add_argument("--width", type=int, help="scale the frames to this width first (aspect ratio kept)")
        parser.add_argument("--quality", type=int, default=18, help="the encoder's constant rate factor (0 lossless)")
        _checkpoint_flags(parser)

    opt, extra = parse_options(argv, "translate", prog="ganvas video translate", add_own=own)
    translator = _translator(opt, argv, extra, batch_size=1)
    try:
        result = translate_video(
            translator,
            extra.input,
            extra.out,
            width=getattr(extra, "width", None),
            quality=getattr(extra, "quality", 18),
        )
    except KeyboardInterrupt as stop:
        print(f"ganvas: interrupted: {stop}", file=sys.stderr)
        return 130
    print(
        f"translated {result.frames} frames at {result.fps:g} fps into {result.path} "
        f"({result.frames_per_second:.1f} frames/s; backend: {translator.backend})"
    )
    return 0


def _video_metrics(argv: Sequence[str]) -> int:
    import json

    from ganvas.data.flow import PRESETS
    from ganvas.video import metrics_lines, video_metrics

    parser = ArgumentParser(prog="ganvas video metrics", description="flicker and fidelity of a translated video")
    parser.add_argument("output", type=Path, help="the translated video (file or folder of frames)")
    parser.add_argument("--reference", type=Path, help="the true video: fidelity (L1, PSNR, SSIM) and tOF")
    parser.add_argument("--source", type=Path, help="the video that was translated: its flow for the warping error")
    parser.add_argument("--flow", choices=PRESETS, default="medium", help="OpenCV DIS preset of the flows")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    result = video_metrics(args.output, args.reference, args.source, args.flow)
    for line in metrics_lines(result):
        print(line)
    if args.json:
        from ganvas.files import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2))
    return 0


def _export(argv: Sequence[str]) -> int:
    from ganvas.api import run_translator
    from ganvas.export import FORMATS, export
    from ganvas.options import OPT_FILE

    def own(parser: ArgumentParser) -> None:
        _checkpoint_flags(parser)
        parser.add_argument("--format", choices=tuple(FORMATS), default="onnx", help="onnx (default) or torchscript")
        parser.add_argument("--out", type=Path, help="file to write (default: <run or file name>.onnx / .pt)")
        parser.add_argument("--fp16", action="store_true", help="export in half precision")
        parser.add_argument("--opset", type=int, default=None, help="ONNX opset version (default: the exporter's)")
        parser.add_argument(
            "--no_check", action="store_true", help="skip running the exported file against the network"
        )

    opt, extra = parse_options(argv, "export", add_own=own)
    fmt = getattr(extra, "format", "onnx")
    checkpoint = getattr(extra, "checkpoint", None)
    _refuse_file_flags_for_runs(checkpoint, extra)
    if checkpoint is not None:
        translator = _file_translator(checkpoint, argv, extra, device="cpu")
        default = checkpoint.with_name(f"{checkpoint.stem}_{fmt}{FORMATS[fmt]}")
    else:
        if not (opt.run_dir / OPT_FILE).is_file():
            raise GanvasError(
                f"{opt.run_dir} is no trained run (it has no opt.yaml); check --name and "
                f"--checkpoints_dir, or pass --checkpoint FILE"
            )
        # A graph has eval mode only, and is made from the torch networks.
        translator = run_translator(replace(opt, gpu_ids="-1", paper_mode=False, backend="torch", num_threads_infer=0))
        default = opt.run_dir / f"{opt.name}_{opt.epoch}_{opt.direction}{FORMATS[fmt]}"
    out = getattr(extra, "out", None) or default
    if checkpoint is not None and Path(out).resolve() == checkpoint.resolve():
        raise GanvasError(f"--out {out} is the checkpoint being exported; name another file")
    result = export(
        translator,
        out,
        fmt,
        fp16=getattr(extra, "fp16", False),
        opset=getattr(extra, "opset", None),
        check=not getattr(extra, "no_check", False),
    )
    checked = (
        "not checked"
        if result.max_abs_difference is None
        else f"checked against the network: max difference {result.max_abs_difference:.2g}"
    )
    print(
        f"wrote {result.path} ({fmt}; inputs {', '.join(result.input_names)}: any batch, height and width "
        f"multiples of {result.size_multiple}; {checked})"
    )
    return 0


def _bench(argv: Sequence[str]) -> int:
    from ganvas.backends import GRAPH_BACKENDS
    from ganvas.bench import bench_models, format_table, run_bench
    from ganvas.options import Options, build_parser, option_fields, reject_unknown

    parser = ArgumentParser(
        prog="ganvas bench",
        description="time training steps (or inference) on synthetic "
        "tensors: median seconds, images/second, peak memory; flags of the model's own (say "
        "--CUT_mode FastCUT) pass through",
        allow_abbrev=False,
    )
    parser.add_argument("--model", choices=bench_models(), help="the model (default pix2pix; with --backend: all)")
    parser.add_argument(
        "--size",
        help="image side in px (pix2pixhd: height; width twice); with --backend a list such as 256,512 (the default)",
    )
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels_last", action="store_true")
    parser.add_argument("--baseline", action="store_true", help="also time plain fp32 eager first and print the ratio")
    parser.add_argument("--infer", action="store_true", help="time the generator's inference instead of training")
    parser.add_argument(
        "--backend",
        choices=("all", *GRAPH_BACKENDS),
        help="with --infer: time the inference generator on torch eager and this backend (all: every installed "
        "one) on the CPU, and print seconds per image, the ratio to torch and the largest output difference",
    )
    parser.add_argument(
        "--num_threads_infer", type=int, default=0, help="with --backend: CPU threads of every backend (0: all)"
    )
    parser.add_argument("--steps", type=int, default=10, help="timed steps (the median is printed)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation happens here)")
    parser.add_argument(
        "--gpu_ids", default="0", help="0 for the first GPU (the CPU when there is none), -1 for the CPU"
    )
    args, rest = parser.parse_known_args(argv)
    if args.backend:
        return _bench_backends(args, rest)
    args.model = args.model or "pix2pix"
    try:
        args.size = int(args.size or 256)
    except ValueError:
        raise GanvasError(f"--size takes one number of pixels here, not {args.size!r}") from None
    if args.size < 32 or args.batch_size < 1 or args.steps < 1 or args.warmup < 0:
        # Below 32 px the published discriminators shrink their maps to single pixels.
        raise GanvasError("--size must be at least 32, --batch_size and --steps at least 1, --warmup at least 0")
    # The model's own flags, parsed as `ganvas train --model M` parses them.
    model_flags = build_parser("ganvas bench", "train", args.model)
    own, unknown = model_flags.parse_known_args(rest)
    reject_unknown(unknown, model_flags, args.model, "bench")  # another model's flag names its model
    shared = sorted(set(vars(own)) & set(option_fields(Options)))
    if shared:
        raise GanvasError(
            f"ganvas bench times each model with its published settings and takes --{shared[0]} only where "
            f"ganvas bench --help lists it; of the model's options it takes its own (ganvas train --model "
            f"{args.model} --help, under 'options of --model {args.model}')"
        )
    extra = vars(own)
    results = run_bench(
        args.model,
        args.size,
        args.batch_size,
        amp=args.amp,
        compile=args.compile,
        channels_last=args.channels_last,
        baseline=args.baseline,
        infer=args.infer,
        steps=args.steps,
        warmup=args.warmup,
        gpu_ids=args.gpu_ids,
        **extra,
    )
    import torch

    from ganvas.speed import select_device

    device = select_device(args.gpu_ids)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    name = args.model + "".join(f" ({k} {v})" for k, v in extra.items())
    print(
        f"{name}, {'inference' if args.infer else 'training'}, {args.size} px, batch {args.batch_size}, {where}, "
        f"torch {torch.__version__}"
    )
    print(format_table(results, "infer" if args.infer else "step"))
    return 0


def _bench_backends(args, rest: Sequence[str]) -> int:  # type: ignore[no-untyped-def]
    """ganvas bench --infer --backend B: every (or one) model's inference generator on torch and B."""
    from ganvas.backends import backend_version, check_backend, cpu_threads, installed_backends
    from ganvas.bench import backend_bench, bench_models, cpu_name, format_backend_table

    if not args.infer or rest:
        raise GanvasError(
            "--backend times inference: add --infer; it runs each model with its published settings"
            + (f", so {rest[0]} is not taken" if rest else "")
        )
    if args.backend != "all":
        check_backend(args.backend)
    backends = installed_backends() if args.backend == "all" else ["torch", args.backend]
    try:
        sizes = [int(s) for s in (args.size or "256,512").split(",")]
    except ValueError:
        raise GanvasError(f"--size takes pixel sides such as 256,512, not {args.size!r}") from None
    if min(sizes) < 32 or args.steps < 1 or args.warmup < 0:
        raise GanvasError("--size must be at least 32, --steps at least 1, --warmup at least 0")
    models = [args.model] if args.model else list(bench_models())
    threads = args.num_threads_infer or cpu_threads()
    print(
        f"inference, {'fp32' if args.amp == 'off' else args.amp}, batch 1, {cpu_name()}, {threads} threads; "
        f"{', '.join(backend_version(b) for b in backends)}; median of {args.steps} after {args.warmup} warm-up"
    )
    precision = "fp32" if args.amp == "off" else args.amp
    if precision == "fp16":
        raise GanvasError("--backend times fp32 or bf16 (--amp bf16) on the CPU; fp16 is for GPUs")
    rows = backend_bench(models, sizes, backends, args.steps, args.warmup, threads, precision)
    print(format_backend_table(rows))
    return 0


def _encode_features(argv: Sequence[str]) -> int:
    from ganvas.models.pix2pixhd import encode_features, encode_training_styles

    opt, _ = parse_options(argv, "test", prog="ganvas encode-features")
    encode = encode_features if _given(argv, "--phase") else encode_training_styles
    out = encode(opt, show_progress=sys.stderr.isatty())
    print(f"style clusters of {opt.name} in {out}")
    return 0


def _demo(argv: Sequence[str]) -> int:
    from ganvas.demo import DEFAULT_DEMO, demo_names, run_demo

    parser = ArgumentParser(
        prog="ganvas demo",
        description="train a model on a built-in data set for a few CPU minutes, test it against trivial "
        "baselines and write a results page",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_DEMO,
        choices=demo_names(),
        help=f"which model's demo (default: {DEFAULT_DEMO})",
    )
    parser.add_argument("--out", type=Path, default=Path("ganvas_demo"), help="working folder (default: ganvas_demo)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs at full learning rate (as many again decay)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu_ids", default="-1", help="-1 for the CPU (default), 0 for the first GPU")
    args = parser.parse_args(argv)
    summary = run_demo(
        args.out,
        model=args.model,
        epochs=args.epochs,
        seed=args.seed,
        gpu_ids=args.gpu_ids,
        show_progress=sys.stderr.isatty(),
    )
    print(demo_report(summary))
    return 0


def _eval_flags(parser) -> None:
    parser.add_argument("--metrics", default="fid,kid,psnr,ssim", help="from fid, kid, psnr, ssim, l1, lpips")
    parser.add_argument("--lpips_backbone", type=Path, default=None, help="AlexNet's alexnet-owt-7be5be79.pth")
    parser.add_argument("--lpips_heads", type=Path, default=None, help="the lpips package's weights/v0.1/alex.pth")
    parser.add_argument("--inception_weights", type=Path, default=None, help="FID's Inception file (a local path)")
    parser.add_argument(
        "--download", action="store_true", default=False, help="fetch the Inception file to the cache if missing"
    )
    parser.add_argument("--mirror", default=None, help="a host with pytorch-fid's release paths, for --download")


def _eval(argv: Sequence[str]) -> int:
    from ganvas import evaluate as ev

    if "--real" in argv or "--fake" in argv or "--compare" in argv:
        parser = ArgumentParser(prog="ganvas eval", description="FID, KID, PSNR, SSIM of folders, or runs compared")
        parser.add_argument("--real", type=Path, help="folder of real images")
        parser.add_argument("--fake", type=Path, help="folder of generated images (paired with --real by name)")
        parser.add_argument("--out", type=Path, default=None, help="write the figures and protocol as JSON here")
        parser.add_argument("--compare", nargs="+", default=None, help="runs whose last `ganvas eval` to tabulate")
        parser.add_argument("--results_dir", type=Path, default=Path("results"))
        parser.add_argument("--epoch", default="latest")
        _eval_flags(parser)
        args = parser.parse_args(argv)
        if args.compare:
            rows = []
            for run in args.compare:
                path = args.results_dir / run / f"test_{args.epoch}" / ev.EVAL_FILE
                if not path.is_file():
                    raise GanvasError(f"{path} does not exist; run `ganvas eval --name {run}` first")
                rows.append((run, json.loads(path.read_text())))
            print(ev.format_table(rows))
            if len({ev.fingerprint(r) for _, r in rows if "protocol" in r}) > 1:
                print("note: the runs' FID/KID were measured with different image counts or weights; see eval.json")
            return 0
        if args.real is None or args.fake is None:
            parser.error("pass both --real and --fake (or --compare RUN ...)")
        metrics = ev.parse_metrics(args.metrics)
        weights = ev.find_weights(args.inception_weights, args.download, args.mirror)
        lpips = ev.find_lpips(args.lpips_backbone, args.lpips_heads, args.download, args.mirror)
        result = ev.evaluate_folders(args.real, args.fake, metrics, weights, lpips=lpips)
        if args.out:
            ev.write_eval(result, args.out)
        _print_eval(result)
        return 0
    opt, extra = parse_options(argv, "test", prog="ganvas eval", add_own=_eval_flags)
    from ganvas.infer import run_test

    metrics = ev.parse_metrics(extra.metrics)
    # --inception_weights is also a training option (for --eval_freq): given here, or the run's own
    given = getattr(extra, "inception_weights", None) or opt.inception_weights
    weights = ev.find_weights(Path(given) if given else None, extra.download, extra.mirror)
    lpips = ev.find_lpips(extra.lpips_backbone, extra.lpips_heads, extra.download, extra.mirror)
    page = run_test(opt).page
    result = ev.evaluate_test_page(page.parent, metrics, weights, lpips=lpips, dataroot=Path(opt.dataroot))
    path = ev.write_eval(result, page.parent / ev.EVAL_FILE)
    _print_eval(result)
    print(f"figures and protocol in {path}")
    return 0


def _print_eval(result: dict) -> None:
    from ganvas.evaluate import format_table

    print(format_table([(result.get("name") or result.get("fake") or "run", result)]))
    for note in result["notes"]:
        print(f"note: {note}")


def _studio(argv: Sequence[str]) -> int:
    from ganvas.studio import prepare, serve
    from ganvas.studio.demo import demo_runs

    parser = ArgumentParser(
        prog="ganvas studio",
        description="draw label maps and sketches, edit scenes and colourise photos with your runs, in the browser",
    )
    parser.add_argument("--checkpoints_dir", type=Path, default=None, help="offer every run in this folder")
    parser.add_argument(
        "--checkpoint", type=Path, action="append", default=[], help="a run folder or generator file (repeatable)"
    )
    parser.add_argument("--demo", action="store_true", help="train (once) and offer the built-in demo runs")
    parser.add_argument(
        "--out", type=Path, default=Path("ganvas_demo"), help="the demos' folder (default: ganvas_demo)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument(
        "--allow-remote", "--allow_remote", action="store_true", help="allow a --host other machines reach"
    )
    parser.add_argument(
        "--backend", default=None, help="CPU inference backend: auto (default), torch, onnxruntime, openvino"
    )
    parser.add_argument("--gpu_ids", default=None, help="-1 for the CPU, 0 for the first GPU (default: a GPU if any)")
    parser.add_argument("--max_upload_mb", type=float, default=32, help="largest request body in MB (default 32)")
    parser.add_argument(
        "--max_pixels", type=int, default=2048 * 2048, help="largest image or canvas in pixels (default 2048 x 2048)"
    )
    args = parser.parse_args(argv)
    device = None if args.gpu_ids is None else ("cpu" if args.gpu_ids == "-1" else f"cuda:{args.gpu_ids}")
    files = list(args.checkpoint)
    if args.demo:
        files = demo_runs(args.out, gpu_ids=args.gpu_ids or "-1", show_progress=sys.stderr.isatty()) + files
    if not files and args.checkpoints_dir is None:
        args.checkpoints_dir = Path("checkpoints")
    launch = prepare(
        args.checkpoints_dir,
        files,
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        backend=args.backend,
        device=device,
        max_body_mb=args.max_upload_mb,
        max_pixels=args.max_pixels,
    )
    serve(launch, on_ready=lambda url: print(f"ganvas studio: open {url}  (Ctrl-C stops it)", flush=True))
    return 0


def demo_report(summary: dict) -> str:
    """The demo's figures against its baselines, its page and the commands to go on with, as printed."""
    from ganvas.demo import BUILTIN_SETS, demo_recipe

    figures = BUILTIN_SETS[demo_recipe(summary["demo"]).data].figures
    lines = [f"trained in {summary['train_seconds']:.0f} s; on {summary['count']} held-out test images:"]
    rows = [("this run", summary)] + list(summary["baselines"].items())
    for name, values in rows:
        lines.append(f"  {name}: " + ", ".join(f"{f.label} {f.format(values[f.key])}" for f in figures))
    lines.append(f"margin of {figures[0].label} over the best baseline: {figures[0].format(summary['margin'])}")
    lines.append(f"results page: {summary['page']}")
    lines.append("next:")
    lines.extend(f"  {step}" for step in summary["next_steps"])
    return "\n".join(lines)


def _data(argv: Sequence[str]) -> int:
    from ganvas.data.synthetic import (
        STREET_CLASSES,
        write_color_set,
        write_image_folder,
        write_paired_set,
        write_street_set,
        write_unpaired_set,
    )
    from ganvas.demo import BUILTIN_SETS, demo_names, demo_recipe, train_command

    parser = ArgumentParser(prog="ganvas data", description="data set tools")
    sub = parser.add_subparsers(dest="tool", required=True)
    synth = sub.add_parser("synth", help="write the built-in procedural data set (deterministic by seed)")
    synth.add_argument("--out", type=Path, default=None, help="folder (default: datasets/synth_<kind>)")
    synth.add_argument(
        "--kind",
        choices=("paired", "unpaired", "street", "images", "photos", "color", "video"),
        default="paired",
        help="paired: A|B label/photo pairs in train/ and test/; unpaired: day (A) and night (B) "
        "facades of different scenes in trainA/, trainB/, testA/, testB/, with the true other "
        "rendering of each under truth/ (for --model cycle_gan or cut); street: label maps, "
        "16-bit instance maps and photos of street scenes in train_label/, train_inst/, "
        "train_img/ ... (for --model pix2pixhd); images: photos only (for --model gan); photos: colour "
        "photos in train/ and test/ (for --model colorization); color: shapes of one lightness in different "
        "colours on textured grey, outlined in L, in train/ and test/ (only colour hints can tell their "
        "colours: for --model colorization_hints); video: sequences of textured shapes moving over a panning "
        "background, "
        "colour label frames in train_A/<sequence>/, rendered frames in train_B/<sequence>/ and their exact flows "
        "in train_flow/<sequence>/ (for --model vid2vid; --n_train and --n_test count sequences)",
    )
    synth.add_argument("--n_train", type=int, default=400)
    synth.add_argument("--n_test", type=int, default=40)
    synth.add_argument("--size", type=int, default=64, help="image side (street: height; the width is twice it)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--touching",
        action="store_true",
        help="street: cars parked bumper to bumper and rows of trees, with a dark seam where two objects of "
        "one class touch (only the instance map tells them apart)",
    )
    download = sub.add_parser("download", help="fetch a data set the original repositories publish")
    download.add_argument("name", help="facades, maps, edges2shoes, horse2zebra, monet2photo ... (cyclegan/maps)")
    download.add_argument("--out", type=Path, default=Path("datasets"), help="folder (default: datasets)")
    download.add_argument("--mirror", default=None, help="a host with the same paths (default: $GANVAS_DATA_MIRROR)")
    download.add_argument("--force", action="store_true", help="fetch and unpack again over a finished copy")
    download.add_argument("--keep_archive", action="store_true", help="keep the archive in <out>/.downloads/")
    combine = sub.add_parser("combine", help="A and B folders to A|B pairs, as combine_A_and_B.py")
    combine.add_argument("--fold_A", type=Path, required=True, help="A images in one subfolder per split")
    combine.add_argument("--fold_B", type=Path, required=True, help="B images of the same names and splits")
    combine.add_argument("--fold_AB", type=Path, required=True, help="where the pairs go")
    combine.add_argument("--num_imgs", type=int, default=None, help="at most this many pairs per split")
    combine.add_argument("--use_AB", action="store_true", help="files are named <name>_A.jpg and <name>_B.jpg")
    combine.add_argument("--no_multiprocessing", action="store_true", help="write the pairs in this process")
    cityscapes = sub.add_parser("prepare-cityscapes", help="Cityscapes' zip files into pix2pixHD's layout")
    cityscapes.add_argument("--gtFine", type=Path, required=True, help="gtFine_trainvaltest.zip (or its folder)")
    cityscapes.add_argument("--leftImg8bit", type=Path, required=True, help="leftImg8bit_trainvaltest.zip (or folder)")
    cityscapes.add_argument(
        "--out", type=Path, default=Path("datasets/cityscapes"), help="default: datasets/cityscapes"
    )
    cityscapes.add_argument("--force", action="store_true", help="replace the folders of an earlier run")
    args = parser.parse_args(argv)
    if args.tool == "prepare-cityscapes":
        from ganvas.data.prepare import prepare_cityscapes

        counts = prepare_cityscapes(args.gtFine, args.leftImg8bit, args.out, args.force)
        print(
            f"wrote {counts.get('train', 0)} training and {counts.get('test', 0)} test scenes (Cityscapes' val) under "
            f"{args.out}: --dataroot {args.out} --label_nc 35"
        )
        return 0
    if args.tool == "download":
        from ganvas.data.download import download_dataset, published

        folder = download_dataset(
            args.name, args.out, args.mirror, args.force, args.keep_archive, show_progress=sys.stderr.isatty()
        )
        print(f"{published(args.name).name}: {published(args.name).layout} in {folder}; --dataroot {folder}")
        return 0
    if args.tool == "combine":
        from ganvas.data.prepare import combine_folders

        done = combine_folders(
            args.fold_A, args.fold_B, args.fold_AB, args.num_imgs, args.use_AB, 1 if args.no_multiprocessing else 0
        )
        counts = ", ".join(f"{n} in {split}" for split, n in done.written.items())
        print(f"wrote A|B pairs under {args.fold_AB}: {counts}; --dataroot {args.fold_AB} --dataset_mode aligned")
        return 0
    if args.touching and args.kind != "street":
        parser.error(f"--touching draws street scenes, not --kind {args.kind}; add --kind street")
    out = args.out or Path(
        {
            "paired": "datasets/synth_facades",
            "unpaired": "datasets/synth_day2night",
            "street": "datasets/synth_streets",
            "images": "datasets/synth_photos",
            "photos": "datasets/synth_colorization",
            "color": "datasets/synth_color_shapes",
            "video": "datasets/synth_video",
        }[args.kind]
    )
    if args.kind == "paired":
        root = write_paired_set(out, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed)
        print(f"wrote {args.n_train} training and {args.n_test} test pairs (A: labels, B: photo) under {root}")
    elif args.kind == "unpaired":
        root = write_unpaired_set(out, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed)
        print(
            f"wrote {args.n_train} day (A) and {args.n_train} night (B) training images of different scenes, "
            f"{args.n_test} of each for testing, and the true counterparts under {root / 'truth'}"
        )
    elif args.kind == "street":
        root = write_street_set(
            out,
            n_train=args.n_train,
            n_test=args.n_test,
            size=(args.size, 2 * args.size),
            seed=args.seed,
            touching=args.touching,
        )
        print(
            f"wrote {args.n_train} training and {args.n_test} test street scenes under {root} "
            f"({len(STREET_CLASSES)} classes: --label_nc {len(STREET_CLASSES)})"
        )
    elif args.kind == "photos":
        root = BUILTIN_SETS["photos"].write(out, args.seed, size=args.size, n_train=args.n_train, n_test=args.n_test)
        print(f"wrote {args.n_train} training and {args.n_test} test photos under {root}")
    elif args.kind == "color":
        root = write_color_set(out, n_train=args.n_train, n_test=args.n_test, size=args.size, seed=args.seed)
        print(f"wrote {args.n_train} training and {args.n_test} test images of coloured shapes under {root}")
    elif args.kind == "video":
        root = BUILTIN_SETS["video"].write(out, args.seed, size=args.size, n_train=args.n_train, n_test=args.n_test)
        print(
            f"wrote {args.n_train} training and {args.n_test} test sequences of 12 frames under {root}, "
            f"with their true flows in {root / 'train_flow'} and {root / 'test_flow'}"
        )
    else:
        root = write_image_folder(out, n=args.n_train, size=args.size, seed=args.seed)
        print(f"wrote {args.n_train} images under {root}")
    for name in demo_names():
        if demo_recipe(name).data == args.kind:
            print(f"a CPU-sized {name} run on it (as `ganvas demo --model {name}`): {train_command(name, root)}")
    return 0


def one_sentence(err: GanvasError) -> str:
    """The error's own message, also when a DataLoader worker wrapped it in its traceback."""
    message = str(err)
    if "Original Traceback" in message:
        # The worker's last traceback line is "ganvas.errors.DataError: <message>".
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    return message


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train": _train,
    "test": _test,
    "translate": _translate,
    "colorize": lambda argv: _translate(argv, colorize=True),
    "export": _export,
    "bench": _bench,
    "encode-features": _encode_features,
    "demo": _demo,
    "data": _data,
    "video": _video,
    "studio": _studio,
    "eval": _eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ganvas` console script and `python -m ganvas`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"ganvas {__version__}")
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"ganvas: unknown command {argv[0]!r}; choose one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    # Under torchrun only the first process speaks; the others report warnings and errors.
    main_process = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(level=logging.INFO if main_process else logging.WARNING, format="%(message)s")
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        with logging_redirect_tqdm():
            return command(argv[1:])
    except GanvasError as err:
        print(f"ganvas: error: {one_sentence(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ganvas: interrupted", file=sys.stderr)
        return 130
