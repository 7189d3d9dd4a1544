"""Read and write videos and folders of frames, one frame at a time, with PyAV (the optional `ganvas[video]`).

Frames are H x W x C uint8 arrays (RGB, or L with one channel), given and taken upright: a phone video's
display-matrix rotation (90, 180, 270 degrees, with or without a mirror) is applied when reading, and
videos are written upright with no rotation, so they show at the size the source showed. Nothing holds
more than a few frames in memory.

Written videos: .mp4, .m4v, .mov, .mkv and .avi hold H.264 (libx264), .webm holds VP9 (libvpx-vp9), at a
constant rate, BT.709 colours in limited range (tagged, so players and PyAV convert back alike). H.264 in
4:2:0 needs even widths and heights, so a frame of odd width or height is written in 4:4:4 (High 4:4:4
profile), which keeps its exact size; some players (web browsers, QuickTime) do not play that profile,
so give frames of even size where the file must play everywhere. VP9 keeps odd sizes in 4:2:0.
"""

from __future__ import annotations

import io
import logging
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

from ganvas.data.io import image_size, is_image_file, read_image, save_uint8
from ganvas.errors import DataError, WriteError

log = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")

# The frame rate of a folder of frames when none is given (the rate phones and screen recorders use most).
DEFAULT_FOLDER_FPS = Fraction(30)

# Muxer for each suffix written; the video encoder is libx264 except for WebM, which holds VP9 only.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
_VP9_SUFFIXES = (".webm",)

# The encoder of the audio codec a container usually holds, for sources whose codec it cannot hold.
_AUDIO_ENCODERS = {"webm": "libopus", "matroska": "libopus", "mp4": "aac", "mov": "aac", "avi": "aac"}

# BT.709 matrix, primaries and transfer, limited range: FFmpeg's AVCOL_* / AVCOL_RANGE_MPEG numbers.
_BT709, _LIMITED_RANGE = 1, 1


def is_video_file(path: Path) -> bool:
    """Whether the file name ends with one of VIDEO_SUFFIXES (any case)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a video file or a folder of frames holds.

    `width` and `height` are the upright size, as shown (and as read_frames gives the frames);
    `rotation` is the clockwise turn in degrees a player gives the stored frames to show them upright
    (0, 90, 180 or 270; 90 for a phone video shot upright; 0 for folders); `frames` is the exact count.
    """

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    rotation: int
    has_audio: bool
    is_folder: bool


def _import_av(path: Path) -> ModuleType:
    """The PyAV module; DataError naming the file and the extra to install when it is missing."""
    try:
        import av
    except ImportError as err:
        raise DataError(f'reading/writing video needs PyAV: pip install "ganvas[video]" (for {path})') from err
    return av


def as_rate(fps: Fraction | float | int, what: str = "fps") -> Fraction:
    """A frame rate as an exact Fraction (a float such as 23.976 becomes 24000/1001); ValueError unless positive."""
    if isinstance(fps, float):
        rate = Fraction(fps).limit_denominator(1001)
    else:
        rate = Fraction(fps)
    if rate <= 0:
        raise ValueError(f"{what} must be positive, got {fps}; pass the frame rate, e.g. 25 or 30000/1001")
    return rate


def _tidy_rate(rate: Fraction) -> Fraction:
    """A stream's rate with FFmpeg's rounding undone: 1800000/60061 stays, 23976023/1000000 becomes 24000/1001."""
    tidy = rate.limit_denominator(1001)
    return tidy if abs(tidy - rate) <= rate * Fraction(1, 100000) else rate


# ----------------------------------------------------------------------------------------------- orientation


