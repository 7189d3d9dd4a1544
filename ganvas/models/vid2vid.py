"""vid2vid (Wang et al., NeurIPS 2018): temporally coherent video-to-video translation.

Each frame is made from the current and previous input frames and the previous outputs; the
generator predicts a hallucinated image, a flow to the last output and an occlusion weight that
blends the two (nets/vid2vid.py). An image discriminator judges (input, frame) pairs as
pix2pixHD's; temporal discriminators judge --n_frames_D consecutive frames with their flows, at
--n_scales_temporal frame rates (1, n_frames_D, n_frames_D^2 ... frames apart).

Training follows NVIDIA/vid2vid's train.py: a clip of --n_frames_total frames (doubling every
--niter_step epochs) is made --max_frames_per_gpu frames at a time; one train_step is one chunk, with
the last outputs and the frames the temporal discriminators need carried to the next chunk of the
clip (data.temporal orders the chunks). The carried state is saved with the run, so a resume is
exact across chunk boundaries. Reference flows are OpenCV's DIS flows (or the data set's own,
--flow gt) instead of FlowNet2, which needs CUDA extensions; the flow's confidence is the original's
photometric check times the flow's validity (a forward-backward check for DIS).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganvas.checkpoint import load_matching, network_path
from ganvas.data.datasets import label_channels
from ganvas.errors import CheckpointError, DataError, OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, InferenceSpec, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import forward_padded, make_network, pad_to_multiple
from ganvas.nets.flow import warp
from ganvas.nets.pix2pixhd import _downsample_pyramid_pool, feature_matching_loss, instance_edges, one_hot_labels
from ganvas.nets.vgg import VGGLoss, find_vgg19_weights
from ganvas.nets.vid2vid import FirstFrame, coarse_to_fine
from ganvas.options import INFER, RUN, TEST, TRAIN, Options, option
from ganvas.speed import unwrap

log = logging.getLogger("ganvas")

FLOW_MODES = ("ultrafast", "fast", "medium", "gt", "file")
# The original's confidence: a pixel counts where the flow-warped previous frame is this close (sum of squares).
PHOTOMETRIC_THRESHOLD = 0.02
# Streams whose past inference keeps (a translator running many videos keeps the latest ones).
STREAMS = 64


@dataclass(frozen=True)
class Vid2VidOptions(Options):
    """vid2vid's own options (the original's names and defaults)."""

    label_nc: int = option(0, "classes in the input label maps; 0 feeds images", minimum=0, commands=RUN)
    use_instance: bool = option(False, "add the boundaries of instance maps (<phase>_inst/) to the input", commands=RUN)
    n_frames_G: int = option(3, "input frames G sees (the current one and n_frames_G - 1 before it)", minimum=2)
    n_downsample_G: int = option(3, "downsampling layers of the coarsest generator", minimum=1, commands=RUN)
    n_blocks: int = option(9, "residual blocks of the coarsest generator", minimum=0, commands=RUN)
    n_blocks_local: int = option(3, "residual blocks of each finer generator", minimum=0, commands=RUN)
    n_scales_spatial: int = option(1, "spatial scales of the coarse-to-fine generator (G0, G1 ...)", minimum=1)
    no_flow: bool = option(False, "no flow warping: the plain sequential generator", commands=RUN)
    no_first_img: bool = option(
        False, "G makes the first frames too (trained from blank previous frames)", commands=RUN
    )
    use_single_G: str = option(
        "",
        "run folder or network file of a single-image model (pix2pix, pix2pixHD) that makes the first frames",
        commands=INFER,
        inherited=False,
    )
    use_real_img: bool = option(
        False,
        "take the first frames from the real B frames (the test split's <phase>_B)",
        commands=TEST,
        inherited=False,
    )
    flow: str = option(
        "medium",
        "reference flows: OpenCV DIS presets ultrafast|fast|medium (cached next to the data), gt "
        "(<phase>_flow/<sequence>/<frame>.flo shipped with the data set) or file (the network of --flow_net); "
        "test scores flicker with a set's own flows where it has them, else with these",
        choices=FLOW_MODES,
        commands=RUN,
    )
    flow_net: str = option(
        "",
        "with --flow file: an optical flow network as an ONNX file (two RGB images in [0, 255], the frame first; "
        "the flow to the second), run by ONNX Runtime",
        commands=RUN,
    )
    n_frames_D: int = option(3, "frames each temporal discriminator judges", minimum=2, commands=TRAIN)
    n_scales_temporal: int = option(
        2, "temporal discriminators (frame rates 1, 1/n_frames_D ...); 0 trains without them", minimum=0
    )
    num_D: int = option(2, "scales of each discriminator", minimum=1, commands=TRAIN)
    no_ganFeat: bool = option(False, "no discriminator feature-matching loss", commands=TRAIN)
    no_vgg: bool = option(False, "no VGG19 perceptual loss", commands=TRAIN)
    vgg_weights: str = option(
        "", "ImageNet VGG19 weights for the perceptual loss (torchvision's vgg19-dcbb9e9d.pth)", commands=TRAIN
    )
    lambda_feat: float = option(10.0, "weight of the feature-matching and VGG losses", minimum=0, commands=TRAIN)
    lambda_T: float = option(10.0, "weight of the warping losses", minimum=0, commands=TRAIN)
    lambda_L1: float = option(
        0.0,
        "weight of an L1 loss of the frames (and hallucinated images) against the real ones; the original has "
        "none and relies on VGG, which needs a weights file: pix2pix's 100 stands in for it without one",
        minimum=0,
        commands=TRAIN,
    )
    lambda_F: float = option(10.0, "weight of the flow loss", minimum=0, commands=TRAIN)
    n_frames_total: int = option(30, "frames per training clip at the start (doubling every --niter_step)", minimum=1)
    niter_step: int = option(5, "epochs between doublings of --n_frames_total", minimum=1, commands=TRAIN)
    max_frames_per_gpu: int = option(1, "frames made per training step (one chunk of a clip)", minimum=1)
    max_frames_backpropagate: int = option(
        1, "frames the loss backpropagates through the previous outputs", minimum=1, commands=TRAIN
    )
    max_t_step: int = option(1, "largest random spacing between the frames of a training clip", minimum=1)
    niter_fix_global: int = option(
        0, "epochs that train only the finest generator before all of them", minimum=0, commands=TRAIN
    )
    load_pretrain: str = option(
        "",
        "run folder whose networks initialise this run where names and shapes match",
        commands=TRAIN,
        inherited=False,
    )
    TTUR: bool = option(False, "two time-scale update rule: G at lr/2, D at 2 lr, betas (0, 0.9)", commands=TRAIN)


def _masked_l1(x: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The original's MaskedL1Loss: L1 of x * mask against target * mask, averaged over every element."""
    mask = mask.expand(-1, x.shape[1], -1, -1)
    return F.l1_loss(x.float() * mask, target.float() * mask)


