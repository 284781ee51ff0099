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
ERASED_AREA = (0.02, 0.25)  # random erasing: share of the image a rectangle covers
ERASED_ASPECT = (0.3, 3.3)  # and its height / width ratio (Zhong et al., 2020)


def augment_batch(batch: np.ndarray, rng: np.random.Generator, erasing: float = 0.0) -> np.ndarray:
    """Random flip, rotation, shift, zoom and brightness for a (N, H, W, C) uint8 batch,
    then random erasing of a share ``erasing`` of the images."""
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
        warped = cv2.warpAffine(
            np.ascontiguousarray(img),
            m,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        out[i] = warped.reshape(h, w, c)
    # Brightness in float over the whole batch at once, then back to uint8.
    out = np.clip(out.astype(np.float32) * gains[:, None, None, None], 0, 255).astype(np.uint8)
    return erase_rectangles(out, rng, erasing) if erasing > 0 else out


def erase_rectangles(batch: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """Random erasing, in place: a rectangle of noise over a share of the images, so the
    model cannot lean on any one facial region (an occluded mouth, a hand over an eye)."""
    n, h, w, c = batch.shape
    for i in np.flatnonzero(rng.random(n) < share):
        area = rng.uniform(*ERASED_AREA) * h * w
        aspect = np.exp(rng.uniform(*np.log(ERASED_ASPECT)))
        eh = min(h, max(1, int(round(np.sqrt(area * aspect)))))
        ew = min(w, max(1, int(round(np.sqrt(area / aspect)))))
        y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
        batch[i, y : y + eh, x : x + ew] = rng.integers(0, 256, (eh, ew, c), dtype=np.uint8)
    return batch


def mix_batch(
    batch: np.ndarray,
    targets: np.ndarray,
    num_classes: int,
    rng: np.random.Generator,
    mixup: float = 0.0,
    cutmix: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al., 2018) or CutMix (Yun et al., 2019), one of the two per batch
    when both are on: each image blended with (or a rectangle pasted from) another of the
    batch, by a share drawn from Beta(alpha, alpha). Returns the float32 batch and soft
    targets (N, K) that mix the two labels by the same share."""
    onehot = np.eye(num_classes, dtype=np.float32)[targets]
    kinds = [k for k, alpha in (("mixup", mixup), ("cutmix", cutmix)) if alpha > 0]
    if not kinds:
        return batch, onehot
    kind = kinds[rng.integers(len(kinds))]
    alpha = mixup if kind == "mixup" else cutmix
    lam = float(rng.beta(alpha, alpha))
    other = rng.permutation(len(targets))
    if kind == "mixup":
        mixed = lam * batch + (1 - lam) * batch[other]
    else:
        n, h, w, c = batch.shape
        ch, cw = int(round(h * np.sqrt(1 - lam))), int(round(w * np.sqrt(1 - lam)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        mixed = batch.copy()
        mixed[:, y : y + ch, x : x + cw] = batch[other, y : y + ch, x : x + cw]
        lam = 1 - ch * cw / (h * w)  # the share actually kept
    return mixed.astype(np.float32), lam * onehot + (1 - lam) * onehot[other]
