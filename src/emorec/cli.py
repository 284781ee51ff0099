"""The ``emorec`` command line.

``emorec train`` takes one flag per ``TrainConfig`` field (the MLproject
``main`` entry point maps the same names one to one); ``emorec explore``
summarises a dataset; ``emorec models`` and ``emorec datasets`` list the
valid names. ``emorec tune`` runs or resumes an Optuna study, ``emorec
compare`` writes the comparison report, ``emorec benchmark-all`` does both
for many models and datasets. ``emorec predict`` runs a logged or registered
model on image files and folders; ``emorec export`` writes a PyTorch or Keras model as
ONNX (``emorec predict --model-uri model.onnx`` then runs it on ONNX Runtime).
User mistakes end with one clear line, never a stack trace.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from emorec.config import TrainConfig
from emorec.data.errors import DatasetError
from emorec.engines.base import TrainingDiverged

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field, parsed as strings and coerced by the config."""
    for f in dataclasses.fields(TrainConfig):
        default = "" if f.default is None else f.default
        parser.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None,
                            metavar=type(default).__name__.upper(), help=f"default: {default!r}")


def _config_from(args: argparse.Namespace) -> TrainConfig:
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if getattr(args, f.name, None) is not None}
    return TrainConfig.from_mapping(values)


def cmd_train(args: argparse.Namespace) -> int:
    from emorec.training import train

    cfg = _config_from(args)
    result = train(cfg)
    m = result.metrics
    print(f"run {result.run_id}: test accuracy {m['test_accuracy']:.4f}, "
          f"macro F1 {m['test_f1_macro']:.4f}, AUC {m['test_auc_roc_macro']:.4f}, "
          f"train {m['train_time_s']:.1f}s, eval {m['eval_time_s']:.2f}s, "
          f"peak RSS {m.get('peak_rss_mb', float('nan')):.0f} MB")
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from emorec.explore import explore

    options = {"count": args.samples} if args.dataset == "synthetic" else {}
    summary = explore(args.dataset, args.data_dir, args.out, image_size=args.image_size,
                      split=args.split, seed=args.seed, options=options,
                      log_to_mlflow=args.log_mlflow)
    print(f"{summary['dataset']}: {summary['images']} images, classes "
          f"{', '.join(f'{c} {n}' for c, n in summary['counts'].items())}")
    for part, counts in summary["counts_per_split"].items():
        print(f"  {part:5s} {sum(counts.values()):6d}")
    q = summary["quality"]
    sharpness = " / ".join(f"{part} {v}" for part, v in q["median_sharpness_per_split"].items())
    print(f"  quality: {q['near_blank_images']} near-blank, {q['duplicate_groups']} duplicate "
          f"groups ({q['duplicate_groups_with_conflicting_labels']} with conflicting labels), "
          f"median sharpness {sharpness}")
    print(f"wrote {args.out}/class_distribution.png, samples.png, summary.json")
    return 0


def cmd_models(_args) -> int:
    from emorec.models import get_spec, list_models

    for name in list_models():
        spec = get_spec(name)
        print(f"{name:10s} {spec.framework:6s} {spec.summary}")
    return 0


