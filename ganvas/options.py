"""The options every model shares, how a model adds its own, and how a command line and a saved run become one.

A model declares its own fields in a frozen dataclass that extends `Options` (see models/cut.py);
flag names stay flat (`--lambda_NCE`), so command lines and saved `opt.yaml` files of the original
code bases keep working. Each field says which commands take it as a flag (`translate --help` does
not list `--lr`); every field is saved with the run and inherited by test, translate and resume.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ganvas.backends import BACKENDS
from ganvas.data.transforms import PREPROCESS_MODES
from ganvas.errors import OptionsError
from ganvas.files import atomic_write_text
from ganvas.losses import GAN_MODES
from ganvas.nets.norm import INIT_TYPES, NORM_TYPES
from ganvas.registry import DATASETS, MODELS, NETWORKS
from ganvas.safe import load_yaml_mapping
from ganvas.speed import PRECISIONS, parse_gpu_ids

log = logging.getLogger("ganvas")

OPT_FILE = "opt.yaml"

# Which commands take a field as a flag.
ALL = ("train", "test", "translate", "export")
TRAIN = ("train",)
RUN = ("train", "test")  # data and architecture: training, and test (which may run a bare generator)
LOAD = ("train", "test", "translate")  # resizing done when images are read
INFER = ("test", "translate", "export")
TEST = ("test",)


def _int_or_inf(text: str) -> float:
    """Parse a count that may be 'inf' (unlimited)."""
    value = float(text)
    if value != math.inf and value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number or 'inf', got {text!r}")
    return value if value == math.inf else int(value)


def str2bool(text: str) -> bool:
    """A yes/no value as CUT's command lines write it."""
    value = text.lower()
    if value in ("yes", "true", "t", "y", "1"):
        return True
    if value in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def option(
    default: Any,
    help: str,
    *,
    choices: Sequence[Any] | None = None,
    minimum: float | None = None,
    positive: bool = False,
    parse: Callable[[str], Any] | None = None,
    optional_value: bool = False,
    commands: Sequence[str] = ALL,
    registry: str = "",
    inherited: bool = True,
) -> Any:
    """A field of an options dataclass: its default, help, allowed values and the commands that take it.

    `minimum` / `positive` are checked for every run; `registry` names the registry whose entries are
    the choices (read when the parser is built, so models registered later are listed too);
    `optional_value` gives CUT's style of booleans (`--nce_idt`, `--nce_idt False`); `inherited=False`
    for options each command decides for itself, never taken from the saved run (--phase, --epoch ...).
    """
    meta = {
        "help": help,
        "commands": tuple(commands),
        "minimum": minimum,
        "positive": positive,
        "choices": tuple(choices) if choices is not None else None,
        "parse": parse,
        "optional_value": optional_value,
        "registry": registry,
        "inherited": inherited,
    }
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """Every option all models share; saved with a run so that test and translate need only --name.

    Frozen: a command that needs other values makes a changed copy with `dataclasses.replace`.
    """

    # --- where things are -------------------------------------------------------------------
    dataroot: str = option("", "folder of the data set (with train/, test/ ... or trainA/, trainB/ ...)", commands=RUN)
    name: str = option("experiment_name", "run name; files go to <checkpoints_dir>/<name>")
    model: str = option("pix2pix", "method to train or run", registry="models")
    checkpoints_dir: str = option("./checkpoints", "where runs keep their checkpoints")
    results_dir: str = option("./results", "where test writes its pages", commands=TEST, inherited=False)
    gpu_ids: str = option(
        "0", "GPU ids, e.g. 0 or 0,1; -1 for the CPU (used anyway when no GPU is present)", inherited=False
    )
    seed: int | None = option(None, "random seed; a run without one draws one and saves it", minimum=0)
    # --- networks -----------------------------------------------------------------------------
    input_nc: int = option(3, "channels of input images (1 gray, 3 RGB, 4 RGBA)", choices=(1, 3, 4), commands=RUN)
    output_nc: int = option(
        3, "channels of output images (2: the ab colour of --model colorization)", choices=(1, 2, 3, 4), commands=RUN
    )
    ngf: int = option(64, "generator filters in the last conv layer", minimum=1, commands=RUN)
    ndf: int = option(64, "discriminator filters in the first conv layer", minimum=1, commands=TRAIN)
    netG: str = option("resnet_9blocks", "generator", registry="generators", commands=RUN)
    netD: str = option("basic", "discriminator (basic: the 70x70 PatchGAN)", registry="discriminators", commands=TRAIN)
    n_layers_D: int = option(3, "conv layers of the n_layers discriminator", minimum=1, commands=TRAIN)
    norm: str = option("instance", "normalisation layer", choices=tuple(NORM_TYPES), commands=RUN)
    init_type: str = option("normal", "weight initialisation", choices=tuple(INIT_TYPES), commands=TRAIN)
    init_gain: float = option(0.02, "scale of the initial weights", positive=True, commands=TRAIN)
    no_dropout: bool = option(False, "no dropout in the generator", commands=RUN)
    # --- data ---------------------------------------------------------------------------------
    dataset_mode: str = option("aligned", "data layout", registry="datasets", commands=RUN)
    direction: str = option("AtoB", "translate A to B or B to A", choices=("AtoB", "BtoA"))
    serial_batches: bool = option(False, "take images in order instead of shuffling", commands=TRAIN)
    num_threads: int = option(
        4, "data loading worker processes (0 loads in the main process)", minimum=0, commands=RUN, inherited=False
    )
    batch_size: int = option(1, "images per step", minimum=1, commands=TRAIN)
    load_size: int = option(286, "scale images to this size", minimum=1, commands=LOAD)
    crop_size: int = option(256, "then crop to this size", minimum=1, commands=LOAD)
    max_dataset_size: float = option(
        math.inf, "use at most this many images", minimum=1, parse=_int_or_inf, commands=TRAIN
    )
    preprocess: str = option(
        "resize_and_crop", "resizing and cropping at load time", choices=tuple(PREPROCESS_MODES), commands=LOAD
    )
    no_flip: bool = option(False, "no random horizontal flips", commands=TRAIN)
    phase: str = option("train", "data split: train, val, test ...", commands=TEST, inherited=False)
    epoch: str = option("latest", "which checkpoint to load: latest or an epoch number", inherited=False)
    # --- training -----------------------------------------------------------------------------
    n_epochs: int = option(100, "epochs at the starting learning rate", minimum=0, commands=TRAIN)
    n_epochs_decay: int = option(
        100,
        "epochs of linear decay towards zero (the last one runs at lr/(n+1), as in the original)",
        minimum=0,
        commands=TRAIN,
    )
    epoch_count: int = option(
        1, "number of the first epoch (for runs continued from foreign checkpoints)", minimum=1, commands=TRAIN
    )
    continue_train: bool = option(False, "resume the run <name> where it stopped", commands=TRAIN, inherited=False)
    overwrite: bool = option(
        False, "delete an earlier run of the same --name and start afresh", commands=TRAIN, inherited=False
    )
    lr: float = option(0.0002, "initial Adam learning rate", positive=True, commands=TRAIN)
    beta1: float = option(0.5, "Adam beta1", commands=TRAIN)
    lr_policy: str = option(
        "linear", "learning-rate schedule", choices=("linear", "step", "plateau", "cosine"), commands=TRAIN
    )
    lr_decay_iters: int = option(50, "epochs between x0.1 steps (step policy)", minimum=1, commands=TRAIN)
    gan_mode: str = option("lsgan", "GAN objective", choices=tuple(GAN_MODES), commands=TRAIN)
    lambda_gp: float = option(10.0, "weight of the gradient penalty (wgangp)", commands=TRAIN)
    precision: str = option(
        "fp32",
        "number format of test and translate: fp32, bf16 or fp16 (fp16 on GPUs)",
        choices=tuple(PRECISIONS),
        commands=("test", "translate"),
        inherited=False,
    )
    print_freq: int = option(100, "log losses every this many images", commands=TRAIN)
    display_freq: int = option(400, "write training visuals every this many images", commands=TRAIN)
    save_latest_freq: int = option(5000, "save the latest checkpoint every this many images", commands=TRAIN)
    save_epoch_freq: int = option(5, "keep a checkpoint every this many epochs", minimum=1, commands=TRAIN)
    eval_freq: int = option(
        0, "score the model on --eval_count test images every this many epochs (0: never)", minimum=0, commands=TRAIN
    )
    eval_metrics: str = option(
        "psnr,ssim", "what --eval_freq measures, from fid, kid, psnr, ssim, l1, lpips", commands=TRAIN
    )
    eval_count: int = option(
        16, "test images --eval_freq scores: the first of the test split", minimum=2, commands=TRAIN
    )
    save_best: str = option(
        "",
        "keep best_net_*.pth by this --eval_metrics figure (psnr, ssim: higher; fid, kid, l1, lpips: lower)",
        commands=TRAIN,
    )
    inception_weights: str = option(
        "",
        "FID's Inception file for --eval_metrics fid or kid (default: the cache path ganvas eval uses)",
        commands=TRAIN,
    )
    tensorboard: bool = option(
        False,
        "also log losses, learning rate, --eval_freq figures and visuals for TensorBoard (the tensorboard extra)",
        commands=TRAIN,
    )
    # --- speed --------------------------------------------------------------------------------
    amp: str = option(
        "off",
        "mixed-precision training: off (fp32), bf16 (GPUs and CPUs) or fp16 (GPUs; one "
        "gradient scaler per G and D step)",
        choices=("off", "bf16", "fp16"),
        commands=TRAIN,
        inherited=False,
    )
    channels_last: bool = option(
        False,
        "channels-last memory layout for the networks (helps batch-norm and "
        "no-norm networks on GPUs; measure with ganvas bench)",
        commands=TRAIN,
        inherited=False,
    )
    compile: bool = option(
        False,
        "torch.compile G and D separately (the first steps are slow while they compile)",
        commands=TRAIN,
        inherited=False,
    )
    # --- test ---------------------------------------------------------------------------------
    num_test: float = option(
        math.inf,
        "test at most this many images (default: all)",
        minimum=1,
        parse=_int_or_inf,
        commands=TEST,
        inherited=False,
    )
    # Eval mode is the default: it is the only mode an exported graph has, and it is deterministic.
    paper_mode: bool = option(
        False,
        "the pix2pix paper's test-time layers: batch norm with each test image's own statistics and "
        "dropout on, seeded by --seed (default: eval mode, running statistics and no dropout, as export)",
        commands=("test", "translate"),
        inherited=False,
    )
    backend: str = option(
        os.environ.get("GANVAS_BACKEND") or "auto",
        "what runs the networks on the CPU: auto (the fastest installed backend, timed on the first inputs of "
        "each size and remembered in <run>/export/), torch, onnxruntime or openvino; GPUs run torch "
        "(the environment variable GANVAS_BACKEND sets the default)",
        choices=BACKENDS,
        commands=("test", "translate"),
        inherited=False,
    )
    num_threads_infer: int = option(
        0,
        "CPU threads of inference, the same for every backend (0: the CPUs this process may use)",
        minimum=0,
        commands=("test", "translate"),
        inherited=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every option, for saving."""
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        """Folder of this run's checkpoints, options and logs."""
        return Path(self.checkpoints_dir) / self.name


def option_fields(options_class: type[Options]) -> dict[str, dataclasses.Field]:
    """The fields of an options class by name."""
    return {f.name: f for f in fields(options_class)}


def all_option_fields() -> dict[str, dataclasses.Field]:
    """Every option of every registered model by name (saved files may hold any of them)."""
    found = option_fields(Options)
    for entry in MODELS:
        found = {**option_fields(entry.obj.options_class), **found}
    return found


def known_option_names() -> set[str]:
    """The names of every option of every registered model."""
    return set(all_option_fields())


def owners(name: str) -> list[str]:
    """The registered models that declare the option `name`."""
    return [e.name for e in MODELS if name in option_fields(e.obj.options_class) and name not in option_fields(Options)]


# Flags of the older pix2pix/CycleGAN and pix2pixHD code bases, mapped to today's names.
LEGACY_FLAGS = {
    "--niter": "--n_epochs",
    "--niter_decay": "--n_epochs_decay",
    "--loadSize": "--load_size",
    "--fineSize": "--crop_size",
    "--which_direction": "--direction",
    "--which_model_netG": "--netG",
    "--which_model_netD": "--netD",
    "--which_epoch": "--epoch",
    "--batchSize": "--batch_size",
    "--nThreads": "--num_threads",
    "--resize_or_crop": "--preprocess",
    "--how_many": "--num_test",
}
LEGACY_SWITCHES = {"--no_lsgan": ["--gan_mode", "vanilla"]}
# Flags of the original code bases that steer what ganvas does differently (visdom, wandb, its
# HTML writer) or that pix2pix never used; accepted with a warning so old scripts keep running.
# vid2vid's flags for its GPU split, foreground model and face/pose data sets (flag -> values it takes).
_VID2VID_UNUSED_FLAGS = {
    "--fg": 0,
    "--fg_labels": 1,
    "--n_gpus_gen": 1,
    "--sparse_D": 0,
    "--add_face_disc": 0,
    "--no_canny_edge": 0,
    "--no_dist_map": 0,
    "--random_scale_points": 0,
    "--densepose_only": 0,
    "--openpose_only": 0,
    "--remove_face_labels": 0,
    "--random_drop_prob": 1,
    "--basic_point_only": 0,
}
IGNORED_FLAGS = {
    "--display_id": 1,
    "--display_server": 1,
    "--display_port": 1,
    "--display_env": 1,
    "--display_ncols": 1,
    "--display_winsize": 1,
    "--update_html_freq": 1,
    "--aspect_ratio": 1,
    "--wandb_project_name": 1,
    "--suffix": 1,
    "--no_html": 0,
    "--use_wandb": 0,
    "--verbose": 0,
    "--tf_log": 0,
    "--debug": 0,
    **_VID2VID_UNUSED_FLAGS,
    "--local_rank": 1,
}
# Why a flag of IGNORED_FLAGS does nothing, where the reason is not the original's display and logging.
IGNORED_WHY = {
    flag: "one of vid2vid's flags for its GPU split, foreground model or face and pose data sets, which ganvas does "
    "not have; several GPUs split the sequences under torchrun"
    for flag in _VID2VID_UNUSED_FLAGS
}
IGNORED_WHY["--local_rank"] = "torchrun passes the rank in the environment"
TEST_OVERRIDES = {
    "phase": "test",
    "batch_size": 1,
    "serial_batches": True,
    "no_flip": True,
    "preprocess": "none",
    "max_dataset_size": math.inf,
    "num_threads": 0,
}
INHERITING = ("test", "translate", "export")
# --eval chose eval-mode layers when the paper's mode was the default; it is still accepted (flag,
# resolve_options value, ganvas.load keyword) and now names the default. Runs saved before then hold it.
EVAL_HELP = "eval-mode layers: running batch-norm statistics, no dropout (the default; kept for older scripts)"
SAVED_BEFORE_PAPER_MODE = ("eval",)


def paper_mode_from(eval: bool | None, paper_mode: bool | None) -> bool:
    """Whether to run the paper's test-time layers, from the older `eval` and `paper_mode` (None: not given)."""
    if eval is None:
        return bool(paper_mode)
    if eval and paper_mode:
        raise OptionsError(
            "eval and paper_mode contradict each other: eval mode (running batch-norm statistics, no "
            "dropout) is the default and paper_mode asks for the pix2pix paper's test-time layers; drop one"
        )
    return not eval


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one OptionsError sentence instead of a usage dump and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionsError(f"{message}; see `{self.prog} --help`")


def _choices(meta: Any) -> tuple[Any, ...] | None:
    """A field's allowed values, from its registry when it names one."""
    registry = meta.get("registry")
    if registry == "models":
        return MODELS.names()
    if registry == "datasets":
        return DATASETS.names()
    return meta.get("choices")


def _help(meta: Any) -> str:
    """A field's help, with the written forms of registered networks where it names networks."""
    flag = {"generators": "--netG", "discriminators": "--netD"}.get(meta.get("registry", ""))
    return meta["help"] + (f": {', '.join(NETWORKS.forms(flag=flag))}" if flag else "")


def _add_field(group: Any, f: dataclasses.Field, default: Any) -> None:
    """One flag for one field; its help shows the default the chosen model uses."""
    meta, flag = f.metadata, f"--{f.name}"
    shown = "" if default is None or default == "" else f" (default: {default})"
    if f.type in ("bool", bool):
        if meta.get("optional_value"):  # CUT's style: --nce_idt, --nce_idt True, --nce_idt False
            group.add_argument(flag, type=str2bool, nargs="?", const=True, metavar="BOOL", help=_help(meta) + shown)
        else:
            group.add_argument(flag, action="store_true", help=_help(meta))
        return
    kind = meta.get("parse") or {"int": int, "float": float, "str": str, "int | None": int}.get(str(f.type), str)
    # Numbers with a fixed set (--input_nc) are checked by check_options, whose message says what each means.
    choices = _choices(meta) if kind is str else None
    group.add_argument(
        flag, type=kind, choices=choices, help=_help(meta) + shown, metavar=f.name.upper() if choices is None else None
    )


def build_parser(
    prog: str = "ganvas",
    command: str = "train",
    model: str = Options.model,
    add_own: Callable[[argparse.ArgumentParser], None] | None = None,
) -> ArgumentParser:
    """The flags `command` takes for `model`: the command's own first, then the common ones, then the model's.

    Defaults are suppressed so that only given flags appear; help texts show the model's defaults.
    """
    parser = ArgumentParser(prog=prog, usage="%(prog)s [flags]", allow_abbrev=False, argument_default=argparse.SUPPRESS)
    if add_own is not None:
        add_own(parser)
    model_class = MODELS.get(model)
    defaults = {**{f.name: f.default for f in fields(model_class.options_class)}, **model_class.option_defaults({})}
    common = parser.add_argument_group(f"options of {prog}")
    own = parser.add_argument_group(f"options of --model {model}")
    shared = option_fields(Options)
    for f in fields(model_class.options_class):
        if command in f.metadata.get("commands", ALL):
            _add_field(common if f.name in shared else own, f, defaults.get(f.name))
    if command in INFER:
        common.add_argument("--eval", action="store_true", help=EVAL_HELP)
    return parser


def translate_legacy(argv: Sequence[str]) -> list[str]:
    """Rewrite flags of the original code bases to today's names, warning once for each."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        flag, eq, value = token.partition("=")
        if flag in IGNORED_FLAGS:
            if IGNORED_FLAGS[flag] and not eq:
                next(tokens, None)
            why = IGNORED_WHY.get(flag, "logs and pages are written to the run folder")
            log.warning("%s has no effect in ganvas (%s); ignoring it", flag, why)
        elif flag in LEGACY_FLAGS:
            log.warning("%s is deprecated; use %s", flag, LEGACY_FLAGS[flag])
            out.append(LEGACY_FLAGS[flag] + eq + value)
        elif token in LEGACY_SWITCHES:
            log.warning("%s is deprecated; use %s", token, " ".join(LEGACY_SWITCHES[token]))
            out.extend(LEGACY_SWITCHES[token])
        else:
            out.append(token)
    return out


def foreign_option(name: str, model: str, command: str) -> str:
    """Why `name` is not an option here: another model's, another command's, or a hint for old scripts."""
    hints = MODELS.get(model).flag_hints
    if name in hints:
        return f"--{name} is not an option of --model {model}; {hints[name]}"
    models = owners(name)
    if models:
        return (
            f"--{name} is an option of --model {' and '.join(models)}, not of {model}; pass --model "
            f"{models[0]} or drop --{name}"
        )
    if name == "paper_mode" and command == "export":
        return "--paper_mode is not an option of `ganvas export`: an exported graph runs its layers in eval mode"
    return f"--{name} is not an option of `ganvas {command}`; see `ganvas {command} --help`"


def reject_unknown(unknown: Sequence[str], parser: argparse.ArgumentParser, model: str, command: str) -> None:
    """Raise for the first unknown flag: another model's or command's, else the closest known one."""
    if not unknown:
        return
    bad = next((u for u in unknown if u.startswith("-")), unknown[0])
    flag = bad.partition("=")[0]
    if not flag.startswith("-"):
        raise OptionsError(f"unexpected argument {bad!r}; flags start with -- (see ganvas --help)")
    if flag[2:] in known_option_names() | set(SAVED_BEFORE_PAPER_MODE) or flag[2:] in MODELS.get(model).flag_hints:
        raise OptionsError(foreign_option(flag[2:], model, command))
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see the command's --help for the flags it takes"
    raise OptionsError(f"unknown flag {flag}; {hint}")


def _chosen_model(argv: Sequence[str], command: str) -> str:
    """The model a command line is for: --model, else the saved run's (test, translate, resume), else the default."""
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag in ("--model", "--name", "--checkpoints_dir"):
        pre.add_argument(flag)
    pre.add_argument("--continue_train", action="store_true")
    args, _ = pre.parse_known_args(argv)
    if args.model is not None:
        if args.model not in MODELS:
            raise OptionsError(MODELS.unknown(args.model))
        return args.model
    run_dir = Path(args.checkpoints_dir or Options.checkpoints_dir) / (args.name or Options.name)
    if (command in INHERITING or args.continue_train) and (run_dir / OPT_FILE).is_file():
        saved = load_saved_options(run_dir / OPT_FILE).get("model", Options.model)
        if saved in MODELS:
            return saved
    return Options.model


def parse_options(
    argv: Sequence[str],
    command: str = "train",
    prog: str = "",
    add_own: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Options, argparse.Namespace]:
    """Options for `command` from the command line, the saved run (test, translate, resume) and defaults.

    `add_own` adds the command's own arguments (inputs, --out ...); they come back in the namespace.
    """
    argv = translate_legacy(argv)
    model = _chosen_model(argv, command)
    parser = build_parser(prog or f"ganvas {command}", command, model, add_own)
    # Intermixed, so that `translate a.png --out o b.png` takes both files.
    args, unknown = parser.parse_known_intermixed_args(argv)
    reject_unknown(unknown, parser, model, command)
    names = known_option_names() | set(SAVED_BEFORE_PAPER_MODE)
    given = {k: v for k, v in vars(args).items() if k in names}
    extra = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in names})
    return resolve_options(given, command), extra


