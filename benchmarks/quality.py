"""Quality on real data: a time-boxed CPU study on FER2013, and 5-fold subject-independent
cross-validation on CK+48, reported in the seed's table form (accuracy, macro F1, AUC ROC,
training and evaluation time, peak memory).

FER2013: the recipe users run, ``emorec tune --preset fer2013`` (``tuning/fer2013.yaml``:
its model, its fixed values and its grid), as a grid study through
``emorec.study.run_study`` that registers its best trial, as a user's would. Training and
validation come from ``train/`` (``--train-images`` random images of it when > 0), the
report from PublicTest (``test/``), which no trial selects on. The target is a study of at
most 2 hours of wall time, last trial included, on all of ``train/``: only such a run gets
a verdict. ``--set time_budget_min=5`` makes a quick trial run of the same recipe.

CK+48: the product's cross-validation (``emorec.cross_validation``, as ``emorec train
--folds 5`` runs it) without tracking: the 118 subjects in 5 folds, each the test set
once, a further subject-disjoint part of the others validating. Mean and standard
deviation over the folds are reported. By default every fold starts from the FER2013
champion the same run registered (``--ck-init-from``: its backbone, and its classifier rows of the
classes CK+ shares with FER2013); with ``--skip-fer --store DIR`` a later run starts from
the champion an earlier run kept in DIR, and keeps that run's FER2013 figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

COLUMNS = [
    "model",
    "dataset",
    "accuracy",
    "F1 (macro)",
    "AUC ROC (macro)",
    "training time (s)",
    "evaluation time (s)",
    "peak RSS (MB)",
]


def fer_tree(fer_dir: Path, train_images: int) -> Path:
    """FER2013 as-is, or with a random subset of train/ (symlinks) when asked."""
    return benchlib.fer_subset(fer_dir, train_images) if train_images else fer_dir


def fer_study(fer_dir: Path, args) -> dict:
    """The preset's study (``emorec tune --preset``), registered like a user's."""
    import mlflow

    from emorec.cli.args import parse_sets
    from emorec.search_space import read_preset
    from emorec.study import StudyOptions, run_study

    space, preset = read_preset(args.preset)
    values = {
        **preset,
        "data_dir": str(fer_tree(fer_dir, args.train_images)),
        "log_model": True,
        "progress": False,
        "experiment": "bench-quality",
        **parse_sets(args.set),
    }
    start = time.perf_counter()
    study = run_study(
        values,
        StudyOptions(
            sampler="grid",
            space_file=str(space),
            timeout=60 * args.budget_minutes,
            register=True,
            plots=False,
            study_name=f"bench-fer-{int(time.time())}",
        ),
    )
    seconds = time.perf_counter() - start
    if not study.best:
        raise RuntimeError(f"the FER2013 study finished no trial in {seconds:.0f} s")
    best = study.best[0]
    m = mlflow.get_run(best["run_id"]).data.metrics
    return {
        "study_seconds": seconds,
        "trials": study.states,
        "best_trial": best["number"],
        "best_config": best["config"],
        "val_accuracy": best["values"][0],
        "accuracy": m["test_accuracy"],
        "f1_macro": m["test_f1_macro"],
        "auc_roc_macro": m.get("test_auc_roc_macro"),
        "train_time_s": m["train_time_s"],
        "eval_time_s": m["eval_time_s"],
        "peak_rss_mb": m["peak_rss_mb"],
        "epochs_run": m.get("epochs_run"),
        "run_id": best["run_id"],
        "registered": study.registration.uri if study.registration else None,
        "dedupe": {k: m[k] for k in m if k.startswith("dedupe_")},
    }


def cross_dataset(ck_dir: Path, model_uri: str) -> dict:
    """The FER2013 champion on every CK+48 image over the classes both share, as a
    served request (``emorec.evaluation.cross_dataset``, what ``emorec compare --cross`` uses)."""
    import numpy as np

    from emorec import tracking
    from emorec.data import Preprocessing, load_dataset
    from emorec.evaluation.cross_dataset import shared_accuracy

    model = tracking.load_pyfunc(model_uri)
    ds = load_dataset("ckplus", ck_dir, Preprocessing(48, 1), progress=False)
    trained_on = list(model.unwrap_python_model().classes)
    shared = [c for c in ds.classes if c in trained_on]
    accuracy, n = shared_accuracy(model, ds.images, np.asarray(ds.classes)[ds.targets], shared)
    return {"model_uri": model_uri, "shared_classes": shared, "images": n, "accuracy": accuracy}


def ck_folds(ck_dir: Path, args) -> dict:
    """The CK+ recipe cross-validated by the product (``emorec.cross_validation``, what
    ``emorec train --folds`` runs), untracked: subject-independent folds, each starting
    afresh from the recipe's ``init_from`` (e.g. the FER2013 champion)."""
    from emorec.cli.args import parse_sets
    from emorec.config import TrainConfig
    from emorec.cross_validation import cross_validate
    from emorec.tracking import NoTracker

    cfg = TrainConfig.from_mapping(
        {
            **benchlib.preset_values(args.ck_preset),
            "data_dir": str(ck_dir),
            "progress": False,
            "folds": args.folds,
            **parse_sets(args.ck_set),
        }
    )
    cv = cross_validate(cfg, tracker=NoTracker())
    folds = [
        {
            "fold": f["fold"],
            "train": f["train"],
            "val": f["val"],
            "test": f["test"],
            "accuracy": f["test_accuracy"],
            "f1_macro": f["test_f1_macro"],
            "auc_roc_macro": f["test_auc_roc_macro"],
            "train_time_s": f["train_time_s"],
            "eval_time_s": f["eval_time_s"],
            "peak_rss_mb": f["peak_rss_mb"],
            "epochs_run": int(f["epochs_run"]),
        }
        for f in cv.folds
    ]
    for f in folds:
        print(
            f"CK+ fold {f['fold'] + 1}/{args.folds}: accuracy {f['accuracy']:.4f} "
            f"({f['epochs_run']} epochs, {f['train_time_s']:.0f} s)",
            flush=True,
        )
    keys = {
        "accuracy": "test_accuracy",
        "f1_macro": "test_f1_macro",
        "auc_roc_macro": "test_auc_roc_macro",
        "train_time_s": "train_time_s",
        "eval_time_s": "eval_time_s",
        "peak_rss_mb": "peak_rss_mb",
    }
    m = cv.metrics
    return {
        "folds": folds,
        "model": cfg.model,
        "init_from": cfg.init_from,
        "epochs": cfg.epochs,
        **{k: m[f"cv_{v}_mean"] for k, v in keys.items()},
        **{f"{k}_std": m[f"cv_{v}_std"] for k, v in keys.items()},
    }


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--preset", default="fer2013", help="the FER2013 recipe (tuning/<name>.yaml)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override the preset's values (e.g. time_budget_min=5 for a trial run)",
    )
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=120.0,
        help="FER2013 study time box: no trial starts after it",
    )
    p.add_argument(
        "--train-images",
        type=int,
        default=0,
        help="random FER2013 train/ images to use (0 = all 28,709)",
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--ck-preset",
        default="ckplus",
        help="the CK+ recipe each fold trains (tuning/<name>.yaml); it starts from "
        "the FER2013 champion of the same store",
    )
    p.add_argument(
        "--ck-set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override the CK+ recipe (e.g. epochs=1, or init_from= to train from scratch)",
    )
    p.add_argument(
        "--store",
        default="",
        help="keep the MLflow/Optuna store in this folder (default: a temporary one)"
        "; a later run with --skip-fer can start CK+ from its champion",
    )
    p.add_argument("--skip-fer", action="store_true")
    p.add_argument("--skip-ck", action="store_true")
    args = p.parse_args()
    started = time.time()
    fer_dir = None if args.skip_fer else benchlib.dataset_dir(args.data, "fer2013")
    ck_dir = None if args.skip_ck else benchlib.dataset_dir(args.data, "ckplus")
    if fer_dir is None and ck_dir is None:
        print(f"SKIPPED: neither FER2013 nor CK+48 found under {args.data} (pass --data)")
        return
    previous = benchlib.previous("quality", args)
    figures, rows, targets, notes = {}, [], [], []
    with benchlib.temporary_store(args.store or None):
        if fer_dir is not None:
            fer = figures["fer2013"] = fer_study(fer_dir, args)
            fer_rows, fer_targets, fer_notes = fer_report(fer, args)
        elif "fer2013" in previous.get("figures", {}):  # a CK+-only run keeps the FER figures
            figures["fer2013"] = fer = previous["figures"]["fer2013"]
            fer_rows, fer_targets, fer_notes = fer_report(
                fer, argparse.Namespace(**{**vars(args), **previous["args"]})
            )
            fer_notes.append(
                f"FER2013 figures carried over from the run of {previous['date']} "
                f"(commit {previous['git_commit']})."
            )
        else:
            fer, fer_rows, fer_targets, fer_notes = None, [], [], ["FER2013 not run."]
        rows, targets, notes = fer_rows, fer_targets, fer_notes
        if ck_dir is not None:
            ck = figures["ckplus_cv"] = ck_folds(ck_dir, args)
            rows.append(
                [
                    ck["model"],
                    f"CK+48 {args.folds}-fold subject-independent CV"
                    + (f" (from {ck['init_from']})" if ck["init_from"] else ""),
                    f"{ck['accuracy']:.4f} ± {ck['accuracy_std']:.4f}",
                    f"{ck['f1_macro']:.4f} ± {ck['f1_macro_std']:.4f}",
                    f"{ck['auc_roc_macro']:.4f} ± {ck['auc_roc_macro_std']:.4f}",
                    ck["train_time_s"],
                    ck["eval_time_s"],
                    ck["peak_rss_mb"],
                ]
            )
            targets.append(
                benchlib.target(
                    f"CK+48 {args.folds}-fold subject-independent mean accuracy",
                    100 * ck["accuracy"],
                    ">= 95 %",
                    ck["accuracy"] >= 0.95,
                    " %",
                )
            )
            if fer and fer.get("registered"):
                cross = figures["fer2013_on_ckplus"] = cross_dataset(ck_dir, fer["registered"])
                rows.append(
                    [
                        "cnn_torch",
                        f"FER2013 champion on all of CK+48, "
                        f"{len(cross['shared_classes'])} shared classes (cross-dataset, "
                        "no CK+ training)",
                        cross["accuracy"],
                        "",
                        "",
                        "",
                        "",
                        "",
                    ]
                )
            notes.append(
                f"CK+48: --ck-preset {args.ck_preset} {' '.join(args.ck_set)} "
                f"({ck['epochs']} epochs a fold); fold accuracy std "
                f"{100 * ck['accuracy_std']:.1f} points. Times and RSS are per fold "
                "(means)."
            )
        else:
            notes.append("CK+48 not found or skipped: no cross-validation result.")
    benchlib.save(
        "quality",
        "Quality on real data (seed's table form)",
        args,
        started=started,
        targets=targets,
        figures=figures,
        notes=notes,
        tables={"quality": benchlib.markdown_table(COLUMNS, rows)},
    )


