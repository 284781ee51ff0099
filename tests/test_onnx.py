"""ONNX export of PyTorch and Keras models: parity, ONNX Runtime predictor, artifact, CLI."""

import json

import numpy as np
import pytest

import emorec
from emorec.cli import main
from emorec.data.preprocess import Preprocessing
from emorec.serving.onnx_export import OnnxParityError, export_onnx
from emorec.serving.onnx_model import OnnxModel


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    """The session's tiny run exported once for this module: (result, uri, path, store)."""
    import mlflow

    result, store = tiny_run
    uri = f"runs:/{result.run_id}/emotion_model"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        mlflow.set_tracking_uri(store)
        path = export_onnx(uri, tmp_path_factory.mktemp("onnx") / "model.onnx")
    return result, uri, path, store


@pytest.fixture
def model(exported, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", exported[3])
    return exported[:3]


def test_export_matches_pytorch_and_carries_its_settings(model):
    result, uri, path = model
    onnx_model = OnnxModel(path)
    assert onnx_model.classes == list(result.classes)
    assert onnx_model.prep == Preprocessing(16, 1, False)
    assert onnx_model.metadata["source_uri"] == uri
    assert onnx_model.metadata["parity_max_abs_diff"] < 1e-4
    # Independent check on other random inputs and another batch size (dynamic batch axis).
    import torch

    torch_model = emorec.load(uri).model.network.eval()
    x = np.random.default_rng(7).uniform(-1, 1, (5, 1, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(torch_model(torch.from_numpy(x)), 1).numpy()
    got = onnx_model.run(x)
    assert got.shape == (5, len(result.classes))
    assert np.abs(got - expected).max() < 1e-4


def test_onnx_predictor_agrees_with_the_torch_predictor(model):
    result, uri, path = model
    rng = np.random.default_rng(5)
    images = [
        rng.integers(0, 256, (40, 30), np.uint8),
        rng.integers(0, 256, (16, 16), np.uint8),
        rng.integers(0, 256, (50, 50, 3), np.uint8),
    ]
    by_torch = emorec.load(uri).predict(images)
    by_onnx = emorec.load(str(path), expect_classes=result.classes).predict(images)
    assert [(p.source, p.box, p.label) for p in by_onnx] == [
        (p.source, p.box, p.label) for p in by_torch
    ]
    np.testing.assert_allclose(
        [list(p.probabilities.values()) for p in by_onnx],
        [list(p.probabilities.values()) for p in by_torch],
        atol=1e-4,
    )
    assert emorec.load(path).predict_proba([]).shape == (0, len(result.classes))


def test_export_is_logged_to_the_run(model):
    from mlflow import MlflowClient

    from emorec import tracking

    tracking.configure()  # the module's store (the autouse fixture pointed MLflow elsewhere)
    result, _, path = model
    logged = [a.path for a in MlflowClient().list_artifacts(result.run_id, "onnx")]
    # Other modules add uniquely named exports to the shared run (conftest.tiny_run).
    assert f"onnx/{path.name}" in logged


def test_cli_export_no_tta_on_a_model_without_tta_changes_nothing(model, tmp_path, capsys):
    result, _, _ = model
    out = tmp_path / "plain.onnx"
    assert (
        main(
            [
                "export",
                "--model-uri",
                f"runs:/{result.run_id}/emotion_model",
                "--no-tta",
                "--no-log",
                str(out),
            ]
        )
        == 0
    )
    assert "--no-tta changed nothing" in capsys.readouterr().out
    assert not OnnxModel(out).tta_left_out


def test_cli_export_by_alias(model, tmp_path, capsys):
    from mlflow import MlflowClient

    from emorec.tracking.model_registry import register_best

    result, _, _ = model
    reg = register_best(result.run_id, "emorec-onnx-test", "test_accuracy")
    out = tmp_path / "cli" / "champion.onnx"
    assert main(["export", "--model-uri", reg.uri, "--format", "onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "max probability difference" in printed
    assert OnnxModel(out).metadata["source_uri"] == reg.uri
    names = [a.path for a in MlflowClient().list_artifacts(result.run_id, "onnx")]
    assert "onnx/champion.onnx" in names
    # The exported file also runs through `emorec predict`.
    from PIL import Image

    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(tmp_path / "face.png")
    assert main(["predict", "--model-uri", str(out), "--json", str(tmp_path / "face.png")]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["label"] in result.classes


def test_failed_parity_check_refuses_the_export(model, tmp_path, monkeypatch):
    from emorec.serving import onnx_export

    monkeypatch.setattr(onnx_export, "PARITY_ATOL", 0.0)  # nothing can pass
    out = tmp_path / "bad.onnx"
    with pytest.raises(OnnxParityError, match="does not match the torch model"):
        export_onnx(model[1], out, log_to_run=False)
    assert not out.exists()


def test_keras_model_exports_with_parity_and_predicts_like_keras(tmp_path, capsys):
    """A tiny cnn_tf run goes through Keras' exporter (tf2onnx): NHWC graph, same answers."""
    from conftest import TINY
    from emorec.config import TrainConfig
    from emorec.training import train

    result = train(TrainConfig(model="cnn_tf", **TINY))
    uri, out = f"runs:/{result.run_id}/emotion_model", tmp_path / "keras.onnx"
    assert main(["export", "--model-uri", uri, "--format", "onnx", str(out)]) == 0
    assert (
        "input NHWC batchx16x16x1, max probability difference from keras" in capsys.readouterr().out
    )
    exported = OnnxModel(out)
    assert exported.layout == "NHWC" and exported.metadata["parity_max_abs_diff"] < 1e-4
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (30, 20), np.uint8), rng.integers(0, 256, (16, 16, 3), np.uint8)]
    np.testing.assert_allclose(
        emorec.load(str(out)).predict_proba(images),
        emorec.load(uri).predict_proba(images),
        atol=1e-4,
    )


def test_unsupported_framework_is_refused_with_a_clear_message(
    model, tmp_path, monkeypatch, capsys
):
    from emorec import tracking
    from emorec.serving.pyfunc import EmotionModel

    other = EmotionModel("jax", ["happy", "sad"], Preprocessing(16, 1, False))
    monkeypatch.setattr(tracking, "load_emotion_model", lambda uri: other)
    uri = "models:/emorec-jax-synthetic@champion"
    assert main(["export", "--model-uri", uri, "--format", "onnx", str(tmp_path / "j.onnx")]) == 2
    assert (
        f"ONNX export supports torch, keras models; {uri} is a jax model" in capsys.readouterr().err
    )
    assert not (tmp_path / "j.onnx").exists()


def test_an_existing_folder_as_output_is_refused_before_any_work(model, tmp_path, capsys):
    assert main(["export", "--model-uri", model[1], "--no-log", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a folder: give the .onnx file to write" in err[0]


def test_not_an_emorec_onnx_file(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "other.onnx"
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
        str(path),
    )
    with pytest.raises(ValueError, match="not an emorec ONNX export"):
        emorec.load(str(path))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load .*garbage.onnx"):
        emorec.load(str(garbage))
    with pytest.raises(FileNotFoundError):
        emorec.load(str(tmp_path / "missing.onnx"))
