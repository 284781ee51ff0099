"""``emorec predict`` (faces in images and folders) and ``emorec export`` (ONNX)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emorec.cli.args import EXIT_FAILED, split_list
from emorec.errors import UserError


def cmd_predict(args: argparse.Namespace) -> int:
    from emorec.serving import files as photo_files
    from emorec.serving import predictor as inference

    images, videos = photo_files.collect_inputs(args.inputs)
    if not images and not videos and args.camera is None:
        raise UserError(f"no image or video files in {' '.join(args.inputs) or 'the inputs'}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    expected = split_list(args.expect_classes) if args.expect_classes else None
    # Every output planned before the model loads: a refused one costs nothing, writes nothing.
    copies = photo_files.annotation_paths(images, args.annotate) if args.annotate else {}
    names = dict(images)
    for path, copy in copies.items():
        if copy.stem != Path(names[path]).stem:
            print(
                f"emorec: {path}: its annotated copy is {copy} (the name was taken)",
                file=sys.stderr,
            )
    clips = _video_outputs(videos, args)
    predictor = inference.load(args.model_uri, expect_classes=expected, detector=args.detector)
    failed = _predict_images(predictor, images, copies, args) if images else 0
    for source, outputs in clips.items():
        _predict_video(predictor, source, outputs, args)
    return EXIT_FAILED if images and failed == len(images) and not clips else 0


def _video_outputs(videos, args) -> dict:
    """Each video (or the camera) -> its timeline files and annotated copy, checked."""
    from emorec.serving import files as photo_files

    if args.every < 1 or (args.fps is not None and not args.fps > 0):
        raise UserError(f"--every must be >= 1 and --fps > 0, got {args.every} and {args.fps}")
    if not 0 <= args.smooth < 1:
        raise UserError(f"--smooth must be in [0, 1) (0 = none), got {args.smooth}")
    sources = list(videos)
    if args.camera is not None:
        sources.append((args.camera, Path(f"camera{args.camera}")))
    files = [(s, n) for s, n in sources if not isinstance(s, int)]
    cameras = [(s, n) for s, n in sources if isinstance(s, int)]

    def paths(flag, folder, suffix):
        found = photo_files.output_paths(files, folder, flag, lambda p: p.with_suffix(suffix))
        found.update({s: Path(folder) / n.with_suffix(suffix) for s, n in cameras})
        return found

    if not sources:
        return {}
    csvs, jsons = (
        paths("--timeline", args.timeline, ".csv"),
        paths("--timeline", args.timeline, ".json"),
    )
    annotated = paths("--annotate", args.annotate, ".mp4") if args.annotate else {}
    return {s: (csvs[s], jsons[s], annotated.get(s)) for s, _ in sources}


def _predict_images(predictor, images, copies, args) -> int:
    """The table (or JSON lines) of every face in ``images``; returns how many failed."""
    import json

    from emorec.serving import files as photo_files

    skipped, names = 0, dict(images)
    width = max(len(str(f)) for f in names)
    if not args.json:
        print(f"{'file':{width}s} {'face':>4s} {'label':10s} {'confidence':>10s}")
    for path, pixels, preds, error in photo_files.predict_files(
        predictor, list(names), batch_size=args.batch_size, detect_faces=not args.no_detect
    ):
        if error:
            skipped += 1
            print(f"emorec: skipped {error}", file=sys.stderr)
            continue
        for p in preds:
            if args.json:
                print(
                    json.dumps(
                        {
                            "file": str(path),
                            "face": p.face,
                            "box": list(p.box),
                            "face_found": p.face_found,
                            "label": p.label,
                            "confidence": round(p.confidence, 6),
                            "detector_score": p.detector_score,
                            "landmarks": p.landmarks,
                            "probabilities": {k: round(v, 6) for k, v in p.probabilities.items()},
                        }
                    )
                )
            else:
                face = str(p.face) if p.face_found else "-"
                print(f"{str(path):{width}s} {face:>4s} {p.label:10s} {p.confidence:10.4f}")
        if args.annotate:
            photo_files.annotate(pixels, preds, copies[path])
    if skipped:
        print(f"emorec: {skipped} of {len(images)} file(s) skipped (unreadable)", file=sys.stderr)
    return skipped


def _predict_video(predictor, source, outputs, args) -> None:
    from emorec.serving import timeline, video

    csv_path, json_path, annotated = outputs
    info: dict = {}
    frames = video.predict_video(
        predictor, source, every=args.every, fps=args.fps, smoothing=args.smooth, info=info
    )
    summary = timeline.write_timeline(
        frames, predictor.classes, csv_path, json_path, info, annotated, progress=not args.json
    )
    tracks = ", ".join(f"#{t} {label}" for t, label in sorted(summary["tracks"].items()))
    print(
        f"{info.get('name', source)}: {summary['frames']} frames read "
        f"({summary['frames_per_s']:.1f} frames/s), faces: {tracks or 'none'}; timeline "
        f"{csv_path} and {json_path}" + (f", annotated {annotated}" if annotated else "")
    )


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from emorec.serving.onnx_export import OnnxParityError, export_onnx
    from emorec.serving.onnx_model import OnnxModel

    start = time.perf_counter()
    try:
        if args.quantize:
            from emorec.serving.quantize import check_request, export_int8

            check_request(args.quantize)  # an unknown scheme: one line before any loading
            out, facts = export_int8(
                args.model_uri, args.out, log_to_run=not args.no_log, tta=not args.no_tta
            )
        else:
            out = export_onnx(
                args.model_uri, args.out, log_to_run=not args.no_log, tta=not args.no_tta
            )
    except OnnxParityError as exc:
        print(f"emorec: export failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    exported = OnnxModel(out)
    meta, prep = exported.metadata, exported.prep
    dims = {"N": "batch", "C": prep.channels, "H": prep.image_size, "W": prep.image_size}
    logged = "" if args.no_log else "; logged to the run under onnx/"
    if exported.tta_left_out:
        logged += (
            "; without test-time augmentation: its probabilities differ from the "
            "run's logged test metrics"
        )
    elif args.no_tta:
        logged += "; --no-tta changed nothing: the model has no test-time augmentation"
    elif meta.get("tta", "none") != "none":
        # Worth knowing for serving: several passes per face is what makes this file slow.
        bare = meta["passes_without_tta"]
        logged += (
            f"; with its test-time augmentation ({meta['tta']}, {meta['passes']} passes per "
            f"face): --no-tta exports {bare} pass{'es' if bare > 1 else ''}, a fraction of "
            "the time, at a little accuracy"
        )
    print(
        f"wrote {out} in {time.perf_counter() - start:.1f}s: {len(meta['classes'])} classes, "
        f"input {exported.layout} {'x'.join(str(dims[d]) for d in exported.layout)}, "
        f"max probability difference from {meta['framework']} "
        f"{meta['parity_max_abs_diff']:.2g}{' (float32, before int8)' if args.quantize else ''}"
        f"{logged}"
    )
    if args.quantize:
        check = facts["check"]
        print(
            f"int8: {facts['int8_bytes'] / 1e6:.2f} MB (float32 "
            f"{facts['float32_bytes'] / 1e6:.2f} MB), calibrated on "
            f"{facts['calibration_images']} training images; same top "
            f"class as float32 on {check['top1_agreement']:.1%} of {check['images']} "
            f"validation images (max probability difference {check['max_abs_diff']:.2g})"
        )
        if not args.no_log:
            print(f"serve it: mlflow models serve -m {facts['pyfunc_uri']} --env-manager local")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "predict", help="emotions of the faces in images, videos, folders of them, or a camera"
    )
    p.add_argument(
        "--model-uri",
        required=True,
        help="runs:/RUN/emotion_model, models:/NAME@ALIAS or models:/NAME/VERSION",
    )
    p.add_argument("inputs", nargs="*", metavar="IMAGE_VIDEO_OR_FOLDER")
    p.add_argument(
        "--camera",
        type=int,
        default=None,
        metavar="N",
        help="read camera N (0 is the first) until Ctrl-C",
    )
    p.add_argument(
        "--every",
        type=int,
        default=1,
        metavar="N",
        help="videos: read every N-th frame (default: every frame)",
    )
    p.add_argument(
        "--fps",
        type=float,
        default=None,
        help="videos: read this many frames a second instead of --every",
    )
    p.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="A",
        help="videos: average each face's probabilities over time, each frame "
        "weighing 1 - A (0, the default, for none; 0.7 is smooth)",
    )
    p.add_argument(
        "--timeline",
        default="outputs/timelines",
        metavar="DIR",
        help="videos: where each one's timeline goes, as CSV and JSON (default: outputs/timelines)",
    )
    p.add_argument(
        "--detector",
        choices=("yunet", "haar"),
        default=None,
        help="find faces with this detector instead of the model's own",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument(
        "--annotate",
        metavar="OUT_DIR",
        default=None,
        help="write copies with the face boxes and labels drawn (never over an "
        "input; a taken name gets -2, -3 ...)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    p.add_argument(
        "--no-detect", action="store_true", help="classify whole images, without face detection"
    )
    p.add_argument(
        "--expect-classes",
        metavar="A,B,...",
        default=None,
        help="the emotions you rely on (comma-separated); a model trained on another "
        "class set is refused before any image is read",
    )
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "export",
        help="export a logged PyTorch or Keras model to ONNX (checked "
        "for parity and logged back to its run)",
    )
    p.add_argument(
        "--model-uri",
        required=True,
        help="runs:/RUN/emotion_model, models:/NAME@ALIAS or models:/NAME/VERSION",
    )
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument(
        "--quantize",
        metavar="SCHEME",
        default=None,
        help="int8: static quantization calibrated on the model's training images "
        "(PyTorch models; smaller and faster on a CPU)",
    )
    p.add_argument("out", metavar="OUT", help="the .onnx file to write")
    p.add_argument("--no-log", action="store_true", help="do not log the file to the model's run")
    p.add_argument(
        "--no-tta",
        action="store_true",
        help="leave out the test-time augmentation the model was trained with (flip, "
        "tencrop): one view per face instead of two or ten, that much faster, with "
        "probabilities that differ from the run's logged test metrics",
    )
    p.set_defaults(func=cmd_export)
