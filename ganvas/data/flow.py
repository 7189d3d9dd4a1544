"""Optical flow of frame files: DIS flow (OpenCV), validity masks, Middlebury .flo files and a per-sequence cache.

Flows follow nets.flow's convention: the backward flow of frame t gives, for each pixel p of frame t, the
offset p + flow(p) of the same point in frame t-1, so warping frame t-1 by it reproduces frame t. Here
flows are NumPy arrays, H x W x 2 float32 (x then y, in pixels); validity masks H x W bool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganvas.data.io import image_size, read_image, save_uint8
from ganvas.errors import CheckpointError, DataError
from ganvas.files import atomic_write, atomic_write_text
from ganvas.nets.flow import consistency_mask
from ganvas.safe import load_json

log = logging.getLogger(__name__)

PRESETS: tuple[str, ...] = ("ultrafast", "fast", "medium")
_PRESET_CONSTANTS = {
    "ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
    "fast": "DISOPTICAL_FLOW_PRESET_FAST",
    "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM",
}
# DIS refuses images below about 12 x 12 pixels (its patches); smaller frames are padded by repeating edges.
_DIS_MIN_SIDE = 16

# Middlebury .flo: the float 202021.25 ("PIEH" in little-endian bytes), int32 width, int32 height, then
# height x width (u, v) float32 pairs, row by row.
FLO_MAGIC = 202021.25
_FLO_HEADER = struct.Struct("<fii")
_FLO_MAX_SIDE = 1 << 16

MANIFEST = "manifest.json"
_MANIFEST_VERSION = 1


def _cv2():
    """The cv2 module, or a DataError saying how to install it."""
    try:
        import cv2
    except ImportError as err:
        raise DataError('optical flow needs OpenCV: pip install "ganvas[video]"') from err
    return cv2


def to_gray(image: np.ndarray) -> np.ndarray:
    """An H x W uint8 frame from uint8 grey (H x W or H x W x 1) or RGB(A) (H x W x 3|4), with Pillow's luma.

    Pillow's integer luma is what read_frame_gray gives for an RGB file, so arrays and files agree exactly.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 frame, got {image.dtype}; convert it with np.clip(x * 255, 0, 255).round()")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return np.asarray(Image.fromarray(np.ascontiguousarray(image[..., :3])).convert("L"))
    raise ValueError(f"expected an H x W grey or H x W x 3 RGB frame, got shape {image.shape}")


def read_frame_gray(path: Path) -> np.ndarray:
    """A frame file as H x W uint8 grey (Pillow's luma; 16-bit files scaled to 8 bits); DataError naming a bad file."""
    gray = read_image(Path(path), 1)[0].numpy()
    return np.rint(gray * 255.0).astype(np.uint8)


