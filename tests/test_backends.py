"""Inference backends: graphs made once and cached beside the run, checked against eager, auto's choice,
fallback to torch with one line, and the backend visible in pages, metrics.json and the API.

(Every registered model's parity on every backend is part of the model contract, tests/test_contract.py.)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import ganvas
from ganvas import backends
from ganvas.backends import AUTO_FILE, TOLERANCE, GraphNet, installed_backends
from ganvas.bench import backend_bench
from ganvas.checkpoint import network_path
from ganvas.errors import OptionsError
from ganvas.infer import run_test
from ganvas.models import load_for_inference
from ganvas.nets import make_generator
from ganvas.train import train

GRAPHS = installed_backends()[1:]
needs_graphs = pytest.mark.skipif(not GRAPHS, reason="no graph backend installed (pip install 'ganvas[export]')")


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def trained(tiny_pix2pix, one_thread):
    """A tiny pix2pix run (unet_32, ngf 8), trained one epoch; returns the options factory."""
    train(tiny_pix2pix(n_epochs=1, n_epochs_decay=0), show_progress=False)
    return tiny_pix2pix


def photo(seed: int = 0, size: tuple[int, int] = (40, 56)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def warnings_about(caplog, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and name in r.getMessage()]


@needs_graphs
@pytest.mark.parametrize("backend", GRAPHS)
def test_a_run_translates_on_each_backend_as_torch_does_and_says_so(trained, backend) -> None:
    run_dir = trained("test").run_dir
    torch_out = ganvas.load(run_dir, backend="torch").translate(photo())
    translator = ganvas.load(run_dir, backend=backend, num_threads_infer=1)
    out = translator.translate([photo(), photo(1, (64, 32))])
    assert translator.backend == backend
    assert np.abs(out[0].astype(int) - torch_out.astype(int)).max() <= 1  # uint8 rounding of outputs 1e-4 apart
    assert (run_dir / "export" / "G_latest.onnx").is_file() and (run_dir / "export" / "G_latest.json").is_file()
    report = translator.backend_report()["networks"]["G"]
    assert report["threads"] == 1 and set(report["used"].values()) == {backend}


@needs_graphs
def test_auto_measures_once_per_size_keeps_the_fastest_and_a_later_run_reuses_the_choice(
    trained, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="ganvas")
    result = run_test(trained("test", backend="auto"))
    run_dir = trained("test").run_dir
    saved = json.loads((run_dir / "export" / AUTO_FILE).read_text())["G_latest"]
    (choice,) = saved["choices"].values()  # the test images are all 32 px
    assert choice["backend"] in installed_backends() and set(choice["seconds"]) == set(installed_backends())
    assert choice["backend"] == min(choice["seconds"], key=choice["seconds"].get)
    assert result.backend == choice["backend"]
    page = result.page.read_text()
    assert "Inference backend of G" in page and "Auto measured at 32x32" in page
    metrics = json.loads((result.page.parent / "metrics.json").read_text())
    assert metrics["backend"]["backend"] == choice["backend"]

    def no_measuring(*args, **kwargs):
        raise AssertionError("auto measured again although the choice for these weights and size is saved")

    monkeypatch.setattr(GraphNet, "_measure", no_measuring)
    again = run_test(trained("test", backend="auto"))
    assert again.backend == choice["backend"] and again.metrics == pytest.approx(result.metrics, abs=1e-4)


@needs_graphs
def test_auto_measures_again_only_for_sizes_unlike_those_measured(tmp_path, monkeypatch, one_thread) -> None:
    net = make_generator("resnet_6blocks", 3, 3, 8).eval()
    graph = GraphNet(net, "G_latest", "auto", tmp_path, threads=1)
    measured: list[str] = []
    measure = GraphNet._measure

    def counting(self, key, inputs, usable, precision):
        measured.append(key)
        return measure(self, key, inputs, usable, precision)

    monkeypatch.setattr(GraphNet, "_measure", counting)
    with torch.no_grad():
        for height, width in ((64, 64), (64, 80), (80, 64), (160, 160), (64, 64)):
            out = graph(torch.rand(1, 3, height, width) * 2 - 1)
            assert out.shape[-2:] == (height, width)
    assert measured == ["64x64", "160x160"]  # 64x80 and 80x64 are within twice 64x64's area; 160x160 is not
    assert set(graph.used) == {"64x64", "64x80", "80x64", "160x160"}
    assert graph.used["64x80"] == graph.used["64x64"] == min(graph.seconds["64x64"], key=graph.seconds["64x64"].get)


@needs_graphs
def test_a_damaged_or_stale_cached_graph_is_made_again(trained, caplog) -> None:
    backend = GRAPHS[0]
    run_dir = trained("test").run_dir
    ganvas.load(run_dir, backend=backend).translate(photo())
    graph = run_dir / "export" / "G_latest.onnx"
    made = graph.stat().st_mtime_ns
    graph.write_bytes(graph.read_bytes()[: graph.stat().st_size // 2])  # damaged: cut in half
    caplog.set_level(logging.INFO, logger="ganvas")
    translator = ganvas.load(run_dir, backend=backend)
    translator.translate(photo())
    assert translator.backend == backend
    assert any("does not match the SHA-256" in r.getMessage() for r in caplog.records)
    record = json.loads((run_dir / "export" / "G_latest.json").read_text())
    assert record["graph_sha256"] == __import__("hashlib").sha256(graph.read_bytes()).hexdigest()

    # Stale: the weights change (training went on); the old graph must not be used.
    weights = network_path(run_dir, "latest", "G")
    state = torch.load(weights, weights_only=True)
    torch.save({k: v * 1.5 if v.is_floating_point() else v for k, v in state.items()}, weights)
    made = graph.stat().st_mtime_ns
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    new = ganvas.load(run_dir, backend=backend).translate(x)
    assert graph.stat().st_mtime_ns != made
    assert torch.allclose(new, ganvas.load(run_dir, backend="torch").translate(x), atol=TOLERANCE)


@needs_graphs
def test_a_network_a_backend_cannot_run_falls_back_to_torch_with_one_line(tmp_path, monkeypatch, caplog) -> None:
    net = make_generator("resnet_6blocks", 3, 3, 8).eval()
    x = torch.rand(1, 3, 24, 24) * 2 - 1

    def cannot(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::weird_op\nmore lines of exporter output")

    monkeypatch.setattr(backends, "export_onnx", cannot)
    graph = GraphNet(net, "G_latest", GRAPHS[0], tmp_path)
    with torch.no_grad():
        outs = [graph(x), graph(x), graph(torch.rand(2, 3, 32, 32))]
        assert torch.equal(outs[0], net(x))
    lines = warnings_about(caplog, "G_latest")
    assert len(lines) == 1 and "could not be exported to ONNX (Unsupported operator aten::weird_op)" in lines[0]
    assert set(graph.used.values()) == {"torch"}


@pytest.mark.skipif("openvino" not in GRAPHS, reason="OpenVINO is not installed (pip install 'ganvas[openvino]')")
def test_bf16_runs_on_openvino_and_onnxruntime_says_once_that_it_runs_fp32_only(trained, caplog) -> None:
    run_dir = trained("test").run_dir
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    fp32 = ganvas.load(run_dir, backend="torch").translate(x)
    torch_bf16 = ganvas.load(run_dir, backend="torch", dtype=torch.bfloat16).translate(x)
    openvino = ganvas.load(run_dir, backend="openvino", dtype=torch.bfloat16)
    out = openvino.translate(x)
    assert openvino.backend == "openvino"
    own = float((torch_bf16 - fp32).abs().max())
    assert float((out - fp32).abs().max()) <= max(backends.BF16_TOLERANCE, 2 * own)
    onnxruntime = ganvas.load(run_dir, backend="onnxruntime", dtype=torch.bfloat16)
    assert torch.equal(onnxruntime.translate(x), onnxruntime.translate(x))
    assert onnxruntime.backend == "torch"
    lines = warnings_about(caplog, "G_latest")
    assert len(lines) == 1 and "runs fp32 only, not bf16" in lines[0]


@needs_graphs
def test_the_papers_test_mode_runs_on_torch_with_one_line_saying_why(trained, caplog) -> None:
    opt = trained("test", backend=GRAPHS[0], paper_mode=True)
    model = load_for_inference(opt)
    batch = model.example_batch(32, 1)
    with torch.no_grad():
        torch.manual_seed(0)
        out = model.translate(batch)["fake_B"]
        torch.manual_seed(0)
        again = model.translate(batch)["fake_B"]
    torch.manual_seed(0)
    plain = load_for_inference(replace(opt, backend="torch"))
    with torch.no_grad():
        expected = plain.translate(batch)["fake_B"]
    assert torch.equal(out, again) and torch.equal(out, expected)
    lines = warnings_about(caplog, "G_latest")
    assert len(lines) == 1 and "train mode" in lines[0] and "--paper_mode" in lines[0]


def test_an_uninstalled_backend_asked_for_is_refused_with_the_extra_to_install(monkeypatch, trained) -> None:
    monkeypatch.setattr(backends, "installed", lambda name: name in ("torch", "onnxruntime"))
    with pytest.raises(OptionsError, match=r"pip install 'ganvas\[openvino\]'"):
        ganvas.load(trained("test").run_dir, backend="openvino")
    with pytest.raises(OptionsError, match="--backend tensorrt is not one of"):
        GraphNet(torch.nn.Identity(), "x", "tensorrt", None)


@needs_graphs
def test_a_bare_network_file_keeps_its_graph_beside_it(tmp_path) -> None:
    net = make_generator("resnet_6blocks", 3, 3, 8)
    path = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    translator = ganvas.load(path, backend=GRAPHS[0])
    x = torch.rand(1, 3, 20, 28) * 2 - 1
    out = translator.translate(x)
    assert translator.backend == GRAPHS[0] and (tmp_path / "export" / "latest_net_G.onnx").is_file()
    assert torch.allclose(out, ganvas.load(path, backend="torch").translate(x), atol=TOLERANCE)


@needs_graphs
def test_the_default_on_a_cpu_is_auto_and_translate_prints_the_backend_used(trained, tmp_path) -> None:
    run_dir = trained("test").run_dir
    Image = __import__("PIL.Image", fromlist=["Image"])
    Image.fromarray(photo()).save(tmp_path / "in.png")
    env = {k: v for k, v in os.environ.items() if k != "GANVAS_BACKEND"}
    done = subprocess.run(
        [sys.executable, "-m", "ganvas", "translate", "--name", run_dir.name, "--checkpoints_dir",
         str(run_dir.parent), "--gpu_ids", "-1", str(tmp_path / "in.png"), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    chosen = json.loads((run_dir / "export" / AUTO_FILE).read_text())["G_latest"]["choices"]
    (entry,) = chosen.values()
    assert f"(backend: {entry['backend']})" in done.stdout


def test_num_threads_infer_sets_torchs_threads_during_inference_and_puts_them_back(trained, monkeypatch) -> None:
    seen: list[int] = []
    translator = ganvas.load(trained("test").run_dir, backend="torch", num_threads_infer=3)
    inner = translator.model.nets["G"].module
    monkeypatch.setattr(inner, "forward", lambda x: (seen.append(torch.get_num_threads()), x[:, :3])[1])
    before = torch.get_num_threads()
    translator.translate(photo())
    assert seen == [3] and torch.get_num_threads() == before != 3


@needs_graphs
def test_bench_times_every_installed_backend_against_eager_in_one_process(one_thread) -> None:
    rows = backend_bench(["pix2pix"], [32], installed_backends(), steps=1, warmup=0, threads=1)
    assert [r.backend for r in rows] == installed_backends()
    assert rows[0].speedup == 1.0
    for row in rows[1:]:
        assert not row.note and row.seconds > 0 and row.max_difference <= TOLERANCE
        assert row.speedup == pytest.approx(rows[0].seconds / row.seconds)
