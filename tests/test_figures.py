"""The evaluation figures a run logs, drawn in a helper process (``emorec.figure_helper``)."""

import logging
import os
import signal

import mlflow
import numpy as np
import pytest
import torch

from conftest import TINY, run_failed_by
from emorec import figure_helper as figures
from emorec import plots
from emorec.config import TrainConfig
from emorec.metrics import roc_curves
from emorec.training import train

CLASSES = ["angry", "happy", "sad"]


def _evaluation(seed: int = 0):
    rng = np.random.default_rng(seed)
    y_true = np.repeat(np.arange(3), 10)
    proba = rng.dirichlet(np.ones(3), size=30).astype(np.float32)
    confusion = np.zeros((3, 3), int)
    np.add.at(confusion, (y_true, proba.argmax(1)), 1)
    history = {"train_loss": [1.2, 0.9], "val_loss": [1.3, 1.1],
               "train_accuracy": [0.4, 0.6], "val_accuracy": [0.35, 0.5]}
    return {"confusion_matrix": confusion.tolist()}, history, y_true, proba


def _logged(run_id: str) -> dict[str, bytes]:
    client = mlflow.MlflowClient()
    return {a.path: open(client.download_artifacts(run_id, a.path), "rb").read()
            for a in client.list_artifacts(run_id, "plots")}


def _drawn_here(report, history, y_true, proba) -> dict[str, bytes]:
    return plots.evaluation_pngs(np.asarray(report["confusion_matrix"]), CLASSES,
                                 roc_curves(y_true, proba), history)


def test_the_helper_draws_exactly_the_figures_this_process_would():
    evaluation = _evaluation()
    with mlflow.start_run() as run:
        figures.start(*evaluation, CLASSES).log()
    helper = figures._helper
    assert helper is not None and helper.process.poll() is None  # drawn there, still up
    here = _drawn_here(*evaluation)
    assert _logged(run.info.run_id) == here  # same three files, byte for byte
    assert all(data.startswith(b"\x89PNG") for data in here.values())


def test_figures_whose_helper_dies_mid_drawing_are_drawn_here(caplog):
    report, history, y_true, proba = _evaluation()
    with mlflow.start_run():  # the helper is up, its imports done
        figures.start(report, history, y_true, proba, CLASSES).log()
    with caplog.at_level(logging.WARNING, logger="emorec.figure_helper"), \
            mlflow.start_run() as run:
        pending = figures.start(report, history, y_true, proba, CLASSES)
        os.kill(figures._helper.process.pid, signal.SIGKILL)  # long before its ~0.3 s drawing
        pending.log()
    assert "figures drawn in this process: the helper failed" in caplog.text
    assert len(_logged(run.info.run_id)) == 3

    caplog.clear()  # the next run has a helper again
    threads = torch.get_num_threads()
    with caplog.at_level(logging.WARNING, logger="emorec.figure_helper"):
        result = train(TrainConfig(**TINY))
    assert "figures drawn" not in caplog.text and len(_logged(result.run_id)) == 3
    assert figures._helper.process.poll() is None
    assert torch.get_num_threads() == threads  # the core left to the drawer is given back


def test_an_interrupted_wait_never_hands_one_runs_figures_to_the_next():
    """Ctrl-C while a run waits for its figures: the helper's late answer must not be
    taken for the next run's (the helper is ended with the request)."""
    first, second = _evaluation(seed=1), _evaluation(seed=2)
    with mlflow.start_run():  # the helper is up, its imports done
        figures.start(*first, CLASSES).log()

    def ctrl_c(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, ctrl_c)
    try:
        with mlflow.start_run():
            pending = figures.start(*first, CLASSES)
            signal.setitimer(signal.ITIMER_REAL, 0.02)  # well inside the ~0.3 s drawing
            with pytest.raises(KeyboardInterrupt):
                pending.log()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    with mlflow.start_run() as run:
        figures.start(*second, CLASSES).log()
    assert _logged(run.info.run_id) == _drawn_here(*second)

    with mlflow.start_run() as run:  # interrupted before they are drawn: nothing waited for
        figures.start(*first, CLASSES).log(wait=False)
    assert _logged(run.info.run_id) == {}
    with mlflow.start_run() as run:
        figures.start(*second, CLASSES).log()
    assert _logged(run.info.run_id) == _drawn_here(*second)


def test_a_run_that_fails_after_its_evaluation_keeps_its_figures(monkeypatch):
    from emorec.tracking import logged_models

    run = run_failed_by(monkeypatch, logged_models, "log_trained_model")
    assert len(_logged(run.info.run_id)) == 3
