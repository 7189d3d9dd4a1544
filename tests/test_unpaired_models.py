"""CycleGAN, CUT/FastCUT and the test model: reference layouts, options, resume and both directions."""

import json
import os
import shutil
import signal

import pytest
import torch

from ganvas.checkpoint import load_torch
from ganvas.data.io import read_image
from ganvas.data.synthetic import write_image_folder, write_unpaired_set
from ganvas.errors import OptionsError
from ganvas.infer import load_for_inference, run_test, translate_files
from ganvas.models import create_model
from ganvas.models.cut import CUTModel
from ganvas.models.cycle_gan import CycleGANModel
from ganvas.options import parse_options, resolve_options
from ganvas.train import train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def unpaired_root(tmp_path_factory):
    return write_unpaired_set(tmp_path_factory.mktemp("unpaired") / "d2n", n_train=8, n_test=3, size=32, seed=4)


@pytest.fixture
def tiny(tmp_path, unpaired_root):
    """Options factory for tiny, fast unpaired runs."""

    def make(command="train", **overrides):
        common = {"name": "tiny", "checkpoints_dir": str(tmp_path / "ck"), "results_dir": str(tmp_path / "res")}
        if command != "train":
            return resolve_options({**common, **overrides}, command)
        given = {
            **common,
            "dataroot": str(unpaired_root),
            "model": "cycle_gan",
            "netG": "resnet_2blocks",
            "ngf": 8,
            "ndf": 8,
            "load_size": 36,
            "crop_size": 32,
            "n_epochs": 1,
            "n_epochs_decay": 1,
            "num_threads": 0,
            "gpu_ids": "-1",
            "seed": 3,
            "print_freq": 2,
            "save_latest_freq": 10**9,
        }
        if overrides.get("model") == "cut":  # CUT's own options (other models refuse them)
            given.update(num_patches=32, netF_nc=32)
        return resolve_options({**given, **overrides}, command)

    return make


def count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_cycle_gan_networks_match_the_published_sizes_and_key_names():
    opt = resolve_options({"model": "cycle_gan", "gpu_ids": "-1"}, "train")
    model = create_model(opt, CPU, train=True)
    # The original prints 11.378 M for each generator and 2.765 M for each discriminator.
    assert count(model.nets["G_A"]) == count(model.nets["G_B"]) == 11_378_179
    assert count(model.nets["D_A"]) == count(model.nets["D_B"]) == 2_764_737
    g_keys = {f"model.{i}.{p}" for i in (1, 4, 7, 19, 22, 26) for p in ("weight", "bias")}
    g_keys |= {f"model.{i}.conv_block.{j}.{p}" for i in range(10, 19) for j in (1, 5) for p in ("weight", "bias")}
    assert set(model.nets["G_A"].state_dict()) == g_keys
    assert set(model.nets["D_A"].state_dict()) == {
        f"model.{i}.{p}" for i in (0, 2, 5, 8, 11) for p in ("weight", "bias")
    }
    assert set(model.optimizers) == {"G", "D"}


def test_cycle_gan_writes_the_four_reference_files_and_its_pools(tiny):
    result = train(tiny(), show_progress=False)
    names = sorted(p.name for p in result.run_dir.glob("latest_net_*.pth"))
    assert names == ["latest_net_D_A.pth", "latest_net_D_B.pth", "latest_net_G_A.pth", "latest_net_G_B.pth"]
    state = load_torch(result.run_dir / "latest_state.pt")
    assert state["model"]["pool_A"]["count"] == 16, "the image pools must be saved for an exact resume"


def test_cut_modes_set_the_published_defaults_and_take_cut_style_booleans():
    cut = resolve_options({"model": "cut"}, "train")
    fast = resolve_options({"model": "cut", "CUT_mode": "FastCUT"}, "train")
    assert (cut.nce_idt, cut.lambda_NCE, cut.flip_equivariance, cut.n_epochs, cut.n_epochs_decay) == (
        True,
        1.0,
        False,
        200,
        200,
    )
    assert (fast.nce_idt, fast.lambda_NCE, fast.flip_equivariance, fast.n_epochs, fast.n_epochs_decay) == (
        False,
        10.0,
        True,
        150,
        50,
    )
    opt, _ = parse_options(["--model", "cut", "--nce_idt", "False", "--lambda_NCE", "2"])
    assert opt.nce_idt is False and opt.lambda_NCE == 2.0
    opt, _ = parse_options(["--model", "cut", "--CUT_mode", "FastCUT", "--flip_equivariance", "--nce_idt"])
    assert opt.flip_equivariance is True and opt.nce_idt is True
    with pytest.raises(OptionsError, match="--lambda_L1"):
        parse_options(["--model", "pix2pix", "--lambda_A", "100"])


