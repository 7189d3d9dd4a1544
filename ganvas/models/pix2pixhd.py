"""pix2pixHD (Wang et al. 2018): high-resolution label-to-image synthesis with instance maps and styles."""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ganvas.checkpoint import load_matching, network_path
from ganvas.data.datasets import label_channels
from ganvas.errors import DataError, OptionsError
from ganvas.losses import GANLoss
from ganvas.models.base import DemoRecipe, InferenceSpec, Model, register_demo, register_model, set_requires_grad
from ganvas.nets import forward_padded, make_generator, make_network, net_size, pad_to_multiple
from ganvas.nets.pix2pixhd import LabelInputs, feature_matching_loss, instance_edges, one_hot_labels
from ganvas.nets.vgg import VGGLoss, find_vgg19_weights
from ganvas.options import INFER, RUN, TEST, TRAIN, Options, option
from ganvas.safe import load_array_dict
from ganvas.speed import PRECISIONS, autocast, unwrap

log = logging.getLogger("ganvas")

FEATURES_FILE = "features_clustered_{:03d}.npy"


@dataclass(frozen=True)
class Pix2PixHDOptions(Options):
    """pix2pixHD's own options (the original's names)."""

    label_nc: int = option(35, "classes in the label maps; 0 feeds images instead of labels", minimum=0, commands=RUN)
    contain_dontcare_label: bool = option(
        False, "the label maps use the value label_nc for don't-care pixels", commands=RUN
    )
    no_instance: bool = option(False, "no instance maps (<phase>_inst/)", commands=RUN)
    n_downsample_global: int = option(4, "downsampling layers of the global generator", minimum=1, commands=RUN)
    n_blocks_global: int = option(9, "residual blocks of the global generator", minimum=0, commands=RUN)
    n_local_enhancers: int = option(
        1, "local enhancers of --netG local, each doubling the resolution", minimum=1, commands=RUN
    )
    n_blocks_local: int = option(3, "residual blocks of each local enhancer", minimum=0, commands=RUN)
    niter_fix_global: int = option(
        0, "epochs that train only the outermost local enhancer before the whole generator", minimum=0, commands=TRAIN
    )
    load_pretrain: str = option(
        "",
        "run folder whose networks initialise this run where names and shapes match, e.g. a global run for a local one",
        commands=TRAIN,
        inherited=False,
    )
    num_D: int = option(2, "discriminator scales", minimum=1, commands=TRAIN)
    no_ganFeat_loss: bool = option(False, "no discriminator feature-matching loss", commands=TRAIN)
    no_vgg_loss: bool = option(False, "no VGG19 perceptual loss", commands=TRAIN)
    vgg_weights: str = option(
        "",
        "ImageNet VGG19 weights for the perceptual loss (torchvision's "
        "vgg19-dcbb9e9d.pth; default: the torch hub cache)",
        commands=TRAIN,
    )
    lambda_feat: float = option(10.0, "weight of the feature-matching and VGG losses", minimum=0, commands=TRAIN)
    instance_feat: bool = option(False, "encode a style feature per instance and feed it to G", commands=RUN)
    label_feat: bool = option(False, "encode a style feature per label region and feed it to G", commands=RUN)
    feat_num: int = option(3, "style feature channels", minimum=1, commands=RUN)
    nef: int = option(16, "encoder filters in the first conv layer", minimum=1, commands=RUN)
    n_downsample_E: int = option(4, "encoder downsampling layers", minimum=1, commands=RUN)
    n_clusters: int = option(10, "style clusters per class made by encode-features", minimum=1, commands=RUN)
    cluster_seed: int = option(
        0, "seed of the style cluster chosen for each instance at test time", minimum=0, commands=INFER, inherited=False
    )
    use_encoded_image: bool = option(
        False,
        "at test time, take styles from the real image rather than from the clusters",
        commands=TEST,
        inherited=False,
    )