class FlowNetwork:
    """A user's optical flow network, as an ONNX file (RAFT, PWC-Net, FlowNet2 ... exported to ONNX), run by ONNX
    Runtime: the graph is data, no code of the file runs, and nothing is downloaded.

    The graph takes two images (first the frame whose flow is wanted, then the other) as float32 N x 3 x H x W
    RGB in [0, 255], as RAFT's exports do, and gives the flow from the first to the second, N x 2 x H x W in
    pixels (its last output, where it gives one per refinement step). Frames are padded to a multiple of 8
    by repeating edges and the flow cropped back. Use it where DIS is too coarse: `--flow file --flow_net PATH`.
    """

    def __init__(self, path: Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(f"flow network {path} does not exist; pass --flow_net with an ONNX file of a flow network")
        if path.suffix.lower() != ".onnx":
            raise DataError(
                f"flow network {path} is not an .onnx file; export the network to ONNX (torch.onnx.export with two "
                f"image inputs), since ganvas runs no code from files"
            )
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise DataError(
                f'running the flow network {path} needs ONNX Runtime: pip install "ganvas[export]"'
            ) from err
        data = path.read_bytes()
        try:
            self.session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own types for damaged graphs
            raise DataError(f"cannot load the flow network {path} ({err}); export it to ONNX again") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        if len(self.inputs) != 2:
            raise DataError(
                f"the flow network {path} takes {len(self.inputs)} inputs; it must take two images (the frame, then "
                f"the other frame)"
            )
        self.path = path
        self.name = "net_" + hashlib.sha256(data).hexdigest()[:12]  # its cache folder: a new file, new flows

    def __call__(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        """cur's backward flow (cur -> prev), H x W x 2 float32, for uint8 RGB (or grey) frames of one size."""
        rgb = [np.asarray(x) for x in (cur, prev)]
        rgb = [np.repeat(x[..., None] if x.ndim == 2 else x, 3, axis=-1) if x.ndim == 2 or x.shape[-1] == 1 else x
               for x in rgb]  # fmt: skip
        height, width = rgb[0].shape[:2]
        pad = ((0, -height % 8), (0, -width % 8), (0, 0))
        batch = [np.pad(x[..., :3], pad, mode="edge").transpose(2, 0, 1)[None].astype(np.float32) for x in rgb]
        try:
            outputs = self.session.run(None, dict(zip(self.inputs, batch)))
        except Exception as err:  # shape or type errors of the graph
            raise DataError(f"the flow network {self.path} failed on a {width}x{height} frame ({err})") from None
        flow = np.asarray(outputs[-1])
        if flow.ndim != 4 or flow.shape[:2] != (1, 2) or flow.shape[2] < height or flow.shape[3] < width:
            raise DataError(
                f"the flow network {self.path} gave an output of shape {flow.shape}; it must give N x 2 x H x W flows"
            )
        return np.ascontiguousarray(flow[0, :, :height, :width].transpose(1, 2, 0), dtype=np.float32)


_NETWORKS: dict[str, FlowNetwork] = {}


def flow_method(flow: str, flow_net: str = "") -> str | FlowNetwork:
    """What --flow names: a DIS preset, or with "file" the network of --flow_net (loaded once per process)."""
    if flow != "file":
        _check_preset(flow)
        return flow
    if not flow_net:
        raise DataError("--flow file takes the flow network from --flow_net PATH (an .onnx file); pass it")
    key = str(Path(flow_net).resolve())
    if key not in _NETWORKS:
        _NETWORKS[key] = FlowNetwork(Path(flow_net))
    return _NETWORKS[key]


def method_name(method: str | FlowNetwork) -> str:
    """A DIS preset's name, or a flow network's (by its file's hash): the cache folder of its flows."""
    return method if isinstance(method, str) else method.name


def compute_flow(prev: np.ndarray, cur: np.ndarray, method: str | FlowNetwork = "medium") -> np.ndarray:
    """cur's backward flow by DIS (a preset name) or by a FlowNetwork."""
    return method(prev, cur) if isinstance(method, FlowNetwork) else dis_flow(prev, cur, method)


def _check_preset(preset: str | FlowNetwork) -> None:
    """ValueError unless preset is one of PRESETS (or a FlowNetwork)."""
    if isinstance(preset, FlowNetwork):
        return
    if preset not in PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; use one of {', '.join(PRESETS)}")


def dis_flow(prev: np.ndarray, cur: np.ndarray, preset: str = "medium") -> np.ndarray:
    """The backward flow of cur (cur -> prev) by DIS (Kroeger et al. 2016), H x W x 2 float32.

    Frames are uint8 grey or RGB of one size (any size; tiny frames are edge-padded for DIS). OpenCV uses
    its own thread pool (cv2.setNumThreads); a DIS object is made per call (it costs microseconds), so
    threads and loader workers share nothing.
    """
    _check_preset(preset)
    cv2 = _cv2()
    prev_gray, cur_gray = to_gray(prev), to_gray(cur)
    if prev_gray.shape != cur_gray.shape:
        raise ValueError(f"frames of different sizes {prev_gray.shape} and {cur_gray.shape}; resize them to one size")
    height, width = cur_gray.shape
    pad_y, pad_x = max(0, _DIS_MIN_SIDE - height), max(0, _DIS_MIN_SIDE - width)
    if pad_y or pad_x:
        prev_gray = np.pad(prev_gray, ((0, pad_y), (0, pad_x)), mode="edge")
        cur_gray = np.pad(cur_gray, ((0, pad_y), (0, pad_x)), mode="edge")
    dis = cv2.DISOpticalFlow_create(getattr(cv2, _PRESET_CONSTANTS[preset]))
    # DIS's calc(I0, I1) gives w with I0(p) ~ I1(p + w(p)): from cur to prev is cur's backward flow.
    flow = dis.calc(cur_gray, prev_gray, None)
    return np.ascontiguousarray(flow[:height, :width], dtype=np.float32)


def flow_validity(flow_bwd: np.ndarray, flow_fwd: np.ndarray) -> np.ndarray:
    """H x W bool: nets.flow.consistency_mask of frame t's backward flow and frame t-1's forward flow (NumPy)."""
    backward = torch.from_numpy(np.ascontiguousarray(flow_bwd, dtype=np.float32)).permute(2, 0, 1)[None]
    forward = torch.from_numpy(np.ascontiguousarray(flow_fwd, dtype=np.float32)).permute(2, 0, 1)[None]
    return consistency_mask(backward, forward)[0, 0].numpy() > 0.5


def flow_and_validity(
    prev: np.ndarray, cur: np.ndarray, preset: str | FlowNetwork = "medium"
) -> tuple[np.ndarray, np.ndarray]:
    """(cur's backward flow H x W x 2 float32, H x W bool validity): DIS (or a FlowNetwork) both ways and the
    forward-backward check."""
    backward = compute_flow(prev, cur, preset)
    forward = compute_flow(cur, prev, preset)  # prev's flow towards cur
    return backward, flow_validity(backward, forward)


# ---------------------------------------------------------------------------------------------- files


def _check_flow_array(flow: np.ndarray, path: Path) -> np.ndarray:
    """flow as float32 H x W x 2, or ValueError naming path."""
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2 or flow.shape[0] < 1 or flow.shape[1] < 1:
        raise ValueError(f"cannot write {path}: a flow must be H x W x 2 (x, y), got shape {flow.shape}")
    return np.ascontiguousarray(flow, dtype="<f4")


def write_flo(path: Path, flow: np.ndarray) -> None:
    """Write an H x W x 2 flow as a Middlebury .flo file, atomically (read_flo reads it back exactly)."""
    path = Path(path)
    data = _check_flow_array(flow, path)
    height, width = data.shape[:2]
    payload = _FLO_HEADER.pack(FLO_MAGIC, width, height) + data.tobytes()
    atomic_write(path, lambda tmp: tmp.write_bytes(payload), sync=False)


def read_flo(path: Path) -> np.ndarray:
    """A Middlebury .flo file as H x W x 2 float32; DataError naming the file when it is missing or damaged."""
    path = Path(path)
    fix = "recompute the flow (delete the file; a flow cache recomputes it) or copy it again"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"flow file {path} does not exist; {fix}") from None
    except OSError as err:
        raise DataError(f"cannot read flow file {path} ({err.strerror or err}); {fix}") from None
    if len(data) < _FLO_HEADER.size:
        raise DataError(f"flow file {path} is truncated ({len(data)} bytes, shorter than its header); {fix}")
    magic, width, height = _FLO_HEADER.unpack_from(data)
    if magic != FLO_MAGIC:
        raise DataError(f"{path} is not a Middlebury .flo file (it does not start with the number {FLO_MAGIC}); {fix}")
    if not (0 < width <= _FLO_MAX_SIDE and 0 < height <= _FLO_MAX_SIDE):
        raise DataError(f"flow file {path} has a damaged header (size {width} x {height}); {fix}")
    expected = _FLO_HEADER.size + 8 * width * height
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"flow file {path} is {state} ({len(data)} bytes, {expected} for {width} x {height}); {fix}")
    flow = np.frombuffer(data, dtype="<f4", offset=_FLO_HEADER.size).reshape(height, width, 2)
    return flow.astype(np.float32)