def display_transform(matrix: np.ndarray | None) -> tuple[bool, bool, bool]:
    """(transpose, flip rows, flip columns) that turn stored frames upright for a 3 x 3 display matrix.

    The matrix is FFmpeg's (row-major int32, 16.16 fixed point in its upper 2 x 2): a stored pixel at
    column p, row q is shown at (a p + c q, b p + d q). Angles between multiples of 90 degrees round
    to the nearest one. None (no matrix) leaves frames as they are.
    """
    if matrix is None:
        return False, False, False
    a, b, _, c, d, *_ = (float(v) for v in np.asarray(matrix).reshape(-1))
    if max(abs(a), abs(d)) >= max(abs(b), abs(c)):  # shown x follows stored x: no transpose
        return False, d < 0, a < 0
    # After the transpose, rows are stored columns (p) and columns stored rows (q): shown y = b p, x = c q.
    return True, b < 0, c < 0


def upright(array: np.ndarray, matrix: np.ndarray | None) -> np.ndarray:
    """A stored H x W (x C) frame turned as its display matrix says, as a contiguous array."""
    transpose, flip_rows, flip_cols = display_transform(matrix)
    if transpose:
        array = array.swapaxes(0, 1)
    if flip_rows:
        array = array[::-1]
    if flip_cols:
        array = array[:, ::-1]
    return np.ascontiguousarray(array)


def rotation_degrees(matrix: np.ndarray | None) -> int:
    """The clockwise turn (0, 90, 180 or 270) a display matrix gives the stored frames, mirrors aside."""
    if matrix is None:
        return 0
    a, b, *_ = (float(v) for v in np.asarray(matrix).reshape(-1))
    if a == 0 and b == 0:
        return 0
    # FFmpeg's av_display_rotation_get: the counter-clockwise angle is -atan2(b, a); clockwise is its negative.
    return int(round(np.degrees(np.arctan2(b, a)) / 90.0)) % 4 * 90


def _display_matrix(frame: Any) -> np.ndarray | None:
    """The display matrix a decoded frame carries (from the stream's side data), or None."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    return None if data is None else np.frombuffer(bytes(data), dtype=np.int32)


# ------------------------------------------------------------------------------------------------- reading


def _open_input(av: ModuleType, path: Path) -> Any:
    """An opened input container; DataError naming the file when it is missing, no video, or damaged."""
    if not path.exists():
        raise DataError(f"video {path} does not exist; check the path")
    if not path.is_file():
        raise DataError(f"{path} is not a file; pass a video file or a folder of frames")
    try:
        return av.open(str(path))
    except av.FFmpegError as err:
        raise DataError(
            f"cannot open {path} as a video ({_reason(err)}): it is not a video file, or it is truncated "
            f"or damaged (e.g. 'moov atom not found'); use the complete file, or re-encode it, e.g. "
            f"ffmpeg -i {path.name} fixed.mp4"
        ) from None


def _reason(err: BaseException) -> str:
    """FFmpeg's words for an error, without the errno and the function name PyAV adds."""
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip().rstrip(".") or type(err).__name__


def _video_stream(container: Any, path: Path) -> Any:
    """The first video stream; DataError when the file holds none (an audio file named .mp4)."""
    if not container.streams.video:
        raise DataError(f"{path} holds no video stream (only {_stream_kinds(container)}); pass a video file")
    return container.streams.video[0]


def _stream_kinds(container: Any) -> str:
    kinds = sorted({stream.type for stream in container.streams})
    return ", ".join(kinds) if kinds else "no streams"


def _stream_rate(stream: Any, path: Path) -> Fraction:
    """The stream's average frame rate (FFmpeg's guess when the header has none)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return _tidy_rate(Fraction(rate))
    raise DataError(
        f"{path} does not say its frame rate; re-encode it with one, e.g. ffmpeg -i {path.name} -r 30 out.mp4"
    )


def _stream_duration(stream: Any) -> Fraction | None:
    """The seconds a Matroska/WebM track's DURATION tag gives (FFmpeg writes it; the end of the last frame)."""
    found = re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", stream.metadata.get("DURATION", "").strip())
    if not found:
        return None
    hours, minutes, seconds = found.groups()
    return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)


