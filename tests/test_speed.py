"""Mixed precision, channels-last, compilation and `ganvas bench` on the CPU."""

from __future__ import annotations

import functools

import pytest
import torch

from ganvas.checkpoint import load_torch
from ganvas.cli import main
from ganvas.errors import OptionsError
from ganvas.models import create_model
from ganvas.train import train


def losses_of(tiny_pix2pix, **speed) -> dict[str, float]:
    result = train(
        tiny_pix2pix(
            name="_".join(f"{k}{v}" for k, v in speed.items()) or "fp32", norm="instance", no_dropout=True, **speed
        ),
        show_progress=False,
    )
    return result.losses


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_training_follows_fp32(tiny_pix2pix, amp) -> None:
    fp32, mixed = losses_of(tiny_pix2pix), losses_of(tiny_pix2pix, amp=amp)
    assert fp32.keys() == mixed.keys()
    for key in fp32:
        assert mixed[key] == pytest.approx(fp32[key], rel=0.05), key
    assert any(mixed[k] != fp32[k] for k in fp32)  # it did run in another precision


def test_channels_last_gives_the_fp32_losses(tiny_pix2pix) -> None:
    fp32, channels_last = losses_of(tiny_pix2pix), losses_of(tiny_pix2pix, channels_last=True)
    for key in fp32:
        assert channels_last[key] == pytest.approx(fp32[key], rel=1e-4), key


def test_fp16_keeps_a_gradient_scaler_per_step_and_resumes_it(tiny_pix2pix) -> None:
    result = train(tiny_pix2pix(name="half", amp="fp16"), show_progress=False)
    state = load_torch(result.run_dir / "latest_state.pt")
    assert set(state["scalers"]) == {"G", "D"} and all(s["scale"] > 0 for s in state["scalers"].values())
    state["scalers"]["D"]["scale"] = 4.0  # as if D had overflowed: G's scale must not follow
    torch.save(state, result.run_dir / "latest_state.pt")
    from ganvas.train import Trainer

    trainer = Trainer(tiny_pix2pix(name="half", amp="fp16", continue_train=True, n_epochs=2), show_progress=False)
    scalers = trainer.model.scalers
    assert scalers["D"].get_scale() == 4.0 and scalers["G"].get_scale() == state["scalers"]["G"]["scale"]


def test_an_overflow_in_the_d_step_skips_d_only(tiny_pix2pix) -> None:
    opt = tiny_pix2pix(amp="fp16")
    model = create_model(opt, torch.device("cpu"), train=True)
    model.grad_scaling = True
    D, G = model.nets["D"], model.nets["G"]
    d_before = [p.detach().clone() for p in D.parameters()]
    x = torch.rand(1, 6, 32, 32)
    model.optimizers["D"].zero_grad()
    model.optimize(D(x).mean() * float("inf"), "D")  # inf gradients: the step must be skipped
    assert all(torch.equal(a, b) for a, b in zip(d_before, D.parameters()))
    assert model.scalers["D"].get_scale() < 2.0**16
    g_before = [p.detach().clone() for p in G.parameters()]
    model.optimizers["G"].zero_grad()
    model.optimize(G(x[:, :3]).mean(), "G")
    assert not all(torch.equal(a, b) for a, b in zip(g_before, G.parameters()))
    assert model.scalers["G"].get_scale() == 2.0**16


def test_compiled_g_and_d_train_across_the_g_and_d_steps_and_save_plain_keys(tiny_pix2pix, monkeypatch) -> None:
    # The aot_eager backend exercises dynamo's graphs, guards and recompiles without inductor's C++
    # build, which takes minutes on this CPU; the wiring under test is the same.
    monkeypatch.setattr("ganvas.speed.torch.compile", functools.partial(torch.compile, backend="aot_eager"))
    fp32 = losses_of(tiny_pix2pix)
    result = train(tiny_pix2pix(name="compiled", norm="instance", no_dropout=True, compile=True), show_progress=False)
    for key in fp32:
        assert result.losses[key] == pytest.approx(fp32[key], rel=1e-3), key
    saved = load_torch(result.run_dir / "latest_net_G.pth")
    assert not any("_orig_mod" in k for k in saved)


def test_bench_prints_the_baseline_and_the_speed_up(capsys) -> None:
    code = main(
        [
            "bench",
            "--model",
            "pix2pix",
            "--size",
            "32",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--amp",
            "bf16",
            "--baseline",
            "--gpu_ids",
            "-1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("pix2pix, training, 32 px, batch 1, CPU")
    rows = [line.split() for line in lines[2:4]]
    assert rows[0][:3] == ["fp32", "eager", "(baseline)"] and rows[0][-1] == "1.00x"
    assert rows[1][0] == "bf16" and float(rows[1][1]) > 0 and rows[1][-1].endswith("x")


@pytest.mark.parametrize("model", ["cycle_gan", "cut", "pix2pixhd", "gan"])
def test_bench_runs_every_model_in_inference_and_training(model, capsys) -> None:
    # pix2pixHD's published G has 182 M parameters: only its inference, to keep the suite short.
    for mode in [["--infer"]] if model == "pix2pixhd" else [[], ["--infer"]]:
        assert (
            main(["bench", "--model", model, "--size", "32", "--steps", "1", "--warmup", "0", "--gpu_ids", "-1", *mode])
            == 0
        )
        row = capsys.readouterr().out.splitlines()[2].split()
        assert float(row[1]) > 0 and float(row[2]) > 0 and float(row[3]) > 0  # seconds, images/s, MB


def test_half_precision_on_a_cpu_without_native_support_is_warned_about(tiny_pix2pix, monkeypatch, caplog) -> None:
    monkeypatch.setattr("ganvas.speed.cpu_lacks_native", lambda dtype, device: dtype != torch.float32)
    with caplog.at_level("WARNING", logger="ganvas"):
        losses_of(tiny_pix2pix)
        assert "no native" not in caplog.text
        losses_of(tiny_pix2pix, amp="bf16")
    assert "--amp bf16: this CPU" in caplog.text and "use fp32 here" in caplog.text


def test_bench_passes_a_models_own_flags_through_and_names_them(capsys) -> None:
    argv = ["bench", "--model", "cut", "--CUT_mode", "FastCUT", "--size", "32", "--steps", "1", "--warmup", "0"]
    assert main([*argv, "--gpu_ids", "-1", "--infer"]) == 0
    assert capsys.readouterr().out.startswith("cut (CUT_mode FastCUT), inference")
    with pytest.raises(OptionsError, match="--lambda_L1 is an option of --model pix2pix"):
        from ganvas.cli import _bench

        _bench(["--model", "cut", "--lambda_L1", "3"])


def test_bench_offers_every_registered_model_that_trains() -> None:
    from ganvas.bench import bench_models
    from ganvas.registry import MODELS

    assert set(bench_models()) == {e.name for e in MODELS if e.meta.get("trainable")} and "test" not in bench_models()
