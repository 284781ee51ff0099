"""Tests for the framework-free evaluation pieces: metrics, resources and figures."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from emorec.evaluation import figures
from emorec.evaluation.metrics import classification_metrics, scalar_metrics
from emorec.resources import PeakMemorySampler, gpu_peak_mb, system_info

NAMES3 = ["anger", "happiness", "neutral"]


def _one_hot_proba(pred: list[int], k: int, confidence: float = 0.8) -> np.ndarray:
    """Probabilities whose argmax is ``pred``, the rest spread evenly."""
    proba = np.full((len(pred), k), (1 - confidence) / (k - 1))
    proba[np.arange(len(pred)), pred] = confidence
    return proba


# --- metrics ------------------------------------------------------------------


def test_perfect_predictions():
    y = np.array([0, 1, 2, 0, 1, 2, 2])
    r = classification_metrics(y, _one_hot_proba(y.tolist(), 3), NAMES3)
    assert r["accuracy"] == 1.0
    assert r["f1_macro"] == 1.0
    assert r["f1_weighted"] == 1.0
    assert r["auc_roc_macro"] == 1.0
    assert r["auc_classes_excluded"] == []
    assert np.array_equal(np.diag(r["confusion_matrix"]), [2, 2, 3])


def test_hand_computed_example():
    # true  0 0 0 1 1 2
    # pred  0 0 1 1 1 2
    # class 0: P=1,   R=2/3 -> F1 0.8   (support 3)
    # class 1: P=2/3, R=1   -> F1 0.8   (support 2)
    # class 2: P=1,   R=1   -> F1 1.0   (support 1)
    y = np.array([0, 0, 0, 1, 1, 2])
    proba = _one_hot_proba([0, 0, 1, 1, 1, 2], 3)
    r = classification_metrics(y, proba, NAMES3)
    assert r["accuracy"] == pytest.approx(5 / 6)
    assert r["f1_macro"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)
    assert r["f1_weighted"] == pytest.approx((3 * 0.8 + 2 * 0.8 + 1 * 1.0) / 6)
    assert r["per_class"]["anger"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert r["per_class"]["happiness"]["precision"] == pytest.approx(2 / 3)
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert r["classification_report"]["neutral"]["f1-score"] == pytest.approx(1.0)
    # With every class present, our macro AUC is sklearn's one-vs-rest macro AUC.
    assert r["auc_roc_macro"] == pytest.approx(
        roc_auc_score(y, proba, multi_class="ovr", average="macro")
    )


def test_absent_class_is_excluded_from_auc_and_listed():
    names = NAMES3 + ["surprise"]
    rng = np.random.default_rng(0)
    y = np.array([0, 0, 1, 1, 2, 2, 0, 1])  # class 3 never occurs
    proba = rng.dirichlet(np.ones(4), size=len(y))
    r = classification_metrics(y, proba, names)
    assert r["auc_classes_excluded"] == ["surprise"]
    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in range(3)])
    assert r["auc_roc_macro"] == pytest.approx(expected)
    assert not math.isnan(r["auc_roc_macro"])
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (4, 4)
    assert cm[3].sum() == 0 and cm.sum() == len(y)
    assert r["per_class"]["surprise"]["support"] == 0
    assert set(r["roc"]) == {0, 1, 2}


@pytest.mark.parametrize("decimals", [None, 1])  # scores all distinct, and with ties
def test_roc_curves_are_sklearns_points_and_areas(decimals):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, size=200)
    proba = rng.dirichlet(np.ones(4), size=len(y)) + 0.3 * np.eye(4)[y]
    if decimals is not None:
        proba = np.round(proba, decimals)
    names = [f"c{i}" for i in range(4)]
    for c, (fpr, tpr, auc) in classification_metrics(y, proba, names)["roc"].items():
        expected_fpr, expected_tpr, _ = roc_curve(y == c, proba[:, c])
        np.testing.assert_allclose(fpr, expected_fpr)
        np.testing.assert_allclose(tpr, expected_tpr)
        assert auc == pytest.approx(roc_auc_score(y == c, proba[:, c]), abs=1e-12)


def test_single_class_gives_nan_auc():
    y = np.array([1, 1, 1])
    r = classification_metrics(y, _one_hot_proba([1, 0, 1], 3), NAMES3)
    assert math.isnan(r["auc_roc_macro"])
    assert r["auc_classes_excluded"] == NAMES3
    assert r["roc"] == {}


def test_scalar_metrics_prefix_and_types():
    y = np.array([0, 1, 2])
    s = scalar_metrics(classification_metrics(y, _one_hot_proba([0, 1, 2], 3), NAMES3), "test_")
    assert set(s) == {"test_accuracy", "test_f1_macro", "test_f1_weighted", "test_auc_roc_macro"}
    assert all(isinstance(v, float) for v in s.values())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.zeros((3, 3)), NAMES3)
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 1]), np.zeros((2, 3)), NAMES3[:2])


# --- resources ----------------------------------------------------------------


def test_peak_memory_sampler_sees_allocation():
    with PeakMemorySampler(interval_s=0.02) as sampler:
        block = np.ones(100 * 1024 * 1024, dtype=np.uint8)  # np.ones touches every page
        time.sleep(0.3)  # several sampling periods while the array is alive
        del block
    assert sampler.peak_rss_mb - sampler.baseline_rss_mb >= 80
    assert sampler.max_rss_lifetime_mb >= sampler.peak_rss_mb * 0.9
    assert sampler.as_metrics()["peak_rss_mb"] == sampler.peak_rss_mb


# The first two tiny runs in a fresh process, each run's memory share on one line.
_TWO_RUNS = """
from emorec.config import TrainConfig
from emorec.tracking.tracker import NoTracker
from emorec.training import train
cfg = TrainConfig(epochs=1, samples=70, image_size=16, batch_size=16, system_metrics=False,
                  progress=False)
