"""One tracked run end to end: train(config) on tiny synthetic data, per engine.

Checks what a user relies on: the run holds params, metrics, plots, reports and
two models that load back and reproduce the training-time probabilities; bad
input is refused before a run exists; a NaN loss, Ctrl-C or SIGTERM leaves a FAILED
or KILLED run, never a RUNNING one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

import fixtures
from conftest import TINY, run_failed_by
from emorec.config import TrainConfig
from emorec.data import DatasetError, load_dataset
from emorec.data.preprocess import Preprocessing
from emorec.data.splits import make_split
from emorec.engines import Callback, TrainingDiverged
from emorec.training import train

REPO = Path(__file__).resolve().parents[1]


def _logged_models(run):
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    return {m.name: m for m in found}


def _test_images(cfg: TrainConfig):
    ds = load_dataset(
        cfg.dataset,
        cfg.data_dir,
        Preprocessing(cfg.input_size, cfg.channels),
        options=cfg.dataset_options(),
        progress=False,
    )
    split = make_split(ds, strategy=cfg.split, seed=cfg.seed)
    return ds.images[split.test]


@pytest.mark.parametrize("model", ["cnn_torch", "cnn_tf"])
def test_tracked_run_holds_everything_and_models_reload(model):
    cfg = TrainConfig(model=model, **TINY)
    result = train(cfg)
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)

    assert run.info.status == "FINISHED"
    assert run.data.tags["framework"] == cfg.framework and run.data.tags["model"] == model
    for key, value in cfg.to_params().items():
        assert run.data.params[key] == ("" if value is None else str(value)), key
    assert run.data.params["split_strategy"] == "grouped"  # synthetic has subjects
    for key in (
        "test_accuracy",
        "test_f1_macro",
        "test_f1_weighted",
        "test_auc_roc_macro",
        "train_time_s",
        "eval_time_s",
        "peak_rss_mb",
        "num_parameters",
        "weights_mb",
    ):
        assert np.isfinite(run.data.metrics[key]), key
    assert 0 <= run.data.metrics["test_accuracy"] <= 1
    assert run.data.metrics["num_parameters"] == 1_240_231  # the same CNN in both frameworks
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [1]
    artifacts = {
        a.path
        for folder in ("plots", "reports", "data")
        for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {
        "plots/confusion_matrix.svg",
        "plots/roc_curves.svg",
        "plots/learning_curves.svg",
        "reports/classification_report.json",
        "data/dataset.json",
    } <= artifacts
    report = json.loads(
        Path(
            client.download_artifacts(run.info.run_id, "reports/classification_report.json")
        ).read_text()
    )
    assert len(report["confusion_matrix"]) == len(result.classes)
    assert run.inputs.dataset_inputs[0].dataset.name == "synthetic"

    # Both logged models load back and give the probabilities the run was scored with.
    models = _logged_models(run)
    assert {"model", "emotion_model"} <= set(models)
    # Each is finished, linked to the run, and carries the run's parameters and final
    # metrics; the run keeps one point of each metric (copying them made no second one).
    assert {o.model_id for o in run.outputs.model_outputs} >= {m.model_id for m in models.values()}
    for logged in models.values():
        assert str(logged.status) == "READY" and logged.params["model"] == model
        assert {m.key: m.value for m in logged.metrics} == {  # all but the epochs' (step 1)
            k: v for k, v in run.data.metrics.items() if k not in result.history
        }
    assert len(client.get_metric_history(run.info.run_id, "test_accuracy")) == 1
    images = _test_images(cfg)
    from emorec.engines import get_engine

    expected = get_engine(cfg.framework).predict_proba(result.model, images)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{models['emotion_model'].model_id}")
    served = pyfunc.unwrap_python_model().probabilities(images)
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_emotion_model_takes_base64_images_of_any_size():
    import base64

    import cv2
    import pandas as pd

    result = train(TrainConfig(**TINY))
    run = mlflow.get_run(result.run_id)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{_logged_models(run)['emotion_model'].model_id}")
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 255, (90, 70, 3), np.uint8), rng.integers(0, 255, (30, 40), np.uint8)]
    payload = pd.DataFrame(
        {"image": [base64.b64encode(cv2.imencode(".png", p)[1]).decode() for p in photos]}
    )
    out = pyfunc.predict(payload)
    assert len(out) == 2
    np.testing.assert_allclose(out[list(result.classes)].sum(axis=1), 1.0, atol=1e-5)


def test_a_model_that_fails_to_save_fails_its_run(monkeypatch):
    from emorec.tracking import logged_models

    run = run_failed_by(monkeypatch, logged_models, "log_image_pyfunc")
    status = {m.name: str(m.status) for m in _logged_models(run).values()}
    assert status.get("emotion_model") != "READY"  # nothing servable was registered


def test_epochs_that_did_not_reach_the_store_fail_the_run(monkeypatch):
    """Each epoch's metrics are written on MLflow's logging thread; one it could not write
    fails the run rather than leaving it FINISHED with an epoch missing."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    log_batch = SqlAlchemyStore.log_batch

    def refusing_epochs(self, run_id, metrics, params, tags):
        if any(m.key == "val_loss" for m in metrics):
            raise OSError("database is locked")
        return log_batch(self, run_id, metrics, params, tags)

    monkeypatch.setattr(SqlAlchemyStore, "log_batch", refusing_epochs)
    with pytest.raises(Exception, match="database is locked"):
        train(TrainConfig(**TINY))
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED" and "database is locked" in run.data.tags["failure_reason"]


