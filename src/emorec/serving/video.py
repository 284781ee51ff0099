"""Video: the faces of a clip or a camera followed frame to frame, read as the photos are.

    for frame in predict_video(predictor, "clip.mp4", every=5):
        print(frame.time, [(p.track, p.label) for p in frame.faces])

Frames are read one at a time and never kept, so a clip of hours takes the memory of one
frame; ``every`` (or ``fps``) samples them. Each sampled frame goes through the photo
pipeline (``Predictor.predict_pixels``: faces found, levelled, framed, classified); a
face is given the track of the face it overlaps most in the frames before (intersection
over union), or a new one; ``smoothing`` averages each track's probabilities over time.
``emorec.serving.timeline`` writes what it yields.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from emorec.data.images import MAX_PIXELS
from emorec.errors import MissingFile, UserError

if TYPE_CHECKING:  # the predictor imports this module: types only, no cycle
    from emorec.serving.predictor import Prediction, Predictor

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
DETECT_SIDE = 320  # frames are searched for faces at most this large: video is about speed
MATCH_IOU = 0.3  # a face overlapping a track's last box this much continues it
FORGET_AFTER = 10  # sampled frames a track may go unseen before its id is retired


@dataclass(frozen=True)
class Frame:
    index: int  # the frame's number in the video, from 0
    time: float  # seconds from the start
    faces: list[Prediction]  # each with its ``track``
    pixels: np.ndarray  # RGB, for an annotated copy: gone with the frame


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_video(source: str | os.PathLike | int) -> tuple[cv2.VideoCapture, str]:
    """A capture of a video file or a camera (an index), and a name for it; the cases a
    capture cannot read (no such file, no such camera, frames beyond the pixel limit) are
    one line each."""
    if isinstance(source, int):
        capture, name = cv2.VideoCapture(source), f"camera{source}"
        if not capture.isOpened():
            raise UserError(f"no camera {source} on this machine (or it is in use)")
    else:
        path = Path(source)
        if not path.exists():
            raise MissingFile(f"no such video: {path}")
        if not path.is_file():
            raise UserError(f"{path} is not a regular file (a folder, pipe or device)")
        capture, name = cv2.VideoCapture(str(path)), path.stem
        if not capture.isOpened():
            raise UserError(f"{path}: not a video OpenCV can read")
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > MAX_PIXELS:
        capture.release()
        raise UserError(
            f"{name}: frames of {width}x{height} exceed the limit of {MAX_PIXELS} pixels a frame"
        )
    return capture, name


class Tracks:
    """Track ids by box overlap, with each track's smoothed probabilities."""

    def __init__(self, smoothing: float = 0.0):
        self.smoothing, self.next_id = smoothing, 0
        self.last: dict[int, tuple[tuple[int, int, int, int], int, np.ndarray]] = {}

    def follow(
        self, predictions: list[Prediction], classes: list[str], frame: int
    ) -> list[Prediction]:
        free = {t: v for t, v in self.last.items() if frame - v[1] <= FORGET_AFTER}
        pairs = sorted(
            (
                (iou(p.box, box), t, i)
                for i, p in enumerate(predictions)
                if p.face_found
                for t, (box, _, _) in free.items()
            ),
            reverse=True,
        )
        track_of: dict[int, int] = {}
        for overlap, track, index in pairs:
            if overlap < MATCH_IOU:
                break
            if track in track_of.values() or index in track_of:
                continue
            track_of[index] = track
        followed = []
        for i, p in enumerate(predictions):
            if not p.face_found:
                followed.append(p)
                continue
            track = track_of.get(i)
            if track is None:
                track, self.next_id = self.next_id, self.next_id + 1
            proba = np.array([p.probabilities[c] for c in classes])
            if track in free and self.smoothing:
                proba = self.smoothing * free[track][2] + (1 - self.smoothing) * proba
            self.last[track] = (p.box, frame, proba)
            followed.append(
                dataclasses.replace(
                    p,
                    track=track,
                    label=classes[int(proba.argmax())],
                    confidence=float(proba.max()),
                    probabilities=dict(zip(classes, map(float, proba))),
                )
            )
        self.last = {t: v for t, v in self.last.items() if frame - v[1] <= FORGET_AFTER}
        return followed


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


def predict_video(
    predictor: Predictor,
    source: str | os.PathLike | int,
    *,
    every: int = 1,
    fps: float | None = None,
    smoothing: float = 0.0,
    info: dict | None = None,
) -> Iterator[Frame]:
    """Frame by frame, the faces of every ``every``-th frame (or ``fps`` frames a second)
    of a video file or camera; ``info``, when given, is filled with the video's name,
    frame rate and size as soon as it is open."""
    if every < 1 or (fps is not None and not (math.isfinite(fps) and fps > 0)):
        raise UserError(f"--every must be >= 1 and --fps > 0, got {every} and {fps}")
    if not 0 <= smoothing < 1:
        raise UserError(f"--smooth must be in [0, 1) (0 = none), got {smoothing}")
    capture, name = open_video(source)
    native = capture.get(cv2.CAP_PROP_FPS) or 0.0
    rate = native if native > 0 and math.isfinite(native) else 25.0
    step = max(1, round(rate / fps)) if fps else every
    if info is not None:
        info.update(
            name=name,
            fps=rate,
            step=step,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frame_count=int(capture.get(cv2.CAP_PROP_FRAME_COUNT)),
        )
    tracks, index, read = Tracks(smoothing), -1, 0
    try:
        while True:
            index += 1
            if index % step and capture.grab():  # a skipped frame is not decoded
                continue
            ok, bgr = capture.read() if index % step == 0 else (False, None)
            if not ok:
                break
            read += 1
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found = predictor.predict_pixels([(name, rgb)], True, 64, detect_side=DETECT_SIDE)
            followed = tracks.follow(found, predictor.classes, index)
            yield Frame(index, index / rate, followed, rgb)
    finally:
        capture.release()
    if not read:
        raise UserError(f"{name}: no frame could be read (an empty or corrupt video)")