def write_valid(path: Path, mask: np.ndarray) -> None:
    """Write an H x W validity mask as an 8-bit grey PNG (255 valid, 0 not), atomically."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"cannot write {path}: a validity mask must be H x W, got shape {mask.shape}")
    save_uint8(np.where(mask.astype(bool), 255, 0).astype(np.uint8), Path(path))


def read_valid(path: Path) -> np.ndarray:
    """A validity mask PNG as H x W bool (grey >= 128 is valid); DataError naming the file when unreadable."""
    gray = read_image(Path(path), 1)[0].numpy()
    return gray >= 0.5


# ---------------------------------------------------------------------------------------------- sequences


def flow_file_names(frame: Path) -> tuple[str, str]:
    """The names of a frame's flow and validity files: <stem>.flo and <stem>_valid.png."""
    stem = Path(frame).stem
    return f"{stem}.flo", f"{stem}_valid.png"


def _no_flow(frame: Path) -> tuple[np.ndarray, np.ndarray]:
    """Frame 0's entry: a zero flow and nothing valid, at the frame's size."""
    height, width = image_size(frame)
    return np.zeros((height, width, 2), np.float32), np.zeros((height, width), bool)


def _check_unique_stems(frames: list[Path]) -> None:
    """DataError when two frames share a stem (their flow files would share a name)."""
    seen: dict[str, Path] = {}
    for frame in frames:
        if frame.stem in seen:
            raise DataError(
                f"frames {seen[frame.stem]} and {frame} have the same name stem, so their flow files would "
                f"collide; rename one of them"
            )
        seen[frame.stem] = frame


