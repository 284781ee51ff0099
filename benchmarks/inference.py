"""Inference latency and accuracy: a registered champion through ``emorec.load`` (PyTorch and
ONNX Runtime) vs the ``fer`` package, on the same FER2013 PublicTest faces.

The champion: ``--model-uri`` if given, else this script trains cnn_torch on a random
``--train-images`` subset of FER2013 ``train/`` for ``--epochs`` epochs in a throwaway
store and registers it (``emorec.tracking.model_registry.register_best``: alias
``champion``); it is then loaded as ``models:/emorec-cnn_torch-fer2013@champion`` and
exported to ONNX with ``emorec.serving.onnx_export.export_onnx`` (parity-checked), and that
file is loaded through the same API (ONNX Runtime). The same champion is also exported as int8
(``emorec.serving.quantize.export_int8``: static quantization calibrated on its own training split)
and loaded the same way: float32 vs int8 ONNX, side by side on the same images, with the
size of each file; and as int8 without its test-time augmentation (``--no-tta``: one pass
per face instead of the image and its mirror image).

Every image is a 48x48 face crop already, so face detection is off on both sides: emorec
``predict(img, detect_faces=False)``; fer ``detect_emotions(img, face_rectangles=[whole
image])`` (its public per-image API; fer has no batch API, so its "batch" figure is its
per-image loop). Single-image latency: each of ``--single`` images predicted alone, one
warm-up first; p50/p90 reported. The float32 ONNX, int8 ONNX and fer TFLite figures are
timed in turns (``interleaved``: 25 images each, the order rotated every turn, fer in a
child process that waits for its turn), so a change in the shared machine's load hits all
of them alike; the CPU's SIMD flags are recorded, since int8 speed depends on VNNI. Batch:
``--batch``-image lists, median per image.
Accuracy: over all PublicTest images (or ``--eval-images``).

fer (pip ``fer``: mini-Xception trained on FER2013, needs TensorFlow and opencv < 5) runs in
its own interpreter (``--fer-python``) so TensorFlow never shares a process with PyTorch;
it is measured in its default configuration (quantized TFLite model) and with its Keras
model (``use_tflite=False``). Without ``--fer-python`` (or when fer does not import) the fer
side is reported as not run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

DEFAULT_FER_PYTHON = "/tmp/fervenv/bin/python"
FER_LABELS = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sad": "sadness",
    "surprise": "surprise",
    "neutral": "neutral",
}


TURN = 25  # images per backend per turn in the interleaved timing


def time_each(predict_one, images: list) -> list[float]:
    """ms per call of ``predict_one`` on each image, one at a time."""
    times = []
    for img in images:
        start = time.perf_counter()
        predict_one(img)
        times.append(1e3 * (time.perf_counter() - start))
    return times


def interleaved(timers: dict, count: int) -> dict[str, list[float]]:
    """Single-image times of several backends over the same first ``count`` images, taken
    in turns of ``TURN`` images, the order rotated every turn. ``timers[name](start, end)``
    returns the ms of each image in ``images[start:end]``."""
    names, times = list(timers), {name: [] for name in timers}
    for turn, start in enumerate(range(0, count, TURN)):
        k = turn % len(names)
        for name in names[k:] + names[:k]:
            times[name] += timers[name](start, min(start + TURN, count))
    return times


def latency(predict_one, predict_many, images: list, single: int, batch: int) -> dict:
    """p50/p90 single-image latency (ms) and median per-image time in batches (ms)."""
    predict_one(images[0])  # warm-up
    times = time_each(predict_one, images[:single])
    per_image = []
    for start in range(0, min(len(images), 4 * batch), batch):
        chunk = images[start : start + batch]
        t = time.perf_counter()
        predict_many(chunk)
        per_image.append(1e3 * (time.perf_counter() - t) / len(chunk))
    return {
        "single_p50_ms": benchlib.percentile(times, 0.5),
        "single_p90_ms": benchlib.percentile(times, 0.9),
        "batch_ms_per_image": benchlib.median(per_image),
        "batch_size": batch,
    }


def fer_child(paths_file: str, single: int, batch: int) -> None:
    """Runs under the fer interpreter; prints one JSON line."""
    import cv2
    from fer.fer import FER

    items = json.loads(Path(paths_file).read_text())
    images = [cv2.imread(path) for path, _ in items]  # BGR, as fer expects
    serve_turns(FER(mtcnn=False, use_tflite=True), images)
    out = {}
    for tflite in (True, False):
        detector = FER(mtcnn=False, use_tflite=tflite)

        def one(img, detector=detector):
            h, w = img.shape[:2]
            return detector.detect_emotions(img, face_rectangles=[(0, 0, w, h)])

        figures = latency(one, lambda imgs: [one(i) for i in imgs], images, single, batch)
        correct = 0
        for img, (_, label) in zip(images, items):
            faces = one(img)
            if faces:
                emotions = faces[0]["emotions"]
                correct += FER_LABELS[max(emotions, key=emotions.get)] == label
        figures["accuracy"] = correct / len(items)
        out["fer_tflite" if tflite else "fer_keras"] = figures
    out["fer_keras_own_crop"] = fer_at_its_best(detector, images, items, single, batch)
    import fer

    out["fer_version"] = fer.__version__
    print(json.dumps(out))


def serve_turns(detector, images: list) -> None:
    """The child's side of ``interleaved``: for each "START END" line on stdin, time fer's
    default (TFLite) detector on images[START:END] and answer with one JSON line; an empty
    line or the end of stdin ends the turns."""

    def one(img):
        h, w = img.shape[:2]
        return detector.detect_emotions(img, face_rectangles=[(0, 0, w, h)])

    one(images[0])  # warm-up
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            break
        start, end = map(int, line.split())
        print(json.dumps({"ms": time_each(one, images[start:end])}), flush=True)


class FerChild:
    """The fer interpreter as a child process that takes turns (``serve_turns``), then
    runs its own measurements (``fer_child``) and returns them from ``finish``."""

    def __init__(self, fer_python: str, paths: Path, single: int, batch: int):
        import subprocess

        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [
                fer_python,
                __file__,
                "--fer-child",
                str(paths),
                "--single",
                str(single),
                "--batch",
                str(batch),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=benchlib.REPO,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        self._answer()  # ready

    def _answer(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith("{"):
                return json.loads(line)
        self.proc.wait()
        self.log.seek(0)
        raise RuntimeError(
            f"fer child exited with {self.proc.returncode}: {self.log.read()[-300:]}"
        )

    def time(self, start: int, end: int) -> list[float]:
        self.proc.stdin.write(f"{start} {end}\n")
        self.proc.stdin.flush()
        return self._answer()["ms"]

    def finish(self) -> dict:
        self.proc.stdin.close()
        return self._answer()


def fer_at_its_best(detector, images: list, items: list, single: int, batch: int) -> dict:
    """fer's Keras model given each 48x48 crop the way its own pipeline prepares a face
    (grayscale, resized to its 64x64 input, scaled to [-1, 1]), batched: its best figure.
    ``detect_emotions`` with a given box crops and pads differently and scores lower."""
    import cv2
    import numpy as np

    model = detector._FER__emotion_classifier  # the Keras model (use_tflite=False)
    side = detector._FER__emotion_target_size

    def classify(imgs):
        gray = [cv2.resize(cv2.cvtColor(i, cv2.COLOR_BGR2GRAY), side) for i in imgs]
        x = (np.stack(gray).astype("float32") / 255.0 - 0.5) * 2.0
        return model.predict(x[..., None], verbose=0)

    figures = latency(lambda img: classify([img]), classify, images, single, batch)
    labels = list(FER_LABELS.values())  # fer's class order: angry, disgust, ... neutral
    proba = np.concatenate([classify(images[s : s + 256]) for s in range(0, len(images), 256)])
    figures["accuracy"] = float(
        np.mean([labels[k] == label for k, (_, label) in zip(proba.argmax(1), items)])
    )
    return figures


def champion(fer_dir: Path, train_images: int, epochs: int) -> str:
    """Train cnn_torch on a FER2013 subset and register it; returns the champion's URI."""
    from emorec.config import TrainConfig
    from emorec.tracking import model_registry as registry
    from emorec.training import train

    root = benchlib.fer_subset(fer_dir, train_images)
    result = train(
        TrainConfig(
            model="cnn_torch",
            dataset="fer2013",
            data_dir=str(root),
            epochs=epochs,
            progress=False,
            experiment="bench-inference",
        )
    )
    name = registry.model_name("cnn_torch", "fer2013")
    reg = registry.register_best(result.run_id, name, "test_accuracy")
    return f"models:/{reg.name}@{reg.alias}"