class _Decoder:
    """Demuxes and decodes one video stream, counting its packets; FFmpeg's errors become DataError."""

    def __init__(self, av: ModuleType, container: Any, stream: Any, path: Path) -> None:
        self.av, self.stream, self.path = av, stream, path
        self.packets = 0  # packets with data
        self.shown = 0  # of those, the ones the decoder shows (not marked to discard by an edit list)
        self.end = Fraction(0)  # seconds at which the last frame read so far ends
        self._packets = container.demux(stream)

    def frames(self, what: str) -> Iterator[Any]:
        """Decoded frames; DataError naming `what` (e.g. "frame {index}") of the frame that failed."""
        index = 0
        while True:
            try:
                packet = next(self._packets, None)
                if packet is None:
                    return
                self._count(packet)
                decoded = packet.decode()  # the empty packet at the end flushes the decoder
            except self.av.FFmpegError as err:
                raise DataError(
                    f"{what.format(index=index)} of {self.path} cannot be decoded ({_reason(err)}); re-encode the "
                    f"video, e.g. ffmpeg -i {self.path.name} fixed.mp4"
                ) from None
            for frame in decoded:
                yield frame
                index += 1

    def count_rest(self) -> None:
        """Read the packets left without decoding them, counting them."""
        try:
            for packet in self._packets:
                self._count(packet)
        except self.av.FFmpegError as err:
            raise DataError(
                f"{self.path} cannot be read after packet {self.packets} ({_reason(err)}): the file is truncated "
                f"or damaged; use the complete file, or re-encode it, e.g. ffmpeg -i {self.path.name} fixed.mp4"
            ) from None

    def _count(self, packet: Any) -> None:
        if not packet.size:
            return
        self.packets += 1
        self.shown += not packet.is_discard
        if packet.pts is not None and packet.time_base is not None:
            self.end = max(self.end, (packet.pts + (packet.duration or 0)) * packet.time_base)

    def check_complete(self, rate: Fraction) -> None:
        """DataError when the packets read fall short of what the header promises (a truncated or cut file).

        MP4 and MOV headers count the frames exactly; a Matroska track's DURATION tag gives the end of
        its last frame, which may differ from the last packet's end by rounding (two frames and 1% are
        allowed). Other files say nothing to check against.
        """
        path, expected = self.path, self.stream.frames
        fix = f"use the complete file, or re-encode what is left, e.g. ffmpeg -i {path.name} fixed.mp4"
        if expected and self.packets < expected:
            raise DataError(
                f"{path} ends after {self.packets} frames but its header says it holds {expected}: "
                f"the file is truncated or damaged; {fix}"
            )
        duration = _stream_duration(self.stream)
        if duration is not None and self.end < duration - 2 / rate - duration / 100:
            raise DataError(
                f"{path} ends after {self.packets} frames ({float(self.end):.2f} s) but its header says it lasts "
                f"{float(duration):.2f} s: the file is truncated or damaged; {fix}"
            )


def probe(path: Path, fps: Fraction | float | None = None) -> VideoInfo:
    """Size, rate, exact frame count, rotation and audio of a video file or a folder of frames.

    A video's frames are counted by reading its packets, not decoding them (about as fast as reading
    the file); only the first frame is decoded, for the upright size and the rotation. `fps` is a
    folder's frame rate (default 30) or, for a video, a rate that replaces the file's own. A folder
    holds images named in frame order (see frame_files), all of one size.
    """
    path = Path(path)
    if path.is_dir():
        return _probe_folder(path, fps)
    if not path.exists():
        raise DataError(f"video {path} does not exist; check the path")
    av = _import_av(path)
    container = _open_input(av, path)
    try:
        stream = _video_stream(container, path)
        rate = _stream_rate(stream, path)
        decoder = _Decoder(av, container, stream, path)
        first = next(decoder.frames("the first frame"), None)
        decoder.count_rest()
        decoder.check_complete(rate)
        if first is None:
            raise DataError(f"{path} holds no frame that can be decoded; re-encode it or use another file")
        matrix = _display_matrix(first)
        transpose = display_transform(matrix)[0]
        return VideoInfo(
            path=path,
            width=first.height if transpose else first.width,
            height=first.width if transpose else first.height,
            fps=as_rate(fps) if fps is not None else rate,
            frames=decoder.shown,
            rotation=rotation_degrees(matrix),
            has_audio=bool(container.streams.audio),
            is_folder=False,
        )
    finally:
        container.close()


