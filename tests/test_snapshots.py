"""Snapshot ensembles (``snapshots=M``): M learning-rate cycles in one training budget,
the last weights of each kept, their probabilities averaged by every path that serves
the model."""

import numpy as np
import pytest

import emorec
from conftest import TINY
from emorec.config import TrainConfig
from emorec.engines.schedule import ONECYCLE_START, LearningRate, onecycle_factor

# What a snapshot ensemble needs besides ``snapshots``: a schedule to restart and no
# early stop before the last cycle.
CYCLIC = dict(lr_schedule="onecycle", early_stopping=0)


def test_each_cycle_runs_the_whole_schedule_again():
    lr = LearningRate(TrainConfig(lr=1.0, snapshots=3, **CYCLIC))
    assert [lr.cycle(p) for p in (0.0, 0.32, 0.34, 0.66, 0.67, 0.99, 1.0)] == [0, 0, 1, 1, 2, 2, 2]
    assert lr.at(0.05) == pytest.approx(onecycle_factor(0.15))  # the first cycle's peak
    assert lr.at(1 / 3 - 1e-9) == pytest.approx(0.0, abs=1e-6)  # annealed at its end
    assert lr.at(1 / 3 + 1e-9) == pytest.approx(ONECYCLE_START, abs=1e-6)  # warms up again
    assert lr.at(1.0) == pytest.approx(0.0, abs=1e-12)
    # Without snapshots the schedule runs once over the whole of training.
    assert LearningRate(TrainConfig(lr=1.0, **CYCLIC)).at(0.5) == pytest.approx(
        onecycle_factor(0.5)
    )


@pytest.mark.parametrize(
    "values, message",
    [
        ({"snapshots": 1}, "snapshots must be 0 (off) or in [2, 10], got 1"),
        ({"snapshots": 11, **CYCLIC}, "snapshots must be 0 (off) or in [2, 10], got 11"),
        (
            {"snapshots": 3, "lr_schedule": "plateau", "early_stopping": 0},
            "snapshots restarts the learning-rate schedule every cycle: lr_schedule must be "
            "onecycle or cosine, got plateau",
        ),
        (
            {"snapshots": 3, "lr_schedule": "onecycle", "early_stopping": 5},
            "snapshots keeps the last weights of every cycle, not the best epoch's: "
            "early_stopping must be 0, got 5",
        ),
        (
            {"snapshots": 3, "model": "cnn_tf", **CYCLIC},
            "snapshots 3 needs a PyTorch model; cnn_tf is keras (valid for it: 0)",
        ),
    ],
)
def test_a_snapshot_setting_that_cannot_work_is_refused_saying_why(values, message):
    with pytest.raises(ValueError) as err:
        TrainConfig(**values)
    assert str(err.value) == message


def test_the_fit_keeps_each_cycles_last_weights_and_the_ensemble_averages_them():
    import torch

    from emorec.data.preprocess import normalize
    from emorec.engines import get_engine
    from emorec.models.ensemble import SnapshotEnsemble

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 16, 16, 1), np.uint8), np.arange(64) % 4
    cfg = TrainConfig(**{**TINY, "batch_size": 8, "epochs": 2}, lr=0.05, snapshots=2, **CYCLIC)
    engine = get_engine("torch")
    model = engine.build(cfg, num_classes=4)
    fit = engine.fit(model, (x, y), (x[:8], y[:8]), cfg, [])
    # Two cycles of one epoch each: the weights after epoch 1, then the final ones.
    assert len(fit.snapshots) == 2 and fit.best_epoch == fit.epochs_run == 2
    first, last = fit.snapshots
    final = model.state_dict()
    assert all(torch.equal(last[k], final[k]) for k in final)
    assert any(not torch.equal(first[k], last[k]) for k in final)

    ensemble = engine.for_inference(model, cfg, fit.snapshots)
    assert isinstance(ensemble, SnapshotEnsemble) and len(ensemble.members) == 2
    batch = normalize(x[:6])
    each = [engine.probabilities(m, batch) for m in ensemble.members]
    together = engine.probabilities(ensemble, batch)
    assert np.abs(together - np.mean(each, axis=0)).max() < 1e-6
    assert np.abs(together - each[1]).max() > 1e-6, "the first cycle's weights changed nothing"
    # Without snapshots the model is served as trained.
    assert engine.for_inference(model, TrainConfig(**TINY)) is model


def test_a_tracked_ensemble_serves_and_exports_the_mean_of_its_members(
    tmp_path, monkeypatch, capsys
):
    """With flip TTA around it: every view of every member, averaged, on the loaded model
    and on its ONNX export, whose message counts the passes; a model started from the
    ensemble starts from its last member."""
    import mlflow
    import torch

    from emorec.cli import main
    from emorec.data.preprocess import normalize
    from emorec.engines import get_engine
    from emorec.models.ensemble import SnapshotEnsemble
    from emorec.models.tta import FlipAveraged
    from emorec.serving.onnx_export import export_onnx
    from emorec.training import train

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("EMOREC_CACHE_DIR", str(tmp_path / "cache"))
    mlflow.set_tracking_uri(uri)
    cfg = TrainConfig(**{**TINY, "epochs": 2}, snapshots=2, tta="flip", **CYCLIC)
    result = train(cfg)
    model_uri = f"runs:/{result.run_id}/emotion_model"
    predictor = emorec.load(model_uri)
    wrapped = predictor.model.network
    assert isinstance(wrapped, FlipAveraged) and isinstance(wrapped.model, SnapshotEnsemble)
    members = wrapped.model.members
    assert len(members) == 2

    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 1), dtype=np.uint8)
    proba = predictor.predict_proba(list(images))
    x = torch.from_numpy(normalize(images)).permute(0, 3, 1, 2)
    with torch.inference_mode():
        views = [
            torch.softmax(m.eval()(v), 1).numpy()
            for m in members
            for v in (x, torch.flip(x, dims=[3]))
        ]
    assert np.abs(proba - np.mean(views, axis=0)).max() < 1e-6
    path = export_onnx(model_uri, tmp_path / "ensemble.onnx", log_to_run=False)
    assert np.abs(emorec.load(str(path)).predict_proba(list(images)) - proba).max() < 1e-4
    assert main(["export", "--model-uri", model_uri, "--no-log", str(tmp_path / "cli.onnx")]) == 0
    assert "(flip, 4 passes per face): --no-tta exports 2 passes," in capsys.readouterr().out

    engine = get_engine("torch")
    student = engine.build(cfg, num_classes=len(result.classes))
    engine.start_from(student, wrapped, [(i, i) for i in range(len(result.classes))])
    taught, last = student.state_dict(), members[-1].state_dict()
    assert all(torch.equal(taught[k], last[k]) for k in taught)