def _passes_in_a_new_process(code: str, tmp_path) -> None:
    """Run ``code`` in a new Python process with a store of its own; it must succeed."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/t.db"}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_torch_run_never_imports_tensorflow(tmp_path):
    code = (
        "import sys; from emorec.config import TrainConfig; "
        "from emorec.training import train;"
        "train(TrainConfig(epochs=1, samples=70, image_size=16, system_metrics=False,"
        " progress=False, log_model=False));"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    _passes_in_a_new_process(code, tmp_path)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"model": "alexnet"}, "valid models"),
        ({"lr": 0}, "lr must be"),
        ({"batch_size": 0}, "batch_size must be"),
        ({"model": "vgg16", "image_size": 16}, "image_size must be"),
        ({"optimizer": "rmsprop"}, "valid: adam, adamw, sgd"),
        ({"dataset": "affectnet"}, "unknown dataset .affectnet.; valid: synthetic"),
        ({"dataset": "ckplus"}, "needs data_dir"),
        ({"precision": "fp8"}, "valid: auto, fp32, bf16"),
        (
            {"model": "cnn_tf", "precision": "bf16"},
            "needs a PyTorch model.*valid for it: auto, fp32",
        ),
    ],
)
def test_invalid_parameters_are_refused_with_the_valid_range(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**TINY, **bad})


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_precision_sets_what_the_convolutions_compute_in(precision):
    """bf16 trains the convolutions in bfloat16 on the CPU (weights stay float32); auto picks
    bfloat16 only where the CPU computes it natively (emulated, it is slower than float32),
    and the run records which."""
    import torch

    from emorec.engines import get_engine
    from emorec.resources import native_bf16

    expected = "torch.bfloat16" if precision == "bf16" or native_bf16() else "torch.float32"

    cfg = TrainConfig(**{**TINY, "precision": precision})
    seen = set()
    real_build = get_engine("torch").build

    def build(self, cfg, num_classes):
        model = real_build(cfg, num_classes)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(
            lambda m, _, out: seen.add(str(out.dtype)) if m.training else None
        )
        return model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(type(get_engine("torch")), "build", build)
        result = train(cfg)
    assert seen == {expected}
    assert {str(p.dtype) for p in result.model.parameters()} == {"torch.float32"}
    run = mlflow.get_run(result.run_id)
    assert run.data.params["precision"] == precision
    assert (
        run.data.tags["precision_used"]
        == {"torch.bfloat16": "bfloat16", "torch.float32": "fp32"}[expected]
    )
    assert np.isfinite(result.metrics["test_accuracy"])


def test_class_too_small_to_split_is_refused_before_any_run(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "faces")
    with pytest.raises(DatasetError):
        train(TrainConfig(dataset="folder", data_dir=str(root), **TINY))
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_nan_loss_fails_the_run_with_its_reason(monkeypatch):
    import emorec.engines.batches as batches

    monkeypatch.setattr(batches, "normalize", lambda b: np.full(b.shape, np.nan, np.float32))
    with pytest.raises(TrainingDiverged):
        train(TrainConfig(**TINY))
    runs = mlflow.search_runs(search_all_experiments=True)
    assert list(runs["status"]) == ["FAILED"]
    assert "loss became nan" in runs["tags.failure_reason"][0]


class _CtrlC(Callback):
    def on_epoch_end(self, epoch, logs):
        raise KeyboardInterrupt


def test_ctrl_c_kills_the_run_and_keeps_what_was_logged():
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**{**TINY, "epochs": 3}), callbacks=[_CtrlC()])
    runs = mlflow.search_runs(search_all_experiments=True)
    assert list(runs["status"]) == ["KILLED"]
    assert runs["metrics.val_loss"].notna().all()  # epoch 1 was logged before the interrupt
    assert runs["params.model"][0] == "cnn_torch"


def test_sigterm_kills_the_run_and_says_why(tmp_path):
    """`timeout`, `docker stop` and systemd stop a process with SIGTERM: the run being
    trained ends KILLED with the reason, as on Ctrl-C, never left RUNNING."""
    from emorec import tracking

    tracking.configure()
    mlflow.search_runs(search_all_experiments=True)  # create the store before both use it
    cmd = [
        sys.executable,
        "-m",
        "emorec.cli",
        "train",
        "--epochs",
        "1000",
        "--early-stopping",
        "0",
        "--samples",
        "70",
        "--image-size",
        "16",
        "--log-model",
        "false",
        "--system-metrics",
        "false",
        "--progress",
        "false",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:  # until an epoch is logged
        time.sleep(0.5)
        if not mlflow.search_runs(
            search_all_experiments=True, filter_string="metrics.val_loss > -1"
        ).empty:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 143, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("emorec: terminated by SIGTERM")
    runs = mlflow.search_runs(search_all_experiments=True)
    assert list(runs["status"]) == ["KILLED"]
    assert runs["tags.failure_reason"][0].startswith("terminated by SIGTERM")
    assert runs["metrics.val_loss"].notna().all()  # what was logged is kept


def test_mlflow_run_trains_through_the_mlproject(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlruns/mlflow.db",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    cmd = [
        str(mlflow_cli),
        "run",
        str(REPO),
        "--env-manager",
        "local",
        "--experiment-name",
        "emorec-synthetic",
        "-P",
        "model=cnn_torch",
        "-P",
        "epochs=1",
        "-P",
        "samples=70",
        "-P",
        "image_size=16",
        "-P",
        "log_model=false",
        "-P",
        "system_metrics=false",
        "-P",
        "progress=false",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["emorec-synthetic"])
    assert list(runs["status"]) == ["FINISHED"]
    assert runs["params.model"][0] == "cnn_torch" and runs["metrics.test_accuracy"].notna().all()


def test_cli_reports_bad_input_in_one_line(capsys):
    from emorec.cli import main

    assert main(["train", "--model", "alexnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emorec: error: unknown model 'alexnet'") and "Traceback" not in err


def test_each_run_names_its_own_dataset_folder(tmp_path):
    """MLflow merges an experiment's datasets of equal name and digest: two folders of equal
    content must still show each run its own folder, with the one content digest."""
    from emorec import tracking

    client, runs = mlflow.MlflowClient(), {}
    for name in ("a", "b"):
        root = fixtures.write_folder_set(tmp_path / name, n_per_class=6)  # equal pixels
        cfg = TrainConfig(dataset="folder", data_dir=str(root), **TINY)
        ds = load_dataset("folder", root, progress=False)
        with tracking.start_run(cfg) as run:
            tracking.log_dataset(ds, make_split(ds), cfg)
        runs[name] = client.get_run(run.info.run_id).inputs.dataset_inputs[0].dataset
    for name, dataset in runs.items():
        assert json.loads(dataset.source)["uri"] == str((tmp_path / name).resolve()), name
    assert runs["a"].digest == runs["b"].digest == tracking.dataset_digest(ds)


def test_a_dataset_another_worker_stores_at_the_same_moment_is_linked_not_fatal(isolated_store):
    """Two workers' runs starting together both find the dataset missing and both insert
    it; the second insert broke its trial on the table's primary key (CI, PostgreSQL).
    Reproduced on the real store: just before this run's insert, another connection
    stores the same dataset and commits, as the faster worker would."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from emorec import tracking

    cfg = TrainConfig(**TINY)
    ds = load_dataset("synthetic", options={"count": 70, "image_size": 16}, progress=False)
    raced = []

    def other_worker_first(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO datasets") and not raced:
            raced.append(statement)
            # The very statement, with the row's own uuid: the other worker's dataset.
            row = list(parameters[0] if executemany else parameters)
            columns = statement.split("(", 1)[1].split(")", 1)[0].split(", ")
            row[columns.index("dataset_uuid")] = "0" * 32
            other = sqlite3.connect(isolated_store / "mlruns" / "mlflow.db")
            other.execute(statement, row)
            other.commit()
            other.close()

    with tracking.start_run(cfg) as run:
        event.listen(Engine, "before_cursor_execute", other_worker_first)
        try:
            tracking.log_dataset(ds, make_split(ds), cfg)
        finally:
            event.remove(Engine, "before_cursor_execute", other_worker_first)
    assert raced  # the race happened, and the run still got its input: the other's row
    (linked,) = mlflow.MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    assert linked.dataset.digest == tracking.dataset_digest(ds)
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


def test_no_tracker_trains_and_evaluates_without_a_run(isolated_store):
    """train(cfg, tracker=NoTracker()): the same metrics, and nothing in the store."""
    from emorec.tracking import NoTracker

    result = train(TrainConfig(model="cnn_torch", **TINY), tracker=NoTracker())
    assert result.run_id == "" and np.isfinite(result.metrics["test_accuracy"])
    assert {"train_time_s", "peak_rss_mb", "num_parameters"} <= set(result.metrics)
    assert not (isolated_store / "mlruns").exists()