def _natural_key(path: Path) -> list[Any]:
    """Sort key that orders frame_2.png before frame_10.png (numbers compared by value)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files directly in a folder, in frame order (names sorted, numbers by value); hidden files skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"frame folder {folder} does not exist; check the path")
    files = sorted(
        (p for p in folder.iterdir() if is_image_file(p) and p.is_file() and not p.name.startswith(".")),
        key=_natural_key,
    )
    if not files:
        raise DataError(
            f"found no frames in {folder} (looked for image files directly in it); pass a folder of images "
            f"named in frame order (000000.png, 000001.png, ...) or a video file"
        )
    return files


def _different_size(path: Path, size: tuple[int, int], first: Path, first_size: tuple[int, int]) -> DataError:
    return DataError(
        f"frame {path} is {size[1]} x {size[0]} but the first frame {first.name} is {first_size[1]} x {first_size[0]}; "
        f"all frames of a video must have one size: resize or remove {path.name}"
    )


def _probe_folder(folder: Path, fps: Fraction | float | None) -> VideoInfo:
    files = frame_files(folder)
    first_size = image_size(files[0])
    for file in files[1:]:
        size = image_size(file)
        if size != first_size:
            raise _different_size(file, size, files[0], first_size)
    return VideoInfo(
        path=folder,
        width=first_size[1],
        height=first_size[0],
        fps=as_rate(fps) if fps is not None else DEFAULT_FOLDER_FPS,
        frames=len(files),
        rotation=0,
        has_audio=False,
        is_folder=True,
    )


def video_fps(path: Path) -> Fraction:
    """The frame rate a video's header gives (DEFAULT_FOLDER_FPS for a folder of frames), without counting frames."""
    path = Path(path)
    if path.is_dir():
        return DEFAULT_FOLDER_FPS
    av = _import_av(path)
    container = _open_input(av, path)
    try:
        return _stream_rate(_video_stream(container, path), path)
    finally:
        container.close()


def read_frames(path: Path, channels: int = 3) -> Iterator[np.ndarray]:
    """The frames of a video file or a folder of frames, one at a time, as upright H x W x channels uint8 arrays.

    channels 3 gives RGB, 1 gives luma (L). The path is checked at once; the file is opened when the
    first frame is asked for, and a frame that cannot be decoded raises DataError naming the file and
    the frame's index. Frames of a folder are read in frame_files' order and must all have one size.
    """
    path = Path(path)
    if channels not in (1, 3):
        raise ValueError(f"cannot read the frames of {path} with {channels} channels; pass channels=1 or 3")
    if path.is_dir():
        return _folder_frames(frame_files(path), channels)
    if not path.exists():
        raise DataError(f"video {path} does not exist; check the path")
    return _video_frames(_import_av(path), path, channels)


def _folder_frames(files: list[Path], channels: int) -> Iterator[np.ndarray]:
    first_size = None
    for file in files:
        pixels = read_image(file, channels).numpy()
        frame = np.rint(pixels.transpose(1, 2, 0) * 255.0).astype(np.uint8)
        if first_size is None:
            first_size = frame.shape[:2]
        elif frame.shape[:2] != first_size:
            raise _different_size(file, frame.shape[:2], files[0], first_size)
        yield frame


def _video_frames(av: ModuleType, path: Path, channels: int) -> Iterator[np.ndarray]:
    container = _open_input(av, path)
    try:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        rate = _stream_rate(stream, path)
        pixel_format = "gray" if channels == 1 else "rgb24"
        reformatter = av.video.reformatter.VideoReformatter()  # one for all frames: swscale set up once
        decoder = _Decoder(av, container, stream, path)
        for frame in decoder.frames("frame {index}"):
            pixels = reformatter.reformat(frame, format=pixel_format).to_ndarray()
            yield upright(pixels[..., None] if channels == 1 else pixels, _display_matrix(frame))
        decoder.check_complete(rate)
    finally:
        container.close()


