"""Faces as users' photos bring them: detectors on wild-faces, emorec's whole pipeline
against fer's on the same photos, the framing measured on FER2013, and video throughput.

- Detectors: each of emorec's detectors on every wild-faces photo: the share with a face
  found, with more than one (nearly every photo shows one person), and median ms a photo
  on this CPU.
- Framing: on FER2013 train faces (upscaled 4x, borders repeated), each detector's box as
  a share of the 48-px frame (``emorec.data.faces.FRAME``), and its spread: the jitter a
  detector adds to FER's own framing, which training's augmentation should cover.
- Pipeline: the champion (``--model-uri``, by default the registered FER2013 champion)
  through ``emorec.load(...).predict(photo)`` (find, level, frame, classify), against fer
  through its own pipeline (``FER().detect_emotions(photo)``: its default detector, and
  with ``mtcnn=True``) run by its own interpreter (``--fer-python``) in a child process.
  Each is judged on the largest face of each photo (a photo where it finds none counts as
  wrong) over the seven classes both know: wild-faces' contempt, which FER2013 lacks, is
  left out. Accuracy, macro F1 and each class's recall.
- Video: a 640x480 clip of a wild-faces photo moving, through ``predict_video`` and
  ``write_timeline`` (find, level, frame, classify, follow, write): frames/s end to end.

wild-faces' labels are crowd-sourced and noisy; its people appear in no training set here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402

FER_CLASSES = ("anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")
FER_NAMES = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "neutral": "neutral",
    "sad": "sadness",
    "surprise": "surprise",
}


def wild_photos(root: Path, limit: int = 0) -> list[tuple[str, str]]:
    """(path, label) of every wild-faces photo of the seven shared classes, path-sorted (the
    first ``limit`` of a fixed shuffle when ``limit``)."""
    import random

    items = sorted(
        (str(p), p.parent.name)
        for p in root.glob("*/*")
        if p.is_file() and p.parent.name in FER_CLASSES
    )
    if limit:
        random.Random(0).shuffle(items)
        items = sorted(items[:limit])
    return items


def detectors(items: list[tuple[str, str]]) -> dict:
    from emorec.data import faces
    from emorec.data.images import decode_image

    photos = [decode_image(path) for path, _ in items]
    out = {}
    for name in faces.DETECTORS:
        faces.detect_faces(photos[0], name)  # warm-up: the model loads once
        found, many, ms = 0, 0, []
        for img in photos:
            start = time.perf_counter()
            hits = faces.detect_faces(img, name)
            ms.append(1e3 * (time.perf_counter() - start))
            found += bool(hits)
            many += len(hits) > 1
        out[name] = {
            "photos": len(photos),
            "detection_rate": found / len(photos),
            "more_than_one_face": many / len(photos),
            "ms_median": benchlib.median(ms),
            "ms_p90": benchlib.percentile(ms, 0.9),
        }
        print(f"{name}: {found}/{len(photos)} found, {benchlib.median(ms):.1f} ms", flush=True)
    return out


def levelling(items: list[tuple[str, str]], n: int) -> dict:
    """How level faces come out: ``n`` photos, each turned by three random angles up to 25
    degrees; the levelling angle found against the photo's own (upright) one plus the
    angle added. The photo's own measurement is noisy too, so this overstates the error."""
    import cv2
    import numpy as np

    from emorec.data import faces
    from emorec.data.images import decode_image

    rng, errors = np.random.default_rng(0), []
    for path, _ in items[:n]:
        img = decode_image(path)
        upright = faces.largest_face(img)
        if upright is None:
            continue
        base = faces.level_angle(img, upright)
        for degrees in rng.uniform(-25, 25, 3):
            h, w = img.shape[:2]
            matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
            turned = cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)
            face = faces.largest_face(turned)
            if face is not None:
                errors.append(abs(faces.level_angle(turned, face) - (base - degrees)))
    return {
        "faces": len(errors),
        "error_median_deg": float(np.median(errors)),
        "error_p90_deg": float(np.percentile(errors, 90)),
        "over_5_deg": float(np.mean(np.array(errors) > 5)),
    }


def framing(fer_dir: Path, n: int) -> dict:
    """Each detector's box against FER2013's 48-px frame, on ``n`` train faces."""
    import cv2
    import numpy as np

    from emorec.data import faces

    files = benchlib.fer_train_sample(fer_dir, n)
    out = {}
    for name in faces.DETECTORS:
        widths, centres, rolls = [], [], []
        for f in files:
            small = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            big = cv2.copyMakeBorder(
                cv2.resize(small, (192, 192), interpolation=cv2.INTER_CUBIC),
                48,
                48,
                48,
                48,
                cv2.BORDER_REPLICATE,
            )
            found = faces.detect_faces(big, name)
            if not found:
                continue
            x, y, w, h = found[0].box
            widths.append(w / 192)
            centres.append(((x - 48 + w / 2) / 192 - 0.5, (y - 48 + h / 2) / 192 - 0.5))
            rolls.append(found[0].roll)
        widths, centres = np.array(widths), np.array(centres)
        out[name] = {
            "faces": len(widths),
            "of": len(files),
            "box_share_median": float(np.median(widths)),
            "box_share_p10_p90": [float(np.percentile(widths, q)) for q in (10, 90)],
            "centre_offset_p10_p90": [float(np.percentile(centres, q)) for q in (10, 90)],
            "roll_p10_p90": [float(np.percentile(rolls, q)) for q in (10, 90)],
            "frame_constant": faces.FRAME[name],
        }
    return out