def profile(predictor, images: list) -> dict:
    """Median ms per single image of: the eval preprocessing alone, preprocessing + model
    (the loaded model's predict_proba), and the whole public predict call."""
    from emorec.data.preprocess import prepare_batch

    steps = {
        "preprocess": lambda img: prepare_batch([img], predictor.prep, detect=False),
        "preprocess_and_model": lambda img: predictor.predict_proba([img]),
        "predict_call": lambda img: predictor.predict(img, detect_faces=False),
    }
    out = {}
    for name, fn in steps.items():
        fn(images[0])
        times = []
        for img in images:
            start = time.perf_counter()
            fn(img)
            times.append(1e3 * (time.perf_counter() - start))
        out[name] = benchlib.median(times)
    return out


def emorec_side(uri: str, items: list, single: int, batch: int) -> tuple[dict, dict, list]:
    """Every emorec backend measured one after the other; returns (figures, the loaded ONNX
    predictors by name for the interleaved timing, the images)."""
    import cv2
    import torch

    import emorec
    from emorec.serving.onnx_export import export_onnx
    from emorec.serving.quantize import export_int8

    images = [cv2.imread(path, cv2.IMREAD_GRAYSCALE) for path, _ in items]
    folder = Path(tempfile.mkdtemp(prefix="emorec-onnx-"))
    onnx_path = export_onnx(uri, folder / "champion.onnx", log_to_run=False)
    int8_path, quantization = export_int8(uri, folder / "champion-int8.onnx", log_to_run=False)
    # The same without the champion's test-time augmentation (--no-tta): one pass per face,
    # in float32 and int8, so that what quantization costs is measured on the same network.
    bare_f32_path = export_onnx(uri, folder / "champion-no-tta.onnx", log_to_run=False, tta=False)
    bare_path, _ = export_int8(
        uri, folder / "champion-int8-no-tta.onnx", log_to_run=False, tta=False
    )
    out, onnx = {}, {}
    threads = torch.get_num_threads()
    # The last row: PyTorch limited to one intra-op thread, which avoids thread hand-offs
    # (and oversubscription on a shared machine) for one small image.
    for name, target, n in (
        ("emorec_torch", uri, threads),
        ("emorec_onnx", onnx_path, threads),
        ("emorec_onnx_int8", int8_path, threads),
        ("emorec_onnx_no_tta", bare_f32_path, threads),
        ("emorec_onnx_int8_no_tta", bare_path, threads),
        ("emorec_torch_1_thread", uri, 1),
    ):
        torch.set_num_threads(n)
        predictor = emorec.load(str(target))
        figures = latency(
            lambda img, p=predictor: p.predict(img, detect_faces=False),
            lambda imgs, p=predictor: p.predict(imgs, detect_faces=False),
            images,
            single,
            batch,
        )
        figures["profile_ms"] = profile(predictor, images[:100])
        figures["accuracy"] = benchlib.accuracy(predictor, images, [b for _, b in items])
        if isinstance(target, Path):
            figures["model_mb"] = target.stat().st_size / 1e6
            onnx[name] = predictor
        out[name] = figures
        print(
            f"{name}: p50 {figures['single_p50_ms']:.2f} ms, accuracy {figures['accuracy']:.4f}",
            flush=True,
        )
    out["emorec_onnx_int8"]["quantization"] = quantization
    return out, onnx, images


