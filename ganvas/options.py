"""One typed options object for every command, with the original repositories' flag names."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import math
import random
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from ganvas.data.datasets import DATASET_MODES
from ganvas.data.transforms import PREPROCESS_MODES
from ganvas.errors import OptionsError
from ganvas.losses import GAN_MODES
from ganvas.nets.norm import INIT_TYPES, NORM_TYPES

log = logging.getLogger("ganvas")

OPT_FILE = "opt.yaml"


def _int_or_inf(text: str) -> float:
    """Parse a count that may be 'inf' (unlimited)."""
    value = float(text)
    if value != math.inf and value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number or 'inf', got {text!r}")
    return value if value == math.inf else int(value)


def _str2bool(text: str) -> bool:
    """A yes/no value as CUT's command lines write it."""
    value = text.lower()
    if value in ("yes", "true", "t", "y", "1"):
        return True
    if value in ("no", "false", "f", "n", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass
class Options:
    """Every option of a run; saved with it so that test and translate need only --name."""

    # --- where things are -------------------------------------------------------------------
    dataroot: str = field(default="", metadata={"help": "folder of the data set (with train/, test/ ... or trainA/, trainB/ ...)"})
    name: str = field(default="experiment_name", metadata={"help": "run name; files go to <checkpoints_dir>/<name>"})
    model: str = field(default="pix2pix", metadata={"help": "method to train or run: pix2pix, cycle_gan, cut, gan, test"})
    checkpoints_dir: str = field(default="./checkpoints", metadata={"help": "where runs keep their checkpoints"})
    results_dir: str = field(default="./results", metadata={"help": "where test writes its pages"})
    gpu_ids: str = field(default="0", metadata={"help": "GPU ids, e.g. 0 or 0,1; -1 for the CPU (used anyway when no GPU is present)"})
    seed: int | None = field(default=None, metadata={"help": "random seed; a run without one draws one and saves it"})
    # --- networks -----------------------------------------------------------------------------
    input_nc: int = field(default=3, metadata={"help": "channels of input images (1 gray, 3 RGB, 4 RGBA)"})
    output_nc: int = field(default=3, metadata={"help": "channels of output images"})
    ngf: int = field(default=64, metadata={"help": "generator filters in the last conv layer"})
    ndf: int = field(default=64, metadata={"help": "discriminator filters in the first conv layer"})
    netG: str = field(default="resnet_9blocks", metadata={"help": "generator: unet_<size> (unet_256, unet_128 ...), resnet_<n>blocks, dcgan"})
    netD: str = field(default="basic", metadata={"help": "discriminator: basic (70x70 PatchGAN), n_layers, pixel, dcgan"})
    n_layers_D: int = field(default=3, metadata={"help": "conv layers of the n_layers discriminator"})
    norm: str = field(default="instance", metadata={"help": "normalisation layer", "choices": tuple(NORM_TYPES)})
    init_type: str = field(default="normal", metadata={"help": "weight initialisation", "choices": tuple(INIT_TYPES)})
    init_gain: float = field(default=0.02, metadata={"help": "scale of the initial weights"})
    no_dropout: bool = field(default=False, metadata={"help": "no dropout in the generator"})
    nz: int = field(default=100, metadata={"help": "length of the latent vector z (gan model)"})
    # --- data ---------------------------------------------------------------------------------
    dataset_mode: str = field(default="aligned", metadata={"help": "data layout", "choices": tuple(DATASET_MODES)})
    direction: str = field(default="AtoB", metadata={"help": "translate A to B or B to A", "choices": ("AtoB", "BtoA")})
    serial_batches: bool = field(default=False, metadata={"help": "take images in order instead of shuffling"})
    num_threads: int = field(default=4, metadata={"help": "data loading worker processes (0 loads in the main process)"})
    batch_size: int = field(default=1, metadata={"help": "images per step"})
    load_size: int = field(default=286, metadata={"help": "scale images to this size"})
    crop_size: int = field(default=256, metadata={"help": "then crop to this size"})
    max_dataset_size: float = field(default=math.inf, metadata={"help": "use at most this many images", "type": _int_or_inf})
    preprocess: str = field(default="resize_and_crop", metadata={"help": "resizing and cropping at load time", "choices": PREPROCESS_MODES})
    no_flip: bool = field(default=False, metadata={"help": "no random horizontal flips"})
    phase: str = field(default="train", metadata={"help": "data split: train, val, test ..."})
    epoch: str = field(default="latest", metadata={"help": "which checkpoint to load: latest or an epoch number"})
    # --- training -----------------------------------------------------------------------------
    n_epochs: int = field(default=100, metadata={"help": "epochs at the starting learning rate"})
    n_epochs_decay: int = field(default=100, metadata={"help": "epochs of linear decay towards zero (the last one runs at lr/(n+1), as in the original)"})
    epoch_count: int = field(default=1, metadata={"help": "number of the first epoch (for runs continued from foreign checkpoints)"})
    continue_train: bool = field(default=False, metadata={"help": "resume the run <name> where it stopped"})
    overwrite: bool = field(default=False, metadata={"help": "delete an earlier run of the same --name and start afresh"})
    lr: float = field(default=0.0002, metadata={"help": "initial Adam learning rate"})
    beta1: float = field(default=0.5, metadata={"help": "Adam beta1"})
    lr_policy: str = field(default="linear", metadata={"help": "learning-rate schedule", "choices": ("linear", "step", "plateau", "cosine")})
    lr_decay_iters: int = field(default=50, metadata={"help": "epochs between x0.1 steps (step policy)"})
    gan_mode: str = field(default="lsgan", metadata={"help": "GAN objective", "choices": tuple(GAN_MODES)})
    lambda_L1: float = field(default=100.0, metadata={"help": "weight of the L1 loss (pix2pix)"})
    lambda_gp: float = field(default=10.0, metadata={"help": "weight of the gradient penalty (wgangp)"})
    lambda_A: float = field(default=10.0, metadata={"help": "weight of the cycle loss A -> B -> A (cycle_gan)"})
    lambda_B: float = field(default=10.0, metadata={"help": "weight of the cycle loss B -> A -> B (cycle_gan)"})
    lambda_identity: float = field(default=0.5, metadata={"help": "weight of the identity loss, relative to lambda_A and lambda_B (cycle_gan; 0 turns it off)"})
    pool_size: int = field(default=50, metadata={"help": "generated images kept in the history that D also sees (cycle_gan; 0 keeps none)"})
    # --- CUT / FastCUT ------------------------------------------------------------------------
    CUT_mode: str = field(default="CUT", metadata={"help": "CUT or FastCUT: sets the published defaults of each (cut)", "choices": ("CUT", "cut", "FastCUT", "fastcut")})
    lambda_GAN: float = field(default=1.0, metadata={"help": "weight of the GAN loss (cut)"})
    lambda_NCE: float = field(default=1.0, metadata={"help": "weight of the PatchNCE loss (cut; FastCUT: 10)"})
    nce_idt: bool = field(default=False, metadata={"help": "PatchNCE identity loss on B images too (cut: on for CUT, off for FastCUT)", "optional_value": True})
    nce_layers: str = field(default="0,4,8,12,16", metadata={"help": "generator layers whose features the PatchNCE loss compares (cut)"})
    num_patches: int = field(default=256, metadata={"help": "patches sampled per layer for the PatchNCE loss (cut)"})
    nce_T: float = field(default=0.07, metadata={"help": "temperature of the PatchNCE loss (cut)"})
    netF: str = field(default="mlp_sample", metadata={"help": "patch feature head: mlp_sample (2-layer MLP) or sample (none) (cut)", "choices": ("mlp_sample", "sample")})
    netF_nc: int = field(default=256, metadata={"help": "output features of the patch MLP (cut)"})
    flip_equivariance: bool = field(default=False, metadata={"help": "flip the input at random and the features back (cut: on for FastCUT)", "optional_value": True})
    nce_includes_all_negatives_from_minibatch: bool = field(default=False, metadata={"help": "draw negatives from every image of the batch, not only the same one (cut)", "optional_value": True})
    no_antialias: bool = field(default=False, metadata={"help": "strided convs instead of anti-aliased downsampling in G and D (cut)", "optional_value": True})
    no_antialias_up: bool = field(default=False, metadata={"help": "transposed convs instead of anti-aliased upsampling in the generator (cut)", "optional_value": True})
    # --- pix2pixHD ----------------------------------------------------------------------------
    label_nc: int = field(default=35, metadata={"help": "classes in the label maps; 0 feeds images instead of labels (pix2pixhd)"})
    contain_dontcare_label: bool = field(default=False, metadata={"help": "the label maps use the value label_nc for don't-care pixels (pix2pixhd)"})
    no_instance: bool = field(default=False, metadata={"help": "no instance maps (<phase>_inst/) (pix2pixhd)"})
    n_downsample_global: int = field(default=4, metadata={"help": "downsampling layers of the global generator (pix2pixhd)"})
    n_blocks_global: int = field(default=9, metadata={"help": "residual blocks of the global generator (pix2pixhd)"})
    n_local_enhancers: int = field(default=1, metadata={"help": "local enhancers of --netG local, each doubling the resolution (pix2pixhd)"})
    n_blocks_local: int = field(default=3, metadata={"help": "residual blocks of each local enhancer (pix2pixhd)"})
    niter_fix_global: int = field(default=0, metadata={"help": "epochs that train only the outermost local enhancer before the whole generator (pix2pixhd)"})
    load_pretrain: str = field(default="", metadata={"help": "run folder whose networks initialise this run where names and shapes match, e.g. a global run for a local one (pix2pixhd)"})
    num_D: int = field(default=2, metadata={"help": "discriminator scales (pix2pixhd)"})
    no_ganFeat_loss: bool = field(default=False, metadata={"help": "no discriminator feature-matching loss (pix2pixhd)"})
    no_vgg_loss: bool = field(default=False, metadata={"help": "no VGG19 perceptual loss (pix2pixhd)"})
    vgg_weights: str = field(default="", metadata={"help": "ImageNet VGG19 weights for the perceptual loss (torchvision's vgg19-dcbb9e9d.pth; default: the torch hub cache) (pix2pixhd)"})
    lambda_feat: float = field(default=10.0, metadata={"help": "weight of the feature-matching and VGG losses (pix2pixhd)"})
    instance_feat: bool = field(default=False, metadata={"help": "encode a style feature per instance and feed it to G (pix2pixhd)"})
    label_feat: bool = field(default=False, metadata={"help": "encode a style feature per label region and feed it to G (pix2pixhd)"})
    feat_num: int = field(default=3, metadata={"help": "style feature channels (pix2pixhd)"})
    nef: int = field(default=16, metadata={"help": "encoder filters in the first conv layer (pix2pixhd)"})
    n_downsample_E: int = field(default=4, metadata={"help": "encoder downsampling layers (pix2pixhd)"})
    n_clusters: int = field(default=10, metadata={"help": "style clusters per class made by encode-features (pix2pixhd)"})
    cluster_seed: int = field(default=0, metadata={"help": "seed of the style cluster chosen for each instance at test time (pix2pixhd)"})
    use_encoded_image: bool = field(default=False, metadata={"help": "at test time, take styles from the real image rather than from the clusters (pix2pixhd)"})
    precision: str = field(default="fp32", metadata={"help": "number format of test and translate: fp32, bf16 or fp16 (fp16 on GPUs)", "choices": ("fp32", "bf16", "fp16")})
    model_suffix: str = field(default="", metadata={"help": "which saved generator the test model runs: '' for G, _A for G_A, _B for G_B (test)"})
    print_freq: int = field(default=100, metadata={"help": "log losses every this many images"})
    display_freq: int = field(default=400, metadata={"help": "write training visuals every this many images"})
    save_latest_freq: int = field(default=5000, metadata={"help": "save the latest checkpoint every this many images"})
    save_epoch_freq: int = field(default=5, metadata={"help": "keep a checkpoint every this many epochs"})
    # --- speed --------------------------------------------------------------------------------
    amp: str = field(default="off", metadata={"help": "mixed-precision training: off (fp32), bf16 (GPUs and CPUs) or fp16 (GPUs; one gradient scaler per G and D step)", "choices": ("off", "bf16", "fp16")})
    channels_last: bool = field(default=False, metadata={"help": "channels-last memory layout for the networks (helps batch-norm and no-norm networks on GPUs; measure with ganvas bench)"})
    compile: bool = field(default=False, metadata={"help": "torch.compile G and D separately (the first steps are slow while they compile)"})
    # --- test ---------------------------------------------------------------------------------
    num_test: float = field(default=math.inf, metadata={"help": "test at most this many images (default: all)", "type": _int_or_inf})
    eval: bool = field(default=False, metadata={"help": "eval mode at test time (running batch-norm statistics, no dropout)"})

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every option, for saving."""
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        """Folder of this run's checkpoints, options and logs."""
        return Path(self.checkpoints_dir) / self.name


OPTION_NAMES = tuple(f.name for f in fields(Options))

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
IGNORED_FLAGS = {"--display_id": 1, "--display_server": 1, "--display_port": 1, "--display_env": 1,
                 "--display_ncols": 1, "--display_winsize": 1, "--update_html_freq": 1, "--aspect_ratio": 1,
                 "--wandb_project_name": 1, "--suffix": 1, "--no_html": 0, "--use_wandb": 0, "--verbose": 0,
                 "--tf_log": 0, "--debug": 0}
# Flags of one model that old scripts of another pass with a different meaning.
MODEL_FLAG_HINTS = {"pix2pix": {"lambda_A": "pix2pix's L1 weight is --lambda_L1 (the old pix2pix README's --lambda_A; "
                                            "--lambda_A is CycleGAN's cycle weight)"}}

# Options a command decides for itself rather than inheriting from the saved run.
INVOCATION_OPTIONS = ("phase", "continue_train", "overwrite", "epoch", "num_test", "eval", "gpu_ids", "num_threads",
                      "results_dir", "load_pretrain", "cluster_seed", "use_encoded_image", "precision", "amp",
                      "channels_last", "compile")
TEST_OVERRIDES = {"phase": "test", "batch_size": 1, "serial_batches": True, "no_flip": True, "preprocess": "none",
                  "max_dataset_size": math.inf, "num_threads": 0}


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one OptionsError sentence instead of a usage dump and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise OptionsError(f"{message}; see `{self.prog} --help`")


def build_parser(prog: str = "ganvas") -> argparse.ArgumentParser:
    """Parser for every option; defaults are suppressed so that only given flags appear."""
    parser = ArgumentParser(prog=prog, usage="%(prog)s [flags]", allow_abbrev=False,
                            argument_default=argparse.SUPPRESS)
    for f in fields(Options):
        meta = f.metadata
        flag = f"--{f.name}"
        if f.type in ("bool", bool):
            if meta.get("optional_value"):  # CUT's style: --nce_idt, --nce_idt True, --nce_idt False
                parser.add_argument(flag, type=_str2bool, nargs="?", const=True, metavar="BOOL", help=meta["help"])
            else:
                parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        kind = meta.get("type") or {"int": int, "float": float, "str": str, "int | None": int}.get(str(f.type), str)
        default = "" if f.default is None else f" (default: {f.default})"
        parser.add_argument(flag, type=kind, choices=meta.get("choices"), help=meta["help"] + default,
                            metavar=f.name.upper() if "choices" not in meta else None)
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
            log.warning("%s has no effect in ganvas (logs and pages are written to the run folder); ignoring it",
                        flag)
        elif flag in LEGACY_FLAGS:
            log.warning("%s is deprecated; use %s", flag, LEGACY_FLAGS[flag])
            out.append(LEGACY_FLAGS[flag] + eq + value)
        elif token in LEGACY_SWITCHES:
            log.warning("%s is deprecated; use %s", token, " ".join(LEGACY_SWITCHES[token]))
            out.extend(LEGACY_SWITCHES[token])
        else:
            out.append(token)
    return out


def reject_unknown(unknown: Sequence[str], parser: argparse.ArgumentParser) -> None:
    """Raise for the first unknown flag, naming the closest known one."""
    if not unknown:
        return
    known = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    bad = next((u for u in unknown if u.startswith("-")), unknown[0])
    flag = bad.partition("=")[0]
    if not flag.startswith("-"):
        raise OptionsError(f"unexpected argument {bad!r}; flags start with -- (see ganvas --help)")
    close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else "see the command's --help for the flags it takes"
    raise OptionsError(f"unknown flag {flag}; {hint}")


def parse_options(argv: Sequence[str], command: str = "train",
                  parser: argparse.ArgumentParser | None = None) -> tuple[Options, argparse.Namespace]:
    """Options for `command` from the command line, the saved run (test, translate, resume) and defaults.

    Returns the options and the namespace of extra arguments the caller's parser added.
    """
    parser = parser or build_parser()
    # Intermixed, so that `translate a.png --out o b.png` takes both files.
    args, unknown = parser.parse_known_intermixed_args(translate_legacy(argv))
    reject_unknown(unknown, parser)
    given = {k: v for k, v in vars(args).items() if k in OPTION_NAMES}
    extra = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in OPTION_NAMES})
    return resolve_options(given, command), extra