def scores(truth: list[str], predicted: list[str | None]) -> dict:
    """Accuracy, macro F1 and per-class recall over ``FER_CLASSES`` (None: no answer)."""
    from sklearn.metrics import f1_score, recall_score

    answered = [p or "none" for p in predicted]
    labels = list(FER_CLASSES)
    recall = recall_score(truth, answered, labels=labels, average=None, zero_division=0)
    return {
        "photos": len(truth),
        "accuracy": sum(t == p for t, p in zip(truth, answered)) / len(truth),
        "f1_macro": float(
            f1_score(truth, answered, labels=labels, average="macro", zero_division=0)
        ),
        "recall": dict(zip(labels, map(float, recall))),
        "no_face": sum(p is None for p in predicted) / len(truth),
    }


def emorec_pipeline(model_uri: str, items: list[tuple[str, str]]) -> tuple[dict, dict]:
    """The champion on every photo as ``emorec.load(...).predict`` serves it."""
    import emorec
    from emorec.data.images import decode_image

    out, facts = {}, {}
    for detector in ("yunet", "haar"):
        predictor = emorec.load(model_uri, detector=detector)
        predicted, start = [], time.perf_counter()
        for path, _ in items:
            found = [p for p in predictor.predict(decode_image(path)) if p.face_found]
            best = max(found, key=lambda p: p.box[2] * p.box[3], default=None)
            predicted.append(best.label if best else None)
        result = scores([label for _, label in items], predicted)
        result["ms_per_photo"] = 1e3 * (time.perf_counter() - start) / len(items)
        out[f"emorec_{detector}"] = result
        print(f"emorec ({detector}): accuracy {result['accuracy']:.4f}", flush=True)
    facts["classes"] = predictor.classes
    return out, facts


def fer_child(paths_file: str) -> None:
    """Runs under fer's interpreter: fer's own pipeline on each photo; one JSON line."""
    import cv2
    from fer.fer import FER  # fer 25 no longer exports it at the top

    items = json.loads(Path(paths_file).read_text())
    out = {}
    for mtcnn in (False, True):
        detector, predicted, start = FER(mtcnn=mtcnn), [], time.perf_counter()
        for path, _ in items:
            found = detector.detect_emotions(cv2.imread(path))  # BGR, as fer reads files
            best = max(found, key=lambda f: f["box"][2] * f["box"][3], default=None)
            emotions = best["emotions"] if best else None
            predicted.append(FER_NAMES[max(emotions, key=emotions.get)] if emotions else None)
        out["fer_mtcnn" if mtcnn else "fer"] = {
            "predicted": predicted,
            "ms_per_photo": 1e3 * (time.perf_counter() - start) / len(items),
        }
    import fer

    out["fer_version"] = getattr(fer, "__version__", "?")
    print(json.dumps(out))


def video_throughput(model_uri: str, photo: str, frames: int) -> dict:
    """frames/s of a 640x480 clip with one face, end to end (read, find, level, frame,
    classify, follow, write the timeline)."""
    import cv2
    import numpy as np

    import emorec
    from emorec.serving.timeline import write_timeline
    from emorec.serving.video import predict_video

    predictor = emorec.load(model_uri)
    face = cv2.resize(cv2.imread(photo), (200, 200))
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 25, (640, 480))
        for i in range(frames):
            frame = np.full((480, 640, 3), 128, np.uint8)
            x, y = 100 + (3 * i) % 300, 120 + (2 * i) % 150
            frame[y : y + 200, x : x + 200] = face
            writer.write(frame)
        writer.release()
        info: dict = {}
        start = time.perf_counter()
        summary = write_timeline(
            predict_video(predictor, clip, info=info),
            predictor.classes,
            Path(tmp) / "t.csv",
            Path(tmp) / "t.json",
            info,
            progress=False,
        )
        seconds = time.perf_counter() - start
    return {
        "frames": summary["frames"],
        "seconds": seconds,
        "frames_per_s": frames / seconds,
        "tracks": len(summary["tracks"]),
        "size": "640x480",
    }


