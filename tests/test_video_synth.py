"""The synthetic video set (exact flows, layout, determinism) and the temporal metrics on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganvas.data.flow import read_flo, read_valid
from ganvas.data.io import read_image
from ganvas.data.synthetic import VIDEO_CLASSES, moving_shapes_video, video_label_colors, write_video_set
from ganvas.errors import DataError
from ganvas.metrics import TemporalMeter, tof, warping_error
from ganvas.nets.flow import warp

N_FRAMES = 12


@pytest.fixture(scope="module")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video_set(tmp_path_factory.mktemp("videos") / "set", n_train=3, n_test=1, n_frames=N_FRAMES)


def frames_of(folder: Path) -> torch.Tensor:
    """T x 3 x H x W in [0, 1]."""
    return torch.stack([read_image(path, 3) for path in sorted(folder.glob("*.png"))])


def flows_of(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(T-1) x 2 x H x W flows and (T-1) x 1 x H x W validity of frames 1 and later."""
    flow = [torch.from_numpy(read_flo(p)).permute(2, 0, 1) for p in sorted(folder.glob("*.flo"))]
    valid = [torch.from_numpy(read_valid(p))[None] for p in sorted(folder.glob("*_valid.png"))]
    return torch.stack(flow), torch.stack(valid)


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- layout


def test_layout_is_vid2vids(video_set: Path) -> None:
    folders = sorted(p.name for p in video_set.iterdir())
    assert folders == ["test_A", "test_B", "test_flow", "train_A", "train_B", "train_flow"]
    assert sorted(p.name for p in (video_set / "train_B").iterdir()) == ["seq_0000", "seq_0001", "seq_0002"]
    names = [f"{t:04d}.png" for t in range(N_FRAMES)]
    for side in ("A", "B"):
        assert sorted(p.name for p in (video_set / f"test_{side}" / "seq_0000").iterdir()) == names
    flow_names = sorted(p.name for p in (video_set / "train_flow" / "seq_0001").iterdir())
    assert flow_names == sorted(
        [f"{t:04d}.flo" for t in range(1, N_FRAMES)] + [f"{t:04d}_valid.png" for t in range(1, N_FRAMES)]
    )
    with (
        Image.open(video_set / "train_A" / "seq_0000" / "0000.png") as label,
        Image.open(video_set / "train_B" / "seq_0000" / "0000.png") as photo,
    ):
        assert label.mode == "RGB" and photo.mode == "RGB" and photo.size == (64, 64)


def test_labels_are_pure_palette_colours_and_move(video_set: Path) -> None:
    palette = video_label_colors()
    assert len(palette) == len(VIDEO_CLASSES) == len({tuple(c) for c in palette})
    for sequence in sorted((video_set / "train_A").iterdir()):
        labels = np.stack([np.asarray(Image.open(p)) for p in sorted(sequence.glob("*.png"))])
        matches = (labels[..., None, :] == palette).all(-1)  # T x H x W x classes
        assert matches.any(-1).all(), f"{sequence} has colours outside the palette"
        present = matches.any((0, 1, 2))
        assert present[:2].all() and present[2:].sum() >= 1  # both background classes and some shapes
        assert (labels[0] != labels[-1]).any(-1).mean() > 0.1


def test_same_seed_gives_identical_files_and_another_seed_others(tmp_path: Path) -> None:
    kwargs = {"n_train": 2, "n_test": 1, "n_frames": 3, "size": (24, 32)}
    first = all_files(write_video_set(tmp_path / "a", seed=5, **kwargs))
    second = all_files(write_video_set(tmp_path / "b", seed=5, **kwargs))
    other = all_files(write_video_set(tmp_path / "c", seed=6, **kwargs))
    assert first == second
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first if name.endswith("0000.png"))


def test_refuses_folders_with_other_files(tmp_path: Path) -> None:
    root = write_video_set(tmp_path / "v", n_train=2, n_test=0, n_frames=3, size=(16, 16))
    write_video_set(root, n_train=2, n_test=0, n_frames=3, size=(16, 16), seed=1)  # rewriting its own files is fine
    (root / "train_B" / "seq_0000" / "extra.png").write_bytes(b"")
    with pytest.raises(DataError, match="extra.png"):
        write_video_set(root, n_train=2, n_test=0, n_frames=3, size=(16, 16))
    (root / "train_B" / "seq_0000" / "extra.png").unlink()
    with pytest.raises(DataError, match="seq_0001"):  # a sequence a smaller set would leave behind
        write_video_set(root, n_train=1, n_test=0, n_frames=3, size=(16, 16))


# ---------------------------------------------------------------------------------------------- motion


