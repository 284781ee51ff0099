"""Face detection with OpenCV's Haar cascade (opencv 4.x ships the model file).

Used by training preprocessing and by inference alike, so both crop faces the
same way. The cascade is loaded once per process.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

CASCADE = "haarcascade_frontalface_default.xml"


@lru_cache(maxsize=1)
def _detector() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(
            "this OpenCV build has no Haar cascades; install "
            "opencv-python-headless<5 (the version emorec pins)"
        )
    det = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if det.empty():
        raise RuntimeError(f"could not load {CASCADE} from {cv2.data.haarcascades}")
    return det


def detect_faces(img: np.ndarray) -> list[tuple[int, int, int, int]]:
    """All faces as (x, y, w, h), largest first; ``img`` is uint8 (H, W), (H, W, 1), RGB or RGBA."""
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    gray = (
        img
        if img.ndim == 2
        else cv2.cvtColor(np.ascontiguousarray(img[:, :, :3]), cv2.COLOR_RGB2GRAY)
    )
    min_side = max(16, min(gray.shape[:2]) // 8)
    found = _detector().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    boxes = [tuple(int(v) for v in b) for b in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def largest_face(img: np.ndarray) -> tuple[int, int, int, int] | None:
    boxes = detect_faces(img)
    return boxes[0] if boxes else None