def _signature(frame: Path) -> list:
    """[name, size in bytes, mtime_ns] of a frame file: what the cache compares to see a change."""
    try:
        stat = frame.stat()
    except OSError as err:
        raise DataError(f"frame {frame} cannot be read ({err.strerror or err}); check the sequence's folder") from None
    return [frame.name, stat.st_size, stat.st_mtime_ns]


def _read_manifest(path: Path, preset: str) -> dict[str, dict]:
    """The entries of a cache manifest, or {} when there is none or it is for another preset or version."""
    if not path.is_file():
        return {}
    try:
        manifest = load_json(path, "flow cache manifest", "it is rebuilt")
    except CheckpointError as err:
        log.warning("%s; recomputing the flows", err)
        return {}
    if (
        not isinstance(manifest, dict)
        or manifest.get("version") != _MANIFEST_VERSION
        or manifest.get("preset") != preset
        or not isinstance(manifest.get("entries"), dict)
    ):
        return {}
    return manifest["entries"]


def update_flow_cache(
    frames: list[Path], cache_dir: Path, preset: str | FlowNetwork = "medium"
) -> list[tuple[Path, Path] | None]:
    """Make sure <cache_dir>/<preset>/ holds the DIS flow and validity of every frame t >= 1 back to frame t-1.

    Returns the (.flo, _valid.png) paths per frame (None for frame 0). manifest.json records each entry's
    frame and its predecessor as (name, size, mtime_ns); entries whose frames changed, moved in the
    order or are new are recomputed, those of frames no longer in the list deleted. Every file is written
    atomically and the manifest last, so an interrupted update is finished by the next call.
    """
    _check_preset(preset)
    frames = [Path(f) for f in frames]
    if not frames:
        return []
    _check_unique_stems(frames)
    name = method_name(preset)
    folder = Path(cache_dir) / name
    manifest_path = folder / MANIFEST
    old = _read_manifest(manifest_path, name)
    # DIS works on grey frames; a flow network gets RGB.
    read = (
        read_frame_gray
        if isinstance(preset, str)
        else (lambda p: np.rint(read_image(p, 3).permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    )
    entries: dict[str, dict] = {}
    paths: list[tuple[Path, Path] | None] = [None]
    signatures = [_signature(f) for f in frames]
    for t in range(1, len(frames)):
        flo_name, valid_name = flow_file_names(frames[t])
        entry = {"frame": signatures[t], "previous": signatures[t - 1], "flow": flo_name, "valid": valid_name}
        flo, valid = folder / flo_name, folder / valid_name
        if old.get(frames[t].stem) != entry or not (flo.is_file() and valid.is_file()):
            flow, mask = flow_and_validity(read(frames[t - 1]), read(frames[t]), preset)
            write_flo(flo, flow)
            write_valid(valid, mask)
        entries[frames[t].stem] = entry
        paths.append((flo, valid))
    for stem, entry in old.items():
        if stem not in entries and isinstance(entry, dict):
            for key in ("flow", "valid"):
                name = entry.get(key)
                if isinstance(name, str) and Path(name).name == name:  # only files this cache wrote
                    (folder / name).unlink(missing_ok=True)
    if entries != old or not manifest_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {"version": _MANIFEST_VERSION, "preset": name, "entries": entries}
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1) + "\n")
    return paths