# ------------------------------------------------------------------------------------------------- writing


def _muxer_takes(av: ModuleType, muxer: str, stream: Any) -> bool:
    """Whether a container of this muxer can hold the stream's packets as they are (tried on an empty file)."""
    trial = av.open(io.BytesIO(), "w", format=muxer)
    try:
        trial.add_stream_from_template(stream)
        trial.start_encoding()  # writes the header, where muxers check codecs (Opus in MOV fails here)
        return True
    except (av.FFmpegError, ValueError):
        return False
    finally:
        try:
            trial.close()
        except av.FFmpegError as err:  # the trailer of a file with no packets; nothing to keep
            log.debug("closing a trial %s container: %s", muxer, err)


class _AudioCopy:
    """Copies the first audio stream of a source video into an output container, interleaved with the video.

    Packets are copied unchanged when the output container holds the codec; otherwise (AAC into WebM,
    say) the audio is decoded and encoded with the codec the container usually holds (_AUDIO_ENCODERS:
    Opus for WebM and Matroska, AAC for MP4, MOV and AVI). Timestamps are shifted by the source video's
    start, so the audio stays in step with frames written from 0.
    """

    def __init__(self, av: ModuleType, source: Path, output: Any) -> None:
        self.av = av
        self.source = source
        self.input = _open_input(av, source)
        self.stream = self.input.streams.audio[0] if self.input.streams.audio else None
        self.out_stream = None
        self.pending: list[Any] = []
        if self.stream is None:
            return
        videos = self.input.streams.video
        start = videos[0].start_time if videos and videos[0].start_time is not None else 0
        self.shift = Fraction(start) * (videos[0].time_base if videos else 0)  # seconds
        self.transcode = not _muxer_takes(av, output.format.name, self.stream)
        if not self.transcode:
            self.out_stream = output.add_stream_from_template(self.stream)
        else:
            name = _AUDIO_ENCODERS.get(output.format.name, output.default_audio_codec)
            rates = av.Codec(name, "w").audio_rates
            rate = self.stream.rate if not rates or self.stream.rate in rates else max(rates)
            self.out_stream = output.add_stream(name, rate=rate)
            self.out_stream.layout = self.stream.layout.name if self.stream.channels <= 2 else "stereo"
        self.packets = self.input.demux(self.stream)

    def copy_until(self, seconds: Fraction | None, output: Any) -> None:
        """Mux the source's audio packets that start before `seconds` (None: all that are left)."""
        if self.out_stream is None:
            return
        for packet in self._packets_until(seconds):
            if self.transcode:
                self._encode(self.stream.decode(packet), output)
            else:
                offset = round(self.shift / packet.time_base)
                if packet.pts is not None:
                    packet.pts -= offset
                packet.dts -= offset
                packet.stream = self.out_stream
                output.mux(packet)

    def _packets_until(self, seconds: Fraction | None) -> Iterator[Any]:
        while True:
            packet = self.pending.pop() if self.pending else next(self.packets, None)
            if packet is None:
                return
            if packet.dts is None:
                continue  # the empty packet that ends the stream
            if seconds is not None and packet.pts is not None and packet.pts * packet.time_base - self.shift >= seconds:
                self.pending.append(packet)
                return
            yield packet

    def _encode(self, frames: list[Any], output: Any) -> None:
        for frame in frames:
            if frame.pts is not None and frame.time_base is not None:
                frame.pts -= round(self.shift / frame.time_base)
            output.mux(self.out_stream.encode(frame))

    def finish(self, output: Any) -> None:
        """Flush a transcoding encoder and close the source."""
        try:
            if self.out_stream is not None and self.transcode:
                self._encode(self.stream.decode(None), output)
                output.mux(self.out_stream.encode(None))
        finally:
            self.input.close()