def fer_report(fer: dict, args) -> tuple[list, list, list]:
    """The FER2013 study's table row, target and notes."""
    rows = [
        [
            "cnn_torch",
            "FER2013 PublicTest (the preset's study)",
            fer["accuracy"],
            fer["f1_macro"],
            fer["auc_roc_macro"],
            fer["train_time_s"],
            fer["eval_time_s"],
            fer["peak_rss_mb"],
        ]
    ]
    # The target's run: all of train/, the whole study (its last trial included) within
    # 2 hours of wall-clock time.
    minutes = fer["study_seconds"] / 60
    full = not args.train_images and minutes <= 120
    targets = [
        benchlib.target(
            f"FER2013 PublicTest accuracy, study of {minutes:.0f} min"
            + (
                " on all train/ images"
                if full
                else f" on {args.train_images or 'all'} train images (NOT the target's run: "
                "2 hours at most on all of train/)"
            ),
            100 * fer["accuracy"],
            ">= 70 % (2-hour study, issue 24)",
            fer["accuracy"] >= 0.70 if full else None,
            " %",
        )
    ]
    notes = [
        f"FER2013 study (--preset {args.preset} {' '.join(args.set)}): {fer['trials']} "
        f"trials in {fer['study_seconds']:.0f} s; best trial {fer['best_trial']} ran "
        f"{fer['epochs_run']} epochs (validation accuracy {fer['val_accuracy']:.4f}); "
        f"dedupe {fer['dedupe']}; registered {fer['registered']}."
    ]
    return rows, targets, notes


if __name__ == "__main__":
    main()
