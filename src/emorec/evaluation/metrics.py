"""Classification metrics for emotion classifiers, independent of any framework.

Every engine hands over integer labels and class probabilities as numpy arrays;
this module turns them into the numbers logged to MLflow (accuracy, macro and
weighted F1, one-vs-rest macro AUC ROC), the per-class breakdown, the confusion
matrix and the per-class ROC curves (computed once: the AUC is their area, and
``emorec.evaluation.figures`` draws them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)

# Keys of ``classification_metrics`` that hold a single float, in logging order.
SCALAR_KEYS: tuple[str, ...] = ("accuracy", "f1_macro", "f1_weighted", "auc_roc_macro")


def _check_inputs(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(int).ravel()
    proba = np.asarray(proba, dtype=float)
    if proba.ndim != 2 or proba.shape[0] != y_true.shape[0]:
        raise ValueError(
            f"proba must have shape (N, K) with N={y_true.shape[0]}, got {proba.shape}"
        )
    if y_true.size and (y_true.min() < 0 or y_true.max() >= proba.shape[1]):
        raise ValueError(f"labels must lie in [0, {proba.shape[1]}), got {np.unique(y_true)}")
    return y_true, proba


def _auc_classes(y_true: np.ndarray, k: int) -> list[int]:
    """Classes whose one-vs-rest AUC is defined: both positives and negatives exist."""
    present = set(np.unique(y_true).tolist())
    return [c for c in range(k) if c in present and len(present) > 1]


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, class_names: list[str]
) -> dict[str, Any]:
    """Compute the evaluation metrics of one split.

    Args:
        y_true: integer labels, shape (N,), values in ``range(K)``.
        proba: class probabilities (or any scores monotone in them), shape (N, K).
        class_names: K names, index-aligned with the columns of ``proba``.

    Returns a dict with
        ``accuracy``, ``f1_macro``, ``f1_weighted``: floats (predictions are the
            argmax of ``proba``; F1 averages run over the K classes with
            ``zero_division=0``, so a class absent from both labels and predictions
            counts as F1 0 in the macro mean, as sklearn does for explicit labels);
        ``auc_roc_macro``: one-vs-rest AUC ROC averaged over classes. A class's
            one-vs-rest AUC is only defined when it has both positives and
            negatives in ``y_true``; a class absent from ``y_true`` is therefore
            left out of the average (not counted as 0 or 0.5), and its name is
            listed in ``auc_classes_excluded``. With fewer than two classes
            present no AUC is defined and the value is ``nan``;
        ``auc_classes_excluded``: list of class names left out of the AUC;
        ``per_class``: ``{name: {precision, recall, f1, support}}``;
        ``confusion_matrix``: K x K nested list, rows true, columns predicted,
            including rows/columns of absent classes;
        ``classification_report``: sklearn's ``output_dict`` report;
        ``roc``: ``{class index: (fpr, tpr, auc)}`` for the classes in the AUC.
    """
    y_true, proba = _check_inputs(y_true, proba)
    k = proba.shape[1]
    if len(class_names) != k:
        raise ValueError(f"{len(class_names)} class names for {k} probability columns")
    labels = list(range(k))
    y_pred = proba.argmax(axis=1)

    prec, rec, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(class_names)
    }

    # Per class rather than roc_auc_score(multi_class="ovr"), which refuses label sets
    # that do not cover every probability column.
    roc = {c: _roc(y_true == c, proba[:, c]) for c in _auc_classes(y_true, k)}
    excluded = [class_names[c] for c in labels if c not in roc]
    auc = float(np.mean([a for _, _, a in roc.values()])) if len(roc) >= 2 else float("nan")

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "f1_weighted": float(
            f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)
        ),
        "auc_roc_macro": auc,
        "auc_classes_excluded": excluded,
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "classification_report": classification_report(
            y_true,
            y_pred,
            labels=labels,
            target_names=list(class_names),
            output_dict=True,
            zero_division=0,
        ),
        "roc": roc,
    }


def scalar_metrics(result: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The scalar entries of ``classification_metrics``, keys prefixed for logging.

    ``scalar_metrics(r, "test_")`` gives ``{"test_accuracy": ..., ...}``. A NaN AUC
    is kept (MLflow accepts NaN) so that its absence is visible rather than silent.
    """
    return {f"{prefix}{key}": float(result[key]) for key in SCALAR_KEYS if key in result}


def _roc(positives: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(fpr, tpr, auc) of one binary problem: the points and area sklearn's ``roc_curve``
    (``drop_intermediate=True``) and ``roc_auc_score`` give, computed directly (sklearn's
    argument checks cost more than the curve itself)."""
    order = np.argsort(-scores, kind="mergesort")
    ranked, hits = scores[order], positives[order].astype(np.int64)
    # The last position of each distinct score: one point per threshold.
    last = np.r_[np.flatnonzero(np.diff(ranked)), ranked.size - 1]
    tps = np.cumsum(hits)[last]
    fps = last + 1 - tps
    if len(fps) > 2:  # drop the points in the middle of straight segments
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[keep], fps[keep]
    tpr, fpr = np.r_[0, tps] / tps[-1], np.r_[0, fps] / fps[-1]
    return fpr, tpr, float(np.trapezoid(tpr, fpr))
