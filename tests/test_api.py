"""Tests for ganvas.load: runs and bare files as translators of paths, PIL images, arrays and tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ganvas
from ganvas.api import Translator, load
from ganvas.checkpoint import network_path
from ganvas.cli import main
from ganvas.data.synthetic import STREET_CLASSES, write_street_set
from ganvas.errors import CheckpointError, DataError, OptionsError
from ganvas.infer import run_test
from ganvas.interop import load_network
from ganvas.nets import (
    DCGANGenerator,
    GlobalGenerator,
    NLayerDiscriminator,
    ResnetGenerator,
    UnetGenerator,
    forward_padded,
    get_norm_layer,
    instance_edges,
    one_hot_labels,
)
from ganvas.options import resolve_options
from ganvas.train import train


def saved(net: torch.nn.Module, path: Path, seed: int = 0) -> Path:
    """Perturb net's weights off their initial values (as training would) and save its state_dict at path."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def resnet_file(tmp_path) -> Path:
    return saved(ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=2), tmp_path / "G.pth")


def photo(height: int = 20, width: int = 28, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def eager(path: Path, x: torch.Tensor) -> torch.Tensor:
    """The file's network on x, padded and cropped back, in eval mode: what a translator must return."""
    with torch.no_grad():
        return forward_padded(load_network(path), x)


# ---------------------------------------------------------------------------------------------------
# Kinds of input


def test_a_tensor_comes_back_as_the_network_computes_it_at_any_size(resnet_file) -> None:
    x = torch.rand(2, 3, 21, 30) * 2 - 1  # neither side a multiple of 4
    out = load(resnet_file, device="cpu").translate(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3, 21, 30)
    torch.testing.assert_close(out, eager(resnet_file, x))


def test_every_kind_of_input_gives_the_same_image_back_as_its_own_kind(resnet_file, tmp_path) -> None:
    t = load(resnet_file, device="cpu")
    pixels = photo()
    Image.fromarray(pixels).save(tmp_path / "in.png")
    reference = t.translate(torch.from_numpy(pixels).permute(2, 0, 1).float() / 127.5 - 1)  # 3-D in, 3-D out
    assert reference.shape == (3, 20, 28)
    expected = np.clip(np.rint((reference.numpy().transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8)

    from_path = t.translate(tmp_path / "in.png")
    from_str = t.translate(str(tmp_path / "in.png"))
    from_pil = t.translate(Image.fromarray(pixels))
    for image in (from_path, from_str, from_pil):
        assert isinstance(image, Image.Image) and image.size == (28, 20) and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), expected)
    as_uint8 = t.translate(pixels)
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == (20, 28, 3)
    np.testing.assert_array_equal(as_uint8, expected)
    as_uint16 = t.translate(pixels.astype(np.uint16) * 257)
    assert as_uint16.dtype == np.uint16
    np.testing.assert_allclose(as_uint16 / 65535, expected / 255, atol=1 / 255)
    as_float = t.translate(pixels.astype(np.float64) / 255)
    assert as_float.dtype == np.float64 and as_float.shape == (20, 28, 3)
    np.testing.assert_allclose(as_float, (reference.numpy().transpose(1, 2, 0) + 1) / 2, atol=1e-5)


def test_a_list_is_batched_by_size_and_returned_in_order(resnet_file) -> None:
    t = load(resnet_file, device="cpu")
    inputs = [photo(16, 16, 0), photo(24, 20, 1), photo(16, 16, 2)]
    outputs = t.translate(inputs)
    assert [o.shape for o in outputs] == [(16, 16, 3), (24, 20, 3), (16, 16, 3)]
    for x, y in zip(inputs, outputs):
        np.testing.assert_array_equal(y, t.translate(x))


def test_gray_and_rgba_inputs_are_converted_to_the_network_channels(tmp_path) -> None:
    path = saved(ResnetGenerator(1, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=1), tmp_path / "G.pth")
    t = load(path, device="cpu")
    assert (t.input_nc, t.output_nc) == (1, 3)
    gray = photo()[..., 0]
    out = t.translate(gray)
    assert out.shape == (20, 28, 3)
    expected = eager(path, torch.from_numpy(gray)[None, None].float() / 127.5 - 1)
    np.testing.assert_allclose(out / 255, (expected[0].numpy().transpose(1, 2, 0) + 1) / 2, atol=1 / 255)
    rgba = Image.fromarray(np.dstack([photo(), np.full((20, 28), 255, np.uint8)]), "RGBA")
    assert np.asarray(t.translate(rgba)).shape == (20, 28, 3)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((4, 8, 8, 3), np.uint8), "H x W x C"),
        (np.zeros((8, 8, 3), np.int32), "uint8, uint16 or float"),
        (np.full((8, 8, 3), 2.0), r"\[0, 1\]"),
        (torch.zeros(1, 4, 8, 8), "N x 3 x H x W"),
        ({"image": 1}, "cannot translate a dict"),
    ],
)
def test_bad_inputs_are_refused_with_what_is_expected(resnet_file, bad, message) -> None:
    with pytest.raises(DataError, match=message):
        load(resnet_file, device="cpu").translate(bad)


