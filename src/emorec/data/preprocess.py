"""Preprocessing shared by training, evaluation and inference.

Two steps, kept apart so the expensive one is cached:

1. ``prepare_image``: any decoded image (gray or colour, any size) ->
   optional face crop -> grayscale or RGB -> square uint8 of ``image_size``.
   Its output is what the dataset cache stores.
2. ``normalize``: uint8 batch -> float32 in [-1, 1], per batch, cheap.

Validation and test arrays went through step 1 at load time, and every serving path
prepares raw images with the same step (``prepare_batch``) before the network's own
``normalize``, so a served model sees exactly what it was evaluated on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from emorec.data import faces
from emorec.errors import UserError


@dataclass(frozen=True)
class Preprocessing:
    """How raw images become model input; logged with every model."""

    image_size: int = 48  # side of the square image the model sees
    channels: int = 1  # 1 = grayscale, 3 = RGB
    face_detect: bool = False  # crop the largest face first, levelled and framed
    detector: str = faces.DEFAULT_DETECTOR  # what finds faces, in training and serving

    def __post_init__(self) -> None:
        if self.detector not in faces.DETECTORS:
            raise UserError(
                f"unknown detector {self.detector!r}; valid: {', '.join(faces.DETECTORS)}"
            )
        if not 16 <= self.image_size <= 512:
            raise UserError(f"image_size must be in [16, 512], got {self.image_size}")
        if self.channels not in (1, 3):
            raise UserError(f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}")
        if not isinstance(self.face_detect, bool):
            raise UserError(f"face_detect must be true or false, got {self.face_detect!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        # The logged model's settings, written by to_dict (pickled, or JSON in an ONNX
        # export): face_detect is a real bool, never text to parse.
        return cls(int(d["image_size"]), int(d["channels"]), d["face_detect"], d["detector"])


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 -> (H, W, channels)."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 2:
        return img[:, :, None] if channels == 1 else np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[:, :, None] if channels == 1 else img
    raise UserError(f"expected a (H, W) or (H, W, 1/3/4) image, got shape {img.shape}")


def prepare_image(
    img: np.ndarray, prep: Preprocessing, *, detect: bool | None = None
) -> tuple[np.ndarray, faces.Face | None]:
    """One raw image -> (image_size, image_size, channels) uint8, plus the face used.

    ``detect`` (default ``prep.face_detect``) first cuts out the largest face, levelled and
    framed (``faces.face_crop``); the face is None when detection is off or found none
    (the whole image is used then).
    """
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    face = None
    if prep.face_detect if detect is None else detect:
        face = faces.largest_face(img, prep.detector)
        if face is not None:
            img = faces.face_crop(img, face)
    return resized(img, prep), face


def resized(img: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """A face crop (or a whole image) -> (image_size, image_size, channels) uint8."""
    img = to_channels(img, prep.channels)
    side = prep.image_size
    if img.shape[0] != side or img.shape[1] != side:
        interp = cv2.INTER_AREA if min(img.shape[:2]) > side else cv2.INTER_LINEAR
        img = cv2.resize(img, (side, side), interpolation=interp)
        if img.ndim == 2:
            img = img[:, :, None]
    return np.ascontiguousarray(img)


def normalize(batch: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 in [-1, 1]; the same for every model."""
    return batch.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def network_input(batch: np.ndarray, layout: str = "NHWC") -> np.ndarray:
    """uint8 (N, H, W, C) -> the float32 input of a network taking ``layout`` (NHWC or
    NCHW): ``normalize``, then the layout, contiguous."""
    x = normalize(batch)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if layout == "NCHW" else x)


def prepare_batch(images, prep: Preprocessing, *, detect: bool | None = None) -> np.ndarray:
    """Raw images (any-size uint8 arrays) -> uint8 (N, S, S, C), as ``prepare_image``."""
    prepared = [prepare_image(np.asarray(img), prep, detect=detect)[0] for img in images]
    return (
        np.stack(prepared)
        if prepared
        else np.zeros((0, prep.image_size, prep.image_size, prep.channels), np.uint8)
    )
