"""The figures every run logs (``emorec.evaluation_figures``): SVG documents that say
what the run's evaluation says, for any class names."""

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import mlflow
import numpy as np
import pytest

from conftest import run_failed_by
from emorec import evaluation_figures as figures
from emorec.metrics import classification_metrics, roc_curves

SVG = "{http://www.w3.org/2000/svg}"
CLASSES = ["angry", "happy", "sad"]


def _parsed(svg: bytes) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML or this raises
    assert root.tag == f"{SVG}svg"
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text for t in root.iter(f"{SVG}text")]


def _evaluation(seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(3), 10)
    proba = rng.dirichlet(np.ones(3), size=30) + np.eye(3)[y_true]
    proba /= proba.sum(axis=1, keepdims=True)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (y_true, proba.argmax(1)), 1)
    return confusion, y_true, proba


def test_the_confusion_matrix_shows_every_count_and_share_in_its_cell_colour():
    cm = np.array([[8, 2, 0], [0, 0, 0], [1, 1, 3]])
    root = _parsed(figures.confusion_matrix_svg(cm, CLASSES))
    texts = _texts(root)
    # Row by row: count, then its share of the true class; the empty row has counts only.
    assert texts[texts.index("8"):texts.index("8") + 6] == ["8", "80%", "2", "20%", "0", "0%"]
    assert "nan" not in " ".join(texts).lower()
    assert texts.count("angry") == 2 and texts.count("sad") == 2  # both axes
    cells = [r for r in root.iter(f"{SVG}rect") if r.get("width") == r.get("height")
             and r.get("fill", "").startswith("#")]
    fills = [c.get("fill") for c in cells[:9]]
    assert fills[0] == figures.blues(0.8) and fills[1] == figures.blues(0.2)
    assert fills[3:6] == [figures.blues(0)] * 3  # an absent class: 0, not NaN
    assert figures.blues(1) == figures.BLUES[-1] and figures.blues(0) == figures.BLUES[0]

    counts = _texts(_parsed(figures.confusion_matrix_svg(cm, CLASSES, normalize=False)))
    assert "80%" not in counts and "Count" in counts


def test_roc_curves_are_one_line_per_class_with_its_auc_and_the_macro_average():
    _, y_true, proba = _evaluation()
    curves = roc_curves(y_true, proba)
    root = _parsed(figures.roc_svg(curves, CLASSES))
    texts = _texts(root)
    macro = classification_metrics(y_true, proba, CLASSES)["auc_roc_macro"]
    assert any(t.endswith(f"macro AUC {macro:.3f}") for t in texts)
    for index, (_, _, auc) in curves.items():
        assert f"{CLASSES[index]} (AUC {auc:.3f})" in texts
    # A curve per class, the chance line, and their keys in the legend.
    assert len(list(root.iter(f"{SVG}polyline"))) == 2 * (len(curves) + 1)


def test_learning_curves_show_each_epoch_and_say_what_was_not_recorded():
    full = {"train_loss": [1.2, 0.8, 0.6], "val_loss": [1.3, 1.0, 0.9],
            "train_accuracy": [0.4, 0.6, 0.7], "val_accuracy": [0.35, 0.5, 0.55]}
    root = _parsed(figures.learning_curves_svg(full))
    assert {"1", "2", "3", "Loss", "Accuracy", "train", "val"} <= set(_texts(root))
    assert len(list(root.iter(f"{SVG}circle"))) == 4 * 3 + 4  # a marker per point, per key

    one_epoch = _parsed(figures.learning_curves_svg({"train_loss": [0.9]}))
    assert "1" in _texts(one_epoch) and "no accuracy recorded" in _texts(one_epoch)
    assert len(list(one_epoch.iter(f"{SVG}circle"))) == 2  # its point, and its key
    assert {"no loss recorded", "no accuracy recorded"} <= set(
        _texts(_parsed(figures.learning_curves_svg({}))))


def test_class_names_are_text_never_markup():
    hostile = ['<script>alert(1)</script>', 'a & b', '"quoted"']
    cm = np.eye(3, dtype=int)
    svgs = figures.evaluation_svgs(cm, hostile, roc_curves(np.arange(3).repeat(2),
                                                            np.eye(3).repeat(2, axis=0)), {})
    for svg in svgs.values():
        root = _parsed(svg)
        assert not [e for e in root.iter() if e.tag.endswith("script")]
    assert hostile[0] in _texts(_parsed(svgs["plots/confusion_matrix.svg"]))


@pytest.mark.parametrize("low, high, integer", [(0, 1, False), (-0.013, 2.71, False),
                                                (0.51, 0.53, False), (1, 37, True),
                                                (1, 1, True), (0, 900, False)])
def test_ticks_are_round_values_inside_the_range(low, high, integer):
    ticks = figures.nice_ticks(low, high, integer=integer)
    assert 2 <= len(ticks) <= 6 or (low == high and ticks == [low])
    assert all(low - 1e-9 <= t <= high + 1e-9 for t in ticks)
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0] if len(steps) else 0)
    if integer:
        assert all(float(t).is_integer() for t in ticks)


def test_a_run_that_fails_after_its_evaluation_keeps_its_figures(monkeypatch):
    from emorec.tracking import logged_models

    run = run_failed_by(monkeypatch, logged_models, "log_trained_model")
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert logged == {"plots/confusion_matrix.svg", "plots/roc_curves.svg",
                      "plots/learning_curves.svg"}
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
    """What the MLflow UI shows: the SVG as a real browser renders it, at its own size,
    the confusion matrix's cells in the colours the figure gives them."""
    from PIL import Image

    browser = _browser()
    if browser is None:
        pytest.skip("no chromium here (CI installs one)")
    confusion, y_true, proba = _evaluation()
    svgs = figures.evaluation_svgs(confusion, CLASSES, roc_curves(y_true, proba),
                                   {"train_loss": [1.2, 0.9], "val_loss": [1.3, 1.1]})
    for name, svg in svgs.items():
        root = _parsed(svg)
        width, height = int(root.get("width")), int(root.get("height"))
        source, shot = tmp_path / name.replace("/", "_"), tmp_path / "shot.png"
        source.write_bytes(svg)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--hide-scrollbars", f"--screenshot={shot}",
                        f"--window-size={width},{height}", source.as_uri()],
                       capture_output=True, timeout=120, check=True)
        pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        assert pixels.shape[:2] == (height, width), name
        assert (pixels.sum(axis=2) < 200).mean() > 0.002, f"{name}: no text or lines drawn"
        if name == "plots/confusion_matrix.svg":
            # Each cell's top left corner (clear of its centred text) in its own colour.
            cells = [r for r in root.iter(f"{SVG}rect") if r.get("width") == r.get("height")
                     and r.get("fill", "").startswith("#")][:9]
            for cell in cells:
                x, y = int(float(cell.get("x"))) + 4, int(float(cell.get("y"))) + 4
                expected = [int(cell.get("fill")[i:i + 2], 16) for i in (1, 3, 5)]
                assert np.abs(pixels[y, x] - expected).max() <= 3, (x, y, cell.get("fill"))