def test_true_flow_warps_each_frame_onto_the_next(video_set: Path) -> None:
    for sequence in ("seq_0000", "seq_0001", "seq_0002"):
        frames = frames_of(video_set / "train_B" / sequence)
        flow, valid = flows_of(video_set / "train_flow" / sequence)
        warped = warp(frames[:-1], flow)
        mask = valid.expand(-1, 3, -1, -1)
        assert valid.float().mean() > 0.7
        assert (warped - frames[1:]).abs()[mask].max() < 1e-5
        assert (frames[:-1] - frames[1:]).abs()[mask].mean() > 0.02  # zero flow (no warp) does not


def test_true_flow_also_carries_the_labels(video_set: Path) -> None:
    labels = frames_of(video_set / "train_A" / "seq_0002")
    flow, valid = flows_of(video_set / "train_flow" / "seq_0002")
    warped = warp(labels[:-1], flow)
    assert (warped - labels[1:]).abs()[valid.expand(-1, 3, -1, -1)].max() < 1e-5


def test_motion_is_fast_enough_that_copying_fails(video_set: Path) -> None:
    for sequence in sorted((video_set / "train_B").iterdir()):
        frames = frames_of(sequence)
        assert (frames[0] - frames[-1]).abs().mean() > 0.1


def test_video_arrays_match_the_files(video_set: Path) -> None:
    _, photos, flows, valid = moving_shapes_video(np.random.default_rng([0, 7, 1, 0]), N_FRAMES, (64, 64))
    assert np.array_equal(np.asarray(Image.open(video_set / "test_B" / "seq_0000" / "0005.png")), photos[5])
    assert np.array_equal(read_flo(video_set / "test_flow" / "seq_0000" / "0005.flo"), flows[5])
    assert np.array_equal(read_valid(video_set / "test_flow" / "seq_0000" / "0005_valid.png"), valid[5])
    assert not flows[0].any() and not valid[0].any()


# ---------------------------------------------------------------------------------------------- metrics


def sequence(video_set: Path, name: str = "seq_0000"):
    frames = frames_of(video_set / "train_B" / name) * 2 - 1
    flow, valid = flows_of(video_set / "train_flow" / name)
    return list(frames), [None, *flow], [None, *valid]


def test_true_video_has_no_warping_error_and_broken_ones_do(video_set: Path) -> None:
    frames, flow, valid = sequence(video_set)
    own = warping_error(frames, flow, valid)
    frozen = warping_error([frames[0]] * len(frames), flow, valid)
    order = np.random.default_rng(0).permutation(len(frames))
    shuffled = warping_error([frames[i] for i in order], flow, valid)
    assert own < 1e-6
    assert frozen > 1e-3 and shuffled > 1e-3


def test_warping_error_is_lais_masked_mse_on_unit_images() -> None:
    previous, current = torch.zeros(3, 4, 4) - 1, torch.zeros(3, 4, 4) - 1
    current[:, 0, 0] = 1.0  # one pixel differs by 1 on [0, 1] images
    valid = torch.ones(1, 4, 4, dtype=torch.bool)
    zero = torch.zeros(2, 4, 4)
    assert warping_error([previous, current], [None, zero], [None, valid]) == pytest.approx(1 / 16)
    valid[0, 0, 0] = False
    assert warping_error([previous, current], [None, zero], [None, valid]) == pytest.approx(0.0)
    valid[0, 0, 0], valid[0, 3, 3] = True, False
    assert warping_error([previous, current], [None, zero], [None, valid]) == pytest.approx(1 / 15)


def test_tof_is_zero_for_the_reference_and_larger_for_a_shuffle_than_for_noise(video_set: Path) -> None:
    pytest.importorskip("cv2")
    frames, _, _ = sequence(video_set, "seq_0001")
    generator = torch.Generator().manual_seed(0)
    noisy = [(f + 0.04 * torch.randn(f.shape, generator=generator)).clamp(-1, 1) for f in frames]
    order = np.random.default_rng(1).permutation(len(frames))
    shuffled = [frames[i] for i in order]
    assert tof(frames, frames) == 0.0
    assert tof(shuffled, frames) > 3 * tof(noisy, frames) > 0


def test_temporal_meter_streams_what_the_functions_compute(video_set: Path) -> None:
    pytest.importorskip("cv2")
    videos = [sequence(video_set, name) for name in ("seq_0000", "seq_0002")]
    outputs = [[(f * 0.9).clamp(-1, 1) for f in frames[::-1]] for frames, _, _ in videos]  # played backwards
    meter = TemporalMeter("fast")
    for (frames, flow, valid), output in zip(videos, outputs):
        for t in range(len(frames)):
            meter.add(output[t], frames[t], flow[t], valid[t])
        meter.end_sequence()
    expected_warp = [warping_error(output, flow, valid) for (_, flow, valid), output in zip(videos, outputs)]
    expected_tof = [tof(output, frames, "fast") for (frames, _, _), output in zip(videos, outputs)]
    result = meter.result()
    assert result["videos"] == 2
    assert result["warping_error"] == pytest.approx(np.mean(expected_warp))
    assert result["tof"] == pytest.approx(np.mean(expected_tof))
    assert expected_warp[0] != expected_warp[1]
