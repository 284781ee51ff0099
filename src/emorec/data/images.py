"""Safe image decoding: the one place image files are read.

Checks the format and the pixel count from the header before decoding, so a
decompression bomb is rejected without allocating its pixels. 16-bit images are
scaled to 8 bits, never clipped. In-memory images (NumPy arrays, PIL images) go
through the same size and pixel checks (``as_pixels``).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from emorec.errors import UserError

SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "PPM")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")
# 40 megapixels: well above any face photo, well below a decompression bomb.
MAX_PIXELS = 40_000_000
MIN_SIDE = 8  # smaller than this holds no face worth classifying


class ImageError(UserError):
    """An image that cannot or must not be decoded; the message says why."""


def is_image_file(path: Path) -> bool:
    return (
        path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    )


@contextlib.contextmanager
def _opened(source: str | Path | bytes, max_pixels: int):
    """The PIL image of a file or bytes, its format and size checked from the header;
    every failure to read it becomes an ImageError naming the source."""
    name = str(source) if isinstance(source, (str, Path)) else "<bytes>"
    if isinstance(source, (str, Path)) and not _regular_file(source):
        raise ImageError(f"{name}: not a regular file (a folder, pipe or device is not read)")
    try:
        fh = open(source, "rb") if isinstance(source, (str, Path)) else io.BytesIO(source)
    except OSError as exc:
        raise ImageError(f"{name}: cannot open ({exc.strerror})") from exc
    with fh, warnings.catch_warnings():
        # Pillow warns at half its own bomb limit; our stricter check decides.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(fh) as im:
                if im.format not in SUPPORTED_FORMATS:
                    raise ImageError(
                        f"{name}: unsupported format {im.format}; "
                        f"supported: {', '.join(SUPPORTED_FORMATS)}"
                    )
                _check_size(name, *im.size, max_pixels)
                yield name, im
        except ImageError:
            raise
        except Image.DecompressionBombError as exc:  # Pillow's own, far larger limit
            raise ImageError(
                f"{name}: exceeds the pixel limit of {max_pixels} "
                f"(possible decompression bomb; {exc})"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{name}: not a readable image ({exc})") from exc


def _regular_file(path: str | Path) -> bool:
    """A FIFO would block ``open`` forever, a device would stream without end."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # let open() report the missing file or the permission


def decode_image(source: str | Path | bytes, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file or bytes to uint8 pixels: (H, W) gray or (H, W, 3) RGB.

    ``max_pixels`` defaults to ``MAX_PIXELS``, read at call time so that the
    module-level limit can be changed at run time.
    """
    with _opened(source, MAX_PIXELS if max_pixels is None else max_pixels) as (name, im):
        im.load()
        arr = _pil_pixels(im, name)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def header_size(source: str | Path | bytes) -> tuple[int, int]:
    """(width, height) of an image file or bytes, from its header: no pixel is decoded."""
    with _opened(source, MAX_PIXELS) as (_, im):
        return im.size


# Formats whose Pillow mode "I" holds at most 16 bits (PNG in older Pillow, 16-bit PGM/PPM,
# which Pillow stretches to 0..65535); a TIFF in mode "I" may hold 32-bit values.
_16BIT_I_FORMATS = ("PNG", "PPM")


def _check_size(name: str, w: int, h: int, max_pixels: int | None = None) -> None:
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    if w * h > max_pixels:
        raise ImageError(
            f"{name}: {w}x{h} = {w * h} pixels exceeds the limit "
            f"of {max_pixels} (possible decompression bomb)"
        )
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name}: {w}x{h} is too small (each side must be >= {MIN_SIDE} pixels)")


def _scale_16bit(arr: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255, rounded (65535 -> 255, 257 * k -> k)."""
    return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _pil_pixels(im: Image.Image, name: str) -> np.ndarray:
    """A loaded PIL image -> uint8 (H, W) gray or (H, W, 3) RGB."""
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format in _16BIT_I_FORMATS):
        # Pillow's convert("L") clips 16-bit values at 255, turning most photos white.
        return _scale_16bit(np.asarray(im))
    if im.mode in ("I", "F"):
        if im.format is None:  # built in memory: judged by its values, like an array
            return as_pixels(np.asarray(im), name)
        raise ImageError(
            f"{name}: {'32-bit integer' if im.mode == 'I' else 'floating-point'} "
            f"pixels are not supported; save it with 8 or 16 bits per channel"
        )
    mode = "L" if im.mode in ("L", "1") else "RGB"
    return np.asarray(im if im.mode == mode else im.convert(mode))  # convert copies


def as_pixels(image, name: str = "<array>") -> np.ndarray:
    """An in-memory image -> uint8 (H, W) gray or (H, W, 3) RGB, checked like a file.

    Takes a PIL image or a NumPy array of shape (H, W), (H, W, 1), (H, W, 3) RGB or
    (H, W, 4) RGBA (alpha dropped), holding uint8 0..255, other integers within 0..255,
    uint16 0..65535 (scaled like a 16-bit file) or floats in [0, 1]. Anything else, and
    sides under ``MIN_SIDE`` or over ``MAX_PIXELS`` pixels, raise ImageError.
    """
    if isinstance(image, Image.Image):
        _check_size(name, *image.size)
        return np.ascontiguousarray(_pil_pixels(image, name), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.dtype.kind not in "uif":
        raise ImageError(
            f"{name}: pixels of type {arr.dtype} are not supported; expected "
            f"uint8 (0..255), uint16 (0..65535) or floats in [0, 1]"
        )
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise ImageError(
            f"{name}: an array of shape {arr.shape} is not an image; expected "
            f"(H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    _check_size(name, arr.shape[1], arr.shape[0])
    if arr.ndim == 3:
        arr = arr[:, :, 0] if arr.shape[2] == 1 else arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == np.uint16:
        return _scale_16bit(arr)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ImageError(f"{name}: float pixels include NaN or infinity")
    low, high = arr.min(), arr.max()
    if arr.dtype.kind == "f":
        if low < 0 or high > 1:
            raise ImageError(
                f"{name}: float pixels must be in [0, 1], got {low:.4g} to "
                f"{high:.4g} (divide 0..255 values by 255, or pass uint8)"
            )
        return np.rint(arr * 255).astype(np.uint8)
    if low < 0 or high > 255:
        raise ImageError(
            f"{name}: integer pixels must be in 0..255 (uint16: 0..65535), got {low} to {high}"
        )
    return arr.astype(np.uint8)
