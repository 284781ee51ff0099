"""int8 export (``emorec export --quantize int8``): every path the float32 export serves
(``emorec.load`` of the file, ``emorec predict``, the logged pyfunc, ``mlflow models
serve``) takes the int8 file too, with the same class order and probabilities close to
float32's; bad requests end in one line naming what is supported."""

import base64
import contextlib
import io
import json

import numpy as np
import pandas as pd
import pytest

import emorec
from emorec.cli import main
from services import model_server, post_json

# A 1-epoch 16 px model is nearly uniform: close means close in probability, not argmax.
ATOL = 0.05


@pytest.fixture(scope="module")
def int8(tiny_run, tmp_path_factory):
    """The session's tiny run exported twice, float32 and int8 (through the CLI, logged):
    (result, store, float32 path, int8 path, stdout of the int8 export)."""
    import mlflow

    from emorec.serving.onnx_export import export_onnx

    result, store = tiny_run
    uri, folder = f"runs:/{result.run_id}/emotion_model", tmp_path_factory.mktemp("int8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mlflow.set_tracking_uri(store)
        f32 = export_onnx(uri, folder / "f32.onnx", log_to_run=False)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert (
                main(
                    ["export", "--model-uri", uri, "--quantize", "int8", str(folder / "int8.onnx")]
                )
                == 0
            )
    return result, store, f32, folder / "int8.onnx", printed.getvalue()


@pytest.fixture
def images():
    rng = np.random.default_rng(11)
    return [
        rng.integers(0, 256, (40, 30), np.uint8),
        rng.integers(0, 256, (16, 16), np.uint8),
        rng.integers(0, 256, (50, 50, 3), np.uint8),
    ]


def _png(img: np.ndarray) -> str:
    import cv2

    return base64.b64encode(cv2.imencode(".png", img)[1].tobytes()).decode()


def test_int8_file_is_smaller_keeps_classes_and_stays_close(int8, images):
    result, _, f32, path, printed = int8
    float_model, int8_model = emorec.load(str(f32)), emorec.load(str(path))
    assert int8_model.classes == float_model.classes == list(result.classes)
    assert int8_model.prep == float_model.prep
    facts = int8_model.model.metadata["quantization"]
    assert facts["scheme"] == "int8" and facts["calibration_images"] > 0
    assert "train split of run" in facts["calibration_source"]
    assert facts["int8_bytes"] < facts["float32_bytes"] / 3
    assert path.stat().st_size < f32.stat().st_size / 3
    # The weights are stored as int8 (QDQ: int8 initializers behind DequantizeLinear).
    import onnx

    kinds = {t.data_type for t in onnx.load(str(path)).graph.initializer}
    assert onnx.TensorProto.INT8 in kinds
    np.testing.assert_allclose(
        int8_model.predict_proba(images), float_model.predict_proba(images), atol=ATOL
    )
    assert "int8:" in printed and "serve it: mlflow models serve -m runs:/" in printed


def test_predict_cli_runs_the_int8_file(int8, tmp_path, capsys):
    result, _, _, path, _ = int8
    import cv2

    cv2.imwrite(str(tmp_path / "face.png"), np.full((20, 20), 128, np.uint8))
    assert main(["predict", "--model-uri", str(path), "--json", str(tmp_path / "face.png")]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(line["probabilities"]) == list(result.classes)


def test_logged_pyfunc_and_mlflow_models_serve(int8, images, tmp_path, monkeypatch):
    import mlflow

    result, store, f32, path, printed = int8
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    uri = f"runs:/{result.run_id}/emotion_model_int8"
    assert uri in printed
    expected = emorec.load(str(path)).predict_proba(images)
    assert emorec.load(uri).classes == list(result.classes)
    np.testing.assert_allclose(emorec.load(uri).predict_proba(images), expected, atol=1e-6)
    frame = pd.DataFrame({"image": [_png(img) for img in images]})
    answer = mlflow.pyfunc.load_model(uri).predict(frame)
    assert list(answer.columns) == [*result.classes, "label", "confidence"]
    np.testing.assert_allclose(answer[list(result.classes)].to_numpy(), expected, atol=1e-6)
    body = json.dumps(
        {"dataframe_split": {"columns": ["image"], "data": [[_png(img)] for img in images]}}
    ).encode()
    with model_server(uri, store, tmp_path) as (_, url):
        status, served = post_json(url + "/invocations", body)
        bad_status, bad = post_json(
            url + "/invocations",
            json.dumps({"dataframe_split": {"columns": ["image"], "data": [["%%%"]]}}).encode(),
        )
    assert status == 200, served
    got = np.array([[row[c] for c in result.classes] for row in served["predictions"]])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert bad_status == 400 and "not valid base64" in bad["message"]


def test_unknown_scheme_and_keras_are_refused_in_one_line(tmp_path, capsys):
    from emorec.serving.quantize import check_request

    out = tmp_path / "x.onnx"
    assert (
        main(
            ["export", "--model-uri", "runs:/nothing/emotion_model", "--quantize", "int4", str(out)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err == "emorec: error: unknown --quantize 'int4'; supported: int8"
    assert not out.exists()
    with pytest.raises(
        ValueError,
        match=r"^--quantize int8 supports PyTorch models "
        r"\(cnn_torch, .*\); cnn_tf is a keras model: export "
        r"it as float32 \(without --quantize\)$",
    ):
        check_request("int8", "keras", "cnn_tf")


def test_calibration_refuses_training_data_that_changed_or_is_gone(tmp_path):
    """int8 calibrates on the run's own training split: a folder changed since training
    (its digests differ from the logged ones) is refused, not silently used."""
    import shutil

    import fixtures
    from conftest import TINY
    from emorec.config import TrainConfig
    from emorec.serving.quantize import export_int8
    from emorec.training import train

    root = fixtures.write_folder_set(tmp_path / "faces", n_per_class=8)
    result = train(TrainConfig(**TINY, dataset="folder", data_dir=str(root)))
    uri = f"runs:/{result.run_id}/emotion_model"
    fixtures.write_image(root / "happy" / "new.png", np.random.default_rng(9))
    with pytest.raises(
        ValueError,
        match=r"must use run .* training images, but .* has "
        r"changed since it trained \(dataset_digest",
    ):
        export_int8(uri, tmp_path / "a.onnx", log_to_run=False)
    shutil.rmtree(root)
    with pytest.raises(
        ValueError,
        match=r"int8 calibration reads the model's training images "
        r"\(folder in .*faces\): data directory .* does not "
        r"exist",
    ):
        export_int8(uri, tmp_path / "b.onnx", log_to_run=False)
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()