for _ in range(2):
    print(train(cfg, tracker=NoTracker()).metrics["peak_rss_share_mb"])
"""


def test_first_run_in_a_process_is_not_charged_for_torchs_lazy_imports(tmp_path):
    # torch imports its compiler stack with the first optimizer it makes: charged to the
    # first run, it made a study's first trial look heavier than the others by that much.
    env = {**os.environ, "EMOREC_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _TWO_RUNS], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = (float(x) for x in done.stdout.split()[-2:])
    # What may remain: library code and kernels the first run is the first to touch.
    assert first - second < 150, (first, second)


def test_gpu_peak_is_none_without_gpu():
    assert gpu_peak_mb() is None


def test_system_info():
    info = system_info()
    assert info["cpu_cores_logical"] >= 1 and info["ram_total_gb"] > 0
    assert info["gpu_name"] is None


def test_modules_do_not_import_frameworks():
    code = (
        "import sys, emorec.evaluation.metrics, emorec.resources, emorec.evaluation.figures\n"
        "emorec.resources.system_info(); emorec.resources.gpu_peak_mb()\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- figures --------------------------------------------------------------------


def _check_png(path):
    assert path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 100 and image.height > 100


def _plot_inputs():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 10)
    proba = rng.dirichlet(np.ones(3), size=len(y)) + np.eye(3)[y]
    proba /= proba.sum(axis=1, keepdims=True)
    cm = classification_metrics(y, proba, NAMES3)["confusion_matrix"]
    gray = rng.integers(0, 256, size=(5, 48, 48, 1), dtype=np.uint8)
    rgb = rng.integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)
    return y, proba, cm, gray, rgb


# Builders rather than figures, so each test case renders only its own figure.
FIGURES = {
    "dist": lambda *_: figures.class_distribution_figure(
        {"train": {"anger": 30, "happiness": 50}, "val": {"anger": 5, "neutral": 7}}
    ),
    "dist_1_split": lambda *_: figures.class_distribution_figure(
        {"all": {"anger": 3, "happiness": 8}}
    ),
    "grid": lambda y, p, cm, g, c: figures.sample_grid_figure(
        {"anger": g, "happiness": c}, n_per_class=6
    ),
    "confusion": lambda y, p, cm, g, c: figures.confusion_figure(cm, NAMES3),
    "heatmap": lambda *_: figures.heatmap_figure(
        np.array([[0.9, np.nan], [0.4, 0.7]]), ["a", "b"], ["a", "b"], "t", "share"
    ),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_every_figure_writes_a_png(tmp_path, name):
    fig = FIGURES[name](*_plot_inputs())
    path = figures.save(fig, tmp_path / "nested" / f"{name}.png")
    _check_png(path)
