"""Find, read and write image files: 8/16-bit, float, grayscale, palette and RGBA, with clear errors."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ganvas.errors import DataError, OptionsError
from ganvas.files import atomic_write

IMG_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
)

# Everything Pillow raises for a file it cannot decode; re-raised as DataError with the file name.
_PIL_READ_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    SyntaxError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
)

# Modes that are already one gray channel (plus alpha) or need their own scaling.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N")

# ITU-R 601-2 luma, the weights Pillow uses for convert('L').
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_image_file(path: Path) -> bool:
    """Whether the file name ends with one of IMG_EXTENSIONS (any case)."""
    return path.suffix.lower() in IMG_EXTENSIONS


def _is_hidden(path: Path, folder: Path) -> bool:
    """Whether a part of path below folder starts with '.' (.ipynb_checkpoints, macOS ._ files)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts)


def find_images(folder: Path, max_dataset_size: float = math.inf) -> list[Path]:
    """Image files under folder (recursive, sorted, hidden files skipped), at most max_dataset_size."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder {folder} does not exist; check --dataroot/--phase")
    if not folder.is_dir():
        raise DataError(f"{folder} is a file, not an image folder; pass the folder that holds the images")
    images = sorted(p for p in folder.rglob("*") if is_image_file(p) and p.is_file() and not _is_hidden(p, folder))
    if not images:
        raise DataError(
            f"found no images in {folder} (looked for {', '.join(IMG_EXTENSIONS)} in any case, "
            f"recursively); check --dataroot/--phase or convert the images to one of these formats"
        )
    if max_dataset_size < len(images):
        images = images[: int(max_dataset_size)]
    return images


def _decode(img: Image.Image, path: Path) -> tuple[np.ndarray, bool]:
    """Pixels of an opened image as float32 H x W x C in [0, 1] (C = 1 or 3) and its alpha flag."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        data = np.asarray(img).astype(np.float32)
        if data.min() < 0 or data.max() > 65535:
            raise DataError(
                f"{path} holds 32-bit integer values from {data.min():.0f} to {data.max():.0f}; "
                f"re-export it as an 8-bit or 16-bit image"
            )
        return (data / 65535.0)[..., None], False
    if mode == "F":
        data = np.asarray(img).astype(np.float32)
        low, high = float(data.min()), float(data.max())
        if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
            raise DataError(
                f"{path} holds float values from {low} to {high}; "
                f"re-export it with values in [0, 1] or as an 8-bit or 16-bit image"
            )
        return data[..., None], False
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("1", "L"):
        img = img.convert("L")
    elif mode in ("LA", "La"):
        img = img.convert("LA")
    elif mode in ("RGBA", "RGBa", "PA"):
        img = img.convert("RGBA")
    elif mode != "RGB":
        # CMYK, YCbCr, LAB, HSV, RGBX, ...; Pillow gives 16-bit RGB PNGs as 8-bit RGB already.
        img = img.convert("RGB")
    data = np.asarray(img).astype(np.float32) / 255.0
    if data.ndim == 2:
        data = data[..., None]
    has_alpha = img.mode in ("LA", "RGBA")
    return data, has_alpha


def _to_channels(data: np.ndarray, has_alpha: bool, channels: int) -> np.ndarray:
    """Convert H x W x C pixels (gray or RGB, optionally with a trailing alpha) to `channels`."""
    color = data[..., :-1] if has_alpha else data
    alpha = data[..., -1:] if has_alpha else np.ones_like(data[..., :1])
    if channels == 1:
        # Alpha is dropped without compositing, as Pillow's convert('L') does.
        return color if color.shape[-1] == 1 else (color @ _LUMA)[..., None]
    rgb = np.repeat(color, 3, axis=-1) if color.shape[-1] == 1 else color
    if channels == 3:
        return rgb  # alpha dropped without compositing, like the reference's convert('RGB')
    return np.concatenate([rgb, alpha], axis=-1)


# Single-channel modes whose pixels are integers: class ids in a label map, ids in an instance map.
LABEL_MODES: tuple[str, ...] = ("L", "P", "1", "I", "I;16", "I;16L", "I;16B", "I;16N")


def check_label_mode(mode: str, path: Path) -> None:
    """DataError unless an image of this mode holds one channel of integer ids."""
    if mode not in LABEL_MODES:
        raise DataError(
            f"{path} is a {mode} image, but label and instance maps must hold one channel of integer ids "
            f"(8-bit or 16-bit grayscale, or palette indices); convert colours to ids, "
            f"or pass --label_nc 0 to read the inputs as photos"
        )


def label_map_size(path: Path) -> tuple[int, int]:
    """(height, width) of a label or instance map from its header; DataError unless it holds integer ids."""
    try:
        with Image.open(path) as img:
            mode, size = img.mode, (img.height, img.width)
    except _PIL_READ_ERRORS as err:
        raise DataError(f"cannot read label map {path} ({err}); re-export it or remove it from the data set") from err
    check_label_mode(mode, path)
    return size


def read_label_map(path: Path) -> np.ndarray:
    """The integer ids of a label or instance map as an int64 H x W array, unscaled (8-bit, 16-bit, palette)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label map {path} does not exist; check --dataroot or remove it from the list")
    try:
        with Image.open(path) as img:
            check_label_mode(img.mode, path)
            img.load()  # decode now so truncated files fail here, not later
            ids = np.asarray(img).astype(np.int64)
    except _PIL_READ_ERRORS as err:
        raise DataError(f"cannot read label map {path} ({err}); re-export it or remove it from the data set") from err
    if ids.size and int(ids.min()) < 0:
        raise DataError(f"{path} holds the negative id {int(ids.min())}; remap its ids to 0 and above")
    return ids


def image_size(path: Path) -> tuple[int, int]:
    """(height, width) from the file's header alone; DataError naming the file if it is no image."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except _PIL_READ_ERRORS as err:
        raise DataError(f"cannot read image {path} ({err}); re-export it or remove it from the data set") from err