def skipped_frames(history: Tensor | None, new: Tensor, scales: int, t_d: int) -> tuple[Tensor, list[Tensor | None]]:
    """The original's get_skipped_frames: groups of t_d frames t_d^s apart for each temporal scale s.

    history (N x T x ...) holds the frames before `new`; returns the history to keep and per scale the
    groups (N' x t_d x ...), None where the clip is still too short.
    """
    frames = torch.cat([history.detach(), new], 1) if history is not None else new
    groups: list[Tensor | None] = [None] * scales
    for s in range(scales):
        gap = t_d**s
        span = gap * (t_d - 1)
        count = min(frames.shape[1] - span, new.shape[1])
        picked = []
        for t in range(0, max(count, 0), t_d):
            end = frames.shape[1] - t
            picked.append(frames[:, end - span - 1 : end : gap])
        if picked:
            groups[s] = torch.cat(picked)
    keep = t_d ** max(scales - 1, 0) * (t_d - 1)
    return frames[:, -keep:] if frames.shape[1] > keep else frames, groups


@register_model("vid2vid")
class Vid2VidModel(Model):
    """Sequential generator with flow warping; image and temporal multi-scale discriminators."""

    options_class = Vid2VidOptions
    monitor = "G_GAN_Feat"
    scored = (("fake_B", "real_B"),)
    flag_hints = {"--no_vgg_loss": "--no_vgg", "--no_ganFeat_loss": "--no_ganFeat"}

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        # The original's defaults: ngf 128, batch norm, LSGAN, 512-wide frames.
        return {
            "dataset_mode": "temporal",
            "norm": "batch",
            "ngf": 128,
            "gan_mode": "lsgan",
            "preprocess": "scale_width",
            "load_size": 512,
            "crop_size": 512,
        }

    @classmethod
    def test_overrides(cls, saved: dict[str, Any]) -> dict[str, Any]:
        preprocess = saved.get("preprocess", "none")
        return {"preprocess": "scale_width" if preprocess.startswith("scale_width") else "none"}

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {
            "n_downsample_G": 2,
            "n_blocks": 2,
            "no_vgg": True,
            "preprocess": "none",
            "n_frames_G": 2,
            "n_scales_temporal": 1,
            "no_first_img": True,
        }

    @classmethod
    def bench_options(cls, size: int) -> dict[str, Any]:
        return {"no_vgg": True}

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if opt.dataset_mode != "temporal":
            raise OptionsError(
                f"vid2vid reads sequences (<phase>_A/<sequence>/, <phase>_B/<sequence>/) and needs "
                f"--dataset_mode temporal, not {opt.dataset_mode}"
            )
        if train and not opt.no_vgg and opt.output_nc != 3:
            raise OptionsError(f"the VGG loss compares RGB images and --output_nc is {opt.output_nc}; pass --no_vgg")
        if opt.flow == "file" and not opt.flow_net:
            raise OptionsError("--flow file takes the flow network from --flow_net PATH (an .onnx file); pass it")
        if opt.flow == "gt" and opt.max_t_step > 1:
            raise OptionsError("--flow gt has flows between neighbouring frames only; pass --max_t_step 1")
        if train and opt.n_scales_spatial > 1 and opt.ngf // 2 ** (opt.n_scales_spatial - 1) < 1:
            raise OptionsError(
                f"--ngf {opt.ngf} is too narrow for {opt.n_scales_spatial} spatial scales (each halves it)"
            )
        if opt.precision == "fp16" and not torch.cuda.is_available() and not train:
            raise OptionsError("--precision fp16 runs on GPUs; on the CPU use bf16 or fp32")

    # --- networks ----------------------------------------------------------------------------------
    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.t_g, self.scales = opt.n_frames_G, opt.n_scales_spatial
        self.label_nc = label_channels(opt) if opt.label_nc else 0
        self.frame_nc = label_channels(opt) + int(opt.use_instance)
        common = {
            "input_nc": self.frame_nc * self.t_g,
            "output_nc": opt.output_nc,
            "prev_output_nc": (self.t_g - 1) * opt.output_nc,
            "norm": opt.norm,
            "no_flow": opt.no_flow,
        }
        init = (opt.init_type, opt.init_gain)
        self.nets["G0"] = make_network(
            "composite", *init, ngf=opt.ngf, n_downsampling=opt.n_downsample_G, n_blocks=opt.n_blocks, **common
        ).to(self.device)
        for s in range(1, self.scales):
            self.nets[f"G{s}"] = make_network(
                "composite_local", *init, ngf=opt.ngf // 2**s, n_blocks_local=opt.n_blocks_local, scale=s, **common
            ).to(self.device)
        for s in range(self.scales - 1):
            self.nets[f"G{s}"].gives_features = True
        self.inference_nets = tuple(f"G{s}" for s in range(self.scales))
        self.pool = _downsample_pyramid_pool()
        self.single_g: nn.Module | None = None
        self.streams: dict[str, dict[str, Any]] = {}  # inference: the past of each stream, the latest STREAMS
        self.carry: dict[str, Any] | None = None  # training: what the next chunk of the clip needs
        if not train:
            return
        d_common = {
            "ndf": opt.ndf,
            "n_layers": opt.n_layers_D,
            "num_D": opt.num_D,
            "get_interm_feat": not opt.no_ganFeat,
            "norm": opt.norm,
        }
        self.nets["D"] = make_network("multiscale", *init, input_nc=self.frame_nc + opt.output_nc, **d_common).to(
            self.device
        )
        t_d = opt.n_frames_D
        for s in range(opt.n_scales_temporal):
            self.nets[f"D_T{s}"] = make_network(
                "multiscale", *init, input_nc=opt.output_nc * t_d + 2 * (t_d - 1), **d_common
            ).to(self.device)
        self.gan_loss = GANLoss(opt.gan_mode).to(device)
        self.vgg_loss = None if opt.no_vgg else VGGLoss(weights_path=find_vgg19_weights(opt.vgg_weights or None))
        if self.vgg_loss is not None:
            self.vgg_loss = self.vgg_loss.to(device)
        if opt.load_pretrain:
            self._load_pretrain(Path(opt.load_pretrain))
        g_lr, d_lr, betas = (opt.lr / 2, opt.lr * 2, (0.0, 0.9)) if opt.TTUR else (opt.lr, opt.lr, (opt.beta1, 0.999))
        if opt.TTUR:  # the trainer sets each epoch's rate times these
            self.lr_factors = {"G": 0.5, "D": 2.0}
        g_params = [p for s in range(self.scales) for p in self.nets[f"G{s}"].parameters()]
        self.optimizers = {
            "G": torch.optim.Adam(g_params, lr=g_lr, betas=betas),
            "D": torch.optim.Adam(self.nets["D"].parameters(), lr=d_lr, betas=betas),
        }
        for s in range(opt.n_scales_temporal):
            self.optimizers[f"D_T{s}"] = torch.optim.Adam(
                self.nets[f"D_T{s}"].parameters(), lr=opt.lr, betas=(opt.beta1, 0.999)
            )

    def _load_pretrain(self, run_dir: Path) -> None:
        """Copy the tensors whose names and shapes match from another run (a coarser one for more scales)."""
        loaded_any = False
        for name, net in self.nets.items():
            path = network_path(run_dir, "latest", name)
            if path.is_file():
                loaded, total, _ = load_matching(net, path)
                log.info("--load_pretrain: %d of %d tensors of %s from %s", loaded, total, name, path)
                loaded_any = True
        if not loaded_any:
            raise OptionsError(f"--load_pretrain {run_dir} holds no latest_net_G0.pth; name a trained vid2vid run")

    @property
    def partly_frozen(self) -> tuple[str, ...]:
        return tuple(f"G{s}" for s in range(self.scales - 1)) if self.opt.niter_fix_global else ()

    def start_epoch(self, epoch: int) -> None:
        """Train only the finest generator for the first --niter_fix_global epochs (absolute numbers)."""
        if not self.is_train or self.scales == 1 or not self.opt.niter_fix_global:
            return
        fixed = epoch <= self.opt.niter_fix_global
        for s in range(self.scales - 1):
            for param in unwrap(self.nets[f"G{s}"]).parameters():
                param.requires_grad_(not fixed)

    def generator(self) -> nn.Module:
        return self.nets["G0"]

    # --- inputs ------------------------------------------------------------------------------------
    def encode(self, frames: Tensor, inst: Tensor | None = None) -> Tensor:
        """N x T x C x H x W input frames as G takes them: one-hot labels (+ instance boundaries) or images."""
        n, t = frames.shape[:2]
        flat = frames.reshape(n * t, *frames.shape[2:]).to(self.device)
        if self.label_nc:
            try:
                flat = one_hot_labels(flat, self.label_nc)
            except DataError as err:
                raise DataError(f"an input label map: {err}") from err
        else:
            flat = flat.float()
        if self.opt.use_instance:
            if inst is None:
                raise DataError("this vid2vid run takes instance maps (--use_instance); give <phase>_inst/ frames")
            flat = torch.cat([flat, instance_edges(inst.reshape(n * t, *inst.shape[2:]).to(self.device))], 1)
        return flat.reshape(n, t, *flat.shape[1:])

    def pyramid(self, frames: Tensor) -> list[Tensor]:
        """N x T x C x H x W frames at every spatial scale, finest first (the original's build_pyr)."""
        levels = [frames]
        for _ in range(1, self.scales):
            pooled = self.pool(levels[-1].flatten(0, 1))
            levels.append(pooled.reshape(*frames.shape[:2], *pooled.shape[1:]))
        return levels

    def _make_frame(self, labels: list[Tensor], prevs: list[Tensor], raw_only: bool) -> tuple[list[Tensor], Any]:
        """Run the scales coarse to fine for one frame: each scale's frame (finest first) and the finest parts."""
        generators = [self.nets[f"G{s}"] for s in range(self.scales)]
        fixed = self.is_train and bool(self.opt.niter_fix_global) and self._fixed
        return coarse_to_fine(
            generators, labels, prevs, self.opt.output_nc, self._ngfs, self.opt.no_flow, raw_only, fixed
        )

    @property
    def _ngfs(self) -> list[int]:
        return [self.opt.ngf // 2**s for s in range(self.scales)]

    @property
    def _fixed(self) -> bool:
        return not any(p.requires_grad for p in self.nets["G0"].parameters())

    # --- training ----------------------------------------------------------------------------------
    def _start_clip(self, real_b: Tensor) -> dict[str, Any]:
        """The carried state at the start of a clip: the first n_frames_G - 1 real frames (or blanks)."""
        first = real_b[:, : self.t_g - 1]
        if self.opt.no_first_img:
            first = torch.zeros_like(first)
        return {"fakes": [level.detach() for level in self.pyramid(first)], "history": None, "first": True}

    def _padded(self, frames: Tensor, fill: str = "replicate") -> Tensor:
        """N x T x C x H x W frames padded at the bottom and right to the generators' multiple (scale_width keeps
        the aspect ratio, so a side need not be one); `fill` "zeros" for validity masks."""
        multiple = self.inference_spec().size_multiple
        height, width = frames.shape[-2:]
        pad = (0, -width % multiple, 0, -height % multiple)
        if not any(pad):
            return frames
        flat = frames.flatten(0, 1).float()
        flat = F.pad(flat, pad) if fill == "zeros" else F.pad(flat, pad, mode="replicate")
        return flat.reshape(*frames.shape[:3], *flat.shape[-2:]).to(frames.dtype)

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        opt, t_g = self.opt, self.t_g
        inst = batch.get("inst")
        real_a = self.encode(self._padded(batch["A"]), self._padded(inst) if inst is not None else None)
        real_b = self._padded(batch["B"].to(self.device))
        flow_ref_all = self._padded(batch["flow"].to(self.device))
        valid_all = self._padded(batch["valid"].to(self.device), "zeros")
        n, total = real_b.shape[:2]
        made = total - (t_g - 1)
        clips = [int(c) for c in batch["clip"]]
        chunk = int(batch["chunk"][0])
        if chunk == 0 or self.carry is None or self.carry.get("clips") != clips:
            if chunk != 0:
                log.warning(
                    "chunk %d of clips %s came without the previous chunk; starting from real frames", chunk, clips
                )
            self.carry = {**self._start_clip(real_b), "clips": clips}
        carry = self.carry
        a_pyr = self.pyramid(real_a)
        fakes = [list(level.unbind(1)) for level in carry["fakes"]]  # per scale, the frames so far
        outs, raws, flows, weights = [], [], [], []
        for t in range(made):
            labels = [level[:, t : t + t_g].flatten(1, 2) for level in a_pyr]
            prevs = []
            for level in fakes:
                window = torch.stack(level[-(t_g - 1) :], 1)
                prevs.append((window.detach() if t % opt.max_frames_backpropagate == 0 else window).flatten(1, 2))
            raw_only = opt.no_first_img and carry["first"] and t == 0
            frames, parts = self._make_frame(labels, prevs, raw_only)
            for level, frame in zip(fakes, frames):
                level.append(frame)
            outs.append(frames[0])
            raws.append(parts.raw)
            flows.append(parts.flow)
            weights.append(parts.weight)
        # Everything per made frame, batch and time folded together (N * made x ...).
        fold = lambda x: x.flatten(0, 1)
        fake_b = fold(torch.stack(outs, 1))
        fake_raw = fold(torch.stack(raws, 1))
        flow, weight = fold(torch.stack(flows, 1)), fold(torch.stack(weights, 1))
        real = fold(real_b[:, t_g - 1 :])
        real_prev = fold(real_b[:, t_g - 2 : -1])
        cond = fold(real_a[:, t_g - 1 :])
        flow_ref, valid = fold(flow_ref_all[:, t_g - 1 :]), fold(valid_all[:, t_g - 1 :])
        previous = fakes[0][t_g - 2 : t_g - 2 + made]
        if carry["first"]:  # before a clip's first frame made: the real frame (the original's compute_fake_B_prev)
            previous = [real_b[:, t_g - 2]] + previous[1:]
        fake_prev = fold(torch.stack(previous, 1)).detach()
        with torch.no_grad():
            photometric = (warp(real_prev.float(), flow_ref.float()) - real.float()).pow(2).sum(1, keepdim=True)
            conf = (photometric < PHOTOMETRIC_THRESHOLD).float() * valid.float()

        losses: dict[str, Tensor] = {}
        D = self.nets["D"]
        set_requires_grad([self.nets[k] for k in self.nets if k.startswith("D")], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        if not opt.no_flow:
            losses["F_Flow"] = _masked_l1(flow, flow_ref, conf) * opt.lambda_F / 2 ** (self.scales - 1)
            losses["F_Warp"] = _masked_l1(warp(real_prev, flow), real, conf) * opt.lambda_T
            if opt.no_first_img:
                losses["W"] = _masked_l1(weight, torch.zeros_like(weight), conf)
        real_pair = torch.cat([cond, real], 1)
        with torch.no_grad():
            pred_real = D(real_pair)
        images = [fake_b, fake_raw]  # with --no_flow the two are one image, counted twice as in the original
        losses["G_GAN"] = sum(self.gan_loss(D(torch.cat([cond, x], 1)), True, for_discriminator=False) for x in images)
        losses["G_GAN"] = losses["G_GAN"] * opt.num_D
        if not opt.no_ganFeat:
            losses["G_GAN_Feat"] = sum(
                feature_matching_loss(D(torch.cat([cond, x], 1)), pred_real, opt.num_D, opt.n_layers_D, opt.lambda_feat)
                for x in images
            )
        if self.vgg_loss is not None:
            losses["G_VGG"] = sum(self.vgg_loss(x.float(), real.float()) for x in images) * opt.lambda_feat
        if opt.lambda_L1:
            losses["G_L1"] = sum(F.l1_loss(x.float(), real.float()) for x in images) * opt.lambda_L1
        losses["G_Warp"] = _masked_l1(fake_b, warp(fake_prev, flow_ref).detach(), conf) * opt.lambda_T

        # Temporal discriminators: groups of n_frames_D frames (and the flows between them) per frame rate.
        t_groups: list[tuple[int, Tensor, Tensor]] = []  # (scale, real input, fake input) of each temporal D
        if opt.n_scales_temporal:
            t_d = opt.n_frames_D
            seq = lambda x: x.reshape(n, made, *x.shape[1:])
            new = {"real": seq(real), "fake": seq(fake_b), "flow": seq(flow_ref / 20)}
            history = carry["history"] or {}
            kept, groups = {}, {}
            for key in ("real", "fake", "flow"):
                kept[key], groups[key] = skipped_frames(history.get(key), new[key], opt.n_scales_temporal, t_d)
            carry["history"] = {k: v.detach() for k, v in kept.items()}
            for s in range(opt.n_scales_temporal):
                if groups["real"][s] is None:
                    continue
                real_t, fake_t = groups["real"][s], groups["fake"][s]
                if s == 0:
                    flows_t = groups["flow"][0][:, 1:]
                else:  # flows between frames t_d^s apart, from the real frames themselves
                    flows_t = self._skipped_flows(real_t)
                flows_t = flows_t.flatten(1, 2)  # frames and flows stacked in channels, as D_T takes them
                t_groups.append(
                    (s, torch.cat([real_t.flatten(1, 2), flows_t], 1), torch.cat([fake_t.flatten(1, 2), flows_t], 1))
                )
            for s, real_in, fake_in in t_groups:
                D_T = self.nets[f"D_T{s}"]
                pred_fake = D_T(fake_in)
                losses[f"G_T_GAN{s}"] = self.gan_loss(pred_fake, True, for_discriminator=False) * opt.num_D
                if not opt.no_ganFeat:
                    with torch.no_grad():
                        pred_real_t = D_T(real_in)
                    losses[f"G_T_GAN_Feat{s}"] = feature_matching_loss(
                        pred_fake, pred_real_t, opt.num_D, opt.n_layers_D, opt.lambda_feat
                    )
        self.optimize(sum(losses.values()), "G")

        d_losses: dict[str, Tensor] = {}
        set_requires_grad(D, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d = 0
        for x in images:
            total_d, parts_d = self.discriminator_loss(D, real_pair, torch.cat([cond, x], 1))
            loss_d = loss_d + total_d
            for k, v in parts_d.items():
                d_losses[k] = d_losses.get(k, 0) + v
        self.optimize(loss_d, "D")
        for s, real_in, fake_in in t_groups:
            D_T = self.nets[f"D_T{s}"]
            set_requires_grad(D_T, True)
            self.optimizers[f"D_T{s}"].zero_grad(set_to_none=True)
            total_t, parts_t = self.discriminator_loss(D_T, real_in, fake_in, name=f"D_T{s}")  # detaches fake_in
            self.optimize(total_t, f"D_T{s}")
            d_losses.update(parts_t)

        carry["fakes"] = [torch.stack(level[-(t_g - 1) :], 1).detach() for level in fakes]
        carry["first"] = False
        self.visuals = {
            "real_A": self._input_image(real_a[:, -1]),
            "fake_B": fake_b.reshape(n, made, *fake_b.shape[1:])[:, -1].detach(),
            "real_B": real_b[:, -1],
        }
        if not opt.no_flow:
            self.visuals["fake_raw"] = fake_raw.reshape(n, made, *fake_raw.shape[1:])[:, -1].detach()
            self.visuals["weight"] = (
                weight.reshape(n, made, 1, *weight.shape[2:])[:, -1].detach().expand(-1, 3, -1, -1) * 2 - 1
            )
        return {k: float(v.detach()) for k, v in {**d_losses, **losses}.items()}

    def _skipped_flows(self, frames: Tensor) -> Tensor:
        """N x (t_d - 1) x 2 x H x W flows (/20, as the temporal discriminators take them) between the given frames."""
        from ganvas.data.flow import compute_flow, flow_method

        method = flow_method("medium" if self.opt.flow == "gt" else self.opt.flow, self.opt.flow_net)
        out = torch.zeros(frames.shape[0], frames.shape[1] - 1, 2, *frames.shape[-2:])
        pixels = ((frames.detach().float().cpu() + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 1, 3, 4, 2)
        for i in range(frames.shape[0]):
            for t in range(1, frames.shape[1]):
                f = compute_flow(pixels[i, t - 1].numpy(), pixels[i, t].numpy(), method)
                out[i, t - 1] = torch.from_numpy(f).permute(2, 0, 1)
        return (out / 20).to(frames.device, frames.dtype)

    def extra_state(self) -> dict[str, Any]:
        """The carried frames of the clip being trained, so a resume between chunks continues it exactly."""
        return {"carry": self.carry}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        carry = state.get("carry")
        if carry is not None:
            carry = {
                **carry,
                "fakes": [t.to(self.device) for t in carry["fakes"]],
                "history": {k: v.to(self.device) for k, v in carry["history"].items()} if carry["history"] else None,
            }
        self.carry = carry

    def _input_image(self, frames: Tensor) -> Tensor:
        """An N x C x H x W input frame (encoded) as an image for pages: labels coloured, images as they are."""
        if self.label_nc:
            from ganvas.models.pix2pixhd import label_palette

            palette = label_palette(self.label_nc).to(frames.device)
            ids = frames[:, : self.label_nc].argmax(1)
            return palette[ids].permute(0, 3, 1, 2)
        return frames[:, : self.opt.input_nc]

    # --- inference ---------------------------------------------------------------------------------
    def inference_spec(self) -> InferenceSpec:
        opt = self.opt
        common = {
            "size_multiple": 2**opt.n_downsample_G * 2 ** (self.scales - 1),
            "sequential": True,
            "given_frames": self.t_g - 1 if opt.use_real_img else 0,
        }
        if opt.use_instance:
            return InferenceSpec(("label", "instance"), 1, opt.output_nc, label_nc=self.label_nc, **common)
        if self.label_nc:
            return InferenceSpec(("label",), 1, opt.output_nc, label_nc=self.label_nc, **common)
        return InferenceSpec(("image",), opt.input_nc, opt.output_nc, **common)

    def export_module(self) -> nn.Module:
        """The one-frame path (FirstFrame): a frame from one input frame (and instance map) and a blank past."""
        nets = [self.nets[f"G{s}"] for s in range(self.scales)]
        module = FirstFrame(
            nets, self.t_g, self.opt.output_nc, self._ngfs, self.opt.no_flow, self.label_nc, self.opt.use_instance
        )
        module.size_multiple = self.inference_spec().size_multiple
        return module

    def generator_input(self, batch: dict[str, Any]) -> Tensor:
        """The encoded first input frame of a batch (a clip's first frame for training batches)."""
        frames = batch["A"] if "A" in batch else batch["label"]
        inst = batch.get("inst")
        if frames.dim() == 4:
            frames, inst = frames[:, None], (inst[:, None] if inst is not None else None)
        return self.encode(frames[:, :1], inst[:, :1] if inst is not None else None)[:, 0]

    def run_generator(self, x: Tensor) -> Tensor:
        """One frame made from an encoded input frame and a blank past (the first frame of --no_first_img)."""
        frame, _ = self._step(x, [], [])
        return frame

    def _step(self, x: Tensor, inputs: list[list[Tensor]], outputs: list[list[Tensor]]) -> tuple[Tensor, Any]:
        """The next frame of a stream from its encoded input x (N x C x H x W), the encoded inputs before it and the
        frames made before it (per pyramid level, oldest first); a past shorter than n_frames_G - 1 is padded
        with the first input and blank frames, and the first frame takes the hallucinated image."""
        multiple = self.inference_spec().size_multiple
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, multiple)
        levels = self.pyramid(x[:, None])
        t_g, c = self.t_g, self.opt.output_nc
        labels, prevs = [], []
        for level, here in enumerate(levels):
            past = inputs[level] if inputs else []
            window = ([past[0]] * t_g + past)[-(t_g - 1) :] if past else [here[:, 0]] * (t_g - 1)
            labels.append(torch.cat(window + [here[:, 0]], 1))
            made = outputs[level] if outputs else []
            blank = here.new_zeros(here.shape[0], c, *here.shape[-2:])
            prevs.append(torch.cat(([blank] * t_g + made)[-(t_g - 1) :], 1))
        frames, parts = self._make_frame(labels, prevs, raw_only=not (outputs and outputs[0]))
        return frames[0][..., :height, :width], (levels, frames)

    def _first_frame(self, batch: dict[str, Any], x: Tensor, index: int) -> Tensor | None:
        """A frame made by the run's first-frame method (real frames, a single-image model), or None for G itself."""
        opt = self.opt
        if opt.use_real_img:
            if "B" not in batch:
                raise DataError(
                    "--use_real_img takes the first frames from real frames, and none were given; pass "
                    "--dataroot with <phase>_B/ sequences, or drop --use_real_img"
                )
            return batch["B"][index : index + 1].to(self.device).float()
        if opt.use_single_G:
            net = self._single_generator()
            wanted = net.ganvas_arch.get("input_nc") if hasattr(net, "ganvas_arch") else None
            inp = x[index : index + 1]
            if wanted is not None and wanted < inp.shape[1]:  # pix2pixHD without the instance channel
                inp = inp[:, :wanted]
            if wanted is not None and wanted != inp.shape[1]:
                raise OptionsError(
                    f"--use_single_G {opt.use_single_G} takes {wanted} input channels but this run's frames give "
                    f"{inp.shape[1]}; give a single-image run on the same inputs (labels, instance maps, no styles)"
                )
            return forward_padded(net, inp).float()
        if not opt.no_first_img:
            raise OptionsError(
                f"the vid2vid run {opt.run_dir} was trained from real first frames and needs a way to make them: "
                f"pass --use_single_G with a pix2pix or pix2pixHD run on the same inputs, or --use_real_img "
                f"with real frames (train with --no_first_img to let G make them itself)"
            )
        return None

    def _single_generator(self) -> nn.Module:
        """The network of --use_single_G: a run folder's latest generator or a network file."""
        if self.single_g is None:
            from ganvas.interop import load_network

            path = Path(self.opt.use_single_G)
            if path.is_dir():
                path = network_path(path, "latest", "G")
                if not path.is_file():
                    raise CheckpointError(
                        f"--use_single_G {self.opt.use_single_G} holds no latest_net_G.pth; name a trained pix2pix "
                        f"or pix2pixHD run folder or its network file"
                    )
            self.single_g = load_network(path, self.device)
        return self.single_g

    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        """The next frame of each item's stream (batch "stream" and "frame"); without them each item is a first frame.

        A frame index of 0, or a stream not seen before, starts the stream anew; the model keeps the
        inputs and frames of each stream's past (as the original's test does for one video).
        """
        frames = batch["A"] if "A" in batch else batch["label"]
        inst = batch.get("inst")
        if frames.dim() == 5:  # a training clip: its first frame
            frames, inst = frames[:, 0], (inst[:, 0] if inst is not None else None)
        x = self.encode(frames[:, None], inst[:, None] if inst is not None else None)[:, 0]
        streams = batch.get("stream") or [None] * x.shape[0]
        indices = batch.get("frame") or [0] * x.shape[0]
        out, copied = [], [False] * x.shape[0]
        for i in range(x.shape[0]):
            key, index = streams[i], int(indices[i])
            state = self.streams.get(key) if key is not None else None
            if state is None or index == 0 or state["size"] != tuple(x.shape[-2:]) or index != state["next"]:
                state = {"inputs": [], "outputs": [], "size": tuple(x.shape[-2:]), "next": 0}
            first = None
            if not state["outputs"] or len(state["outputs"][0]) < self.t_g - 1:
                first = self._first_frame(batch, x, i)  # None: G makes it (--no_first_img)
            if first is not None:  # the first-frame method's frame, also the past of the next ones
                copied[i] = self.opt.use_real_img
                multiple = self.inference_spec().size_multiple
                levels = self.pyramid(pad_to_multiple(x[i : i + 1], multiple)[:, None])
                made = [level[:, 0] for level in self.pyramid(pad_to_multiple(first, multiple)[:, None])]
                frame = first
            else:
                frame, (levels, made) = self._step(x[i : i + 1], state["inputs"], state["outputs"])
            keep = self.t_g - 1
            if not state["inputs"]:
                state["inputs"] = [[] for _ in levels]
                state["outputs"] = [[] for _ in levels]
            for level in range(len(levels)):
                state["inputs"][level] = (state["inputs"][level] + [levels[level][:, 0]])[-keep:]
                state["outputs"][level] = (state["outputs"][level] + [made[level]])[-keep:]
            state["next"] = index + 1
            if key is not None:
                self.streams.pop(key, None)
                self.streams[key] = state  # the most recent last
                while len(self.streams) > STREAMS:
                    self.streams.pop(next(iter(self.streams)))
            out.append(frame)
        fake = torch.cat(out)
        visuals = {"real_A": self._input_image(x), "fake_B": fake}
        if "B" in batch and batch["B"].dim() == 4 and not any(copied):  # real first frames are not scored
            visuals["real_B"] = batch["B"].to(self.device)
        return visuals

    def example_batch(self, size: int, batch_size: int = 1, seed: int = 0) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(seed)
        t = self.t_g + self.opt.max_frames_per_gpu - 1
        if self.label_nc:
            a = torch.randint(0, self.label_nc, (batch_size, t, 1, size, size), generator=gen)
        else:
            a = torch.rand(batch_size, t, self.opt.input_nc, size, size, generator=gen) * 2 - 1
        b = torch.rand(batch_size, t, self.opt.output_nc, size, size, generator=gen) * 2 - 1
        batch = {
            "A": a,
            "B": b,
            "flow": torch.randn(batch_size, t, 2, size, size, generator=gen),
            "valid": torch.ones(batch_size, t, 1, size, size),
            "clip": list(range(batch_size)),
            "chunk": [0] * batch_size,
            "A_paths": [f"example_{i}.png" for i in range(batch_size)],
        }
        if self.opt.use_instance:
            batch["inst"] = a.clone()
        return batch


# An eighth of the original's width on 64 px sequences of the built-in set, the first frame given (as the original
# trains, and tests with --use_real_img). Without VGG weights (nothing is downloaded here) the frames get pix2pix's
# L1 loss instead (--lambda_L1 100); stronger flow and warping losses (--lambda_F 50, --lambda_T 50) and no temporal
# discriminators (as NVIDIA's imaginaire trains) gave the lowest warping error in the same minutes, though the flow
# head has not learnt the motions by then: benchmarks/RESULTS.md has the settings tried, against per-frame pix2pix.
DEMO_FLAGS = {
    "ngf": 16,
    "ndf": 16,
    "n_downsample_G": 2,
    "n_blocks": 4,
    "norm": "instance",
    "no_vgg": True,
    "lambda_L1": 100.0,
    "lambda_F": 50.0,
    "lambda_T": 50.0,
    "n_frames_G": 3,
    "n_scales_temporal": 0,
    "n_frames_total": 9,
    "max_frames_per_gpu": 3,
    "flow": "gt",
    "preprocess": "none",
    "no_flip": True,
}
register_demo(
    "vid2vid",
    DemoRecipe(
        data="video",
        flags={"model": "vid2vid", **DEMO_FLAGS},
        epochs=5,
        shows=(
            "Videos of textured shapes over a panning background from their label videos, each made from the frames "
            "before it (the first frame given): label frame, output, real frame. `ganvas video translate` runs it "
            "on a video file; the test page gives its warping error."
        ),
        test_flags={"use_real_img": True},
    ),
)