def resolve_options(given: dict[str, Any], command: str = "train") -> Options:
    """Merge, lowest first: base defaults, the model's defaults, the saved run, command overrides, given values.

    The model's defaults may depend on the options chosen (CUT's --CUT_mode); a model run on another
    model's checkpoints (the test model) adapts the saved options through its `inherit`. Values of
    options the model does not have are refused; saved ones (old runs saved every model's) are dropped.
    `eval` is taken as ganvas.load takes it (True: the default eval mode; False: paper_mode).
    """
    if "eval" in given:
        given_eval, given = given["eval"], {k: v for k, v in given.items() if k != "eval"}
        given["paper_mode"] = paper_mode_from(given_eval, given.get("paper_mode") or None)
    saved: dict[str, Any] = {}
    run_dir = Path(given.get("checkpoints_dir", Options.checkpoints_dir)) / given.get("name", Options.name)
    inherits = command in INHERITING or given.get("continue_train", False)
    if inherits and (run_dir / OPT_FILE).is_file():
        saved = load_saved_options(run_dir / OPT_FILE)
        decided_here = {n for n, f in all_option_fields().items() if not f.metadata.get("inherited", True)}
        saved = {k: v for k, v in saved.items() if k not in decided_here}
    model = given.get("model", saved.get("model", Options.model))
    model_class = MODELS.get(model)
    own = option_fields(model_class.options_class)
    for name in given:
        if name not in own:
            raise OptionsError(foreign_option(name, model, command))
    if (
        saved
        and command in INHERITING
        and given.get("direction", saved.get("direction")) != saved.get("direction")
        and not model_class.reversible
    ):
        raise OptionsError(
            f"the {saved.get('model')} run {given.get('name')} translates {saved.get('direction')} only; "
            f"drop --direction {given['direction']}, or train a run in that direction"
        )
    values: dict[str, Any] = dict(model_class.option_defaults({**saved, **given}))
    values.update(model_class.inherit(saved, given) if saved else {})
    if command in INHERITING:
        values.update(TEST_OVERRIDES)
        values.update(model_class.test_overrides(saved))
    values.update(given)
    values["model"] = model
    if not model_class.conditional:
        values["input_nc"] = values.get("output_nc", Options.output_nc)  # real images are what G outputs
    opt = model_class.options_class(**{k: v for k, v in values.items() if k in own})
    check_options(opt)
    return opt


