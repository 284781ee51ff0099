"""A video's per-face timeline, written as ``predict_video`` yields it: CSV and JSON row by
row (so an interrupted clip leaves valid files of what it read) and, on request, a copy of
the video with the faces drawn."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2

from emorec.errors import UserError
from emorec.serving.predictor import Prediction
from emorec.serving.video import Frame


def write_timeline(
    frames: Iterator[Frame],
    classes: list[str],
    csv_path: Path,
    json_path: Path,
    info: dict,
    annotated: Path | None = None,
    progress: bool = True,
) -> dict:
    """Write ``frames`` as a CSV and a JSON timeline (one row per face per sampled frame:
    time, frame, track, box, label, every class's probability) and, with ``annotated``, a
    copy of the video with the faces drawn. Rows are written as they come, and the files
    are closed on any exit (Ctrl-C included) as valid CSV and JSON. Returns a summary."""
    from tqdm import tqdm

    from emorec.serving.files import draw

    csv_path.parent.mkdir(parents=True, exist_ok=True)
    writer_video, counts, started, done = None, {}, time.perf_counter(), 0
    bar = tqdm(unit="frame", file=sys.stderr, disable=not progress)
    with open(csv_path, "w", newline="") as csv_file, open(json_path, "w") as json_file:
        table = csv.writer(csv_file)
        table.writerow(
            [
                "time_s",
                "frame",
                "track",
                "x",
                "y",
                "w",
                "h",
                "label",
                "confidence",
                "detector_score",
                *classes,
            ]
        )
        json_file.write('{"frames": [\n')
        first = True
        try:
            for frame in frames:
                if not first:
                    json_file.write(",\n")
                first, done = False, done + 1
                faces = [p for p in frame.faces if p.face_found]
                for p in faces:
                    table.writerow(
                        [
                            f"{frame.time:.3f}",
                            frame.index,
                            p.track,
                            *p.box,
                            p.label,
                            f"{p.confidence:.6f}",
                            f"{p.detector_score:.4f}",
                            *(f"{p.probabilities[c]:.6f}" for c in classes),
                        ]
                    )
                    counts.setdefault(p.track, {}).setdefault(p.label, 0)
                    counts[p.track][p.label] += 1
                json.dump(
                    {
                        "time": round(frame.time, 3),
                        "frame": frame.index,
                        "faces": [_face_json(p) for p in faces],
                    },
                    json_file,
                )
                if annotated is not None:
                    writer_video = writer_video or _video_writer(annotated, info)
                    writer_video.write(draw(frame.pixels, faces))
                bar.update(1)
                bar.set_postfix_str(f"{done / (time.perf_counter() - started):.1f} frames/s")
        finally:
            bar.close()
            info["frames_read"], info["seconds"] = done, time.perf_counter() - started
            json_file.write("\n], " + json.dumps(info)[1:] + "\n")
            if writer_video is not None:
                writer_video.release()
    return {
        "frames": done,
        "tracks": {t: max(c, key=c.get) for t, c in counts.items()},
        "frames_per_s": done / max(info["seconds"], 1e-9),
    }


def _face_json(p: Prediction) -> dict:
    return {
        "track": p.track,
        "box": list(p.box),
        "label": p.label,
        "confidence": round(p.confidence, 6),
        "detector_score": round(p.detector_score, 4),
        "landmarks": [[round(x, 1), round(y, 1)] for x, y in p.landmarks or []],
        "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
    }


def _video_writer(path: Path, info: dict) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    fps = info["fps"] / info["step"]
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (info["width"], info["height"])
    )
    if not writer.isOpened():
        raise UserError(f"cannot write a video at {path} (OpenCV has no encoder for it)")
    return writer
