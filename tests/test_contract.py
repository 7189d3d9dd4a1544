"""The model contract, checked for every model in the registry (and docs/template_model.py) with no per-model code.

A model registered later is collected here by name and checked the same way: its options are declared
fields, two training steps on its own example batch give finite losses and change G, its run folder
loads back through `ganvas.load` (or is refused with the sentence its spec declares) and reproduces the
trained model, odd sizes come back at their size, and the TorchScript export gives the same output.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

import ganvas
from ganvas.backends import TOLERANCE, GraphNet, installed_backends
from ganvas.checkpoint import atomic_write_many, load_weights, network_spec_path, network_writes, read_network_spec
from ganvas.errors import OptionsError
from ganvas.export import export
from ganvas.models import Model, create_model, load_for_inference
from ganvas.models.base import INPUT_KINDS, InferenceSpec
from ganvas.nets import forward_padded
from ganvas.options import OPT_FILE, Options, resolve_options, save_options
from ganvas.registry import MODELS, Entry, build_network

TEMPLATE = Path(__file__).resolve().parents[1] / "docs" / "template_model.py"
CPU = torch.device("cpu")
SIZE, BATCH, STEPS = 32, 2, 2
ODD = (30, 34)  # a multiple of no generator's stride: translate must pad and crop back
CLOSE = {"rtol": 1e-5, "atol": 1e-6}  # same weights, same operations: only summation order may differ


def import_template() -> dict[str, Entry]:
    """Import docs/template_model.py by path and return what it registered, unregistered again at once.

    Collection imports every test module before any test runs, so the template stays out of the
    registry here and is registered only around this module's tests (CLI help listings never see it).
    """
    with MODELS.scoped():
        before = set(MODELS.names())
        spec = importlib.util.spec_from_file_location("ganvas_docs_template_model", TEMPLATE)
        assert spec is not None and spec.loader is not None, f"cannot import {TEMPLATE}"
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look up the module of the class they process
        spec.loader.exec_module(module)
        added = {name: MODELS.entry(name) for name in MODELS.names() if name not in before}
    assert added and not set(added) & set(MODELS.names()), "the template must register one new name, for a while"
    return added


EXTRA = import_template()
GRAPHS = installed_backends()[1:]  # onnxruntime, openvino where installed
TRAINABLE = MODELS.names(trainable=True) + tuple(n for n, e in EXTRA.items() if e.meta.get("trainable"))
RUN_ONLY = MODELS.names(trainable=False)
# Runs whose saved generators the run-only models are pointed at (the saved network's suffix: G, G_A, G_B).
RUN_ONLY_SOURCES = (("pix2pix", ""), ("cycle_gan", "_A"), ("cycle_gan", "_B"))


@pytest.fixture(autouse=True)
def extra_models_registered() -> Iterator[None]:
    """The template model registered during each test of this module, and forgotten afterwards."""
    with MODELS.scoped():
        for entry in EXTRA.values():
            MODELS.register(entry.name, **entry.meta)(entry.obj)
        yield


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Run this module's tiny networks on one thread, and put the thread count back afterwards.

    At 32 px with 4 filters a step is milliseconds of work; with two threads on a busy two-core machine
    the threads wait for each other and a step takes seconds.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding one contract run folder per model (shared by the tests of this module)."""
    return tmp_path_factory.mktemp("contract")


@dataclass
class ContractRun:
    """A small model trained two steps on its example batch, and the run folder written from it."""

    opt: Options
    model: Model
    batch: dict[str, Any]
    losses: list[dict[str, float]]
    g_before: list[Tensor]  # G's parameters before training

    @property
    def run_dir(self) -> Path:
        return self.opt.run_dir


_RUNS: dict[str, ContractRun] = {}


def contract_run(name: str, root: Path) -> ContractRun:
    """The contract run of model `name`, trained once per session (the run-only test reuses the others' runs)."""
    if name not in _RUNS:
        model_class = MODELS.get(name)
        given = {
            "model": name,
            "gpu_ids": "-1",
            "seed": 0,
            "ngf": 4,
            "ndf": 4,
            "batch_size": BATCH,
            "crop_size": SIZE,
            "load_size": SIZE,
            "num_threads": 0,
            "checkpoints_dir": str(root / name),
            "name": "c",
            "dataroot": "unused",
            **model_class.small_options(),
        }
        opt = resolve_options(given, "train")
        torch.manual_seed(0)
        model = create_model(opt, CPU, train=True)
        batch = model.example_batch(SIZE, BATCH)
        g_before = [p.detach().clone() for p in model.generator().parameters()]
        losses = [model.train_step(batch) for _ in range(STEPS)]
        save_options(opt, opt.run_dir / OPT_FILE)
        atomic_write_many(network_writes(model.nets, opt.run_dir, "latest"))
        _RUNS[name] = ContractRun(opt, model, batch, losses, g_before)
    return _RUNS[name]