def turns(results: dict, onnx: dict, images: list, fer: FerChild | None, single: int) -> None:
    """Float32 ONNX, int8 ONNX and fer TFLite timed in turns on the same images; their
    single-image p50/p90 in ``results`` become these (fer's after ``fer.finish()``)."""

    def timer(predictor):
        return lambda start, end: time_each(
            lambda img: predictor.predict(img, detect_faces=False), images[start:end]
        )

    timers = {name: timer(predictor) for name, predictor in onnx.items()}
    if fer is not None:
        timers["fer_tflite"] = fer.time
    times = interleaved(timers, min(single, len(images)))
    for name, ms in times.items():
        results.setdefault(name, {}).update(
            {
                "single_p50_ms": benchlib.percentile(ms, 0.5),
                "single_p90_ms": benchlib.percentile(ms, 0.9),
                "interleaved": True,
            }
        )
        print(f"{name} (in turns): p50 {benchlib.percentile(ms, 0.5):.3f} ms", flush=True)


def champion_facts(uri: str) -> str:
    """What the champion is (architecture, data, epochs, its logged test accuracy)."""
    import mlflow

    from emorec import tracking

    run = mlflow.MlflowClient().get_run(tracking.run_id_of(uri))
    p, m = run.data.params, run.data.metrics
    return (
        f"{p.get('model')} trained on {p.get('dataset')} ({p.get('train_size')} training "
        f"images, {m.get('epochs_run', p.get('epochs'))} epochs, run {run.info.run_id}, "
        f"logged test accuracy {m.get('test_accuracy', float('nan')):.4f})"
    )