# ---------------------------------------------------------------------------------------------------
# Layers, precision and devices


def test_train_mode_batch_norm_translates_each_image_on_its_own_and_reproducibly(tmp_path) -> None:
    # pix2pix's test mode: batch statistics and dropout; a batch must not mix its images.
    # unet_64: its innermost level has dropout, as the original's.
    path = saved(UnetGenerator(3, 3, 6, ngf=4, norm_layer=get_norm_layer("batch")), tmp_path / "G.pth")
    t = load(path, device="cpu", paper_mode=True)
    inputs = [photo(64, 64, i) for i in range(3)]
    together = t.translate(inputs)
    for x, y in zip(inputs, together):
        np.testing.assert_array_equal(y, t.translate(x))
    # The seed drives dropout.
    assert not np.array_equal(together[0], load(path, device="cpu", paper_mode=True, seed=1).translate(inputs[0]))
    # A tensor batch too is translated image by image: batch statistics and dropout draws never mix images.
    batch = torch.stack([torch.from_numpy(x).permute(2, 0, 1).float() / 127.5 - 1 for x in inputs])
    as_batch = load(path, device="cpu", paper_mode=True, batch_size=2).translate(batch)
    for k in range(3):
        torch.testing.assert_close(as_batch[k : k + 1], t.translate(batch[k : k + 1]))
    evaluated = load(path, device="cpu", eval=True).translate(inputs[0])
    expected = eager(path, torch.from_numpy(inputs[0]).permute(2, 0, 1)[None].float() / 127.5 - 1)
    np.testing.assert_allclose(evaluated / 255, (expected[0].numpy().transpose(1, 2, 0) + 1) / 2, atol=1 / 255)
    assert not np.array_equal(evaluated, together[0])