def sequence_flows(frames: list[Path], cache_dir: Path, preset: str = "medium") -> list[tuple[np.ndarray, np.ndarray]]:
    """(backward flow H x W x 2 float32, validity H x W bool) per frame, from DIS through a cache in cache_dir.

    Entry t >= 1 is frame t's flow back to frame t-1; entry 0 is a zero flow with nothing valid, so the
    list lines up with frames. See update_flow_cache for what is stored and when it is recomputed; for a
    long sequence, call that and read the entries one by one with read_flo / read_valid.
    """
    if not frames:
        return []
    paths = update_flow_cache(frames, cache_dir, preset)
    result = [_no_flow(Path(frames[0]))]
    for pair in paths[1:]:
        flo, valid = pair
        result.append((read_flo(flo), read_valid(valid)))
    return result


def ground_truth_flows(frames: list[Path], flow_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(flow, validity) per frame from <flow_dir>/<stem>.flo and <stem>_valid.png (all valid when absent).

    Entry 0 is a zero flow with nothing valid, as in sequence_flows. A missing or damaged flow file, or
    one whose size differs from its frame's, is a DataError naming it.
    """
    frames = [Path(f) for f in frames]
    if not frames:
        return []
    _check_unique_stems(frames)
    flow_dir = Path(flow_dir)
    result = [_no_flow(frames[0])]
    for frame in frames[1:]:
        flo_name, valid_name = flow_file_names(frame)
        flo = flow_dir / flo_name
        if not flo.is_file():
            raise DataError(
                f"ground-truth flow {flo} for frame {frame} does not exist; add the file, or compute the flow "
                f"with --flow medium instead of --flow gt"
            )
        flow = read_flo(flo)
        size = image_size(frame)
        if flow.shape[:2] != size:
            raise DataError(
                f"flow {flo} is {flow.shape[0]} x {flow.shape[1]} but frame {frame} is {size[0]} x {size[1]}; "
                f"give flows at the frames' size or compute them with --flow medium"
            )
        valid_path = flow_dir / valid_name
        valid = read_valid(valid_path) if valid_path.is_file() else np.ones(size, bool)
        if valid.shape != size:
            raise DataError(
                f"validity mask {valid_path} is {valid.shape[0]} x {valid.shape[1]} but frame {frame} is "
                f"{size[0]} x {size[1]}; write it at the frame's size or remove it (all pixels then count as valid)"
            )
        result.append((flow, valid))
    return result
