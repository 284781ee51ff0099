"""Test-time augmentation: what evaluation computed is what every serving path returns.

A tiny cnn_torch run with ``tta=flip``: its logged test metrics must come from the very
probabilities that ``emorec.load(...).predict_proba``, the logged pyfunc, a real
``mlflow models serve`` and the ONNX export return for the test images, and those must
be the mean over each image and its mirror image (so TTA really ran).
"""

import base64
import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import emorec
from conftest import TINY
from services import model_server, post_json


@pytest.fixture(scope="module")
def tta_run(tmp_path_factory):
    """(TrainResult, tracking URI, test images, test targets) of a tiny flip-TTA run."""
    import mlflow

    from emorec.config import TrainConfig
    from emorec.training import load_data, split_data, train

    folder = tmp_path_factory.mktemp("tta")
    uri = f"sqlite:///{folder}/mlflow.db"
    cfg = TrainConfig(**{**TINY, "samples": 140}, tta="flip")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("EMOREC_CACHE_DIR", str(folder / "cache"))
        mlflow.set_tracking_uri(uri)
        result = train(cfg)
        # The run's own test split, rebuilt the way train() built it.
        ds = load_data(cfg)
    split, _ = split_data(ds, cfg)
    return result, uri, ds.images[split.test], ds.targets[split.test]


@pytest.fixture
def served(tta_run, monkeypatch):
    """The run's URI and the probabilities ``emorec.load`` gives its test images."""
    import mlflow

    result, uri, images, _ = tta_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    model_uri = f"runs:/{result.run_id}/emotion_model"
    return model_uri, emorec.load(model_uri).predict_proba(list(images))


def _png(image: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0]).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_logged_test_metrics_come_from_the_served_probabilities(tta_run, served):
    from emorec.evaluation.metrics import classification_metrics

    result, _, _, targets = tta_run
    _, proba = served
    report = classification_metrics(targets, proba, list(result.classes))
    assert report["accuracy"] == pytest.approx(result.metrics["test_accuracy"], abs=1e-9)
    assert report["auc_roc_macro"] == pytest.approx(result.metrics["test_auc_roc_macro"], abs=1e-6)


