"""The figures every run logs (``emorec.evaluation.figures``): SVG documents that say what
the run's evaluation says, for any class names, as a real browser draws them."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import mlflow
import numpy as np
import pytest

from conftest import run_failed_by
from emorec.evaluation import figures
from emorec.evaluation.metrics import classification_metrics

SVG = "{http://www.w3.org/2000/svg}"
CLASSES = ["angry", "happy", "sad"]


def _parsed(svg: bytes) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML or this raises
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def _evaluation(seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(3), 10)
    proba = rng.dirichlet(np.ones(3), size=30) + np.eye(3)[y_true]
    proba /= proba.sum(axis=1, keepdims=True)
    return classification_metrics(y_true, proba, CLASSES)


def _svgs(report, history=None) -> dict[str, bytes]:
    return figures.run_figures(report["confusion_matrix"], CLASSES, report["roc"], history or {})


def test_the_confusion_matrix_writes_every_count_and_names_both_axes():
    cm = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 3]])
    texts = _texts(_parsed(figures.figure_bytes(figures.confusion_figure(cm, CLASSES), "svg")))
    assert [t for t in texts if t.isdigit()][:9] == [str(v) for v in cm.ravel()]
    assert texts.count("angry") == 2 and texts.count("sad") == 2  # both axes
    assert "nan" not in " ".join(texts).lower()  # an absent class is 0, not NaN
    assert "Predicted" in texts and "True" in texts


def test_roc_curves_name_each_class_with_its_auc_and_the_macro_average():
    report = _evaluation()
    texts = _texts(_parsed(_svgs(report)["plots/roc_curves.svg"]))
    assert any(t.endswith(f"macro AUC {report['auc_roc_macro']:.3f}") for t in texts)
    for index, (_, _, auc) in report["roc"].items():
        assert f"{CLASSES[index]} (AUC {auc:.3f})" in texts


def test_learning_curves_say_what_was_not_recorded():
    full = {
        "train_loss": [1.2, 0.8, 0.6],
        "val_loss": [1.3, 1.0, 0.9],
        "train_accuracy": [0.4, 0.6, 0.7],
        "val_accuracy": [0.35, 0.5, 0.55],
    }
    texts = _texts(_parsed(_svgs(_evaluation(), full)["plots/learning_curves.svg"]))
    assert {"Loss", "Accuracy", "train", "val"} <= set(texts)
    one = _texts(_parsed(_svgs(_evaluation(), {"train_loss": [0.9]})["plots/learning_curves.svg"]))
    assert "no accuracy recorded" in one and "no loss recorded" not in one


def test_class_names_are_text_never_markup():
    hostile = ["<script>alert(1)</script>", "a & b", '"quoted"']
    report = classification_metrics(np.arange(3).repeat(2), np.eye(3).repeat(2, axis=0), hostile)
    svgs = figures.run_figures(report["confusion_matrix"], hostile, report["roc"], {})
    for svg in svgs.values():
        assert not [e for e in _parsed(svg).iter() if e.tag.endswith("script")]
    assert hostile[0] in _texts(_parsed(svgs["plots/confusion_matrix.svg"]))


def test_a_run_that_fails_after_its_evaluation_keeps_its_figures(monkeypatch):
    from emorec.tracking import logged_models

    run = run_failed_by(monkeypatch, logged_models, "log_trained_model")
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert logged == {
        "plots/confusion_matrix.svg",
        "plots/roc_curves.svg",
        "plots/learning_curves.svg",
    }
    for path in logged:
        _parsed(open(client.download_artifacts(run.info.run_id, path), "rb").read())


def _browser() -> str | None:
    """A headless Chromium, or None; .ci/run installs one and sets EMOREC_REQUIRE_BROWSER,
    so that in CI the browser test fails rather than skips without it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("EMOREC_REQUIRE_BROWSER"):
        pytest.fail("EMOREC_REQUIRE_BROWSER is set but no chromium is installed")
    return found


def test_a_browser_draws_each_figure_with_its_colours(tmp_path):
    """What the MLflow UI shows: the SVG as a real browser renders it, text and lines
    drawn, the confusion matrix's well-predicted cells in the dark end of its colours."""
    from matplotlib import colormaps
    from PIL import Image

    browser = _browser()
    if browser is None:
        pytest.skip("no chromium here (CI installs one)")
    report = _evaluation()
    svgs = _svgs(report, {"train_loss": [1.2, 0.9], "val_loss": [1.3, 1.1]})
    for name, svg in svgs.items():
        root = _parsed(svg)
        width, height = (
            round(float(root.get(k).removesuffix("pt")) * 4 / 3) for k in ("width", "height")
        )
        source, shot = tmp_path / name.replace("/", "_"), tmp_path / "shot.png"
        source.write_bytes(svg)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--screenshot={shot}",
                f"--window-size={width},{height}",
                source.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
        pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        assert (pixels.sum(axis=2) < 200).mean() > 0.002, f"{name}: no text or lines drawn"
        if name == "plots/confusion_matrix.svg":
            cm = np.asarray(report["confusion_matrix"], float)
            share = cm.diagonal().max() / cm.sum(axis=1)[cm.diagonal().argmax()]
            expected = np.array(colormaps["Blues"](share)[:3]) * 255
            close = np.abs(pixels - expected).max(axis=2) <= 6
            assert close.mean() > 0.005, f"no cell in the colour of share {share:.2f}"