def resolve_options(given: dict[str, Any], command: str = "train") -> Options:
    """Merge, lowest first: base defaults, the model's defaults, the saved run, command overrides, given flags.

    The model's defaults may depend on the options chosen (CUT's --CUT_mode); a model run on another
    model's checkpoints (the test model) adapts the saved options through its `inherit`.
    """
    from ganvas.models import get_model_class

    values: dict[str, Any] = {}
    saved: dict[str, Any] = {}
    run_dir = Path(given.get("checkpoints_dir", Options.checkpoints_dir)) / given.get("name", Options.name)
    inherits = command in ("test", "translate", "export") or given.get("continue_train", False)
    if inherits and (run_dir / OPT_FILE).is_file():
        saved = load_saved_options(run_dir / OPT_FILE)
        saved = {k: v for k, v in saved.items() if k not in INVOCATION_OPTIONS}
    model = given.get("model", saved.get("model", Options.model))
    model_class = get_model_class(model)
    for name, hint in MODEL_FLAG_HINTS.get(model, {}).items():
        if name in given:
            raise OptionsError(f"--{name} is not an option of --model {model}; {hint}")
    if saved and command in ("test", "translate", "export") and given.get("direction", saved.get("direction")) != saved.get(
            "direction") and not model_class.reversible:
        raise OptionsError(f"the {saved.get('model')} run {given.get('name')} translates {saved.get('direction')} only; drop "
                           f"--direction {given['direction']}, or train a run in that direction")
    values.update(model_class.option_defaults({**saved, **given}))
    values.update(model_class.inherit(saved, given) if saved else {})
    if command in ("test", "translate", "export"):
        values.update(TEST_OVERRIDES)
        values.update(model_class.test_overrides(saved))
    values.update(given)
    values["model"] = model
    if not model_class.conditional:
        values["input_nc"] = values.get("output_nc", Options.output_nc)  # real images are what G outputs
    opt = Options(**values)
    check_options(opt)
    return opt


