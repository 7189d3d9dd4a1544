"""Optical flow: warping, the consistency check, flow resizing, DIS, .flo files and the per-sequence cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ganvas.data import flow as flows
from ganvas.data.flow import (
    dis_flow,
    flow_and_validity,
    ground_truth_flows,
    read_flo,
    read_frame_gray,
    read_valid,
    sequence_flows,
    write_flo,
    write_valid,
)
from ganvas.data.io import save_uint8
from ganvas.data.synthetic import moving_shapes_video
from ganvas.errors import DataError
from ganvas.nets.flow import consistency_mask, resize_flow, warp


def constant_flow(dx: float, dy: float, height: int, width: int, batch: int = 1) -> torch.Tensor:
    flow = torch.empty(batch, 2, height, width)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def video(index: int = 0, n_frames: int = 12, size: tuple[int, int] = (64, 64)):
    return moving_shapes_video(np.random.default_rng([0, 7, 0, index]), n_frames, size)


# ---------------------------------------------------------------------------------------------- warp


def test_warp_by_an_integer_shift_equals_roll_inside() -> None:
    x = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(0))
    dx, dy = -3, 2
    out = warp(x, constant_flow(dx, dy, 16, 20, batch=2))
    # out(p) = x(p + flow): a roll by minus the flow, wherever p + flow is inside the image.
    rolled = torch.roll(x, shifts=(-dy, -dx), dims=(2, 3))
    inside = (slice(None), slice(None), slice(0, 16 - dy), slice(-dx, 20))
    assert torch.allclose(out[inside], rolled[inside], atol=1e-5)
    assert not torch.allclose(out, x, atol=1e-2)


def test_warp_by_zero_flow_is_identity() -> None:
    x = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(warp(x, torch.zeros(1, 2, 9, 7)), x, atol=1e-6)


def test_warp_gradient_reaches_image_and_flow() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 12, 12, generator=gen, requires_grad=True)
    flow = (torch.rand(1, 2, 12, 12, generator=gen) * 2 - 1).requires_grad_()
    weights = torch.rand(1, 3, 12, 12, generator=gen)
    (warp(x, flow) * weights).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert flow.grad is not None and flow.grad.abs().sum() > 0
    assert torch.isfinite(x.grad).all() and torch.isfinite(flow.grad).all()


@pytest.mark.parametrize("size", [(1, 1), (1, 6), (5, 1)])
def test_warp_works_on_single_rows_and_columns(size: tuple[int, int]) -> None:
    x = torch.rand(1, 2, *size, generator=torch.Generator().manual_seed(3))
    out = warp(x, constant_flow(0.0, 0.0, *size))
    assert out.shape == x.shape and torch.allclose(out, x, atol=1e-6)
    shifted = warp(x, constant_flow(1.0, 1.0, *size))
    assert torch.isfinite(shifted).all()


def test_warp_under_autocast_keeps_the_dtype_and_values() -> None:
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    flow = constant_flow(1.25, -0.5, 16, 16)
    plain = warp(x, flow)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = warp(x, flow)
        half = warp(x.bfloat16(), flow.bfloat16())
    assert inside.dtype == torch.float32 and torch.allclose(inside, plain, atol=1e-6)
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), plain, atol=2e-2)


def test_warp_refuses_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="resize_flow"):
        warp(torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))


# ---------------------------------------------------------------------------------------------- consistency


def test_consistency_mask_marks_uncovered_and_outside_pixels() -> None:
    # Frame t-1: a vertical stripe at x in [8, 14) moving right by 3 over a background moving left by 2.
    height, width, left, right, obj, bg = 6, 32, 8, 14, 3, -2
    columns = torch.arange(width)
    stripe_before = (columns >= left) & (columns < right)
    stripe_after = (columns >= left + obj) & (columns < right + obj)
    forward = torch.where(stripe_before, float(obj), float(bg))  # frame t-1 -> t
    backward = torch.where(stripe_after, float(-obj), float(-bg))  # frame t -> t-1
    flow_fwd = torch.zeros(1, 2, height, width)
    flow_bwd = torch.zeros(1, 2, height, width)
    flow_fwd[:, 0], flow_bwd[:, 0] = forward, backward

    mask = consistency_mask(flow_bwd, flow_fwd)

    source = columns + backward
    uncovered = ~stripe_after & ((source >= left) & (source < right))  # background that was behind the stripe
    outside = source > width - 1
    expected = ~(uncovered | outside)
    assert mask.shape == (1, 1, height, width)
    assert uncovered.any() and outside.any()
    assert torch.equal(mask[0, 0].bool(), expected.expand(height, width))


def test_consistency_mask_is_all_valid_for_one_consistent_motion() -> None:
    forward, backward = constant_flow(1.0, 0.0, 8, 8), constant_flow(-1.0, 0.0, 8, 8)
    mask = consistency_mask(backward, forward)
    assert mask[..., 1:].all() and not mask[..., 0].any()  # column 0's source is outside


# ---------------------------------------------------------------------------------------------- resize


def test_resize_flow_scales_the_vectors_with_the_image() -> None:
    flow = constant_flow(1.5, -2.0, 16, 32)
    resized = resize_flow(flow, (32, 16))
    assert resized.shape == (1, 2, 32, 16)
    assert torch.allclose(resized[:, 0], torch.full((1, 32, 16), 0.75))
    assert torch.allclose(resized[:, 1], torch.full((1, 32, 16), -4.0))


def test_resized_true_flow_still_warps_a_resized_video() -> None:
    labels, photos, true_flows, valid = video(1, 3, (64, 64))
    frames = torch.from_numpy(photos).permute(0, 3, 1, 2).double() / 255
    flow = torch.from_numpy(true_flows).permute(0, 3, 1, 2).double()
    small = torch.nn.functional.interpolate(frames, size=(32, 32), mode="area")
    mask = torch.from_numpy(valid[2]).double()[None, None]
    mask = torch.nn.functional.interpolate(mask, size=(32, 32), mode="area") == 1  # wholly valid after shrinking
    warped = warp(small[1:2], resize_flow(flow[2:3], (32, 32)))
    unwarped = small[1:2]
    error = (warped - small[2:3]).abs().mean(1, keepdim=True)[mask].mean()
    baseline = (unwarped - small[2:3]).abs().mean(1, keepdim=True)[mask].mean()
    assert error < 0.25 * baseline


# ---------------------------------------------------------------------------------------------- DIS


def test_dis_recovers_the_synthetic_flow() -> None:
    pytest.importorskip("cv2")
    errors, baselines = [], []
    for index in range(3):
        _, photos, true_flows, valid = video(index)
        for t in range(1, len(photos)):
            estimate = dis_flow(photos[t - 1], photos[t], "medium")
            errors.append(np.linalg.norm(estimate - true_flows[t], axis=-1)[valid[t]].mean())
            baselines.append(np.linalg.norm(true_flows[t], axis=-1)[valid[t]].mean())  # zero flow's error
    assert np.mean(errors) < 1.0
    assert np.mean(errors) < 0.3 * np.mean(baselines)


def test_dis_flow_points_back_to_the_previous_frame() -> None:
    pytest.importorskip("cv2")
    _, photos, _, _ = video(0)
    prev = photos[0]
    cur = np.roll(prev, 3, axis=1)  # content moved 3 pixels right: it was 3 pixels left
    flow = dis_flow(prev, cur)
    assert np.median(flow[8:-8, 8:-8, 0]) == pytest.approx(-3.0, abs=0.25)
    assert np.median(flow[8:-8, 8:-8, 1]) == pytest.approx(0.0, abs=0.25)


def test_dis_flow_takes_grey_and_any_size() -> None:
    pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    tiny = rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)
    flow = dis_flow(tiny, tiny)
    assert flow.shape == (3, 5, 2) and flow.dtype == np.float32 and np.isfinite(flow).all()
    _, photos, _, _ = video(2, 2, (37, 53))
    grey = [np.asarray(flows.to_gray(p)) for p in photos]
    assert np.array_equal(dis_flow(photos[0], photos[1]), dis_flow(grey[0], grey[1]))


def test_flow_and_validity_finds_most_occlusions() -> None:
    pytest.importorskip("cv2")
    caught, kept = [], []
    for index in range(2):
        _, photos, _, valid = video(index)
        for t in range(1, len(photos)):
            _, estimate = flow_and_validity(photos[t - 1], photos[t], "medium")
            caught.append((~estimate[~valid[t]]).mean())
            kept.append(estimate[valid[t]].mean())
    assert np.mean(caught) > 0.5 and np.mean(kept) > 0.85


def test_missing_opencv_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises ImportError
    frame = np.zeros((16, 16), np.uint8)
    with pytest.raises(DataError, match=r'pip install "ganvas\[video\]"'):
        dis_flow(frame, frame)


def test_unknown_preset_is_refused() -> None:
    frame = np.zeros((16, 16), np.uint8)
    with pytest.raises(ValueError, match="ultrafast, fast, medium"):
        dis_flow(frame, frame, "slow")


# ---------------------------------------------------------------------------------------------- files


def test_flo_round_trip_is_exact_and_middlebury(tmp_path: Path) -> None:
    flow = np.random.default_rng(0).normal(0, 10, (7, 11, 2)).astype(np.float32)
    path = tmp_path / "a.flo"
    write_flo(path, flow)
    data = path.read_bytes()
    assert data[:4] == b"PIEH" and len(data) == 12 + 7 * 11 * 8
    assert np.frombuffer(data[4:12], "<i4").tolist() == [11, 7]  # width, then height
    back = read_flo(path)
    assert back.dtype == np.float32 and np.array_equal(back, flow)


def test_truncated_flo_is_a_data_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cut.flo"
    write_flo(path, np.zeros((4, 4, 2), np.float32))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match=r"cut\.flo is truncated"):
        read_flo(path)
    path.write_bytes(b"PIE")
    with pytest.raises(DataError, match=r"cut\.flo is truncated"):
        read_flo(path)


def test_flo_with_a_wrong_magic_is_a_data_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "png.flo"
    save_uint8(np.zeros((4, 4), np.uint8), tmp_path / "x.png")
    path.write_bytes((tmp_path / "x.png").read_bytes())
    with pytest.raises(DataError, match=r"png\.flo is not a Middlebury \.flo file"):
        read_flo(path)


def test_flo_with_a_damaged_size_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "big.flo"
    path.write_bytes(np.array([202021.25], "<f4").tobytes() + np.array([-3, 2], "<i4").tobytes())
    with pytest.raises(DataError, match=r"big\.flo has a damaged header"):
        read_flo(path)


def test_validity_png_round_trip(tmp_path: Path) -> None:
    mask = np.random.default_rng(1).random((9, 13)) < 0.5
    write_valid(tmp_path / "m.png", mask)
    assert np.array_equal(read_valid(tmp_path / "m.png"), mask)


# ---------------------------------------------------------------------------------------------- sequences


def write_frames(folder: Path, photos: np.ndarray) -> list[Path]:
    paths = [folder / f"{t:04d}.png" for t in range(len(photos))]
    for path, photo in zip(paths, photos):
        save_uint8(photo, path)
    return paths


def count_dis_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = flows.dis_flow

    def counting(prev: np.ndarray, cur: np.ndarray, preset: str = "medium") -> np.ndarray:
        calls[0] += 1
        return real(prev, cur, preset)

    monkeypatch.setattr(flows, "dis_flow", counting)
    return calls


def direct(frames: list[Path], preset: str) -> list[tuple[np.ndarray, np.ndarray]]:
    return [flow_and_validity(read_frame_gray(a), read_frame_gray(b), preset) for a, b in zip(frames, frames[1:])]


def assert_entries_equal(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for (flow, valid), (flow_e, valid_e) in zip(got, expected):
        assert np.array_equal(flow, flow_e) and np.array_equal(valid, valid_e)


def test_sequence_flows_are_computed_once_and_equal_direct_flows(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cv2")
    _, photos, _, _ = video(0, 4, (32, 32))
    frames = write_frames(tmp_path / "seq", photos)
    calls = count_dis_calls(monkeypatch)

    first = sequence_flows(frames, tmp_path / "cache", "fast")
    assert calls[0] == 2 * 3  # both ways for each of the three pairs
    second = sequence_flows(frames, tmp_path / "cache", "fast")
    assert calls[0] == 6

    zero_flow, nothing_valid = first[0]
    assert zero_flow.shape == (32, 32, 2) and not zero_flow.any() and not nothing_valid.any()
    assert_entries_equal(first[1:], direct(frames, "fast"))
    assert_entries_equal(second, first)
    assert (tmp_path / "cache" / "fast" / "0003.flo").is_file()
    assert (tmp_path / "cache" / "fast" / "manifest.json").is_file()


def test_sequence_flows_recompute_what_a_rewritten_frame_changes(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cv2")
    _, photos, _, _ = video(1, 4, (32, 32))
    frames = write_frames(tmp_path / "seq", photos)
    sequence_flows(frames, tmp_path / "cache", "fast")
    calls = count_dis_calls(monkeypatch)

    before = frames[2].stat().st_mtime_ns
    save_uint8(255 - photos[2], frames[2])
    # The file system's clock can be coarser than two quick writes; a real edit comes later than this.
    os.utime(frames[2], ns=(before + 10**9, before + 10**9))
    again = sequence_flows(frames, tmp_path / "cache", "fast")

    assert calls[0] == 2 * 2  # the pairs (1, 2) and (2, 3), not (0, 1)
    assert_entries_equal(again[1:], direct(frames, "fast"))


def test_sequence_flows_follow_a_removed_frame(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("cv2")
    _, photos, _, _ = video(2, 4, (32, 32))
    frames = write_frames(tmp_path / "seq", photos)
    sequence_flows(frames, tmp_path / "cache", "ultrafast")
    calls = count_dis_calls(monkeypatch)

    kept = [frames[0], frames[1], frames[3]]
    got = sequence_flows(kept, tmp_path / "cache", "ultrafast")

    assert calls[0] == 2  # only frame 3, whose previous frame changed
    assert_entries_equal(got[1:], direct(kept, "ultrafast"))
    assert not (tmp_path / "cache" / "ultrafast" / "0002.flo").exists()


def test_ground_truth_flows_read_the_files_and_default_to_valid(tmp_path: Path) -> None:
    _, photos, true_flows, valid = video(3, 3, (16, 24))
    frames = write_frames(tmp_path / "seq", photos)
    write_flo(tmp_path / "flow" / "0001.flo", true_flows[1])
    write_valid(tmp_path / "flow" / "0001_valid.png", valid[1])
    write_flo(tmp_path / "flow" / "0002.flo", true_flows[2])  # no validity file: all valid
    got = ground_truth_flows(frames, tmp_path / "flow")
    assert not got[0][1].any()
    assert np.array_equal(got[1][0], true_flows[1]) and np.array_equal(got[1][1], valid[1])
    assert np.array_equal(got[2][0], true_flows[2]) and got[2][1].all()


def test_missing_ground_truth_flow_names_the_file_and_the_fix(tmp_path: Path) -> None:
    _, photos, true_flows, _ = video(3, 3, (16, 24))
    frames = write_frames(tmp_path / "seq", photos)
    write_flo(tmp_path / "flow" / "0001.flo", true_flows[1])
    with pytest.raises(DataError, match=r"0002\.flo .*--flow medium"):
        ground_truth_flows(frames, tmp_path / "flow")


def test_ground_truth_flow_of_another_size_is_refused(tmp_path: Path) -> None:
    _, photos, _, _ = video(3, 2, (16, 24))
    frames = write_frames(tmp_path / "seq", photos)
    write_flo(tmp_path / "flow" / "0001.flo", np.zeros((8, 12, 2), np.float32))
    with pytest.raises(DataError, match=r"0001\.flo is 8 x 12 but frame"):
        ground_truth_flows(frames, tmp_path / "flow")
