"""What a newcomer sees of a first run: the summary at the end, readable output in a log
file, and the MLflow UI opening the experiment in its model-training view."""

import re
import sys

import mlflow
import pytest

from emorec.config import TrainConfig
from emorec.training import train

TINY = dict(
    epochs=1, samples=70, image_size=16, batch_size=16, system_metrics=False, progress=False
)


def test_train_ends_with_what_to_read_where_to_look_and_what_next(capsys):
    from emorec.cli import main

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert main(["train", *flags]) == 0
    out = capsys.readouterr().out
    run = mlflow.search_runs(search_all_experiments=True, output_format="list")[0]
    acc, f1 = run.data.metrics["test_accuracy"], run.data.metrics["test_f1_macro"]
    assert f"test accuracy {acc:.3f} (chance 0.143), macro F1 {f1:.3f}" in out
    assert (
        f"make ui, then open http://127.0.0.1:5000/#/experiments/"
        f"{run.info.experiment_id}/runs/{run.info.run_id}"
    ) in out
    assert f"emorec predict --model-uri runs:/{run.info.run_id}/emotion_model photos/" in out


def test_output_that_is_not_a_terminal_gets_a_line_per_epoch_not_bars(capsys):
    train(TrainConfig(**{**TINY, "epochs": 2, "progress": True, "log_model": False}))
    out, err = capsys.readouterr()
    line = (
        r"epoch {}/2: train_loss \d+\.\d{{3}} train_acc \d\.\d{{3}} val_loss \d+\.\d{{3}} "
        r"val_acc \d\.\d{{3}} \(\d+\.\d s\)"
    )
    assert re.search("^" + line.format(1) + "\n" + line.format(2) + "$", out, re.M), out
    assert "\r" not in err  # no progress-bar redraws


def test_bars_only_where_asked_for_and_drawn_on_a_terminal(monkeypatch):
    from emorec.engines.callbacks import interactive

    class Terminal:
        def isatty(self):
            return True

    assert not interactive(TrainConfig(**{**TINY, "progress": True}))  # pytest's capture
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert interactive(TrainConfig(**{**TINY, "progress": True}))
    assert not interactive(TrainConfig(**TINY))


def test_a_run_mlflow_run_created_keeps_the_parameters_it_logged_in_its_spelling(monkeypatch):
    """`mlflow run` logs the MLproject parameters as given ("false" for False); emorec adds
    the rest without touching those (MLflow refuses to change a logged value)."""
    client = mlflow.MlflowClient()
    experiment = mlflow.create_experiment("emorec-synthetic")
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "log_model", "false")
    monkeypatch.setenv("MLFLOW_RUN_ID", run_id)
    train(TrainConfig(**{**TINY, "log_model": False}))
    params = client.get_run(run_id).data.params
    assert params["log_model"] == "false" and params["epochs"] == str(TINY["epochs"])
    assert client.get_run(run_id).info.status == "FINISHED"


@pytest.mark.parametrize("created_by", ["emorec", "mlflow run"])
def test_experiments_open_in_the_model_training_view(created_by, monkeypatch):
    if created_by == "mlflow run":  # it creates the experiment and run, emorec resumes the run
        experiment = mlflow.create_experiment("emorec-synthetic")
        monkeypatch.setenv(
            "MLFLOW_RUN_ID", mlflow.MlflowClient().create_run(experiment).info.run_id
        )
    train(TrainConfig(**{**TINY, "log_model": False}))
    tags = mlflow.get_experiment_by_name("emorec-synthetic").tags
    assert tags["mlflow.experimentKind"] == "custom_model_development"