def label_palette(n: int) -> Tensor:
    """n distinct colours in [-1, 1] (n x 3), the bit-interleaved colour map pix2pixHD and PASCAL use."""
    ids = torch.arange(n)
    colours = torch.zeros(n, 3, dtype=torch.long)
    for bit in range(8):
        for channel in range(3):
            colours[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return colours.float() / 127.5 - 1


def style_source(opt) -> str | None:
    """The map whose regions get one style vector: instances, label regions, or none."""
    return "inst" if opt.instance_feat else "label" if opt.label_feat else None


@register_model("pix2pixhd")
class Pix2PixHDModel(Model):
    """G maps a one-hot label map (+ instance boundaries, + style features) to an image; multi-scale D."""

    options_class = Pix2PixHDOptions
    monitor = "G_GAN_Feat"
    inference_nets = ("G",)
    scored = (("fake_B", "real_B"),)

    @classmethod
    def option_defaults(cls, chosen: dict[str, Any]) -> dict[str, Any]:
        # The original's defaults: global G, instance norm, LSGAN, 1024-wide images cropped to 512.
        return {
            "netG": "global",
            "norm": "instance",
            "dataset_mode": "pix2pixhd",
            "gan_mode": "lsgan",
            "preprocess": "scale_width",
            "load_size": 1024,
            "crop_size": 512,
        }

    @classmethod
    def test_overrides(cls, saved: dict[str, Any]) -> dict[str, Any]:
        # Test at the scale the run was trained at (as the original's scale_width test), not the files' size.
        preprocess = saved.get("preprocess", "none")
        return {
            "preprocess": "scale_width"
            if preprocess.startswith("scale_width")
            else "resize"
            if preprocess.startswith("resize")
            else "none"
        }

    @classmethod
    def small_options(cls) -> dict[str, Any]:
        return {
            "label_nc": 4,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "no_vgg_loss": True,
            "preprocess": "none",
            "n_downsample_E": 2,
            "nef": 4,
        }

    @classmethod
    def check_options(cls, opt, train: bool) -> None:
        if opt.netG not in ("global", "local"):
            raise OptionsError(f"pix2pixhd's generator is --netG global or local, not {opt.netG}")
        if opt.dataset_mode != "pix2pixhd":
            raise OptionsError(
                f"pix2pixhd reads <phase>_label/, <phase>_inst/ and <phase>_img/ folders and needs "
                f"--dataset_mode pix2pixhd, not {opt.dataset_mode}"
            )
        if opt.label_nc == 0 and (opt.instance_feat or opt.label_feat):
            raise OptionsError("--instance_feat and --label_feat need label maps; drop them with --label_nc 0")
        if opt.instance_feat and opt.no_instance:
            raise OptionsError("--instance_feat needs instance maps; drop --no_instance or use --label_feat")
        if train and not opt.no_vgg_loss and opt.output_nc != 3:
            raise OptionsError(
                f"the VGG loss compares RGB images and --output_nc is {opt.output_nc}; pass --no_vgg_loss"
            )
        if train and opt.niter_fix_global and opt.netG != "local":
            raise OptionsError("--niter_fix_global freezes the global part of --netG local; drop it for --netG global")
        if opt.precision == "fp16" and not torch.cuda.is_available() and not train:
            raise OptionsError("--precision fp16 runs on GPUs; on the CPU use bf16 or fp32")

    def __init__(self, opt, device, train: bool):
        super().__init__(opt, device, train)
        self.label_nc = label_channels(opt)
        self.use_inst = not opt.no_instance  # boundaries of the instance map go in, as in the original
        self.style = style_source(opt)
        g_input = self.label_nc + int(self.use_inst) + (opt.feat_num if self.style else 0)
        self.nets["G"] = make_generator(
            opt.netG,
            g_input,
            opt.output_nc,
            opt.ngf,
            opt.norm,
            init_type=opt.init_type,
            init_gain=opt.init_gain,
            n_downsample_global=opt.n_downsample_global,
            n_blocks_global=opt.n_blocks_global,
            n_local_enhancers=opt.n_local_enhancers,
            n_blocks_local=opt.n_blocks_local,
        ).to(self.device)
        if self.style:
            self.nets["E"] = make_network(
                "encoder",
                opt.init_type,
                opt.init_gain,
                input_nc=opt.output_nc,
                output_nc=opt.feat_num,
                ngf=opt.nef,
                n_downsampling=opt.n_downsample_E,
                norm=opt.norm,
            ).to(self.device)
            self.inference_nets = ("G", "E")
        self.clusters: dict[int, np.ndarray] | None = None
        if not train:
            return
        d_input = self.label_nc + int(self.use_inst) + opt.output_nc
        self.nets["D"] = make_network(
            "multiscale",
            opt.init_type,
            opt.init_gain,
            input_nc=d_input,
            ndf=opt.ndf,
            n_layers=opt.n_layers_D,
            num_D=opt.num_D,
            get_interm_feat=not opt.no_ganFeat_loss,
            norm=opt.norm,
        ).to(self.device)
        self.gan_loss = GANLoss(opt.gan_mode).to(device)
        self.vgg_loss = None
        if not opt.no_vgg_loss:
            path = find_vgg19_weights(opt.vgg_weights or None)
            self.vgg_loss = VGGLoss(weights_path=path).to(device)
        if opt.load_pretrain:
            self._load_pretrain(Path(opt.load_pretrain))
        # One optimiser over all of G (and E), whatever is frozen: its state survives the unfreezing
        # after --niter_fix_global epochs and the schedule always drives the optimiser in use.
        g_nets = [self.nets["G"]] + ([self.nets["E"]] if self.style else [])
        self.optimizers = {"G": self.make_adam(*g_nets), "D": self.make_adam(self.nets["D"])}

    # --- declared inference contract -------------------------------------------------------------
    def inference_spec(self) -> InferenceSpec:
        opt, multiple = self.opt, net_size(self.generator())
        if opt.label_nc == 0:  # photo to photo
            refusal = (
                ""
                if opt.no_instance
                else (
                    f"the pix2pixhd run {opt.run_dir} takes photos with instance maps, which translate and export do "
                    f"not take yet; run `ganvas test --name {opt.name} --dataroot DIR` on <phase>_A/ and <phase>_inst/ "
                    f"folders"
                )
            )
            return InferenceSpec(("image",), opt.input_nc, opt.output_nc, multiple, refusal=refusal)
        inputs = ("label",) + (("instance",) if self.use_inst else ()) + (("style",) if self.style else ())
        return InferenceSpec(
            inputs, 1, opt.output_nc, multiple, label_nc=self.label_nc, style_channels=opt.feat_num if self.style else 0
        )

    def export_module(self) -> torch.nn.Module:
        spec = self.inference_spec()
        if not spec.label_nc:
            return self.generator()
        return LabelInputs(self.generator(), spec.label_nc, "instance" in spec.inputs, spec.style_channels)

    def generator_input(self, batch: dict[str, Any]) -> Tensor:
        return self.encode_input(batch)[0]

    @classmethod
    def bench_options(cls, size: int) -> dict[str, Any]:
        # 35 Cityscapes classes; the VGG weights are a download and its cost one forward pass.
        return {"no_vgg_loss": True, "label_nc": 35}

    def example_batch(self, size: int, batch_size: int = 1, seed: int = 0) -> dict[str, Any]:
        """Label maps (or photos with --label_nc 0), instance maps and photos of size x 2*size, as Cityscapes."""
        gen = torch.Generator().manual_seed(seed)
        shape = (batch_size, 1, size, 2 * size)
        if self.opt.label_nc:
            label = torch.randint(0, self.opt.label_nc, shape, generator=gen)
        else:
            label = torch.rand(batch_size, self.opt.input_nc, size, 2 * size, generator=gen) * 2 - 1
        inst = torch.randint(0, self.opt.label_nc or 1, shape, generator=gen) * 1000 + torch.randint(
            0, 3, shape, generator=gen
        )
        image = torch.rand(batch_size, self.opt.output_nc, size, 2 * size, generator=gen) * 2 - 1
        return {
            "label": label.to(self.device),
            "inst": inst.to(self.device),
            "image": image.to(self.device),
            "path": [f"example_{i}.png" for i in range(batch_size)],
        }

    def _load_pretrain(self, run_dir: Path) -> None:
        """Copy weights whose names and shapes match from another run (a global G into a local one)."""
        found = False
        for name, net in self.nets.items():
            path = network_path(run_dir, "latest", name)
            if path.is_file():
                loaded, total, other_shape = load_matching(net, path)
                log.info("--load_pretrain: %d of %d tensors of %s from %s", loaded, total, name, path)
                if other_shape:
                    log.warning(
                        "--load_pretrain: %d tensors of %s in %s have other shapes and stay random (e.g. "
                        "%s); check --label_nc, --ngf and the other architecture flags",
                        len(other_shape),
                        name,
                        path,
                        other_shape[0],
                    )
                found = True
        if not found:
            raise OptionsError(
                f"--load_pretrain {run_dir} holds no latest_net_G.pth; name the folder of a trained "
                f"run (checkpoints/<name>)"
            )

    def encode_styles(self, real: Tensor, regions: Tensor) -> Tensor:
        """E's per-region style map for images of any size: padded to E's multiple, pooled, cropped back."""
        multiple = 2**self.opt.n_downsample_E
        height, width = real.shape[-2:]
        padded = pad_to_multiple(real, multiple)
        pad = (0, padded.shape[-1] - width, 0, padded.shape[-2] - height)
        # Region ids (up to 65535) are exact in float32; replicated borders join the edge regions.
        regions = torch.nn.functional.pad(regions.float(), pad, mode="replicate").long() if any(pad) else regions
        return self.nets["E"](padded, regions)[..., :height, :width]

    @property
    def partly_frozen(self) -> tuple[str, ...]:
        """Networks of which only some parameters train at times (DDP must allow unused ones)."""
        return ("G",) if self.is_train and self.opt.netG == "local" and self.opt.niter_fix_global > 0 else ()

    def start_epoch(self, epoch: int) -> None:
        """Freeze all of G but the outermost local enhancer for the first --niter_fix_global epochs."""
        opt = self.opt
        if not self.is_train or opt.netG != "local" or opt.niter_fix_global == 0:
            return
        fixed = epoch <= opt.niter_fix_global  # absolute epoch numbers, as the original counts them
        outer = f"model{opt.n_local_enhancers}_"
        for key, param in unwrap(self.nets["G"]).named_parameters():  # names without DDP's or compile's prefix
            param.requires_grad_(key.startswith(outer) or not fixed)
        log.info("epoch %d: %s", epoch, "training the local enhancer only" if fixed else "training all of G")

    # --- inputs ------------------------------------------------------------------------------
    def encode_input(self, batch: dict[str, Any]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(G's input without style features, the real image or None, the style region map or None)."""
        label = batch["label"].to(self.device, non_blocking=True)
        if self.opt.label_nc == 0:
            g_input = label.float()
        else:
            try:
                g_input = one_hot_labels(label, self.label_nc)
            except DataError as err:
                raise DataError(f"{batch['path'][0]}: {err}") from err
        inst = batch["inst"].to(self.device, non_blocking=True) if "inst" in batch else None
        if self.use_inst:
            g_input = torch.cat([g_input, instance_edges(inst).to(g_input.dtype)], 1)
        real = batch["image"].to(self.device, non_blocking=True) if "image" in batch else None
        regions = inst if self.style == "inst" else label if self.style == "label" else None
        return g_input, real, regions

    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        opt = self.opt
        G, D = self.nets["G"], self.nets["D"]
        cond, real, regions = self.encode_input(batch)  # D sees labels and edges, not styles
        g_input = torch.cat([cond, self.encode_styles(real, regions)], 1) if self.style else cond
        fake = forward_padded(G, g_input)
        real_pair, fake_pair = torch.cat([cond, real], 1), torch.cat([cond, fake], 1)

        # G step (first, as in the original): GAN loss summed over scales, feature matching, VGG.
        set_requires_grad(D, False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        pred_fake = D(fake_pair)
        losses = {"G_GAN": self.gan_loss(pred_fake, True, for_discriminator=False) * opt.num_D}
        if not opt.no_ganFeat_loss:
            with torch.no_grad():
                pred_real = D(real_pair)
            losses["G_GAN_Feat"] = feature_matching_loss(
                pred_fake, pred_real, opt.num_D, opt.n_layers_D, opt.lambda_feat
            )
        if self.vgg_loss is not None:
            losses["G_VGG"] = self.vgg_loss(fake.float(), real.float()) * opt.lambda_feat
        self.optimize(sum(losses.values()), "G")

        set_requires_grad(D, True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        loss_d, d_losses = self.discriminator_loss(D, real_pair, fake_pair)
        self.optimize(loss_d, "D")

        self.visuals = {"input_label": self.label_image(batch), "fake_B": fake.detach(), "real_B": real}
        return {k: float(v.detach()) for k, v in {**d_losses, **losses}.items()}

    # --- inference ---------------------------------------------------------------------------
    def test_notes(self) -> list[str]:
        if not self.style:
            return []
        regions = "object" if self.style == "inst" else "label region"
        if self.opt.use_encoded_image:
            return [f"Styles: each {regions}'s style is encoded from the real photo (--use_encoded_image)."]
        return [
            f"Styles: each {regions}'s style is drawn from the style clusters of the training photos "
            f"(ganvas encode-features), the same for an image every time."
        ]

    def label_image(self, batch: dict[str, Any]) -> Tensor:
        """The label map as a colour image in [-1, 1] for pages (the input image itself for --label_nc 0)."""
        label = batch["label"].to(self.device)
        if self.opt.label_nc == 0:
            return label
        palette = label_palette(self.label_nc).to(self.device)
        return palette[label[:, 0].clamp(0, self.label_nc - 1)].permute(0, 3, 1, 2)

    def load_clusters(self) -> dict[int, np.ndarray]:
        """The per-class style clusters written by `ganvas encode-features`."""
        if self.clusters is None:
            path = self.opt.run_dir / FEATURES_FILE.format(self.opt.n_clusters)
            if not path.is_file():
                raise OptionsError(
                    f"{path} does not exist; run `ganvas encode-features --name {self.opt.name}` "
                    f"first, or pass --use_encoded_image"
                )
            self.clusters = load_array_dict(path, "the style cluster file")
        return self.clusters

    def sample_styles(
        self, regions: Tensor, seed: int | tuple[int, ...] | list[tuple[int, ...]], chosen: dict[int, int] | None = None
    ) -> Tensor:
        """A style map: each region gets a cluster centre of its class, chosen by `chosen` or at random.

        `seed` is one seed for the whole batch or a list with one per image.
        """
        clusters = self.load_clusters()
        feat = torch.zeros(regions.shape[0], self.opt.feat_num, *regions.shape[-2:], device=self.device)
        for n in range(regions.shape[0]):
            for region in torch.unique(regions[n]).tolist():  # one entry per instance, not per pixel
                cls = region if region < 1000 else region // 1000
                if cls not in clusters or len(clusters[cls]) == 0:
                    continue
                centres = clusters[cls]
                # Drawn per (seed, region), so editing one region never changes another's style.
                image_seed = seed[n] if isinstance(seed, list) else seed
                draw = np.random.default_rng([*np.atleast_1d(image_seed).tolist(), region])
                pick = (chosen or {}).get(region, int(draw.integers(len(centres))))
                value = torch.as_tensor(
                    centres[pick % len(centres)][: self.opt.feat_num], dtype=feat.dtype, device=self.device
                )
                mask = regions[n, 0] == region
                feat[n, :, mask] = value[:, None]
        return feat

    @torch.no_grad()
    def generate(
        self,
        g_input: Tensor,
        regions: Tensor | None,
        real: Tensor | None,
        seed: int | tuple[int, ...] | list[tuple[int, ...]] = 0,
        chosen: dict[int, int] | None = None,
    ) -> Tensor:
        """G's image for an encoded input, with styles from the real image or the clusters."""
        if self.style:
            if self.opt.use_encoded_image and real is not None:
                styles = self.encode_styles(real, regions)
            else:
                styles = self.sample_styles(regions, seed, chosen)
            g_input = torch.cat([g_input, styles], 1)
        # The editor calls this directly, so it applies --precision itself.
        with autocast(self.device, PRECISIONS[self.opt.precision]):
            return forward_padded(self.nets["G"], g_input).float()

    @torch.no_grad()
    def translate(self, batch: dict[str, Any]) -> dict[str, Tensor]:
        if "label" not in batch:  # an image file from `ganvas translate`
            if self.opt.label_nc > 0:
                raise OptionsError(
                    f"{self.opt.name} translates label maps; run `ganvas test --dataroot DIR` on "
                    f"<phase>_label/ (and <phase>_inst/) folders instead"
                )
            batch = {"label": batch["A"], "path": ["input"]}
        g_input, real, regions = self.encode_input(batch)
        if self.style and self.opt.use_encoded_image and real is None:
            raise DataError(
                f"--use_encoded_image takes styles from the real photos, and {self.opt.dataroot} has no "
                f"{self.opt.phase}_img/ folder; add it, or drop the flag to use the style clusters"
            )
        # Styles drawn per (seed, file name, instance): instances with the same id in two images differ,
        # and an image gets the same styles from test, translate and the Python API.
        seed = [(self.opt.cluster_seed, zlib.crc32(Path(str(path)).stem.encode())) for path in batch["path"]]
        out = {"input_label": self.label_image(batch), "fake_B": self.generate(g_input, regions, real, seed=seed)}
        if real is not None:
            out["real_B"] = real
        return out


def kmeans(points: Tensor, k: int, seed: int = 0, iters: int = 50) -> Tensor:
    """k cluster centres of points (n x d) by Lloyd's algorithm from a k-means++ start; k <= n."""
    gen = torch.Generator().manual_seed(seed)
    points = points.double()
    centres = points[torch.randint(len(points), (1,), generator=gen)]
    while len(centres) < k:  # k-means++: far points are likelier next centres
        dist = torch.cdist(points, centres).min(1).values ** 2
        if dist.sum() == 0:
            break
        centres = torch.cat([centres, points[torch.multinomial(dist / dist.sum(), 1, generator=gen)]])
    for _ in range(iters):
        assign = torch.cdist(points, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=len(centres))[:, None]
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centres)  # an empty cluster keeps its centre
        if torch.allclose(new, centres):
            break
        centres = new
    return centres.float()


def instance_features(feat: Tensor, regions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per region of one image: (ids, the encoder's pooled feature, area in units of 1/32 of the image).

    feat (C x H x W) is constant within each region (the encoder pools it), so one pixel per region
    gives its vector; the area column is the original's, whose clustering keeps regions above 0.5.
    """
    ids, inverse = torch.unique(regions.flatten(), return_inverse=True)
    positions = torch.arange(inverse.numel(), device=inverse.device)
    first = torch.full((len(ids),), inverse.numel(), device=inverse.device).scatter_reduce(
        0, inverse, positions, reduce="amin"
    )
    counts = torch.bincount(inverse, minlength=len(ids))
    return ids, feat.flatten(1)[:, first].T, counts.float() / (inverse.numel() // 32)


@torch.no_grad()
def encode_features(opt, show_progress: bool = False) -> Path:
    """Encode every training image's regions, k-means them per class and save the original's .npy files.

    Writes <run>/features.npy ({class: n x (feat_num + 1)}, the last column the area) and
    <run>/features_clustered_<n_clusters>.npy ({class: centres}); returns the latter.
    """
    from tqdm import tqdm

    from ganvas.checkpoint import atomic_write, load_networks
    from ganvas.data import collate_batch, make_dataset
    from ganvas.speed import select_device

    if not (opt.run_dir / "opt.yaml").is_file():
        raise OptionsError(f"{opt.run_dir} holds no trained run; check --name and --checkpoints_dir")
    if not style_source(opt):
        raise OptionsError(f"the run {opt.name} has no style encoder; train it with --instance_feat or --label_feat")
    model = Pix2PixHDModel(opt, select_device(opt.gpu_ids), train=False)
    load_networks({"E": model.nets["E"]}, opt.run_dir, opt.epoch)
    model.set_mode(False)
    dataset = make_dataset(opt, train=False)
    found: dict[int, list[np.ndarray]] = {}
    for i in tqdm(range(len(dataset)), disable=not show_progress, desc="encoding", unit="image"):
        batch = collate_batch([dataset[i]])
        _, real, regions = model.encode_input(batch)
        if real is None:
            raise DataError(f"{opt.dataroot} has no {opt.phase}_img/ folder; encode-features needs the real images")
        feat = model.encode_styles(real, regions)[0]
        ids, vectors, areas = instance_features(feat, regions[0, 0])
        for region, vector, area in zip(ids.tolist(), vectors.cpu().numpy(), areas.cpu().numpy()):
            cls = region if region < 1000 else region // 1000
            found.setdefault(cls, []).append(np.append(vector, area))
    features = {cls: np.stack(rows) for cls, rows in found.items()}
    centres = {}
    for cls, rows in features.items():
        big = rows[rows[:, -1] > 0.5, :-1]
        if len(big):
            centres[cls] = kmeans(torch.from_numpy(big), min(len(big), opt.n_clusters), seed=0).numpy()

    def saver(obj):
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:  # a file object: np.save would add .npy to a bare name
                np.save(fh, obj, allow_pickle=True)

        return write

    out = opt.run_dir / FEATURES_FILE.format(opt.n_clusters)
    atomic_write(opt.run_dir / "features.npy", saver(features))
    atomic_write(out, saver(centres))
    return out


def encode_training_styles(opt, show_progress: bool = False) -> Path:
    """encode_features on the run's training images, where the styles come from (`ganvas encode-features`
    without --phase)."""
    return encode_features(replace(opt, phase="train"), show_progress=show_progress)


# The global generator with three downsamplings and three blocks at a quarter of the paper's width on
# 64 x 128 street scenes; two discriminator scales with feature matching; no VGG loss (its weights are a
# download). Each car, tree and person in these photos has its own paint, which no label map tells, so
# the demo trains the paper's instance-wise style encoder (--instance_feat) and tests with the styles of
# the real test photos (--use_encoded_image); `ganvas encode-features` then clusters the training styles,
# so `ganvas translate` draws a style per object. Without styles the same networks scored 14.7 dB, under
# the mean training photo (benchmarks/RESULTS.md).
register_demo(
    "pix2pixhd",
    DemoRecipe(
        data="street",
        flags={
            "model": "pix2pixhd",
            "label_nc": 8,
            "ngf": 16,
            "ndf": 32,
            "n_downsample_global": 3,
            "n_blocks_global": 3,
            "no_vgg_loss": True,
            "instance_feat": True,
            "preprocess": "none",
        },
        epochs=8,
        test_flags={"use_encoded_image": True},
        prepare=(encode_training_styles,),
        shows=(
            "Street photos synthesised from label and instance maps, each object in the style the encoder took "
            "from the real photo: label map, pix2pixHD's photo, the real photo (cars, trees and people are "
            "separate instances, each painted its own colour)."
        ),
    ),
)