def check_options(opt: Options) -> None:
    """Reject values and combinations no run can use, before any work starts."""
    if opt.crop_size > opt.load_size and opt.preprocess in ("resize_and_crop", "scale_width_and_crop"):
        raise OptionsError(f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}; "
                           f"pass --load_size {opt.crop_size} or more, or a smaller --crop_size")
    minimums = {"pool_size": 0, "num_patches": 0, "netF_nc": 1, "label_nc": 0, "n_downsample_global": 1,
                "n_blocks_global": 0, "n_local_enhancers": 1, "n_blocks_local": 0, "niter_fix_global": 0, "num_D": 1,
                "feat_num": 1, "nef": 1, "n_downsample_E": 1, "n_clusters": 1,
                "batch_size": 1, "input_nc": 1, "output_nc": 1, "ngf": 1, "ndf": 1, "nz": 1, "n_layers_D": 1,
                "n_epochs": 0, "n_epochs_decay": 0, "epoch_count": 1, "save_epoch_freq": 1, "lr_decay_iters": 1,
                "num_threads": 0, "max_dataset_size": 1, "num_test": 1, "load_size": 1, "crop_size": 1}
    for name, minimum in minimums.items():
        if getattr(opt, name) < minimum:
            raise OptionsError(f"--{name} {getattr(opt, name)} must be at least {minimum}")
    for name in ("lambda_A", "lambda_B", "lambda_identity", "lambda_GAN", "lambda_NCE", "lambda_L1", "lambda_feat"):
        if getattr(opt, name) < 0:
            raise OptionsError(f"--{name} {getattr(opt, name)} must not be negative")
    for name in ("lr", "init_gain", "nce_T"):
        if not getattr(opt, name) > 0:
            raise OptionsError(f"--{name} {getattr(opt, name)} must be positive")
    if opt.seed is not None and not 0 <= opt.seed < 2**63:
        raise OptionsError(f"--seed {opt.seed} must be a whole number from 0 to 2**63 - 1")
    for name in ("input_nc", "output_nc"):
        if getattr(opt, name) not in (1, 3, 4):
            raise OptionsError(f"--{name} {getattr(opt, name)} is not supported; use 1 (gray), 3 (RGB) or 4 (RGBA)")
    parse_gpu_ids(opt.gpu_ids)