class VideoWriter:
    """Writes frames to a video file, or to a folder as numbered PNGs; use it as a context manager.

    A path with a video suffix (VIDEO_SUFFIXES) is written to a hidden temporary file beside it, renamed
    onto `path` by close(): also when the with-block ends by an exception, KeyboardInterrupt included,
    so an interrupted run leaves a playable video of the frames written so far (the encoder flushed,
    the index written). No frame written: no file, and no temporary left behind. `quality` is the
    encoder's constant rate factor (x264 0..51, VP9 0..63; lower is better and larger; 18 looks about
    lossless). The frames are encoded at `fps`, a constant rate, as the module's docstring says.

    `audio_from` names a video whose first audio stream is copied into the output, in full on close, up
    to the last written frame when the block ends by an exception. Its packets are copied unchanged
    when the output container can hold its codec; when it cannot (AAC into WebM, Opus into MOV or
    AVI), the audio is transcoded to the codec the container usually holds: Opus for WebM and
    Matroska, AAC for MP4, MOV and AVI.

    Any other path is a folder of frames 000000.png, 000001.png, ... (each written atomically); it
    must hold no images yet, so frames of two videos never mix. A folder holds no audio: `audio_from`
    is not used there. `frames` counts the frames written.
    """

    def __init__(self, path: Path, fps: Fraction | float, audio_from: Path | None = None, quality: int = 18) -> None:
        self.path = Path(path)
        self.fps = as_rate(fps)
        self.audio_from = Path(audio_from) if audio_from is not None else None
        self.quality = int(quality)
        self.frames = 0
        self.is_video = is_video_file(self.path)
        self._size: tuple[int, int] | None = None
        self._closed = False
        self._container: Any = None
        self._stream: Any = None
        self._audio: _AudioCopy | None = None
        self._tmp: Path | None = None
        if self.is_video:
            self._av = _import_av(self.path)
            top = 51 if self.path.suffix.lower() not in _VP9_SUFFIXES else 63
            if not 0 <= self.quality <= top:
                raise ValueError(
                    f"quality {quality} for {self.path} is outside 0..{top}; pass e.g. 18 (lower is better)"
                )
            if self.audio_from is not None and not self.audio_from.is_file():
                raise DataError(f"the audio source {self.audio_from} does not exist; check the path or pass no audio")
        else:
            self._check_folder()
            if self.audio_from is not None:
                log.info("%s is a folder of frames, which holds no audio; %s's audio is not copied", path, audio_from)

    def _check_folder(self) -> None:
        if self.path.is_file():
            raise DataError(
                f"{self.path} is a file without a video suffix; name a video ({', '.join(VIDEO_SUFFIXES)}) "
                f"or a folder for the frames"
            )
        if self.path.is_dir():
            held = sum(1 for p in self.path.iterdir() if is_image_file(p))
            if held:
                raise DataError(
                    f"the frame folder {self.path} already holds {held} images; pass a new or empty folder, "
                    f"so frames of two videos do not mix"
                )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
            return
        try:
            self._finish(partial=True)
        except Exception as close_error:  # the block's own exception is the one to see
            log.warning("could not finish the partial video %s (%s)", self.path, close_error)

    def write(self, frame: np.ndarray) -> None:
        """Add one H x W x 3 (or H x W x 1, or H x W) uint8 frame; the first frame fixes the size."""
        if self._closed:
            raise ValueError(f"the writer of {self.path} is closed; open a new VideoWriter to write more frames")
        frame = self._checked(frame)
        if self.is_video:
            self._write_video(frame)
        else:
            save_uint8(frame, self.path / f"{self.frames:06d}.png")
        self.frames += 1

    def _checked(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim == 2:
            frame = frame[..., None]
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] not in (1, 3):
            raise ValueError(
                f"frame {self.frames} for {self.path} is {frame.dtype} of shape {frame.shape}; pass H x W x 3 "
                f"(or x 1) uint8 pixels, e.g. ganvas.data.io.tensor_to_uint8(image)"
            )
        if self._size is None:
            self._size = frame.shape[:2]
        elif frame.shape[:2] != self._size:
            raise ValueError(
                f"frame {self.frames} for {self.path} is {frame.shape[1]} x {frame.shape[0]}, but the first was "
                f"{self._size[1]} x {self._size[0]}; all frames of a video must have one size"
            )
        return frame

    def _open_video(self, height: int, width: int) -> None:
        av = self._av
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.stem}.{secrets.token_hex(4)}.tmp{self.path.suffix}")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the usual permissions, less the umask
        self._tmp = tmp
        suffix = self.path.suffix.lower()
        muxer = _MUXERS[suffix]
        options = {"movflags": "+faststart"} if muxer in ("mp4", "mov") else {}
        self._container = av.open(str(tmp), "w", format=muxer, options=options)
        vp9 = suffix in _VP9_SUFFIXES
        stream = self._container.add_stream("libvpx-vp9" if vp9 else "libx264", rate=self.fps)
        stream.width, stream.height = width, height
        even = width % 2 == 0 and height % 2 == 0
        stream.pix_fmt = "yuv420p" if even or vp9 else "yuv444p"
        stream.colorspace = stream.color_primaries = stream.color_trc = _BT709
        stream.color_range = _LIMITED_RANGE
        crf = str(self.quality)
        # VP9's constant quality needs the bit rate cap off; cpu-used 4 and row threads are its usual speed.
        stream.options = {"crf": crf, "b": "0", "row-mt": "1", "cpu-used": "4"} if vp9 else {"crf": crf}
        self._stream = stream
        # One reformatter for all frames: frame.reformat would set swscale up anew for each (30 times slower).
        self._reformatter = av.video.reformatter.VideoReformatter()
        if self.audio_from is not None:
            self._audio = _AudioCopy(av, self.audio_from, self._container)

    def _write_video(self, pixels: np.ndarray) -> None:
        av = self._av
        if self._container is None:
            try:
                self._open_video(*pixels.shape[:2])
            except BaseException as err:
                self._discard()
                if isinstance(err, av.FFmpegError | OSError):
                    raise self._write_error(err) from err
                raise
        gray = pixels.shape[-1] == 1
        frame = av.VideoFrame.from_ndarray(
            np.ascontiguousarray(pixels[..., 0] if gray else pixels), format="gray" if gray else "rgb24"
        )
        frame = self._reformatter.reformat(
            frame, format=self._stream.pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG"
        )
        frame.pts = self.frames
        frame.time_base = 1 / self.fps
        try:
            self._container.mux(self._stream.encode(frame))
            if self._audio is not None:
                self._audio.copy_until((self.frames + 1) / self.fps, self._container)
        except (av.FFmpegError, OSError) as err:
            raise self._write_error(err) from err

    def _write_error(self, err: BaseException) -> WriteError:
        if isinstance(err, OSError):  # FFmpeg's ENOSPC, EACCES ... are OSErrors too
            fix = "free some disk space or write to another folder"
        else:
            fix = "write another format (.mp4, .mkv, .webm) or pass no audio source"
        return WriteError(
            f"could not write the video {self.path} ({_reason(err)}); {fix}; any file already at that path is intact"
        )

    def close(self) -> Path:
        """Finish the video (flush the encoder, copy the rest of the audio, rename it into place); the path."""
        self._finish(partial=False)
        return self.path

    def _finish(self, partial: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if self._container is None:
            return
        if not self.frames:  # the first frame failed: as if none was written
            self._discard()
            return
        try:
            self._container.mux(self._stream.encode(None))
            if self._audio is not None:
                self._audio.copy_until(self.frames / self.fps if partial else None, self._container)
                self._audio.finish(self._container)
            self._container.close()
            os.replace(self._tmp, self.path)
        except BaseException as err:
            self._discard()
            if isinstance(err, self._av.FFmpegError | OSError):
                raise self._write_error(err) from err
            raise

    def _discard(self) -> None:
        """Close what is open and remove the temporary file (a write that cannot be finished)."""
        for closable in (self._audio and self._audio.input, self._container):
            if closable is not None:
                try:
                    closable.close()
                except Exception as err:  # closing a broken container; the file goes anyway
                    log.debug("closing %s failed: %s", self.path, err)
        self._container = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