def int8_targets(results: dict) -> list[dict]:
    """Issue 15: int8 p50 below fer's TFLite p50 (same run, in turns), and int8 accuracy
    within 0.5 points of the float32 model on the same images: the file as trained (with
    its TTA) against the float32 file with TTA, and the one without TTA (``--no-tta``)
    against the float32 file without TTA (the same network, so the difference is what
    quantization costs)."""
    fer, targets = results.get("fer_tflite"), []
    for name, float_name, label, float_label in (
        ("emorec_onnx_int8", "emorec_onnx", "int8", "float32"),
        (
            "emorec_onnx_int8_no_tta",
            "emorec_onnx_no_tta",
            "int8 without TTA",
            "float32 without TTA",
        ),
    ):
        int8, f32 = results[name], results[float_name]
        delta = 100 * (int8["accuracy"] - f32["accuracy"])
        ratio = int8["single_p50_ms"] / fer["single_p50_ms"] if fer else float("nan")
        targets += [
            benchlib.target(
                f"{label} - {float_label} ONNX accuracy (PublicTest)",
                delta,
                ">= -0.5 pt",
                delta >= -0.5,
                " pt",
            ),
            benchlib.target(
                f"{label} ONNX p50 / fer TFLite p50 (in turns)",
                ratio,
                "< 1",
                ratio < 1 if fer else None,
                "x",
            ),
        ]
    return targets


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--model-uri", default=None, help="a champion to measure (default: train one)")
    p.add_argument("--train-images", type=int, default=6000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--single", type=int, default=300, help="images timed one at a time")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--eval-images", type=int, default=0, help="0 = all PublicTest images")
    p.add_argument(
        "--fer-python",
        default=DEFAULT_FER_PYTHON,
        help="interpreter where `from fer.fer import FER` works ('' = skip fer)",
    )
    p.add_argument("--store", default=None)
    args = benchlib.parse_or_run_child(
        p, "fer-child", lambda paths, a: fer_child(paths, a.single, a.batch)
    )
    started = time.time()
    fer_dir = benchlib.require(args.data, "fer2013")
    items = benchlib.fer_test_images(fer_dir, args.eval_images or None)
    with benchlib.temporary_store(args.store):
        uri = args.model_uri or champion(fer_dir, args.train_images, args.epochs)
        results, onnx, images = emorec_side(uri, items, args.single, args.batch)
        trained = champion_facts(uri)
    from emorec.resources import cpu_flags

    notes = [
        f"Champion {uri}: {trained}; {len(items)} PublicTest images; {args.single} "
        f"single-image predictions (p50), batches of {args.batch}. CPU SIMD flags: "
        f"{', '.join(cpu_flags()) or 'unknown'}."
    ]
    fer, fer_figures = None, None
    if args.fer_python and Path(args.fer_python).exists():
        paths = Path(tempfile.mkdtemp(prefix="emorec-fer-items-")) / "items.json"
        paths.write_text(json.dumps(items))
        try:
            fer = FerChild(args.fer_python, paths, args.single, args.batch)
        except RuntimeError as exc:
            notes.append(f"fer could not run: {str(exc)[-300:]}")
    else:
        notes.append(f"fer not measured: no interpreter at {args.fer_python!r}")
    turns(results, onnx, images, fer, args.single)
    fer_turns = results.pop("fer_tflite", None)
    if fer is not None:
        try:
            fer_figures = fer.finish()
            fer_figures["fer_tflite"].update(fer_turns)  # its p50/p90 as timed in turns
        except RuntimeError as exc:
            notes.append(f"fer could not run: {str(exc)[-300:]}")
    notes.append(
        f"{', '.join(onnx)}{' and fer_tflite' if fer_figures else ''}: "
        f"single-image p50/p90 timed in turns of {TURN} images, order rotated each "
        "turn (the other rows: one backend after the other)."
    )
    if fer_figures:
        results.update({k: v for k, v in fer_figures.items() if isinstance(v, dict)})
        notes.append(
            f"fer {fer_figures.get('fer_version')} through its per-image API "
            "detect_emotions with the face box given (no detection), default "
            "(TFLite, quantized) and Keras model; fer_keras_own_crop is its Keras "
            "model given each crop as its pipeline prepares a face (64x64, [-1, 1]), "
            "batched: fer at its best, the figure to beat."
        )
    rows = [
        [
            k,
            v["single_p50_ms"],
            v["single_p90_ms"],
            v["batch_ms_per_image"],
            v["accuracy"],
            v.get("model_mb", ""),
        ]
        for k, v in results.items()
    ]
    best = min(v["single_p50_ms"] for k, v in results.items() if k.startswith("emorec"))
    targets = [
        benchlib.target(
            "emorec p50 single-image latency (best backend)", best, "<= 5 ms", best <= 5, " ms"
        )
    ]
    if fer_figures:
        fer_p50 = results["fer_tflite"]["single_p50_ms"]
        targets.append(
            benchlib.target(
                "fer (default) p50 / emorec p50", fer_p50 / best, ">= 2", fer_p50 / best >= 2, "x"
            )
        )
    else:
        targets.append(benchlib.target("fer p50 / emorec p50", float("nan"), ">= 2", None, "x"))
    targets += int8_targets(results)
    served, bare = results["emorec_onnx"], results["emorec_onnx_int8_no_tta"]
    notes.append(
        f"int8 without TTA against the champion as served (float32 with flip TTA): "
        f"{100 * (bare['accuracy'] - served['accuracy']):+.2f} pt accuracy, "
        f"{bare['single_p50_ms']:.3f} vs {served['single_p50_ms']:.3f} ms p50."
    )
    for name in (k for k in results if k.startswith("emorec")):
        prof = results[name]["profile_ms"]
        notes.append(
            f"{name} profile (median ms per image): preprocessing "
            f"{prof['preprocess']:.3f}, model "
            f"{prof['preprocess_and_model'] - prof['preprocess']:.3f}, "
            f"API around it {prof['predict_call'] - prof['preprocess_and_model']:.3f}."
        )
    benchlib.save(
        "inference",
        "Inference latency and accuracy vs fer (FER2013 PublicTest)",
        args,
        started=started,
        targets=targets,
        notes=notes,
        figures={"model_uri": uri, "images": len(items), "results": results},
        tables={
            "latency": benchlib.markdown_table(
                [
                    "backend",
                    "p50 single (ms)",
                    "p90 single (ms)",
                    "batch (ms/image)",
                    "accuracy",
                    "model (MB)",
                ],
                rows,
            )
        },
    )


if __name__ == "__main__":
    main()
