"""Safe image decoding: the one place image files are read.

Checks the format and the pixel count from the header before decoding, so a
decompression bomb is rejected without allocating its pixels.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
# 40 megapixels: well above any face photo, well below a decompression bomb.
MAX_PIXELS = 40_000_000
MIN_SIDE = 8  # smaller than this holds no face worth classifying


class ImageError(ValueError):
    """An image that cannot or must not be decoded; the message says why."""


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def decode_image(source: str | Path | bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file or bytes to uint8 pixels: (H, W) gray or (H, W, 3) RGB.

    ``max_pixels`` defaults to ``MAX_PIXELS``, read at call time so that the
    module-level limit can be changed at run time.
    """
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    name = str(source) if isinstance(source, (str, Path)) else "<bytes>"
    try:
        fh = open(source, "rb") if isinstance(source, (str, Path)) else io.BytesIO(source)
    except OSError as exc:
        raise ImageError(f"{name}: cannot open ({exc.strerror})") from exc
    with fh, warnings.catch_warnings():
        # Pillow warns at half its own bomb limit; our stricter check below decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(fh) as im:
                if im.format not in SUPPORTED_FORMATS:
                    raise ImageError(f"{name}: unsupported format {im.format}; "
                                     f"supported: {', '.join(SUPPORTED_FORMATS)}")
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageError(f"{name}: {w}x{h} = {w * h} pixels exceeds the limit "
                                     f"of {max_pixels} (possible decompression bomb)")
                if min(w, h) < MIN_SIDE:
                    raise ImageError(f"{name}: {w}x{h} is too small (each side must be "
                                     f">= {MIN_SIDE} pixels)")
                im.load()
                if im.mode in ("L", "I;16", "I", "F", "1"):
                    arr = np.asarray(im.convert("L"))
                else:
                    arr = np.asarray(im.convert("RGB"))
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:  # Pillow's own, far larger limit
            raise ImageError(f"{name}: exceeds the pixel limit of {max_pixels} "
                             f"(possible decompression bomb; {exc})") from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: not a readable image ({exc})") from exc
    return np.ascontiguousarray(arr, dtype=np.uint8)