def uses_alpha(image: Image.Image) -> bool:
    """Whether a PIL image has pixels that are not fully opaque (by its alpha channel or palette transparency)."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.mode in ("LA", "La", "RGBA", "RGBa", "PA") and image.getextrema()[-1][0] < 255


def read_image(path: Path, channels: int) -> torch.Tensor:
    """Read an image file as a float32 C x H x W tensor in [0, 1] with `channels` = 1, 3 or 4 (see read_image_alpha)."""
    return read_image_alpha(path, channels)[0]


def read_image_alpha(path: Path, channels: int) -> tuple[torch.Tensor, bool]:
    """Read an image file as a float32 C x H x W tensor in [0, 1] with `channels` = 1, 3 or 4.

    8-bit data is divided by 255; 16-bit grayscale PNG/TIFF (Pillow modes I;16*, I) by 65535,
    keeping the full precision; float TIFFs (mode F) must hold values in [0, 1] (a per-file
    rescale would give the two sides of a pair different scales). Pillow decodes 16-bit RGB(A) PNGs at
    8-bit precision (it keeps the high byte), so those are still scaled correctly but lose the low
    byte. Channel conversion: 1 = ITU-R 601-2 luma (as Pillow's 'L'), 3 = RGB (gray repeated, alpha
    dropped like convert('RGB')), 4 = RGBA (opaque alpha added when the file has none).
    Also returns whether `channels` dropped transparency the file had (see uses_alpha).
    """
    path = Path(path)
    if channels not in (1, 3, 4):
        raise OptionsError(f"cannot read {path} with {channels} channels; pass --input_nc/--output_nc 1, 3 or 4")
    if not path.is_file():
        raise DataError(f"image file {path} does not exist; check --dataroot or remove it from the list")
    try:
        with Image.open(path) as img:
            img.load()  # decode now so truncated files fail here, not later
            return torch.from_numpy(decode_image(img, channels, str(path))), channels != 4 and uses_alpha(img)
    except _PIL_READ_ERRORS as err:
        raise DataError(f"cannot read image {path} ({err}); re-export it or remove it from the data set") from err


def decode_image(image: Image.Image | np.ndarray, channels: int, source: str, has_alpha: bool = False) -> np.ndarray:
    """A PIL image, or an H x W x C float array in [0, 1], as float32 C x H x W in [0, 1] with `channels`.

    `has_alpha` says whether an array's last channel is alpha (a PIL image tells by its mode);
    `source` names the image in errors.
    """
    if isinstance(image, Image.Image):
        if channels == 1 and image.mode not in _GRAY_MODES:
            # Pillow's own integer luma, exactly what the reference's grayscale path gives.
            image = image.convert("RGB").convert("L")
        data, has_alpha = _decode(image, source)
    else:
        data = image
    return np.ascontiguousarray(_to_channels(data, has_alpha, channels).transpose(2, 0, 1))


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """Map a C x H x W tensor in [-1, 1] to a uint8 H x W x C array (rounded, clipped)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(
            f"expected a C x H x W image with 1, 3 or 4 channels, got shape {tuple(image.shape)}; "
            f"pass one image of a batch, e.g. batch[0]"
        )
    array = image.detach().to("cpu", torch.float32).numpy()
    array = np.clip(np.rint((array + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return array.transpose(1, 2, 0)


def save_uint8(array: np.ndarray, path: Path) -> None:
    """Write a uint8 H x W (x 1|3|4) array as an image file chosen by suffix, atomically."""
    path = Path(path)
    formats = Image.registered_extensions()
    image_format = formats.get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"cannot save {path}: unknown image suffix {path.suffix!r}; use .png or .jpg")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8))
    if image_format == "JPEG" and image.mode == "RGBA":
        raise ValueError(f"cannot save the 4-channel image {path} as JPEG; use a .png name")
    _save_atomic(image, path, image_format)


def save_label_map(ids: np.ndarray, path: Path, bits: int | None = None) -> None:
    """Write an H x W map of integer ids as an 8- or 16-bit PNG (None: the smaller that fits), atomically.

    read_label_map reads it back exactly.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"cannot save the label map {path} losslessly; use a .png name")
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise ValueError(f"expected an H x W integer array for {path}, got {ids.dtype} of shape {ids.shape}")
    if bits is None:
        bits = 8 if not ids.size or int(ids.max()) < 256 else 16
    if bits not in (8, 16):
        raise ValueError(f"cannot save {path} with {bits} bits; use 8 or 16")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= 2**bits):
        raise ValueError(
            f"ids from {int(ids.min())} to {int(ids.max())} do not fit a {bits}-bit PNG ({path}); "
            f"remap them to 0..{2**bits - 1} or save with more bits"
        )
    dtype = np.uint8 if bits == 8 else np.uint16
    _save_atomic(Image.fromarray(np.ascontiguousarray(ids, dtype=dtype)), path, "PNG")


def _save_atomic(image: Image.Image, path: Path, image_format: str) -> None:
    """Save image to a temporary file next to path and rename it into place (`files.atomic_write`)."""
    options = {"quality": 95} if image_format == "JPEG" else {}
    atomic_write(path, lambda tmp: image.save(tmp, format=image_format, **options), sync=False)


def save_image(image: torch.Tensor, path: Path) -> None:
    """Save a C x H x W tensor in [-1, 1] as an 8-bit image (L, RGB or RGBA) chosen by suffix, atomically."""
    save_uint8(tensor_to_uint8(image), path)