def test_cut_discriminator_is_anti_aliased_like_the_original():
    opt = resolve_options({"model": "cut", "gpu_ids": "-1"}, "train")
    D = create_model(opt, CPU, train=True).nets["D"]
    # CUT's PatchGAN: conv, LeakyReLU, blur-subsample per level; same weights as the plain one.
    want = {f"model.{i}.{p}" for i in (0, 3, 7, 11, 14) for p in ("weight", "bias")}
    assert set(D.state_dict()) == want | {f"model.{i}.filt" for i in (2, 6, 10)}
    assert count(D) == 2_764_737
    assert D(torch.zeros(1, 3, 256, 256)).shape[-2:] == (30, 30)


def test_cut_builds_its_patch_mlp_before_the_first_step(tiny):
    opt = tiny(model="cut")
    model = create_model(opt, CPU, train=True)
    F = model.nets["F"]
    # One MLP per --nce_layers entry (0,4,8,12,16), on the channel count of that layer of the
    # anti-aliased ResNet-2 (ngf 8): padded input, first and second downsampling convs, first
    # residual block, then (with only 2 blocks) the conv after the first upsampling.
    assert [F.get_submodule(f"mlp_{i}.0").in_features for i in range(5)] == [3, 16, 32, 32, 16]
    assert set(model.optimizers) == {"G", "D", "F"}
    assert {id(p) for p in model.optimizers["F"].param_groups[0]["params"]} == {id(p) for p in F.parameters()}
    assert any(k.endswith("filt") for k in model.nets["G"].state_dict())  # CUT's anti-aliasing buffers
    with pytest.raises(OptionsError, match="layers 0 to"):
        create_model(tiny(model="cut", nce_layers="0,40"), CPU, train=True)