def test_bf16_inference_stays_close_to_fp32(resnet_file) -> None:
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    fp32 = load(resnet_file, device="cpu").translate(x)
    bf16 = load(resnet_file, device="cpu", dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    out = bf16.translate(x)
    assert out.dtype == torch.float32 and 0 < (out - fp32).abs().mean() < 0.02


def test_fp16_on_the_cpu_and_unknown_dtypes_are_refused(resnet_file) -> None:
    with pytest.raises(OptionsError, match="GPUs"):
        load(resnet_file, device="cpu", dtype=torch.float16)
    with pytest.raises(OptionsError, match="bfloat16"):
        load(resnet_file, device="cpu", dtype=torch.int8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_the_default_device_is_the_cpu_and_cuda_is_refused(resnet_file) -> None:
    assert load(resnet_file).device == torch.device("cpu")
    with pytest.raises(OptionsError, match="device='cpu'"):
        load(resnet_file, device="cuda")


# ---------------------------------------------------------------------------------------------------
# pix2pixHD label maps from a bare file


@pytest.fixture
def global_file(tmp_path) -> Path:
    # Cityscapes-like: 5 classes + the instance boundary channel.
    net = GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1, norm_layer=get_norm_layer("instance"))
    return saved(net, tmp_path / "latest_net_G.pth")


def label_maps(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.repeat(rng.integers(0, 5, (5, 1)), 30, axis=1).repeat(4, axis=0).astype(np.uint8)  # 20 x 30 stripes
    inst = label.astype(np.int32) * 1000
    inst[:, 15:] += 1  # split each stripe into two instances
    return label, inst


def test_a_pix2pixhd_file_takes_label_and_instance_maps(global_file) -> None:
    t = load(global_file, device="cpu")
    assert t.takes_labels and t.uses_instances and t.label_nc == 5
    label, inst = label_maps()
    out = t.translate(torch.from_numpy(label).long()[None, None], torch.from_numpy(inst).long()[None, None])
    lab, ins = torch.from_numpy(label).long()[None, None], torch.from_numpy(inst).long()[None, None]
    expected = eager(global_file, torch.cat([one_hot_labels(lab, 5), instance_edges(ins)], 1))
    torch.testing.assert_close(out, expected)
    array = t.translate(label, inst)
    assert array.dtype == np.uint8 and array.shape == (20, 30, 3)
    # Without an instance map the class boundaries stand in for instance boundaries.
    without = t.translate(lab)
    torch.testing.assert_close(without, eager(global_file, torch.cat([one_hot_labels(lab, 5), instance_edges(lab)], 1)))
    assert not torch.equal(without, out)


def test_label_maps_from_files_and_a_label_out_of_range(global_file, tmp_path) -> None:
    t = load(global_file, device="cpu")
    label, inst = label_maps()
    Image.fromarray(label).save(tmp_path / "l.png")
    Image.fromarray(inst.astype(np.uint16)).save(tmp_path / "i.png")
    np.testing.assert_array_equal(
        np.asarray(t.translate(tmp_path / "l.png", tmp_path / "i.png")), t.translate(label, inst)
    )
    label[0, 0] = 7
    with pytest.raises(DataError, match="label 7 is >= label_nc=5"):
        t.translate(label)


def test_a_bare_batch_norm_pix2pixhd_file_translates_each_label_map_on_its_own(tmp_path) -> None:
    net = GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1, norm_layer=get_norm_layer("batch"))
    t = load(saved(net, tmp_path / "G.pth"), device="cpu")
    maps = [label_maps(seed)[0] for seed in range(3)]
    for label, image in zip(maps, t.translate(maps)):
        np.testing.assert_array_equal(image, t.translate(label))


def test_colour_label_maps_are_refused_with_the_fix(global_file) -> None:
    with pytest.raises(DataError, match="RGB image.*integer ids"):
        load(global_file, device="cpu").translate(Image.fromarray(photo()))
    label, inst = label_maps()
    with pytest.raises(DataError, match="one instance map of the same size per label map"):
        load(global_file, device="cpu").translate(label, inst[:10])


def test_label_count_and_instance_channel_can_be_stated(global_file) -> None:
    assert load(global_file, device="cpu", instance=False).label_nc == 6
    with pytest.raises(OptionsError, match="takes 6 input channels.*label_nc=5"):
        load(global_file, device="cpu", label_nc=3)


# ---------------------------------------------------------------------------------------------------
# Files and folders that are not translators


def test_discriminators_noise_generators_and_missing_paths_are_refused(tmp_path) -> None:
    d = saved(NLayerDiscriminator(6, ndf=4, n_layers=2), tmp_path / "latest_net_D.pth")
    with pytest.raises(CheckpointError, match="holds a discriminator.*latest_net_G.pth"):
        load(d)
    noise = saved(DCGANGenerator(nz=8, output_nc=3, ngf=4, image_size=16), tmp_path / "dcgan.pth")
    with pytest.raises(OptionsError, match="DCGAN generator.*noise"):
        load(noise)
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tmp_path / "nothing.pth")
    (tmp_path / "run").mkdir()
    torch.save({}, tmp_path / "run" / "latest_net_G.pth")
    with pytest.raises(CheckpointError, match="without opt.yaml.*latest_net_G.pth"):
        load(tmp_path / "run")


def test_run_options_are_refused_for_a_bare_file(resnet_file) -> None:
    with pytest.raises(OptionsError, match="direction apply to run folders"):
        load(resnet_file, direction="BtoA")


def test_load_is_exported_from_the_package() -> None:
    assert ganvas.load is load and ganvas.Translator is Translator


# ---------------------------------------------------------------------------------------------------
# Run folders


def test_a_pix2pix_run_translates_as_its_test_page_does(tiny_pix2pix, tmp_path) -> None:
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    page = run_test(tiny_pix2pix("test", eval=True)).page
    t = load(tmp_path / "ck" / "tiny", device="cpu", eval=True)
    source = next((page.parent / "images").glob("*_real_A.png"))
    expected = np.asarray(Image.open(str(source).replace("_real_A", "_fake_B")))
    np.testing.assert_array_equal(np.asarray(t.translate(source)), expected)


