"""emorec.load(uri).predict(...) on photos given as files, PIL images and arrays."""

import numpy as np
import pytest
from PIL import Image

import emorec
from emorec.config import TrainConfig
from emorec.data.images import ImageError
from emorec.inference import ModelNotFound
from emorec.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import os

    import mlflow

    # One small model for the whole module, in a store of its own.
    store = tmp_path_factory.mktemp("store")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    result = train(TrainConfig(epochs=1, samples=70, image_size=16, batch_size=16,
                               system_metrics=False, progress=False))
    yield result, os.environ["MLFLOW_TRACKING_URI"]
    if old is not None:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture
def predictor(trained, monkeypatch):
    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return emorec.load(f"runs:/{result.run_id}/emotion_model"), result


def test_predicts_files_pil_and_arrays_alike(predictor, tmp_path):
    pred, result = predictor
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 255, (40, 30), np.uint8)
    path = tmp_path / "face.png"
    Image.fromarray(gray).save(path)
    out = pred.predict([str(path), Image.fromarray(gray), gray])
    assert len(out) == 3  # noise has no face: one whole-image prediction each, flagged
    assert all(not p.face_found and p.box == (0, 0, 30, 40) for p in out)
    for p in out:
        assert set(p.probabilities) == set(result.classes)
        assert abs(sum(p.probabilities.values()) - 1) < 1e-5
        assert p.label == max(p.probabilities, key=p.probabilities.get)
    # The same pixels give the same answer whichever way they arrive.
    np.testing.assert_allclose([list(p.probabilities.values()) for p in out[1:]],
                               [list(out[0].probabilities.values())] * 2, atol=1e-6)
    assert out[0].source == str(path)


def test_uses_the_models_own_preprocessing(predictor):
    pred, result = predictor
    assert pred.prep.image_size == 16 and pred.prep.channels == 1
    assert pred.classes == list(result.classes)


def test_unknown_uri_lists_what_exists(trained, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained[1])
    with pytest.raises(ModelNotFound, match="registered models"):
        emorec.load("models:/emorec-nothing@champion")


def test_unreadable_file_is_a_clear_error(predictor, tmp_path):
    pred, _ = predictor
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png"):
        pred.predict([str(bad)])