def check_options(opt: Options) -> None:
    """Reject values and combinations no run can use, before any work starts (limits come from the fields)."""
    if opt.crop_size > opt.load_size and opt.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        raise OptionsError(
            f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}; "
            f"pass --load_size {opt.crop_size} or more, or a smaller --crop_size"
        )
    for f in fields(opt):
        value, meta = getattr(opt, f.name), f.metadata
        if value is None:
            continue
        if meta.get("minimum") is not None and value < meta["minimum"]:
            raise OptionsError(f"--{f.name} {value} must be at least {meta['minimum']}")
        if meta.get("positive") and not value > 0:
            raise OptionsError(f"--{f.name} {value} must be positive")
        choices = meta.get("choices")
        if choices is not None and value not in choices:
            raise OptionsError(f"--{f.name} {value} is not supported; use one of {', '.join(map(str, choices))}")
    if opt.seed is not None and not 0 <= opt.seed < 2**63:
        raise OptionsError(f"--seed {opt.seed} must be a whole number from 0 to 2**63 - 1")
    parse_gpu_ids(opt.gpu_ids)


def ensure_seed(opt: Options) -> Options:
    """The options with a random seed when none was given, so that the run can be saved and resumed exactly."""
    if opt.seed is None:
        return dataclasses.replace(opt, seed=random.SystemRandom().randrange(2**31))
    return opt


def load_saved_options(path: Path) -> dict[str, Any]:
    """Options saved with a run; keys no model knows (from newer versions) are dropped with a warning."""
    data = load_yaml_mapping(path, "the saved options", "delete the file or fix it by hand")
    known = known_option_names()
    unknown = sorted(set(data) - known - set(SAVED_BEFORE_PAPER_MODE))
    if unknown:
        log.warning("ignoring unknown saved options in %s: %s", path, ", ".join(map(str, unknown)))
    return {k: v for k, v in data.items() if k in known}


def save_options(opt: Options, path: Path) -> None:
    """Write every option next to the run's checkpoints (atomically)."""
    atomic_write_text(path, yaml.safe_dump(opt.to_dict(), sort_keys=False))