def cmd_datasets(_args) -> int:
    from emorec.data import FORMATS

    print("\n".join(FORMATS))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from emorec import inference

    files = inference.collect_images(args.inputs)
    if not files:
        raise ValueError(f"no image files in {' '.join(args.inputs)}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    expected = _split_list(args.expect_classes) if args.expect_classes else None
    predictor = inference.load(args.model_uri, expect_classes=expected)
    names = dict(files)
    skipped, width = 0, max(len(str(f)) for f in names)
    if not args.json:
        print(f"{'file':{width}s} {'face':>4s} {'label':10s} {'confidence':>10s}")
    for path, pixels, preds, error in inference.predict_files(
            predictor, list(names), batch_size=args.batch_size, detect_faces=not args.no_detect):
        if error:
            skipped += 1
            print(f"emorec: skipped {error}", file=sys.stderr)
            continue
        for p in preds:
            if args.json:
                print(json.dumps({"file": str(path), "face": p.face, "box": list(p.box),
                                  "face_found": p.face_found, "label": p.label,
                                  "confidence": round(p.confidence, 6),
                                  "probabilities": {k: round(v, 6)
                                                    for k, v in p.probabilities.items()}}))
            else:
                face = str(p.face) if p.face_found else "-"
                print(f"{str(path):{width}s} {face:>4s} {p.label:10s} {p.confidence:10.4f}")
        if args.annotate:
            inference.annotate(pixels, preds, Path(args.annotate) / names[path])
    if skipped:
        print(f"emorec: {skipped} of {len(files)} file(s) skipped (unreadable)", file=sys.stderr)
    return EXIT_FAILED if skipped == len(files) else 0


def cmd_export(args: argparse.Namespace) -> int:
    import time

    from emorec.onnx_export import OnnxEmotionModel, OnnxParityError, export_onnx

    start = time.perf_counter()
    try:
        out = export_onnx(args.model_uri, args.out, log_to_run=not args.no_log)
    except OnnxParityError as exc:
        print(f"emorec: export failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    exported = OnnxEmotionModel(out)
    meta, prep = exported.metadata, exported.prep
    dims = {"N": "batch", "C": prep["channels"], "H": prep["image_size"], "W": prep["image_size"]}
    logged = "" if args.no_log else "; logged to the run under onnx/"
    print(f"wrote {out} in {time.perf_counter() - start:.1f}s: {len(meta['classes'])} classes, "
          f"input {exported.layout} {'x'.join(str(dims[d]) for d in exported.layout)}, "
          f"max probability difference from {meta['framework']} "
          f"{meta['parity_max_abs_diff']:.2g}{logged}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emorec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model, tracked in MLflow")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("explore", help="class distribution, sample grid and summary of a dataset")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/explore")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--split", default="auto")
    p.add_argument("--samples", type=int, default=1400, help="synthetic dataset size")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--log-mlflow", action="store_true", help="also log the files to MLflow")
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser("predict", help="emotions of the faces in images or folders of images")
    p.add_argument("--model-uri", required=True,
                   help="runs:/RUN/emotion_model, models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    p.add_argument("--annotate", metavar="OUT_DIR", default=None,
                   help="write copies with the face boxes and labels drawn")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default: 64)")
    p.add_argument("--no-detect", action="store_true",
                   help="classify whole images, without face detection")
    p.add_argument("--expect-classes", metavar="A,B,...", default=None,
                   help="the emotions you rely on (comma-separated); a model trained on another "
                        "class set is refused before any image is read")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a logged PyTorch or Keras model to ONNX (checked "
                                      "for parity and logged back to its run)")
    p.add_argument("--model-uri", required=True,
                   help="runs:/RUN/emotion_model, models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("out", metavar="OUT", help="the .onnx file to write")
    p.add_argument("--no-log", action="store_true", help="do not log the file to the model's run")
    p.set_defaults(func=cmd_export)

    sub.add_parser("models", help="list the registered models").set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list the dataset formats").set_defaults(func=cmd_datasets)
    _add_study_commands(sub)
    return parser


# --- studies, comparison report, benchmark (emorec.study, emorec.report) ---------------------

def _parse_sets(items: list[str] | None) -> dict[str, str]:
    """``--set epochs=1 samples=140`` -> {"epochs": "1", ...}; the config coerces and validates."""
    values = {}
    for item in items or []:
        for token in item.split():  # MLproject passes all pairs as one quoted argument
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise ValueError(f"--set expects key=value pairs, got {token!r}")
            values[key.replace("-", "_")] = value
    return values


def _optional(kind):
    """An argparse type where 0 or "" means "not set" (MLproject parameters cannot be absent)."""
    def parse(text: str):
        value = kind(float(text)) if kind is not str else text
        return value or None
    parse.__name__ = kind.__name__
    return parse


# The choices of emorec.study, repeated so that building the parser (every command)
# does not import Optuna and MLflow; tests/test_study.py checks that they agree.
STUDY_SAMPLERS = ("grid", "tpe")
STUDY_OBJECTIVES = ("accuracy", "f1", "multi")
STUDY_PRUNERS = ("median", "hyperband", "none")


def _add_tuning_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=STUDY_SAMPLERS, default="grid",
                   help="grid: the YAML grid, stops when exhausted; tpe: the YAML space "
                        "(default: grid)")
    p.add_argument("--n-trials", type=_optional(int), default=None,
                   help="finished trials the study should reach (default: the grid size, "
                        "or 20 for tpe)")
    p.add_argument("--timeout", type=_optional(float), default=None,
                   help="seconds after which no new trial starts")
    p.add_argument("--storage", type=_optional(str), default=None,
                   help="SQLAlchemy URL of the Optuna storage (default: sqlite mlruns/optuna.db)")
    p.add_argument("--objective", choices=STUDY_OBJECTIVES, default="accuracy",
                   help="accuracy | f1 (validation, maximised) | multi (accuracy, train time, RSS)")
    p.add_argument("--pruner", choices=("auto", *STUDY_PRUNERS), default="auto",
                   help="auto (default): median for tpe, none for grid and multi")
    p.add_argument("--pruner-startup-trials", type=int, default=5,
                   help="median: trials that finish before any is pruned")
    p.add_argument("--pruner-warmup-epochs", type=int, default=0,
                   help="median: epochs every trial runs before it may be pruned")
    p.add_argument("--space", type=_optional(str), default=None,
                   help="search space YAML (default: tuning/<model>.yaml)")
    p.add_argument("--set", nargs="+", action="extend", metavar="KEY=VALUE",
                   help="fixed TrainConfig values for every trial, e.g. epochs=1 image_size=32")
    p.add_argument("--heartbeat-interval", type=int, default=30)
    p.add_argument("--grace-period", type=int, default=120,
                   help="seconds without heartbeat after which a RUNNING trial counts as dead")
    p.add_argument("--no-register", action="store_true", help="do not register the best model")
    p.add_argument("--no-plots", action="store_true", help="do not log Optuna's plots")