def test_served_probabilities_are_the_mean_over_the_image_and_its_mirror(tta_run, served):
    import torch

    from emorec.data.preprocess import normalize
    from emorec.models.tta import FlipAveraged

    _, _, images, _ = tta_run
    model_uri, proba = served
    wrapped = emorec.load(model_uri).model.network
    assert isinstance(wrapped, FlipAveraged)
    x = torch.from_numpy(normalize(images)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        plain = torch.softmax(wrapped.model.eval()(x), 1).numpy()
        mirrored = torch.softmax(wrapped.model(torch.flip(x, dims=[3])), 1).numpy()
    # A one-epoch model is nearly uniform, so mirror images move its probabilities little,
    # yet far more than float rounding does.
    assert np.abs(proba - (plain + mirrored) / 2).max() < 1e-6
    assert np.abs(proba - plain).max() > 1e-5, "flip TTA changed nothing: was it applied?"


def test_the_logged_pyfunc_returns_the_same_probabilities(tta_run, served):
    import mlflow

    result, _, images, _ = tta_run
    model_uri, proba = served
    frame = pd.DataFrame({"image": [_png(img) for img in images]})
    answer = mlflow.pyfunc.load_model(model_uri).predict(frame)
    assert np.abs(answer[list(result.classes)].to_numpy() - proba).max() < 1e-5


def test_mlflow_models_serve_returns_the_same_probabilities(tta_run, served, tmp_path):
    result, uri, images, _ = tta_run
    model_uri, proba = served
    body = json.dumps(
        {"dataframe_split": {"columns": ["image"], "data": [[_png(img)] for img in images]}}
    ).encode()
    with model_server(model_uri, uri, tmp_path) as (_, url):
        status, answer = post_json(url + "/invocations", body)
    assert status == 200, answer
    got = np.array([[row[c] for c in result.classes] for row in answer["predictions"]])
    assert np.abs(got - proba).max() < 1e-5


def test_the_onnx_export_returns_the_same_probabilities(tta_run, served, tmp_path):
    from emorec.serving.onnx_export import export_onnx

    _, _, images, _ = tta_run
    model_uri, proba = served
    path = export_onnx(model_uri, tmp_path / "tta.onnx", log_to_run=False)
    got = emorec.load(str(path)).predict_proba(list(images))
    assert np.abs(got - proba).max() < 1e-4


def test_the_int8_export_stays_close_to_the_served_probabilities(tta_run, served, tmp_path):
    """The flip, the averaging and the log in the graph survive static quantization."""
    from emorec.serving.quantize import export_int8

    _, _, images, _ = tta_run
    model_uri, proba = served
    path, _ = export_int8(model_uri, tmp_path / "tta-int8.onnx", log_to_run=False)
    got = emorec.load(str(path)).predict_proba(list(images))
    assert np.abs(got - proba).max() < 0.05


def test_an_export_without_tta_holds_the_bare_network(tta_run, served, tmp_path):
    """``--no-tta``: one pass per face. Its probabilities are not the served ones, but the
    mean of its answers for each image and its mirror image is."""
    from emorec.serving.onnx_export import export_onnx
    from emorec.serving.onnx_model import OnnxModel

    _, _, images, _ = tta_run
    model_uri, proba = served
    path = export_onnx(model_uri, tmp_path / "bare.onnx", log_to_run=False, tta=False)
    assert {k: OnnxModel(path).metadata[k] for k in ("tta", "tta_trained")} == {
        "tta": "none",
        "tta_trained": "flip",
    }
    bare = emorec.load(str(path))
    once = bare.predict_proba(list(images))
    mirrored = bare.predict_proba([np.ascontiguousarray(img[:, ::-1]) for img in images])
    # The tiny model is nearly uniform, so the gaps are small: compare them to each other.
    single_view_gap = np.abs(once - proba).max()
    assert single_view_gap > 1e-5
    assert np.abs((once + mirrored) / 2 - proba).max() < 0.05 * single_view_gap


def test_cli_export_no_tta_says_what_the_file_is(tta_run, served, tmp_path, capsys):
    from emorec.cli import main
    from emorec.serving.onnx_model import OnnxModel

    model_uri, _ = served
    out = tmp_path / "cli-bare.onnx"
    assert main(["export", "--model-uri", model_uri, "--no-tta", "--no-log", str(out)]) == 0
    assert "without test-time augmentation" in capsys.readouterr().out
    assert OnnxModel(out).tta_left_out


def test_cli_export_with_tta_says_how_to_leave_it_out(served, tmp_path, capsys):
    from emorec.cli import main

    model_uri, _ = served
    assert main(["export", "--model-uri", model_uri, "--no-log", str(tmp_path / "tta.onnx")]) == 0
    assert "(flip, 2 passes per face): --no-tta exports 1 pass," in capsys.readouterr().out


def test_tencrop_serves_the_mean_over_ten_views_on_every_path(tmp_path, monkeypatch):
    """``tta=tencrop``: the served probabilities are the mean over the five crops (scaled
    back to the input size) and their mirror images, and the ONNX file (whose export
    checks its own parity) gives the same."""
    import mlflow
    import torch
    import torch.nn.functional as F

    from emorec.config import TrainConfig
    from emorec.data.preprocess import normalize
    from emorec.models.tta import TenCropAveraged
    from emorec.serving.onnx_export import export_onnx
    from emorec.training import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("EMOREC_CACHE_DIR", str(tmp_path / "cache"))
    mlflow.set_tracking_uri(uri)
    result = train(TrainConfig(**{**TINY, "samples": 70}, tta="tencrop"))
    model_uri = f"runs:/{result.run_id}/emotion_model"
    predictor = emorec.load(model_uri)
    wrapped = predictor.model.network
    assert isinstance(wrapped, TenCropAveraged)

    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    proba = predictor.predict_proba(list(images))
    x = torch.from_numpy(normalize(images)).permute(0, 3, 1, 2)
    side = x.shape[-1]
    crop = round(side * TenCropAveraged.CROP)
    offsets = [(0, 0), (0, side - crop), (side - crop, 0), (side - crop, side - crop)]
    offsets.append(((side - crop) // 2, (side - crop) // 2))
    expected = []
    with torch.inference_mode():
        for top, left in offsets:
            view = x[..., top : top + crop, left : left + crop]
            view = F.interpolate(view, size=(side, side), mode="bilinear", align_corners=False)
            for v in (view, torch.flip(view, dims=[3])):
                expected.append(torch.softmax(wrapped.model.eval()(v), 1).numpy())
    assert np.abs(proba - np.mean(expected, axis=0)).max() < 1e-6
    assert np.abs(proba - expected[-2]).max() > 1e-6, "ten-crop changed nothing"

    path = export_onnx(model_uri, tmp_path / "tencrop.onnx", log_to_run=False)
    assert np.abs(emorec.load(str(path)).predict_proba(list(images)) - proba).max() < 1e-4
