"""Image input: every picture enters gazelab as upright 8-bit RGB, whatever its file says.

Annotations are made on the image as a viewer shows it, so EXIF orientation is applied; grayscale, palette,
RGBA (alpha dropped onto black), CMYK and 16-bit files are converted to RGB. Sizes are read from the header
alone (no decode) with the same orientation rule, so readers can normalize coordinates cheaply.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gazelab.errors import DataError

# EXIF orientations that swap width and height (rotations by 90/270, with or without a mirror).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}
_EXIF_ORIENTATION_TAG = 0x0112
MAX_IMAGE_PIXELS = 178_956_970
"""Largest picture accepted (179 MP, about 0.5 GB decoded; Pillow's decompression-bomb error threshold): a larger
header is refused before any pixel is decoded, also when a user has switched Pillow's own guard off."""


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found — check the dataset root / image path")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: image file is empty (0 bytes) — re-copy or remove it")
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 MP on; real photos (100 MP cameras) get there, so only the error counts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: image too large ({err}) — downscale it first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err}) — re-encode or remove it") from None
    if image.width * image.height > MAX_IMAGE_PIXELS:
        image.close()
        raise DataError(f"{path}: image is {image.width}x{image.height}, too large — downscale it first")
    return image


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of the image as displayed (EXIF orientation applied), read from the header only."""
    image = _open(path)
    try:
        width, height = image.size
        orientation = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception as err:  # malformed EXIF block
        raise DataError(f"{path}: unreadable image header ({err}) — re-encode it") from None
    finally:
        image.close()
    if orientation in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16/32-bit grayscale: scale the full range to 8 bits instead of clipping it.
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        array = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (0, 0, 0))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def load_image(path: str | Path) -> Image.Image:
    """The image at ``path`` as upright RGB; one clear :class:`DataError` for anything unreadable."""
    image = _open(path)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: image is corrupt or truncated ({err}) — re-encode or remove it") from None


def load_image_array(path: str | Path) -> np.ndarray:
    """The image as an HxWx3 uint8 array (see :func:`load_image`)."""
    return np.asarray(load_image(path))
