"""What the studio accepts from a request: base64 fields, id maps and images decoded within limits."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ganvas.errors import DataError

# Image formats a request may carry: everything else is refused before any decoder runs.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


def field_bytes(value: object, what: str) -> bytes:
    """The bytes of a base64 field, or of a data: URL's payload ("data:image/png;base64,...")."""
    if not isinstance(value, str) or not value:
        raise DataError(f"{what} is missing; send it as base64 text")
    text = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"{what} is not valid base64 text; send the file's bytes base64-encoded") from None


def id_map(value: object, width: int, height: int, dtype: str, what: str) -> np.ndarray:
    """An H x W integer map sent as base64 of little-endian `dtype` values ("u1" or "i4"), row by row."""
    data = field_bytes(value, what)
    kind = np.dtype(dtype).newbyteorder("<")
    if len(data) != width * height * kind.itemsize:
        raise DataError(
            f"{what} holds {len(data)} bytes where a {width} x {height} map of {kind.itemsize}-byte ids needs "
            f"{width * height * kind.itemsize}; send one id per pixel"
        )
    return np.frombuffer(data, dtype=kind).astype(np.int64).reshape(height, width)


def encode_ids(ids: np.ndarray, dtype: str) -> str:
    """An integer map as base64 of little-endian `dtype` values (what id_map reads)."""
    return base64.b64encode(np.ascontiguousarray(ids, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


def open_image(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A PNG, JPEG or WebP image, decoded only after its header says it has at most max_pixels pixels."""
    try:
        with warnings.catch_warnings():
            # Pillow's decompression-bomb guard is a warning below twice its limit: make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(
                    f"{what} is {width} x {height} pixels, more than this studio's limit of {max_pixels:,}; "
                    f"scale it down (or start the studio with a larger --max_pixels)"
                )
            image.load()
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{what} would decode to more pixels than Pillow allows; scale it down") from None
    except UnidentifiedImageError:
        raise DataError(f"{what} is not a readable PNG, JPEG or WebP image; export it as PNG") from None
    except Exception as err:  # Pillow raises many kinds for broken or unknown files
        raise DataError(
            f"{what} is not a readable PNG, JPEG or WebP image ({type(err).__name__}: {err}); export it again as PNG"
        ) from None
    return image


def image_bytes(value: object, what: str, max_pixels: int) -> Image.Image:
    """open_image of a base64 field."""
    return open_image(field_bytes(value, what), what, max_pixels)


def photo_bytes(value: object, what: str, max_pixels: int) -> Image.Image:
    """A photo as the page shows it: turned upright by its EXIF orientation, transparent pixels over white."""
    image = ImageOps.exif_transpose(image_bytes(value, what, max_pixels))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
    return image


def png_data_url(image: Image.Image) -> str:
    """A PIL image as a data: URL of a PNG (fast compression: renders are sent once and shown)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
