"""emorec.load(uri).predict(...) on photos given as files, PIL images and arrays."""

import numpy as np
import pytest
from PIL import Image

import emorec
from emorec.data.images import ImageError
from emorec.serving.predictor import ModelNotFound


@pytest.fixture
def trained(tiny_run, tiny_store):
    """(TrainResult, store URI) of the session's tiny run, with this test pointed at it."""
    return tiny_run


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
    np.testing.assert_allclose(
        [list(p.probabilities.values()) for p in out[1:]],
        [list(out[0].probabilities.values())] * 2,
        atol=1e-6,
    )
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


def test_registered_champion_agrees_with_run_and_training_engine(trained, monkeypatch):
    """The issue's flow: train, register, load by alias, same probabilities everywhere."""
    from mlflow import MlflowClient

    from emorec.data.preprocess import Preprocessing, prepare_image
    from emorec.engines import get_engine
    from emorec.tracking.model_registry import CHAMPION, register_best

    result, store = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    name = "emorec-cnn_torch-synthetic-test"
    reg = register_best(result.run_id, name, "test_accuracy")
    assert reg is not None and reg.alias == CHAMPION  # first version: nothing to beat
    version = MlflowClient().get_model_version_by_alias(name, CHAMPION)
    assert version.run_id == result.run_id and str(version.version) == reg.version

    by_alias = emorec.load(f"models:/{name}@{CHAMPION}")
    by_run = emorec.load(f"runs:/{result.run_id}/emotion_model")
    assert by_alias.classes == by_run.classes == list(result.classes)
    images = list(np.random.default_rng(3).integers(0, 256, (6, 16, 16), np.uint8))
    p_alias = by_alias.predict_proba(images)
    p_run = by_run.predict_proba(images)
    # Training-time predictions: the engine on the trained model, same prepared pixels.
    prep = Preprocessing(16, 1, False)
    prepared = np.stack([prepare_image(img, prep)[0] for img in images])
    p_engine = get_engine("torch").predict_proba(result.model, prepared)
    assert p_alias.shape == (6, len(result.classes))
    np.testing.assert_allclose(p_alias, p_run, atol=1e-5)
    np.testing.assert_allclose(p_alias, p_engine, atol=1e-5)
    labels = [p.label for p in by_alias.predict(images, detect_faces=False)]
    assert labels == [result.classes[i] for i in p_engine.argmax(1)]


def test_expected_class_set_is_checked(predictor, trained, monkeypatch):
    pred, result = predictor
    pred.check_classes(list(reversed(result.classes)))  # the same set in another order is fine
    expected = ["happy", "sad", "surprised-ish"]
    with pytest.raises(ValueError) as info:
        pred.check_classes(expected)
    message = str(info.value)
    assert str(list(result.classes)) in message and str(expected) in message
    assert "surprised-ish" in message  # named as not in the model
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained[1])
    uri = f"runs:/{result.run_id}/emotion_model"
    with pytest.raises(ValueError, match="was trained on classes"):
        emorec.load(uri, expect_classes=expected)
    assert emorec.load(uri, expect_classes=result.classes).classes == list(result.classes)


def test_float_and_16bit_images_are_scaled_not_clipped(predictor):
    """Floats in [0, 1] and 16-bit pixels mean the same photo as its uint8 pixels."""
    pred, _ = predictor
    gray = np.random.default_rng(2).integers(0, 256, (40, 30), dtype=np.uint8)
    same = [
        gray / 255.0,
        (gray / 255.0).astype(np.float32),
        gray.astype(np.int64),
        gray.astype(np.uint16) * 257,
        Image.fromarray(gray.astype(np.uint16) * 257),
        np.dstack([gray] * 3 + [np.zeros_like(gray)]),
    ]  # RGBA: the alpha is dropped
    out = pred.predict([gray, *same], detect_faces=False)
    for p in out[1:]:
        np.testing.assert_allclose(
            list(p.probabilities.values()), list(out[0].probabilities.values()), atol=1e-5
        )
    with pytest.raises(ImageError, match=r"<array 1>: float pixels must be in \[0, 1\]"):
        pred.predict([gray, gray * 1.0])  # 0..255 floats: refused, not clipped


@pytest.mark.parametrize(
    "array, message",
    [
        (np.array(0.5), r"shape \(\) is not an image"),
        (np.zeros(64, np.uint8), r"shape \(64,\) is not an image"),
        (np.zeros((0, 0), np.uint8), "too small"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"shape \(2, 16, 16, 3\) is not an image"),
        (np.zeros((16, 16, 2), np.uint8), r"shape \(16, 16, 2\) is not an image"),
        (np.zeros((16, 16), complex), "complex128 are not supported"),
        (np.zeros((16, 16), bool), "bool are not supported"),
        (np.full((16, 16), np.nan), "NaN"),
        (np.full((16, 16), 300), r"integer pixels must be in 0\.\.255"),
        (np.zeros((7, 64), np.uint8), r"7 is too small"),
        (np.broadcast_to(np.uint8(0), (8, 5_000_001)), "exceeds the limit"),  # 40 MP: no memory
    ],
)
def test_arrays_that_are_not_images_are_clear_errors(predictor, array, message):
    pred, _ = predictor
    with pytest.raises(ImageError, match=f"<array 0>: .*{message}"):
        pred.predict([array])


def test_expected_classes_accept_the_loaders_aliases(predictor):
    pred, result = predictor
    alias = {
        "anger": "angry",
        "happiness": "Happy",
        "sadness": "sad",
        "surprise": "surprised",
        "fear": "scared",
        "disgust": "disgusted",
        "contempt": "contemptuous",
        "neutral": "calm",
    }
    pred.check_classes([alias[c] for c in result.classes])
    with pytest.raises(ValueError, match=r"not in the model: \['joyful'\]"):
        pred.check_classes([alias[c] for c in result.classes] + ["joyful"])


def test_logged_signature_is_what_the_pyfunc_serves(trained, monkeypatch):
    """The schema given to MLflow (not inferred) names the served columns, in order."""
    import base64

    import cv2
    import mlflow
    import pandas as pd

    result, uri = trained
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    model_uri = f"runs:/{result.run_id}/emotion_model"
    signature = mlflow.models.get_model_info(model_uri).signature
    assert signature.inputs.input_names() == ["image"]
    png = cv2.imencode(".png", np.full((16, 16), 90, np.uint8))[1].tobytes()
    served = mlflow.pyfunc.load_model(model_uri).predict(
        pd.DataFrame({"image": [base64.b64encode(png).decode()]})
    )
    assert (
        signature.outputs.input_names()
        == list(served.columns)
        == [*result.classes, "label", "confidence"]
    )
