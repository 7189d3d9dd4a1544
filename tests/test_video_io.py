"""Tests for ganvas.data.video: round trips of videos and frame folders, rotation, audio, partial files, errors."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from ganvas.data.io import save_uint8  # noqa: E402
from ganvas.data.video import (  # noqa: E402
    VIDEO_SUFFIXES,
    VideoWriter,
    display_transform,
    is_video_file,
    probe,
    read_frames,
    upright,
)
from ganvas.errors import DataError  # noqa: E402

# A lossy codec's mean absolute error on these smooth frames is about 4-8 levels (4:2:0 chroma on
# stripes a few pixels wide); neighbouring frames differ by about 45.
LOSSY_BOUND = 10.0


def moving_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """Smooth stripes moving at different speeds per channel, and a white square moving across."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(count):
        red = 128 + 100 * np.sin(x / 5.0 + i * 0.7)
        green = 128 + 100 * np.cos(y / 4.0 - i * 0.5)
        blue = 128 + 100 * np.sin((x + y) / 7.0 + i)
        frame = np.stack([red, green, blue], axis=-1)
        top, left = (3 * i) % (height - 8), (5 * i) % (width - 8)
        frame[top : top + 8, left : left + 8] = 255
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return frames


def write_video(path: Path, frames: Iterable[np.ndarray], fps: Fraction | float = 25, **kwargs) -> Path:
    with VideoWriter(path, fps, **kwargs) as writer:
        count = 0
        for frame in frames:
            writer.write(frame)
            count += 1
    assert writer.frames == count
    return path


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def encode_with_pyav(path: Path, frames: list[np.ndarray], fps: int = 25, rotation: int = 0, audio: str | None = None):
    """A video made with PyAV alone (no ganvas): optionally rotated by a display matrix, with a sine tone."""
    container = av.open(str(path), "w")
    height, width = frames[0].shape[:2]
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = width, height, "yuv444p"
    video.options = {"crf": "10"}
    if rotation:
        video.set_display_rotation(rotation)  # counter-clockwise, as VideoFrame.rotation reads it back
    sound = None
    if audio:
        rate = 48000 if audio == "libopus" else 44100
        sound = container.add_stream(audio, rate=rate)
        sound.layout = "stereo"
    for index, pixels in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
        frame.pts = index
        container.mux(video.encode(frame))
    if sound is not None:
        samples = sound.rate * len(frames) // fps
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(samples) / sound.rate)).astype(np.float32)
        for start in range(0, samples, 1024):
            block = tone[start : start + 1024]
            chunk = av.AudioFrame.from_ndarray(np.stack([block, block]), format="fltp", layout="stereo")
            chunk.sample_rate, chunk.pts, chunk.time_base = sound.rate, start, Fraction(1, sound.rate)
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    container.mux(video.encode(None))
    container.close()
    return path


