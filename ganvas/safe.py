"""Readers for every file a run folder holds that never run code from the file.

Users load run folders and checkpoints from strangers (model zoos, papers' links, forum posts), and
pickle-based formats run whatever a crafted file tells them to. Every reader here accepts only what
its format holds and refuses anything else in one sentence that names the file, says it was not
loaded because it would run code, and never suggests turning the protection off:

- PyTorch files (`.pth`, `latest_state.pt`): `torch.load(weights_only=True)`, tensors and plain values.
- pix2pixHD's style clusters (`features_clustered_<n>.npy`, a pickled dict of arrays as NVIDIA's
  encode_features.py writes it): an unpickler that rebuilds NumPy arrays and scalars and nothing else.
- `opt.yaml`: YAML's safe loader (plain values; Python tags refused).
- `.json` descriptions: the json module, which has no way to name code.
- `.safetensors`: the safetensors package (a header and raw tensors).
- `.npz` arrays (an editor scene's maps): NumPy with `allow_pickle=False`.
- Cached ONNX graphs (`<run>/export/*.onnx`): read as bytes and used only when their SHA-256 matches
  the record written with them; ONNX Runtime and OpenVINO parse them as data (protobuf), never as code.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganvas.errors import CheckpointError, DataError, OptionsError

# The globals a pickled NumPy object array of arrays needs (numpy moved core to _core in 2.0; files from
# either version name theirs).
_NUMPY_GLOBALS = {
    (module, name)
    for prefix in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{prefix}.multiarray", "_reconstruct"),
        (f"{prefix}.multiarray", "scalar"),
        (f"{prefix}.numeric", "_frombuffer"),
    )
} | {("numpy", "ndarray"), ("numpy", "dtype")}


def _would_run_code(path: Path, what: str, detail: str) -> str:
    """The one sentence for a file refused because loading it would run code."""
    return (
        f"{what} {path} was not loaded: it holds {detail}, which would run code when loaded, and ganvas reads "
        f"only data from files; use a file from a source you trust, written by ganvas or the original code"
    )


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays, dtypes and scalars; any other global is refused before it is looked up."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


# First bytes of the image formats people pass where a file of weights belongs.
_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}
_TEXT_KINDS = {
    ".yaml": "a YAML file",
    ".yml": "a YAML file",
    ".json": "a JSON file",
    ".csv": "a CSV table",
    ".html": "a web page",
    ".py": "a Python script",
}


def file_kind(path: Path) -> str | None:
    """What a file holds, in words ("a PNG image", "an exported TorchScript model"), when its name or first
    bytes show it is no PyTorch file of tensors; None when it may be one."""
    path = Path(path)
    if path.is_dir():
        return "a folder"
    if path.suffix.lower() == ".onnx":
        return "an exported ONNX model"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None  # the reader says why it cannot open it
    if head.startswith(b"PK\x03\x04"):  # a zip: PyTorch's own format, or a TorchScript archive (code and all)
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (OSError, zipfile.BadZipFile):
            return None
        return "an exported TorchScript model" if any("/code/" in n for n in names) else None
    image = next((fmt for magic, fmt in _IMAGE_SIGNATURES.items() if head.startswith(magic)), None)
    if image or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return f"a {image or 'WebP'} image"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file"
    try:  # text: no NUL byte and valid UTF-8 (a character cut at the end of the sample is fine)
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return None
    if not head or b"\x00" in head:
        return None
    return _TEXT_KINDS.get(path.suffix.lower(), "a text file")


def load_torch(
    path: Path,
    what: str = "checkpoint",
    fix: str = "train the run first, or check --name, --checkpoints_dir and --epoch",
) -> Any:
    """torch.load without running pickled code; a missing, broken or code-carrying file names itself and the fix."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; {fix}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # PyTorch's own message goes on to advise weights_only=False: name only what the file holds.
        found = re.search(r"GLOBAL ([\w.]+)", str(err))  # "Unsupported global: GLOBAL io.open ...", "... posix.system"
        if found:
            raise CheckpointError(_would_run_code(path, what, f"a pickled reference to {found.group(1)}")) from None
        raise CheckpointError(
            f"cannot read {what} {path} (not a PyTorch file of tensors and plain values); use another file, another "
            f"--epoch or retrain"
        ) from None
    except Exception as err:  # torch raises several types for truncated or foreign files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in reason:  # PyTorch's advice to turn the protection off (TorchScript archives)
            reason = f"it is {file_kind(path) or 'no file of tensors and plain values'}"
        raise CheckpointError(
            f"cannot read {what} {path} ({reason}); the file is damaged or not a PyTorch "
            f"state_dict file (an exported TorchScript or ONNX model is not one): use another file, "
            f"another --epoch or retrain"
        ) from err