def inputs_for(spec: InferenceSpec, batch: dict[str, Any]) -> tuple[tuple[Tensor, ...], dict[str, Any]]:
    """The translator's (and the exported module's) positional inputs for a batch, and the batch the API gives
    the model's translate for them (names: the API names tensor inputs "input")."""
    names = ["input"] * BATCH
    if spec.sequential:  # a training batch holds clips (N x T x C x H x W): each clip's first frame starts a stream
        batch = {k: v[:, 0] if isinstance(v, Tensor) and v.dim() == 5 else v for k, v in batch.items()}
    if spec.inputs == ("image",):
        return (batch["A"],), {"A": batch["A"], "path": names}
    if spec.inputs == ("label",):
        return (batch["label"],), {"label": batch["label"], "path": names}
    if spec.inputs == ("label", "instance"):
        return (batch["label"], batch["inst"]), {"label": batch["label"], "inst": batch["inst"], "path": names}
    pytest.fail(
        f"the contract test feeds image, label and label+instance inputs, not {spec.inputs}; add the kind to inputs_for"
    )


def odd_sized(spec: InferenceSpec, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Inputs like `args` (one image each) of ODD size: images in [-1, 1], ids cut from the example's maps."""
    gen = torch.Generator().manual_seed(1)
    if spec.inputs == ("image",):
        return ((torch.rand(1, spec.input_nc, *ODD, generator=gen) * 2 - 1),)
    return tuple(a[:1].repeat(1, 1, 2, 2)[..., : ODD[0], : ODD[1]] for a in args)  # ids of the model's own range


def run_torchscript(path: Path, args: tuple[Tensor, ...]) -> Tensor:
    """The exported TorchScript module's output for `args`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path))
    with torch.no_grad():
        return module(*args)


@pytest.mark.parametrize("name", TRAINABLE)
def test_model_contract(name: str, runs_root: Path, tmp_path: Path) -> None:
    """Options, training, the run folder, loading back, odd sizes and export of one trainable model."""
    model_class = MODELS.get(name)
    options_class = model_class.options_class
    assert is_dataclass(options_class) and issubclass(options_class, Options), (
        f"{name}.options_class must be a dataclass extending ganvas.options.Options"
    )
    assert options_class.__dataclass_params__.frozen, f"{name}'s options must be frozen (change them with replace)"
    own = {f.name: f for f in fields(options_class)}
    undeclared = [n for n, f in own.items() if not f.metadata.get("help")]
    assert not undeclared, f"{name}: declare {undeclared} with ganvas.options.option(default, help, ...)"
    for what, chosen in (
        ("option_defaults", model_class.option_defaults({})),
        ("bench_options(256)", model_class.bench_options(256)),
        ("small_options", model_class.small_options()),
    ):
        assert set(chosen) <= set(own), f"{name}.{what} sets options it does not have: {set(chosen) - set(own)}"

    run = contract_run(name, runs_root)
    model = run.model
    for step in run.losses:
        assert step and all(isinstance(v, float) and math.isfinite(v) for v in step.values()), (
            f"{name}.train_step must return finite float losses, gave {step}"
        )
    after = list(model.generator().parameters())
    assert any(not torch.equal(a, b.detach()) for a, b in zip(run.g_before, after)), f"{name}'s G did not change"

    model.set_mode(False)
    spec = model.inference_spec()
    assert spec.inputs and set(spec.inputs) <= set(INPUT_KINDS), f"{name}: unknown input kinds {spec.inputs}"
    assert spec.size_multiple >= 1 and SIZE % spec.size_multiple == 0, f"{name}: size_multiple {spec.size_multiple}"
    with torch.no_grad():  # what `ganvas bench` times
        bench_out = model.run_generator(model.generator_input(run.batch))
    assert bench_out.shape[1] == spec.output_nc and torch.isfinite(bench_out).all()

    if spec.refusal:  # e.g. a generator from noise: no input to translate
        with pytest.raises(OptionsError) as refused:
            ganvas.load(run.run_dir, device="cpu", eval=True)
        assert str(refused.value) == spec.refusal
        saved = resolve_options(
            {"name": run.opt.name, "checkpoints_dir": run.opt.checkpoints_dir, "gpu_ids": "-1", "eval": True}, "test"
        )
        loaded = load_for_inference(saved)
        x = model.generator_input(run.batch)  # the same z for both
        with torch.no_grad():
            torch.testing.assert_close(loaded.run_generator(x), model.run_generator(x), **CLOSE)
        return

    translator = ganvas.load(run.run_dir, device="cpu", eval=True)
    assert translator.input_kinds == spec.inputs
    assert (translator.input_nc, translator.output_nc) == (spec.input_nc, spec.output_nc)
    args, model_batch = inputs_for(spec, run.batch)
    out = translator.translate(*args)
    assert out.shape[1] == spec.output_nc
    torch.testing.assert_close(out, model.translate(model_batch)["fake_B"], **CLOSE)

    odd = translator.translate(*odd_sized(spec, args))
    assert tuple(odd.shape[-2:]) == ODD, f"{name}: a {ODD} input came back {tuple(odd.shape[-2:])}"
    assert torch.isfinite(odd).all()

    result = export(translator, tmp_path / "g.pt", "torchscript")
    assert result.size_multiple == spec.size_multiple
    torch.testing.assert_close(run_torchscript(result.path, args), out, **CLOSE)


@pytest.mark.skipif(not GRAPHS, reason="no graph backend installed (pip install 'ganvas[export]')")
@pytest.mark.parametrize("name", TRAINABLE)
def test_every_backend_runs_the_inference_networks_as_eager_at_two_sizes(name: str, runs_root: Path) -> None:
    """Each installed graph backend gives the eager model's outputs (to TOLERANCE) for inputs of two sizes."""
    run = contract_run(name, runs_root)
    run.model.set_mode(False)
    for backend in GRAPHS:
        given = {"name": run.opt.name, "checkpoints_dir": run.opt.checkpoints_dir, "gpu_ids": "-1", "backend": backend}
        loaded = load_for_inference(resolve_options(given, "test"))
        for size in (SIZE, 2 * SIZE):
            batch = run.model.example_batch(size, 1, seed=size)
            x = run.model.generator_input(batch)
            with torch.no_grad():
                expected = {"generator": run.model.run_generator(x)}
                got = {"generator": loaded.run_generator(x)}
                if run.model.conditional:  # translate's whole path (styles, both CycleGAN directions)
                    expected.update(run.model.translate(batch))
                    got.update(loaded.translate(batch))
            for key, image in expected.items():
                difference = float((got[key] - image).abs().max())
                assert difference <= TOLERANCE, f"{name} on {backend}: {key} at {size} px differs by {difference}"
        for key in loaded.inference_nets:
            net = loaded.nets[key]
            assert isinstance(net, GraphNet), f"{name}: {key} was not put on --backend {backend}"
            assert set(net.used.values()) == {backend} or net.reasons, f"{name}: {key} ran on {net.used} silently"
        assert set(loaded.generator().used.values()) == {backend}, f"{name}'s generator did not run on {backend}"


@pytest.mark.parametrize("name", TRAINABLE)
def test_checkpoints_have_descriptions(name: str, runs_root: Path) -> None:
    """Every network file a run writes has its .json beside it, and the network it describes takes the weights."""
    run = contract_run(name, runs_root)
    weights = sorted(run.run_dir.glob("*.pth"))
    assert len(weights) == len(run.model.nets), f"{name}: expected one .pth per network in {run.run_dir}"
    missing = [p.name for p in weights if not network_spec_path(p).is_file()]
    assert not missing, f"{name}: no .json beside {missing}: build these networks with ganvas.registry.build_network"
    for path in weights:
        document = read_network_spec(network_spec_path(path))
        net = build_network(document["network"], **document["kwargs"])
        load_weights(net, path)  # strict: every key and shape of the file fits the described network


@pytest.mark.parametrize("name", RUN_ONLY)
def test_run_only_model(name: str, runs_root: Path) -> None:
    """A run-only model refuses training, and runs each saved generator of a contract run as that run ran it."""
    given = {
        "model": name,
        "gpu_ids": "-1",
        "checkpoints_dir": str(runs_root / "none"),
        "name": "c",
        "dataroot": "unused",
        "num_threads": 0,
    }
    with pytest.raises(OptionsError):
        create_model(resolve_options(given, "train"), CPU, train=True)

    sources = [(source, suffix) for source, suffix in RUN_ONLY_SOURCES if source in TRAINABLE]
    assert sources, f"none of {RUN_ONLY_SOURCES} is registered to run {name} on"
    for source, suffix in sources:
        run = contract_run(source, runs_root)
        run.model.set_mode(False)
        translator = ganvas.load(run.run_dir, device="cpu", eval=True, model=name, model_suffix=suffix)
        x = torch.rand(BATCH, translator.input_nc, SIZE, SIZE, generator=torch.Generator().manual_seed(2)) * 2 - 1
        with torch.no_grad():
            expected = forward_padded(run.model.nets["G" + suffix], x)
        torch.testing.assert_close(translator.translate(x), expected, **CLOSE)
        odd = translator.translate(torch.rand(1, translator.input_nc, *ODD) * 2 - 1)
        assert tuple(odd.shape[-2:]) == ODD, f"{name} on {source} G{suffix}: came back {tuple(odd.shape[-2:])}"