def champion_facts(model_uri: str) -> dict:
    from emorec import tracking

    facts = tracking.training_facts(tracking.run_id_of(model_uri))
    return {
        "model_uri": model_uri,
        "run_id": facts["run_id"],
        "model": facts["params"].get("model"),
        "dataset": facts["params"].get("dataset"),
        "publictest_accuracy": facts["metrics"].get("test_accuracy"),
    }


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--model-uri", default="models:/emorec-cnn_torch-fer2013@champion")
    p.add_argument("--store", default="", help="the MLflow store holding the model")
    p.add_argument(
        "--fer-python",
        default="/work/fervenv/bin/python",
        help="an interpreter with the fer package installed ('' to skip fer)",
    )
    p.add_argument("--limit", type=int, default=0, help="photos of wild-faces (0 = all)")
    p.add_argument("--framing-faces", type=int, default=2000)
    p.add_argument("--video-frames", type=int, default=250)
    args = benchlib.parse_or_run_child(p, "fer-child", lambda paths, a: fer_child(paths))
    started = time.time()
    wild = benchlib.require(args.data, "wild-faces")
    items = wild_photos(wild, args.limit)
    figures: dict = {"detectors": detectors(items), "levelling": levelling(items, 300)}
    fer_dir = benchlib.dataset_dir(args.data, "fer2013")
    if fer_dir is not None:
        figures["framing"] = framing(fer_dir, args.framing_faces)
    if args.store:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(args.store) / 'mlflow.db'}"
    figures["champion"] = champion_facts(args.model_uri)
    pipelines, _ = emorec_pipeline(args.model_uri, items)
    if args.fer_python and Path(args.fer_python).exists():
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(items, fh)
        fer = benchlib.run_json([args.fer_python, __file__, "--fer-child", fh.name], timeout=7200)
        for name in ("fer", "fer_mtcnn"):
            pipelines[name] = {
                **scores([label for _, label in items], fer[name]["predicted"]),
                "ms_per_photo": fer[name]["ms_per_photo"],
            }
        figures["fer_version"] = fer["fer_version"]
    figures["pipelines"] = pipelines
    figures["video"] = video_throughput(args.model_uri, items[0][0], args.video_frames)
    benchlib.save(
        "faces",
        "Faces as photos bring them: detectors, pipeline vs fer, video",
        args,
        started=started,
        **report(figures),
    )


def report(figures: dict) -> dict:
    """Tables, targets and notes for ``benchlib.save``."""
    pipelines, rows = figures["pipelines"], []
    for name, r in pipelines.items():
        rows.append(
            [
                name,
                r["accuracy"],
                r["f1_macro"],
                r["no_face"],
                r["ms_per_photo"],
                *(round(r["recall"][c], 3) for c in FER_CLASSES),
            ]
        )
    detector_rows = [
        [n, d["detection_rate"], d["more_than_one_face"], d["ms_median"]]
        for n, d in figures["detectors"].items()
    ]
    best = pipelines["emorec_yunet"]
    targets = [
        benchlib.target(
            "video frames/s, 640x480 clip, one face",
            figures["video"]["frames_per_s"],
            ">= 25",
            figures["video"]["frames_per_s"] >= 25,
        )
    ]
    present = [c for c in FER_CLASSES if c in best["recall"]]
    targets.append(
        benchlib.target(
            "classes of wild-faces the pipeline never predicts",
            sum(best["recall"][c] == 0 for c in present),
            "0",
            all(best["recall"][c] > 0 for c in present),
        )
    )
    fer_best = max(
        (pipelines[n] for n in ("fer", "fer_mtcnn") if n in pipelines),
        key=lambda r: r["accuracy"],
        default=None,
    )
    if fer_best is not None:
        gap = 100 * (best["accuracy"] - fer_best["accuracy"])
        targets.append(
            benchlib.target(
                "wild-faces accuracy, emorec minus fer's best (points)", gap, ">= 10", gap >= 10
            )
        )
        targets.append(
            benchlib.target(
                "wild-faces macro F1, emorec minus fer's best",
                best["f1_macro"] - fer_best["f1_macro"],
                "> 0",
                best["f1_macro"] > fer_best["f1_macro"],
            )
        )
    columns = [
        "pipeline",
        "accuracy",
        "F1 macro",
        "no face",
        "ms/photo",
        *[f"recall {c}" for c in FER_CLASSES],
    ]
    notes = [
        f"Champion {figures['champion']['model_uri']} (run {figures['champion']['run_id']}"
        f", PublicTest accuracy {figures['champion']['publictest_accuracy']})."
    ]
    return {
        "figures": figures,
        "targets": targets,
        "notes": notes,
        "tables": {
            "pipelines": benchlib.markdown_table(columns, rows),
            "detectors": benchlib.markdown_table(
                ["detector", "detection rate", ">1 face", "ms median"], detector_rows
            ),
        },
    }


if __name__ == "__main__":
    main()
