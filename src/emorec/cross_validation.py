"""K-fold cross-validation: ``emorec train --folds K`` and ``emorec tune --folds K``.

Each image is tested once: the dataset is divided into K folds, subject-independent where
it has subject ids (CK+, KDEF, synthetic, a folder of photos named by person: no subject
in two folds), stratified by class otherwise. Fold k is the test set of run k; a further
part of the other folds (``val_fraction``, subject-disjoint too) validates it (early
stopping, the kept epoch), and the rest trains. Every fold is a run nested under one
parent run, which logs each metric's mean and standard deviation across the folds
(``cv_test_accuracy_mean``, ``cv_test_accuracy_std`` ...) and the per-fold table.

The model a cross-validated run stands for is ``final_fit``'s: the same config trained on
every image but a validation part. Each fold's model saw only (K-1)/K of the data, and the
registered model should use all of it; what to expect of it is the folds' mean, which the
final fit's run carries (``cv_*``): it has no test set of its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from emorec.config import TrainConfig
from emorec.data.splits import Split, carve
from emorec.data.types import Dataset
from emorec.errors import UserError

log = logging.getLogger(__name__)

# The per-fold metrics averaged into the parent run, in the fold table's column order.
FOLD_METRICS = (
    "test_accuracy",
    "test_f1_macro",
    "test_f1_weighted",
    "test_auc_roc_macro",
    "val_final_accuracy",
    "train_time_s",
    "eval_time_s",
    "peak_rss_mb",
    "epochs_run",
)


@dataclass
class CVResult:
    run_id: str  # the parent run ("" untracked)
    folds: list[dict] = field(default_factory=list)  # one row per fold: its metrics
    metrics: dict[str, float] = field(default_factory=dict)  # cv_<metric>_mean / _std
    classes: tuple[str, ...] = ()


def check_folds(ds: Dataset, folds: int) -> None:
    """One line, before any training, for a fold count this dataset cannot give."""
    if folds < 2:
        raise UserError(f"--folds must be >= 2 (or 0 for one train/val/test split), got {folds}")
    if ds.groups is not None:
        subjects = len(np.unique(ds.groups))
        if subjects < folds:
            raise UserError(
                f"{folds} subject-independent folds need at least {folds} subjects; "
                f"{ds.name} has {subjects}: use --folds {subjects} or fewer"
            )
    counts = np.bincount(ds.targets, minlength=len(ds.classes))
    small = [(c, int(n)) for c, n in zip(ds.classes, counts) if n < folds]
    if small:
        name, n = min(small, key=lambda item: item[1])
        raise UserError(
            f"{folds} folds need at least {folds} images of every class; {name} has {n}: "
            f"use --folds {n} or fewer"
        )


def fold_splits(ds: Dataset, cfg: TrainConfig) -> list[Split]:
    """The K train/val/test splits of ``cfg.folds``-fold cross-validation of ``ds``."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    check_folds(ds, cfg.folds)
    grouped = ds.groups is not None
    y, everything = ds.targets, np.arange(len(ds))
    outer = (StratifiedGroupKFold if grouped else StratifiedKFold)(
        n_splits=cfg.folds, shuffle=True, random_state=cfg.seed
    )
    splits = []
    for k, (rest, test) in enumerate(outer.split(everything, y, ds.groups)):
        train, val = carve(ds, rest, validation_share(ds, rest, cfg), cfg.seed + k, grouped)
        splits.append(Split(train, val, test, "grouped" if grouped else "stratified"))
    return splits


def validation_share(ds: Dataset, index: np.ndarray, cfg: TrainConfig) -> float:
    """``val_fraction``, or the share of one subject where there are too few subjects to
    carve that little: a fold's validation part holds whole subjects."""
    if ds.groups is None:
        return cfg.val_fraction
    return max(cfg.val_fraction, 1.0 / len(np.unique(ds.groups[index])))


def cross_validate(
    cfg: TrainConfig,
    callbacks=None,
    *,
    tracker=None,
    nested: bool = False,
    tags: dict | None = None,
) -> CVResult:
    """Train and test every fold of ``cfg.folds``, each a run nested under one parent run
    (``nested``/``tags``: the parent's own place, under a study's trial say)."""
    from emorec.tracking import MlflowTracker
    from emorec.training import load_data, train

    tracker = tracker or MlflowTracker()
    ds = load_data(cfg)
    splits = fold_splits(ds, cfg)  # refused here, before any run opens
    name = cfg.run_name or f"{cfg.model}-{cfg.dataset}"
    parent_tags = {**(tags or {}), "kind": (tags or {}).get("kind", "cv"), "folds": str(cfg.folds)}
    # A study's folds name their trial, so that recovery finds them if a worker dies.
    fold_tags = {k: v for k, v in (tags or {}).items() if k in ("study", "trial_number")}
    result = CVResult("", classes=ds.classes)
    del ds  # each fold loads its arrays again (from the cache): one copy in memory
    parent_cfg = cfg.replace(run_name=f"{name} ({cfg.folds}-fold CV)", system_metrics=False)
    with tracker.run(parent_cfg, nested=nested, tags=parent_tags) as parent:
        result.run_id = parent.run_id
        tracker.log_config(cfg)
        for k, split in enumerate(splits):
            # A fold's model is not logged: the final fit's is the one the CV stands for.
            fold = train(
                cfg.replace(run_name=f"{name} fold {k + 1}/{cfg.folds}", log_model=False),
                callbacks,
                tracker=tracker.child(),
                nested=True,
                tags={**fold_tags, "kind": "cv_fold", "fold": str(k)},
                split=split,
            )
            row = {
                "fold": k,
                "train": len(split.train),
                "val": len(split.val),
                "test": len(split.test),
                **{m: fold.metrics.get(m, float("nan")) for m in FOLD_METRICS},
            }
            result.folds.append(row)
            log.info("fold %d/%d: test accuracy %.4f", k + 1, cfg.folds, row["test_accuracy"])
        result.metrics = summary_metrics(result.folds)
        tracker.log_metrics(result.metrics)
        tracker.log_table(result.folds, "cv/folds")
    return result


def summary_metrics(folds: list[dict]) -> dict[str, float]:
    """``cv_<metric>_mean`` and ``cv_<metric>_std`` (the sample's, ddof=1) of every fold metric."""
    out = {}
    for metric in FOLD_METRICS:
        values = np.array([f[metric] for f in folds], dtype=float)
        out[f"cv_{metric}_mean"] = float(np.mean(values))
        out[f"cv_{metric}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return out


def final_fit(
    cfg: TrainConfig,
    cv_metrics: dict[str, float],
    callbacks=None,
    *,
    tracker=None,
    nested: bool = False,
    tags: dict | None = None,
):
    """The model a cross-validated config stands for: trained on every image but a
    validation part, its run carrying the folds' ``cv_*`` metrics (its "test" figures are
    of its validation part: it has no test set of its own)."""
    from emorec.training import load_data, train

    ds = load_data(cfg)
    grouped = ds.groups is not None
    everything = np.arange(len(ds))
    train_part, val = carve(
        ds, everything, validation_share(ds, everything, cfg), cfg.seed, grouped
    )
    del ds
    split = Split(train_part, val, val, "grouped" if grouped else "stratified")
    result = train(
        cfg.replace(run_name=f"{cfg.run_name or cfg.model} final fit"),
        callbacks,
        tracker=tracker,
        nested=nested,
        split=split,
        tags={**(tags or {}), "kind": "cv_final_fit"},
        extra_metrics=cv_metrics,
    )
    return result