@pytest.mark.parametrize(
    "model, extra", [("cycle_gan", {"pool_size": 3}), ("cut", {}), ("cut", {"CUT_mode": "FastCUT"})]
)
def test_interrupted_and_resumed_unpaired_runs_reach_the_same_weights(tiny, monkeypatch, model, extra):
    flags = {"model": model, "batch_size": 2, **extra}
    reference = train(tiny(name="straight", **flags), show_progress=False)
    model_class = CycleGANModel if model == "cycle_gan" else CUTModel
    original = model_class.train_step
    calls = {"n": 0}

    def step_then_ctrl_c(self, batch):
        losses = original(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:  # mid epoch 1, after the pool has filled and started to swap
            os.kill(os.getpid(), signal.SIGINT)
        return losses

    monkeypatch.setattr(model_class, "train_step", step_then_ctrl_c)
    first = train(tiny(name="resumed", **flags), show_progress=False)
    assert first.interrupted and first.progress.steps == 3
    monkeypatch.setattr(model_class, "train_step", original)
    second = train(tiny(name="resumed", continue_train=True, **flags), show_progress=False)
    assert second.progress.steps == reference.progress.steps
    for path in reference.run_dir.glob("latest_net_*.pth"):
        want, got = torch.load(path), torch.load(second.run_dir / path.name)
        for key in want:
            assert torch.equal(want[key], got[key]), f"{path.name} {key} differs after resume"


def test_cycle_gan_test_writes_both_directions_and_scores_them_against_the_truth(tiny, unpaired_root):
    train(tiny(n_epochs_decay=0), show_progress=False)
    result = run_test(tiny("test"))
    images = {p.name for p in (result.page.parent / "images").iterdir()}
    for key in ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B", "truth_B", "truth_A"):
        assert f"0000_{key}.png" in images
    assert set(result.scores) == {"fake_B", "fake_A"} and result.metrics == result.scores["fake_B"]
    assert result.count == 3


def test_translate_against_the_trained_direction_runs_the_other_generator(tiny, unpaired_root, tmp_path):
    train(tiny(n_epochs_decay=0), show_progress=False)
    source = unpaired_root / "testB" / sorted(os.listdir(unpaired_root / "testB"))[0]
    written = translate_files(tiny("translate", direction="BtoA"), [source], tmp_path / "out")
    model = load_for_inference(tiny("test"))
    with torch.no_grad():
        expected = model.nets["G_B"](read_image(source, 3)[None] * 2 - 1)[0]
    got = read_image(written[0], 3) * 2 - 1
    assert (got - expected.clamp(-1, 1)).abs().max() < 2.5 / 255  # within PNG rounding
    # CUT has one generator: asking for the other direction is an error, not a silent wrong model.
    train(tiny(name="cut_run", model="cut", n_epochs_decay=0), show_progress=False)
    with pytest.raises(OptionsError, match="translates AtoB only"):
        tiny("translate", name="cut_run", direction="BtoA")


def test_the_test_model_runs_a_lone_g_a_file(tiny, unpaired_root, tmp_path):
    run = train(tiny(n_epochs_decay=0), show_progress=False).run_dir
    lone = tmp_path / "ck" / "lone"
    lone.mkdir()
    shutil.copy(run / "latest_net_G_A.pth", lone)  # the file alone: no options, no other networks
    flags = {
        "name": "lone",
        "model": "test",
        "model_suffix": "_A",
        "no_dropout": True,
        "netG": "resnet_2blocks",
        "ngf": 8,
        "dataroot": str(unpaired_root / "testA"),
        "gpu_ids": "-1",
    }
    result = run_test(tiny("test", **flags))
    assert result.count == 3 and result.page.parent.name == "test_latest_A"
    full = load_for_inference(tiny("test"))
    single = load_for_inference(tiny("test", **flags))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(single.nets["G_A"](x), full.nets["G_A"](x))
    # G_B of the saved run, its channel counts and architecture inherited from the run's options.
    backward = load_for_inference(tiny("test", model="test", model_suffix="_B", dataroot=str(unpaired_root / "testB")))
    with torch.no_grad():
        assert torch.equal(backward.nets["G_B"](x), full.nets["G_B"](x))


def test_cut_trains_on_a_short_last_batch_and_on_a_and_b_of_different_sizes(tiny, tmp_path):
    root = tmp_path / "sizes"
    write_image_folder(root / "trainA", n=5, size=32, seed=1)
    write_image_folder(root / "trainB", n=3, size=40, seed=2)
    opt = tiny(model="cut", dataroot=str(root), preprocess="none", batch_size=1)
    assert opt.nce_idt  # CUT's identity term runs G on the 40 px B images beside the 32 px A images
    assert train(opt, show_progress=False).progress.steps == 10
    # 8 items in batches of 3: the last batch holds 2, and the negatives stay within each image.
    assert train(tiny(name="short", model="cut", batch_size=3), show_progress=False).progress.steps == 6
    with pytest.raises(OptionsError, match="at least one patch"):
        create_model(tiny(model="cut", num_patches=0), CPU, train=True)


def test_test_model_defaults_to_its_generators_side_and_scores_each_image_once(tiny, unpaired_root, tmp_path):
    train(tiny(n_epochs_decay=0), show_progress=False)
    opt = tiny("test", model="test", model_suffix="_B")
    assert opt.dataroot == str(unpaired_root / "testB") and (opt.input_nc, opt.output_nc) == (3, 3)
    with pytest.raises(OptionsError, match="--model_suffix _A"):
        load_for_inference(tiny("test", model="test"))
    # Fewer test A images than B images: each file is scored once, under its own name.
    root = tmp_path / "uneven"
    shutil.copytree(unpaired_root, root)
    for extra in ("0003", "0004"):
        shutil.copy(root / "testB" / "0000.png", root / "testB" / f"{extra}.png")
        shutil.copy(root / "truth/testA" / "0000.png", root / "truth/testA" / f"{extra}.png")
    result = run_test(tiny("test", dataroot=str(root)))
    summary = json.loads((result.page.parent / "metrics.json").read_text())
    assert result.count == 5
    assert sorted(summary["by_output"]["fake_B"]["per_image"]) == ["0000", "0001", "0002"]
    assert sorted(summary["by_output"]["fake_A"]["per_image"]) == ["0000", "0001", "0002", "0003", "0004"]
    reverse = run_test(tiny("test", direction="BtoA"))
    assert reverse.page.parent.name == "test_latest_BtoA"  # beside, not over, the trained direction's page
