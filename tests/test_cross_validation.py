"""K-fold cross-validation as a product feature: subject-independent folds, nested fold
runs under one parent with each metric's mean and spread, a final fit for the model, a
study ranked by the folds' mean, and one line for every fold count that cannot work."""

from __future__ import annotations

import signal

import mlflow
import numpy as np
import pytest

import fixtures
from conftest import TINY
from emorec.cli import main
from emorec.config import TrainConfig
from emorec.cross_validation import cross_validate, fold_splits
from emorec.training import load_data
from services import signalled_mid_training

CK = {**TINY, "dataset": "ckplus", "image_size": 16}


@pytest.fixture
def ckplus(tmp_path):
    return fixtures.write_ckplus48(tmp_path / "CK+48", subjects=6)


def test_every_subject_is_tested_in_exactly_one_fold(ckplus):
    cfg = TrainConfig(**CK, data_dir=str(ckplus), folds=3)
    ds = load_data(cfg)
    splits = fold_splits(ds, cfg)
    tested = np.concatenate([s.test for s in splits])
    assert sorted(tested) == list(range(len(ds)))  # every image tested once
    for s in splits:
        held_out = set(ds.groups[s.test])
        assert not held_out & set(ds.groups[s.train]) and not held_out & set(ds.groups[s.val])
        assert not set(ds.groups[s.val]) & set(ds.groups[s.train])


def test_a_cv_run_nests_its_folds_and_logs_means_spreads_and_the_fold_table(ckplus):
    cfg = TrainConfig(**CK, data_dir=str(ckplus), folds=3, log_model=False)
    result = cross_validate(cfg)
    parent = mlflow.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["folds"] == "3"
    accuracies = [f["test_accuracy"] for f in result.folds]
    metrics = parent.data.metrics
    assert metrics["cv_test_accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert metrics["cv_test_accuracy_std"] == pytest.approx(np.std(accuracies, ddof=1))
    for key in ("test_f1_macro", "test_auc_roc_macro", "train_time_s", "peak_rss_mb"):
        assert f"cv_{key}_mean" in metrics and f"cv_{key}_std" in metrics
    folds = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'",
    )
    assert sorted(r.data.tags["fold"] for r in folds) == ["0", "1", "2"]
    assert all(r.info.status == "FINISHED" and r.data.tags["kind"] == "cv_fold" for r in folds)
    table = mlflow.MlflowClient().download_artifacts(result.run_id, "cv/folds.csv")
    assert open(table).read().count("\n") == 4  # header + 3 folds


def test_train_folds_ends_with_a_final_fit_that_carries_the_cv_figures(ckplus, capsys):
    assert (
        main(
            [
                "train",
                *[f"--{k.replace('_', '-')}={v}" for k, v in CK.items()],
                "--data-dir",
                str(ckplus),
                "--folds",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "2-fold cross-validation" in out and "final fit" in out
    final = [
        r
        for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        if r.data.tags.get("kind") == "cv_final_fit"
    ]
    assert len(final) == 1 and "cv_test_accuracy_mean" in final[0].data.metrics
    assert f"runs:/{final[0].info.run_id}/emotion_model" in out


@pytest.mark.parametrize(
    "folds, subjects, expected",
    [
        ("1", 6, "folds must be >= 2 (or 0 for one train/val/test split), got 1"),
        ("9", 6, "9 subject-independent folds need at least 9 subjects; ckplus has 6: use"),
        ("3", 1, "3 subject-independent folds need at least 3 subjects; ckplus has 1: use"),
    ],
)
def test_a_fold_count_that_cannot_work_is_one_line_before_any_run(
    folds, subjects, expected, tmp_path, capsys
):
    root = fixtures.write_ckplus48(tmp_path / "ck", subjects=subjects, odd_name=False)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in CK.items()]
    assert main(["train", *flags, "--data-dir", str(root), "--folds", folds]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_more_folds_than_a_class_has_images_is_one_line(tmp_path, capsys):
    root = fixtures.write_folder_set(tmp_path / "faces", n_per_class=3, corrupt=False)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    assert (
        main(["train", *flags, "--dataset", "folder", "--data-dir", str(root), "--folds", "4"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "4 folds need at least 4 images of every class" in err[0], err


def test_a_study_with_folds_ranks_trials_by_the_cv_mean_and_registers_a_final_fit(
    ckplus, tmp_path, capsys
):
    space = tmp_path / "grid.yaml"
    space.write_text("grid:\n  lr: [1.0e-3, 3.0e-3]\n")
    sets = [f"{k}={v}" for k, v in {**CK, "data_dir": str(ckplus)}.items()]
    assert (
        main(
            [
                "tune",
                "--model",
                "cnn_torch",
                "--dataset",
                "ckplus",
                "--space",
                str(space),
                "--folds",
                "2",
                "--no-plots",
                "--set",
                *sets,
            ]
        )
        == 0
    )
    import optuna

    from emorec.study import default_storage, make_storage

    name = "cnn_torch-ckplus-grid-accuracy"
    study = optuna.load_study(study_name=name, storage=make_storage(default_storage(), 30, 120))
    trials = study.get_trials()
    assert [t.values[0] for t in trials] == [
        t.user_attrs["cv"]["cv_test_accuracy_mean"] for t in trials
    ]
    final = mlflow.get_run(study.user_attrs[f"final_fit_of_trial_{study.best_trial.number}"])
    assert final.data.tags["kind"] == "cv_final_fit"
    version = mlflow.MlflowClient().get_model_version_by_alias(
        "emorec-cnn_torch-ckplus", "champion"
    )
    assert version.run_id == final.info.run_id
    assert "registered emorec-cnn_torch-ckplus" in capsys.readouterr().out


def test_a_killed_cv_run_ends_killed_with_every_fold_run_closed(ckplus, tmp_path):
    """SIGTERM in the middle of a fold: the fold's run and the parent end KILLED, none of
    the store's runs is left RUNNING."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in CK.items()]
    flags += [f"--data-dir={ckplus}", "--folds=3", "--epochs=500", "--early-stopping=0"]
    fold_run, status, err = signalled_mid_training(
        store, tmp_path, [*flags, "--log-model=false"], signal.SIGTERM
    )
    assert status == 143, err
    client = mlflow.MlflowClient(tracking_uri=store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    states = {r.info.run_id: r.info.status for r in runs}
    kinds = {r.info.run_id: r.data.tags.get("kind") for r in runs}
    assert states[fold_run] == "KILLED" and kinds[fold_run] == "cv_fold"
    parents = [run_id for run_id, kind in kinds.items() if kind == "cv"]
    assert len(parents) == 1 and states[parents[0]] == "KILLED"
    assert "RUNNING" not in states.values(), states
