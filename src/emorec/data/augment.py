"""Training-time augmentation, applied per batch on uint8 arrays.

Framework-free (NumPy + one OpenCV warp per image) so the PyTorch and Keras
engines augment identically. A 48x48 warp costs microseconds, so a batch of
64 adds well under a millisecond next to the model's forward pass.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_ROTATION_DEG = 10.0
MAX_SHIFT = 0.08  # fraction of the side
MAX_SCALE = 0.08  # zoom in or out by up to this fraction
MAX_BRIGHTNESS = 0.2  # multiplicative, +-20 %


def augment_batch(batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip, rotation, shift, zoom and brightness for a (N, H, W, C) uint8 batch."""
    n, h, w, c = batch.shape
    out = np.empty_like(batch)
    flips = rng.random(n) < 0.5
    angles = rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG, n)
    scales = 1.0 + rng.uniform(-MAX_SCALE, MAX_SCALE, n)
    shifts = rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 2)) * (w, h)
    gains = 1.0 + rng.uniform(-MAX_BRIGHTNESS, MAX_BRIGHTNESS, n)
    centre = (w / 2.0, h / 2.0)
    for i in range(n):
        img = batch[i]
        if flips[i]:
            img = img[:, ::-1]
        m = cv2.getRotationMatrix2D(centre, float(angles[i]), float(scales[i]))
        m[:, 2] += shifts[i]
        warped = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        out[i] = warped.reshape(h, w, c)
    # Brightness in float over the whole batch at once, then back to uint8.
    return np.clip(out.astype(np.float32) * gains[:, None, None, None], 0, 255).astype(np.uint8)