def load_array_dict(path: Path, what: str) -> dict[int, np.ndarray]:
    """A .npy holding a pickled {class id: float array} dict (pix2pixHD's cluster files), read without running code."""
    path = Path(path)
    fix = "delete it and run `ganvas encode-features` again"
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                _, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                _, _, dtype = np.lib.format.read_array_header_2_0(fh)
            if not dtype.hasobject:
                raise ValueError(f"it holds a plain {dtype} array, not a dict of arrays")
            value = _NumpyOnlyUnpickler(fh).load()
    except pickle.UnpicklingError as err:
        raise CheckpointError(_would_run_code(path, what, f"a pickled reference to {err}")) from None
    except (OSError, ValueError, EOFError, TypeError, AttributeError, IndexError) as err:
        raise CheckpointError(f"cannot read {what} {path} ({err}); {fix}") from None
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == object:
        value = value.item()
    if not isinstance(value, dict):
        raise CheckpointError(f"{what} {path} holds a {type(value).__name__}, not a dict of class ids to arrays; {fix}")
    found: dict[int, np.ndarray] = {}
    for key, array in value.items():
        if not isinstance(key, (int, np.integer)) or not isinstance(array, np.ndarray) or array.dtype.kind != "f":
            raise CheckpointError(
                f"{what} {path} maps {key!r} to a {type(array).__name__}; it must map class ids to float arrays "
                f"(clusters x features); {fix}"
            )
        found[int(key)] = array
    return found


def load_yaml_mapping(path: Path, what: str, fix: str) -> dict[str, Any]:
    """A YAML file of plain values as a dict; Python tags (which would build objects) are refused."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.constructor.ConstructorError as err:
        tag = f" ({err.problem.split('tag', 1)[-1].strip()})" if err.problem and "python/" in err.problem else ""
        if tag:
            raise OptionsError(_would_run_code(Path(path), what, f"a Python object tag{tag}")) from None
        raise OptionsError(f"cannot read {what} {path} ({err}); {fix}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise OptionsError(f"cannot read {what} {path} ({err}); {fix}") from err
    if not isinstance(data, dict):
        raise OptionsError(f"{what} {path} is not a mapping of names to values; {fix}")
    return data


def load_json(path: Path, what: str, fix: str) -> Any:
    """A JSON document (JSON has no way to name code; names it holds are looked up in registries only)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CheckpointError(f"cannot read {what} {path} ({err}); {fix}") from None


def load_npz_arrays(path: Path, what: str, fix: str) -> dict[str, np.ndarray]:
    """The arrays of a NumPy .npz file (an editor scene's maps); object arrays, which need pickle, are refused."""
    try:
        data = np.load(Path(path), allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise DataError(f"{what} {path} is a single array, not an .npz archive of named arrays; {fix}")
        with data:
            return {key: data[key] for key in data.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise DataError(_would_run_code(Path(path), what, "pickled Python objects")) from None
        raise DataError(f"cannot read {what} {path} ({err}); {fix}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"cannot read {what} {path} ({err}); {fix}") from None


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file (needs the optional safetensors package)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"network file {path} does not exist; check the path")
    try:
        from safetensors.torch import load_file
    except ImportError as err:
        raise CheckpointError(
            f"reading {path} needs the safetensors package, which is not installed: "
            f"pip install safetensors (or save the network with torch.save as .pth)"
        ) from err
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own error type for damaged headers
        raise CheckpointError(f"cannot read {path} ({err}); the file is damaged or not a safetensors file") from None


def read_verified(path: Path, sha256: str, what: str) -> bytes:
    """A file's bytes, when their SHA-256 is the one its record holds (a changed or damaged graph is not used)."""
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"the {what} {path} does not match the SHA-256 its record holds (changed or damaged)")
    return data