def test_a_cycle_gan_run_translates_back_with_g_b(tmp_path) -> None:
    from ganvas.data.synthetic import write_unpaired_set

    root = write_unpaired_set(tmp_path / "u", n_train=4, n_test=1, size=32, seed=0)
    opt = resolve_options(
        {
            "dataroot": str(root),
            "name": "cg",
            "model": "cycle_gan",
            "checkpoints_dir": str(tmp_path),
            "netG": "resnet_6blocks",
            "ngf": 4,
            "ndf": 4,
            "n_epochs": 1,
            "n_epochs_decay": 0,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
            "preprocess": "none",
            "pool_size": 2,
        }
    )
    train(opt, show_progress=False)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    back = load(tmp_path / "cg", device="cpu", direction="BtoA").translate(x)
    torch.testing.assert_close(back, eager(network_path(tmp_path / "cg", "latest", "G_B"), x))
    forward = load(tmp_path / "cg", device="cpu").translate(x)
    torch.testing.assert_close(forward, eager(network_path(tmp_path / "cg", "latest", "G_A"), x))


def test_a_pix2pixhd_run_and_its_bare_file_translate_label_maps_alike(tmp_path) -> None:
    street = write_street_set(tmp_path / "s", n_train=2, n_test=1, size=(32, 64), seed=2)
    opt = resolve_options(
        {
            "dataroot": str(street),
            "name": "hd",
            "checkpoints_dir": str(tmp_path / "ck"),
            "model": "pix2pixhd",
            "label_nc": len(STREET_CLASSES),
            "ngf": 4,
            "ndf": 4,
            "n_downsample_global": 2,
            "n_blocks_global": 1,
            "preprocess": "none",
            "n_epochs": 1,
            "n_epochs_decay": 0,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 0,
            "no_vgg_loss": True,
        }
    )
    train(opt, show_progress=False)
    label = next((street / "test_label").iterdir())
    inst = next((street / "test_inst").iterdir())
    run = load(tmp_path / "ck" / "hd", device="cpu")
    assert run.takes_labels and run.label_nc == len(STREET_CLASSES)
    bare = load(tmp_path / "ck" / "hd" / "latest_net_G.pth", device="cpu", label_nc=len(STREET_CLASSES))
    np.testing.assert_array_equal(np.asarray(run.translate(label, inst)), np.asarray(bare.translate(label, inst)))

    out = tmp_path / "out"
    assert (
        main(
            [
                "translate",
                "--checkpoint",
                str(tmp_path / "ck" / "hd" / "latest_net_G.pth"),
                "--label_nc",
                str(len(STREET_CLASSES)),
                str(street / "test_label"),
                "--instance_dir",
                str(street / "test_inst"),
                "--out",
                str(out),
                "--gpu_ids",
                "-1",
            ]
        )
        == 0
    )
    [written] = list(out.iterdir())
    np.testing.assert_array_equal(np.asarray(Image.open(written)), np.asarray(bare.translate(label, inst)))


def test_translate_checkpoint_runs_a_bare_file_with_no_architecture_flags(resnet_file, tmp_path, capsys) -> None:
    Image.fromarray(photo(19, 23)).save(tmp_path / "a.png")
    code = main(
        [
            "translate",
            "--checkpoint",
            str(resnet_file),
            str(tmp_path / "a.png"),
            "--out",
            str(tmp_path / "o"),
            "--gpu_ids",
            "-1",
        ]
    )
    assert code == 0 and f"translated 1 image into {tmp_path / 'o'}" in capsys.readouterr().out
    written = np.asarray(Image.open(tmp_path / "o" / "a.png"))
    np.testing.assert_array_equal(written, np.asarray(load(resnet_file, device="cpu").translate(tmp_path / "a.png")))
    assert main(["translate", "--checkpoint", str(resnet_file), "--name", "x", str(tmp_path / "a.png")]) == 2
    assert "not both" in capsys.readouterr().err


def test_test_and_translate_take_bf16_for_every_model(tiny_pix2pix, tmp_path) -> None:
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    fp32 = run_test(tiny_pix2pix("test", eval=True))
    bf16 = run_test(tiny_pix2pix("test", eval=True, precision="bf16"))
    assert bf16.page.parent.name == "test_latest_bf16" and fp32.page.parent.name == "test_latest"
    assert 0 < abs(fp32.metrics["psnr"] - bf16.metrics["psnr"]) < 1.0
