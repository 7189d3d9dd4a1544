"""Tests for ganvas.export: ONNX and TorchScript files give the eager network's outputs at other sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.api import load
from ganvas.cli import main
from ganvas.errors import ExportError, OptionsError
from ganvas.export import export
from ganvas.interop import load_network
from ganvas.nets import GlobalGenerator, ResnetGenerator, UnetGenerator, get_norm_layer, instance_edges, one_hot_labels
from ganvas.train import train

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")


def saved(net: torch.nn.Module, path: Path) -> Path:
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    torch.save(net.state_dict(), path)
    return path


def run_onnx(path: Path, **inputs: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {k: v.numpy() for k, v in inputs.items()})[0])


def eager(path: Path, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return load_network(path)(x)


def test_onnx_resnet_matches_the_network_for_other_batches_and_sizes(tmp_path) -> None:
    g = saved(ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=2), tmp_path / "G.pth")
    result = export(load(g, device="cpu"), tmp_path / "G.onnx", "onnx")
    assert result.input_names == ["input"] and result.size_multiple == 4 and result.max_abs_difference < 1e-4
    dims = onnx.load(str(tmp_path / "G.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [bool(d.dim_param) for d in dims] == [True, False, True, True]  # batch, height, width are free
    for shape in [(1, 3, 12, 40), (3, 3, 32, 8)]:
        x = torch.rand(shape) * 2 - 1
        torch.testing.assert_close(run_onnx(tmp_path / "G.onnx", input=x), eager(g, x), atol=1e-4, rtol=1e-4)


def test_onnx_pix2pixhd_generator_takes_the_integer_label_and_instance_maps(tmp_path) -> None:
    g = saved(GlobalGenerator(6, 3, ngf=4, n_downsampling=2, n_blocks=1), tmp_path / "latest_net_G.pth")
    result = export(load(g, device="cpu"), tmp_path / "hd.onnx")
    assert result.input_names == ["label", "instance"]
    label = torch.randint(0, 5, (2, 1, 16, 24))
    inst = label * 1000 + torch.randint(0, 2, label.shape)
    expected = eager(g, torch.cat([one_hot_labels(label, 5), instance_edges(inst)], 1))
    torch.testing.assert_close(
        run_onnx(tmp_path / "hd.onnx", label=label, instance=inst), expected, atol=1e-4, rtol=1e-4
    )


def test_fp16_onnx_stays_close_to_the_fp32_network(tmp_path) -> None:
    g = saved(ResnetGenerator(3, 3, ngf=8, norm_layer=get_norm_layer("instance"), n_blocks=1), tmp_path / "G.pth")
    export(load(g, device="cpu"), tmp_path / "G16.onnx", fp16=True)
    x = torch.rand(1, 3, 16, 20) * 2 - 1
    out = run_onnx(tmp_path / "G16.onnx", input=x.half())
    assert out.dtype == torch.float16
    assert (out.float() - eager(g, x)).abs().max() < 0.05


def test_torchscript_unet_with_batch_norm_exports_in_eval_mode(tmp_path) -> None:
    g = saved(UnetGenerator(3, 3, 5, ngf=4, norm_layer=get_norm_layer("batch")), tmp_path / "G.pth")
    result = export(load(g, device="cpu"), tmp_path / "G.pt", "torchscript")
    assert result.max_abs_difference == 0 and result.size_multiple == 32
    scripted = torch.jit.load(str(tmp_path / "G.pt"))
    for shape in [(1, 3, 64, 96), (2, 3, 96, 64)]:
        x = torch.rand(shape) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), eager(g, x))


def test_a_wrong_export_is_removed_and_reported(tmp_path, monkeypatch) -> None:
    g = saved(ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=1), tmp_path / "G.pth")
    monkeypatch.setattr("ganvas.export._run_exported", lambda path, fmt, names, inputs: torch.full((1,), 9.0))
    with pytest.raises(ExportError, match="gives shape.*G.pt was removed"):
        export(load(g, device="cpu"), tmp_path / "G.pt", "torchscript")
    assert not (tmp_path / "G.pt").exists()
    with pytest.raises(OptionsError, match="onnx or torchscript"):
        export(load(g, device="cpu"), tmp_path / "G.tflite", "tflite")


def test_export_never_writes_over_the_checkpoint(tmp_path, capsys) -> None:
    g = saved(ResnetGenerator(3, 3, ngf=4, norm_layer=get_norm_layer("instance"), n_blocks=1), tmp_path / "G.pt")
    before = g.read_bytes()
    assert main(["export", "--checkpoint", str(g), "--format", "torchscript"]) == 0
    assert g.read_bytes() == before and (tmp_path / "G_torchscript.pt").is_file()
    assert main(["export", "--checkpoint", str(g), "--format", "torchscript", "--out", str(g)]) == 2
    assert "is the checkpoint being exported" in capsys.readouterr().err and g.read_bytes() == before


def test_export_name_writes_the_runs_generator(tiny_pix2pix, tmp_path, capsys) -> None:
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    out = tmp_path / "tiny.pt"
    code = main(
        [
            "export",
            "--name",
            "tiny",
            "--checkpoints_dir",
            str(tmp_path / "ck"),
            "--format",
            "torchscript",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "multiples of 32" in capsys.readouterr().out
    x = torch.rand(1, 3, 64, 32) * 2 - 1
    with torch.no_grad():
        exported = torch.jit.load(str(out))(x)
    expected = load(tmp_path / "ck" / "tiny", device="cpu", eval=True).translate(x)
    np.testing.assert_allclose(exported.numpy(), expected.numpy(), atol=1e-5)
    assert main(["export", "--name", "nothing", "--checkpoints_dir", str(tmp_path / "ck")]) == 2
    assert "no trained run" in capsys.readouterr().err