def parse_gpu_ids(gpu_ids: str) -> list[int]:
    """The GPU numbers of --gpu_ids ('0', '0,1'; '-1' for the CPU)."""
    try:
        return [int(i) for i in str(gpu_ids).split(",") if i.strip()]
    except ValueError:
        raise OptionsError(f"--gpu_ids {gpu_ids} is not a list of GPU numbers; pass e.g. 0 or 0,1, "
                           f"or -1 for the CPU") from None


def ensure_seed(opt: Options) -> Options:
    """Give a run without --seed a random one, so that it can be saved and resumed exactly."""
    if opt.seed is None:
        opt.seed = random.SystemRandom().randrange(2**31)
    return opt


def load_saved_options(path: Path) -> dict[str, Any]:
    """Options saved with a run; unknown keys (from newer versions) are dropped with a warning."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise OptionsError(f"cannot read the saved options {path} ({err}); delete the file or fix it by hand") from err
    unknown = sorted(set(data) - set(OPTION_NAMES))
    if unknown:
        log.warning("ignoring unknown saved options in %s: %s", path, ", ".join(unknown))
    return {k: v for k, v in data.items() if k in OPTION_NAMES}


def save_options(opt: Options, path: Path) -> None:
    """Write every option next to the run's checkpoints (atomically)."""
    from ganvas.checkpoint import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(opt.to_dict(), sort_keys=False))