def _study_options(args: argparse.Namespace, study_name: str | None = None):
    from emorec.study import StudyOptions

    return StudyOptions(sampler=args.sampler, objective=args.objective,
                        pruner=None if args.pruner == "auto" else args.pruner,
                        n_trials=args.n_trials, timeout=args.timeout, storage=args.storage,
                        study_name=study_name, space_file=args.space,
                        heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period,
                        pruner_startup_trials=args.pruner_startup_trials,
                        pruner_warmup_epochs=args.pruner_warmup_epochs,
                        register=not args.no_register, plots=not args.no_plots)


def _print_study(result) -> None:
    states = ", ".join(f"{n} {s.lower()}" for s, n in result.states.items()) or "no trials"
    print(f"study {result.name} ({result.storage}): {result.new_trials} new trial(s); {states}")
    for best in result.best[:5]:
        values = ", ".join(f"{v:.4f}" for v in best["values"])
        print(f"  best trial {best['number']}: {values} {best['config']} run {best['run_id']}")
    if result.registration:
        reg = result.registration
        print(f"  registered {reg.name} version {reg.version} as {reg.alias} ({reg.uri}): "
              f"{reg.reason}")


def cmd_tune(args: argparse.Namespace) -> int:
    from emorec.study import run_study

    values = {"model": args.model, "dataset": args.dataset, **_parse_sets(args.set)}
    if args.data_dir:
        values["data_dir"] = args.data_dir
    result = run_study(values, _study_options(args, args.study_name))
    _print_study(result)
    if not result.best:
        print("emorec: no trial completed", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _print_report(report) -> None:
    from emorec.report import markdown

    print(markdown(report.rows), end="")
    logged = (f"; logged as run {report.run_id} (experiment {report.experiment})"
              if report.run_id else "")
    print(f"wrote {len(report.files)} files to {report.folder}{logged}")


def cmd_compare(args: argparse.Namespace) -> int:
    from emorec.report import compare

    datasets = [d for item in args.dataset for d in _split_list(item.replace(" ", ","))]
    _print_report(compare(datasets or None, args.out, cross=args.cross,
                          log_mlflow=not args.no_mlflow))
    return 0


def _as_bool(text) -> bool:
    """``--cross`` alone, or ``--cross true|false`` (how MLproject passes it)."""
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _split_list(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]


def cmd_benchmark_all(args: argparse.Namespace) -> int:
    from emorec.benchmark import benchmark_all

    dirs = {}
    for item in args.data_dir or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--data-dir expects dataset=path, got {item!r}")
        dirs[name] = path
    result = benchmark_all(_split_list(args.models), _split_list(args.datasets), data_dirs=dirs,
                           overrides=_parse_sets(args.set), options=_study_options(args),
                           out=args.out, cross=args.cross)
    for study in result.studies:
        _print_study(study)
    for pair, error in result.failures.items():
        print(f"emorec: {pair} failed: {error}", file=sys.stderr)
    _print_report(result.report)
    return EXIT_FAILED if result.failures else 0


def cmd_study_status(args: argparse.Namespace) -> int:
    import json

    from emorec.study import status

    rows = status(args.storage, args.study_name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from emorec.study import default_storage, mask

    where = mask(args.storage or default_storage())
    print(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} in {where}")
    for row in rows:
        states = ", ".join(f"{n} {s.lower()}" for s, n in row["states"].items()) or "no trials"
        best = "-" if row["best"] is None else f"{row['best']:.4f}"
        print(f"{row['study']}: {states}; best {best}; {len(row['workers'])} worker(s) so far")
        for t in row["running"]:
            print(f"  running trial {t['number']} on {t['worker']} since {t['since']}: "
                  f"{t['config']}")
    return 0


def _add_study_commands(sub) -> None:
    p = sub.add_parser("tune", help="run or resume an Optuna study for one model and dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-dir", type=_optional(str), default=None)
    p.add_argument("--study-name", type=_optional(str), default=None,
                   help="default: <model>-<dataset>-<sampler>-<objective>")
    _add_tuning_flags(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("study", help="inspect studies: emorec study status")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser("status", help="trials by state, best value and running trials "
                                          "(with their worker) of the studies in a storage")
    p.add_argument("--storage", type=_optional(str), default=None,
                   help="SQLAlchemy URL (default: $EMOREC_OPTUNA_STORAGE or mlruns/optuna.db)")
    p.add_argument("--study-name", type=_optional(str), default=None,
                   help="one study (default: all)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_study_status)

    p = sub.add_parser("compare", help="results table, charts (and cross-dataset matrix) "
                                       "of the registered champions and best runs")
    p.add_argument("--dataset", nargs="*", action="extend", default=[],
                   help="only these datasets (space- or comma-separated; default: all)")
    p.add_argument("--out", default="outputs/compare")
    p.add_argument("--cross", nargs="?", const=True, default=False, type=_as_bool,
                   help="also test each dataset's champion on the other datasets' test splits")
    p.add_argument("--no-mlflow", action="store_true", help="do not log the report to MLflow")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("benchmark-all", help="a study per model x dataset, then the report")
    p.add_argument("--models", required=True, help="comma-separated, e.g. cnn_torch,vgg16")
    p.add_argument("--datasets", default="synthetic", help="comma-separated, e.g. ckplus,fer2013")
    p.add_argument("--data-dir", action="append", metavar="DATASET=PATH",
                   help="a dataset's folder; repeat per dataset")
    p.add_argument("--out", default="outputs/compare")
    p.add_argument("--cross", nargs="?", const=True, default=False, type=_as_bool)
    _add_tuning_flags(p)
    p.set_defaults(func=cmd_benchmark_all)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, DatasetError, FileNotFoundError) as exc:
        print(f"emorec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as exc:
        print(f"emorec: training failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("emorec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
