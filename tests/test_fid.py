"""FID and KID: the Inception network and the statistics against torch-fidelity's, with random weights saved in the
real file's layout (no real weights here).

torch-fidelity is the reference; it installs without its dependencies (`pip install --no-deps
torch-fidelity==0.4.0`, as .ci/run does) and is imported with a stand-in for torchvision, which it imports at the
top but does not use for these parts. Without it these tests skip, except in CI (GANVAS_CI=1), where they fail.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
from conftest import import_reference

from ganvas.errors import CheckpointError
from ganvas.metrics import feature_statistics, fid_resize, frechet_distance, inception_features, kernel_distance
from ganvas.nets.inception import INPUT_SIZE, FIDInception, load_fid_inception


class _Stub(types.ModuleType):
    """A module whose every attribute is a stand-in (torch-fidelity subclasses torchvision's data sets at import)."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name[0].isupper():
            return type(name, (), {"__init__": lambda self, *args, **kwargs: None})
        module = _Stub(f"{self.__name__}.{name}")
        sys.modules[module.__name__] = module
        return module


@pytest.fixture(scope="module")
def fidelity():
    """torch-fidelity's Inception and metric functions, imported with torchvision stood in for."""

    def load():
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        from torch_fidelity.metric_fid import fid_statistics_to_metric
        from torch_fidelity.metric_kid import kid_features_to_metric

        return types.SimpleNamespace(
            Inception=FeatureExtractorInceptionV3, fid=fid_statistics_to_metric, kid=kid_features_to_metric
        )

    names = ("torchvision", "torchvision.datasets", "torchvision.transforms", "torchvision.transforms.functional")
    return import_reference(load, {n: _Stub(n) for n in (*names, "torchvision.models")}, "torch-fidelity==0.4.0")


def test_the_network_gives_torch_fidelitys_features_for_the_same_weights(fidelity, fid_weights):
    ours = load_fid_inception(fid_weights)
    theirs = fidelity.Inception("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(fid_weights))
    images = torch.randint(0, 256, (2, 3, INPUT_SIZE, INPUT_SIZE), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(images.to(torch.uint8))[0]
        got = ours(images.float())
    assert got.shape == (2, 2048)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_fid_and_kid_agree_with_torch_fidelity_on_the_same_features(fidelity):
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(300, 64)))
    b = torch.from_numpy(rng.normal(0.3, 1.2, size=(250, 64)))
    mu_a, sigma_a = feature_statistics(a)
    mu_b, sigma_b = feature_statistics(b)
    reference = fidelity.fid({"mu": mu_a, "sigma": sigma_a}, {"mu": mu_b, "sigma": sigma_b}, verbose=False)
    assert frechet_distance(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(
        reference["frechet_inception_distance"], abs=1e-4
    )
    mean, std, size = kernel_distance(a, b, subsets=20, subset_size=200)
    expected = fidelity.kid(a, b, kid_subsets=20, kid_subset_size=200, verbose=False, rng_seed=2020)
    assert size == 200
    assert mean == pytest.approx(expected["kernel_inception_distance_mean"], abs=1e-4)
    assert std == pytest.approx(expected["kernel_inception_distance_std"], abs=1e-4)


def test_kid_is_unbiased_and_fid_small_for_two_samples_of_one_distribution():
    rng = np.random.default_rng(3)
    same_a, same_b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    other = rng.normal(0.5, 1.0, size=(400, 32))
    same, _, _ = kernel_distance(same_a, same_b, subsets=50, subset_size=200)
    different, _, _ = kernel_distance(same_a, other, subsets=50, subset_size=200)
    assert abs(same) < 0.02 * different  # unbiased: centred on zero, not on a positive bias
    fid_same = frechet_distance(*feature_statistics(same_a), *feature_statistics(same_b))
    fid_other = frechet_distance(*feature_statistics(same_a), *feature_statistics(other))
    assert 0 < fid_same < 0.2 * fid_other


def test_images_are_resized_without_quantising_and_features_come_per_image(fid_weights):
    flat = np.full((40, 60, 3), 77, np.uint8)
    resized = fid_resize(flat)
    assert resized.shape == (INPUT_SIZE, INPUT_SIZE, 3) and resized.dtype == np.float32
    assert np.allclose(resized, 77, atol=1e-3)
    ramp = np.tile(np.arange(0, 250, 5, dtype=np.uint8)[None, :, None], (30, 1, 3))
    assert not np.allclose(fid_resize(ramp), np.round(fid_resize(ramp)))  # values between the 8-bit levels
    net = load_fid_inception(fid_weights)
    together = inception_features([flat, ramp], net, batch_size=2)
    alone = inception_features([ramp], net)
    assert together.shape == (2, 2048) and torch.allclose(together[1], alone[0], rtol=1e-5, atol=1e-5)


def test_a_missing_or_foreign_fid_weights_gets_one_sentence(tmp_path):
    with pytest.raises(CheckpointError, match="pt_inception-2015-12-05-6726825d.pth"):
        load_fid_inception(tmp_path / "missing.pth")
    torch.save({"conv.weight": torch.zeros(3, 3)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="is not FID's Inception-v3"):
        load_fid_inception(tmp_path / "other.pth")
    state = {k: v for k, v in FIDInception().state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.zeros(10, 2048)
    torch.save(state, tmp_path / "shapes.pth")
    with pytest.raises(CheckpointError, match="other shapes"):
        load_fid_inception(tmp_path / "shapes.pth")