def audio_of(path: Path) -> tuple[str, float]:
    """(codec, seconds from the first packet's start to the last packet's end) of a file's first audio stream."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        packets = [p for p in container.demux(stream) if p.dts is not None]
        start = packets[0].pts * packets[0].time_base
        end = max((p.pts + p.duration) * p.time_base for p in packets)
        return stream.codec_context.name, float(end - start)


def hidden_files(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    ("name", "size", "fps"),
    [
        ("clip.mp4", (48, 64), Fraction(24000, 1001)),
        ("odd.mp4", (47, 33), Fraction(25)),
        ("clip.webm", (47, 33), Fraction(25)),
        ("clip.mkv", (47, 33), Fraction(24000, 1001)),
    ],
)
def test_round_trip_keeps_count_size_rate_and_content(tmp_path, name, size, fps):
    frames = moving_frames(20, *size)
    path = write_video(tmp_path / name, frames, fps)
    info = probe(path)
    assert (info.frames, info.height, info.width, info.fps) == (20, size[0], size[1], fps)
    assert (info.rotation, info.has_audio, info.is_folder) == (0, False, False)
    read = list(read_frames(path))
    assert len(read) == 20 and all(frame.shape == (*size, 3) and frame.dtype == np.uint8 for frame in read)
    errors = [mean_abs(got, want) for got, want in zip(read, frames)]
    assert max(errors) < LOSSY_BOUND
    for i in range(len(frames) - 1):  # each frame is its own, not a neighbour's
        assert mean_abs(read[i], frames[i]) < mean_abs(read[i], frames[i + 1])
    assert hidden_files(tmp_path) == []


def test_gray_frames_round_trip(tmp_path):
    frames = [frame[..., :1] for frame in moving_frames(10)]
    path = write_video(tmp_path / "gray.mkv", frames)
    read = list(read_frames(path, channels=1))
    assert [frame.shape for frame in read] == [(48, 64, 1)] * 10
    assert max(mean_abs(got, want) for got, want in zip(read, frames)) < LOSSY_BOUND


def stored_quadrants(height: int = 48, width: int = 64) -> np.ndarray:
    """Four flat colours, one per quadrant, so any turn or mirror of the frame is plain to see."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[: height // 2, : width // 2] = (250, 10, 10)
    frame[: height // 2, width // 2 :] = (10, 250, 10)
    frame[height // 2 :, : width // 2] = (10, 10, 250)
    frame[height // 2 :, width // 2 :] = (250, 250, 10)
    return frame


@pytest.mark.parametrize(("counter_clockwise", "clockwise"), [(90, 270), (-90, 90), (180, 180)])
def test_rotated_phone_video_is_read_and_written_upright(tmp_path, counter_clockwise, clockwise):
    stored = stored_quadrants()
    source = encode_with_pyav(tmp_path / "phone.mp4", [stored] * 5, rotation=counter_clockwise)
    shown = np.rot90(stored, k=counter_clockwise // 90)  # np.rot90 turns counter-clockwise
    info = probe(source)
    assert (info.rotation, info.height, info.width) == (clockwise, *shown.shape[:2])
    frames = list(read_frames(source))
    assert all(frame.shape == shown.shape for frame in frames)
    assert mean_abs(frames[0], shown) < 3  # a wrong turn or mirror puts other colours there: about 150
    out = write_video(tmp_path / "out.mp4", frames)
    written = probe(out)
    assert (written.rotation, written.height, written.width) == (0, *shown.shape[:2])
    assert mean_abs(next(read_frames(out)), shown) < 6  # a second lossy generation, 4:2:0 at the edges


def test_display_matrix_mirrors_are_undone():
    stored = stored_quadrants()
    one = 1 << 16
    hflip = np.array([-one, 0, 0, 0, one, 0, 0, 0, 1 << 30], np.int32)
    vflip = np.array([one, 0, 0, 0, -one, 0, 0, 0, 1 << 30], np.int32)
    transpose = np.array([0, one, 0, one, 0, 0, 0, 0, 1 << 30], np.int32)  # x' = q, y' = p
    assert np.array_equal(upright(stored, hflip), stored[:, ::-1])
    assert np.array_equal(upright(stored, vflip), stored[::-1])
    assert np.array_equal(upright(stored, transpose), stored.swapaxes(0, 1))
    assert np.array_equal(upright(stored, None), stored)
    assert display_transform(None) == (False, False, False)


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "aac"), (".mkv", "aac"), (".webm", "opus")])
def test_audio_is_copied_through(tmp_path, suffix, codec):
    source = encode_with_pyav(tmp_path / "source.mp4", moving_frames(25), audio="aac")
    assert probe(source).has_audio
    out = write_video(tmp_path / f"translated{suffix}", (255 - f for f in read_frames(source)), audio_from=source)
    info = probe(out)
    assert info.has_audio and info.frames == 25
    got_codec, seconds = audio_of(out)
    assert got_codec == codec  # copied as it is into MP4 and Matroska; WebM holds no AAC, so Opus
    assert abs(seconds - audio_of(source)[1]) < 1 / 25


def test_frame_folder_round_trip_is_exact(tmp_path):
    frames = moving_frames(12)
    folder = tmp_path / "frames"
    write_video(folder, frames)
    assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.png" for i in range(12)]
    info = probe(folder, fps=Fraction(24000, 1001))
    assert (info.frames, info.width, info.height, info.fps, info.is_folder) == (12, 64, 48, Fraction(24000, 1001), True)
    assert probe(folder).fps == 30
    read = list(read_frames(folder))
    assert all(np.array_equal(got, want) for got, want in zip(read, frames)) and len(read) == 12
    assert hidden_files(folder) == []


def test_folder_frames_are_ordered_by_number(tmp_path):
    frames = moving_frames(11)
    for i, frame in enumerate(frames):
        save_uint8(frame, tmp_path / f"frame_{i}.png")  # frame_10 sorts after frame_9
    read = list(read_frames(tmp_path))
    assert all(np.array_equal(got, want) for got, want in zip(read, frames))


def test_video_to_folder_and_back(tmp_path):
    video = write_video(tmp_path / "clip.mkv", moving_frames(8))
    write_video(tmp_path / "frames", read_frames(video), fps=probe(video).fps)
    again = write_video(tmp_path / "again.mp4", read_frames(tmp_path / "frames"), fps=probe(video).fps)
    assert probe(again).frames == 8 and probe(again).fps == 25


def test_keyboard_interrupt_leaves_a_playable_partial_video(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 25) as writer:
            for index, frame in enumerate(moving_frames(20)):
                if index == 5:
                    raise KeyboardInterrupt
                writer.write(frame)
    assert writer.frames == 5
    assert probe(path).frames == 5 and len(list(read_frames(path))) == 5
    assert hidden_files(tmp_path) == []


def test_interrupted_video_keeps_the_audio_of_the_frames_written(tmp_path):
    source = encode_with_pyav(tmp_path / "source.mp4", moving_frames(25), audio="aac")
    path = tmp_path / "partial.webm"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(path, 25, audio_from=source) as writer:
            for index, frame in enumerate(read_frames(source)):
                if index == 5:
                    raise KeyboardInterrupt
                writer.write(frame)
    assert probe(path).frames == 5 and probe(path).has_audio
    assert abs(audio_of(path)[1] - 5 / 25) < 2 / 25  # Opus frames of 20 ms, cut at the next packet
    assert hidden_files(tmp_path) == []


def test_zero_frames_leave_nothing(tmp_path):
    with VideoWriter(tmp_path / "empty.mp4", 25) as writer:
        pass
    assert writer.frames == 0
    with pytest.raises(RuntimeError):
        with VideoWriter(tmp_path / "failed.webm", 25):
            raise RuntimeError("the model failed before the first frame")
    with VideoWriter(tmp_path / "frames", 25):
        pass
    assert list(tmp_path.iterdir()) == []


def test_frames_are_streamed_and_a_corrupt_packet_names_the_frame(tmp_path):
    frames = moving_frames(30)
    path = write_video(tmp_path / "clip.mp4", frames)  # the index (moov) is written first: faststart
    data = bytearray(path.read_bytes())
    start = int(len(data) * 0.6)
    data[start:] = np.random.default_rng(0).integers(0, 256, len(data) - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    stream = read_frames(path)
    assert inspect.isgenerator(stream)
    assert mean_abs(next(stream), frames[0]) < LOSSY_BOUND  # read before the damaged bytes are reached
    with pytest.raises(DataError, match=r"frame \d+ of .*clip\.mp4 cannot be decoded"):
        list(stream)


def test_truncated_webm_is_refused(tmp_path):
    path = write_video(tmp_path / "clip.webm", moving_frames(30))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"clip\.webm ends after \d+ frames"):
        probe(path)
    with pytest.raises(DataError, match=r"clip\.webm ends after \d+ frames"):
        list(read_frames(path))


@pytest.mark.parametrize("writer", ["ganvas", "pyav"])
def test_truncated_mp4_is_refused(tmp_path, writer):
    path = tmp_path / "cut.mp4"
    if writer == "ganvas":
        write_video(path, moving_frames(30))  # index first: the cut file opens, but holds too few packets
    else:
        encode_with_pyav(path, moving_frames(30))  # index last: "moov atom not found"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.mp4"):
        probe(path)
    with pytest.raises(DataError, match=r"cut\.mp4"):
        list(read_frames(path))


def test_text_file_named_mp4_is_refused(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 20)
    with pytest.raises(DataError, match=r"notes\.mp4 as a video"):
        probe(path)
    with pytest.raises(DataError, match=r"notes\.mp4 as a video"):
        next(read_frames(path))


def test_file_without_video_stream_is_refused(tmp_path):
    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libopus", rate=48000)
        block = np.zeros((1, 960), np.float32)
        for index in range(5):
            chunk = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = 48000, 960 * index, Fraction(1, 48000)
            container.mux(stream.encode(chunk))
        container.mux(stream.encode(None))
    with pytest.raises(DataError, match=r"sound\.mkv holds no video stream"):
        probe(path)


def test_missing_paths_are_refused(tmp_path):
    for missing in (tmp_path / "gone.mp4", tmp_path / "gone"):
        with pytest.raises(DataError, match="gone.* does not exist"):
            probe(missing)
        with pytest.raises(DataError, match="gone.* does not exist"):
            read_frames(missing)  # at the call, before the first frame is asked for
    with pytest.raises(DataError, match=r"gone\.mkv does not exist"):
        VideoWriter(tmp_path / "out.mp4", 25, audio_from=tmp_path / "gone.mkv")


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no frames in .*empty"):
        probe(tmp_path / "empty")
    with pytest.raises(DataError, match=r"no frames in .*empty"):
        read_frames(tmp_path / "empty")


def test_folder_of_mixed_sizes_names_the_first_that_differs(tmp_path):
    save_uint8(moving_frames(1)[0], tmp_path / "000000.png")
    save_uint8(moving_frames(1)[0], tmp_path / "000001.png")
    save_uint8(moving_frames(1, 32, 32)[0], tmp_path / "000002.png")
    save_uint8(moving_frames(1, 16, 16)[0], tmp_path / "000003.png")
    with pytest.raises(DataError, match=r"000002\.png is 32 x 32 but the first frame 000000\.png is 64 x 48"):
        probe(tmp_path)
    frames = read_frames(tmp_path)
    assert next(frames).shape == (48, 64, 3)
    with pytest.raises(DataError, match=r"000002\.png is 32 x 32"):
        list(frames)


def test_writer_refuses_a_frame_of_another_size_and_a_used_folder(tmp_path):
    with pytest.raises(ValueError, match=r"frame 1 for .*clip\.mp4 is 32 x 32, but the first was 64 x 48"):
        with VideoWriter(tmp_path / "clip.mp4", 25) as writer:
            writer.write(moving_frames(1)[0])
            writer.write(moving_frames(1, 32, 32)[0])
    assert probe(tmp_path / "clip.mp4").frames == 1  # what was written before the error is kept
    write_video(tmp_path / "frames", moving_frames(2))
    with pytest.raises(DataError, match=r"frames already holds 2 images"):
        VideoWriter(tmp_path / "frames", 25)


def test_missing_pyav_is_one_sentence(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", moving_frames(2))
    monkeypatch.setitem(sys.modules, "av", None)  # import av now raises ImportError
    with pytest.raises(DataError, match=r'needs PyAV: pip install "ganvas\[video\]"'):
        probe(path)
    with pytest.raises(DataError, match=r'needs PyAV: pip install "ganvas\[video\]"'):
        VideoWriter(tmp_path / "out.webm", 25)


def test_video_suffixes():
    assert VIDEO_SUFFIXES == (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
    assert is_video_file(Path("a/Clip.MP4")) and is_video_file(Path("b.webm"))
    assert not is_video_file(Path("frames")) and not is_video_file(Path("x.png"))
