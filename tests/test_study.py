"""Optuna studies, registration and the comparison report, end to end on tiny data.

Every study trains ``cnn_torch`` for one or two epochs on 16-pixel images:
the built-in synthetic set where the numbers do not matter, and ``easy``, a
two-class folder set (bright "happy" vs dark "sad" noise) that a good
learning rate (3e-3) learns in one epoch and an absurd one (1e-7) does not, which
makes pruning and champion/challenger decisions deterministic. Batch size 8
there: with 50 training images a batch of 32 gives BatchNorm too few steps to
settle, and every configuration would sit at chance.
"""

from __future__ import annotations

import base64
import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import mlflow
import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image

from emorec import cli, search_space, tracking
from emorec.config import TrainConfig
from emorec.evaluation.report import compare
from emorec.study import StudyOptions, make_storage, mask, run_study
from emorec.tracking import model_registry

FAST = {
    "model": "cnn_torch",
    "dataset": "synthetic",
    "epochs": 1,
    "samples": 70,
    "image_size": 16,
    "batch_size": 32,
    "system_metrics": False,
    "progress": False,
    "log_model": False,
}
QUIET = {"plots": False, "register": False}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models train several times faster on one thread when the CPUs are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_space(folder: Path, text: str, name: str = "space.yaml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


def write_easy(root: Path, per_class: int = 30) -> str:
    rng = np.random.default_rng(0)
    for cls, level in (("happy", 190), ("sad", 60)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 25, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i:03d}.png")
    return str(root)


def easy_values(data_dir: str, **extra) -> dict:
    return {
        **FAST,
        "dataset": "folder",
        "data_dir": data_dir,
        "batch_size": 8,
        "augment": False,
        **extra,
    }


def runs(**tags) -> list:
    query = " AND ".join(f"tags.{k} = '{v}'" for k, v in tags.items()) or None
    return mlflow.search_runs(
        search_all_experiments=True, filter_string=query, output_format="list"
    )


# --- search spaces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, key, says",
    [
        ("grid:\n  momentum: [0.9]\n", "grid.momentum", "unknown parameter"),
        ("grid:\n  lr: []\n", "grid.lr", "empty list"),
        ("space:\n  optimizer: {choices: []}\n", "space.optimizer.choices", "empty list"),
        ("grids:\n  lr: [0.1]\n", "grids", "unknown section"),
        ("grid:\n  lr: [0.0]\n", "grid.lr", "lr must be in (0, 10]"),
        ("space:\n  lr: {low: 0.1, high: 0.01}\n", "space.lr", "must be below high"),
        ("space:\n  lr: {low: 0.001, high: 0.1, scale: log}\n", "space.lr.scale", "unknown key"),
        (
            "space:\n  lr: {if: {optimizer: sgd}, low: 0.01, high: 0.1}\n"
            "  optimizer: {choices: [adam, sgd]}\n",
            "space.lr.if.optimizer",
            "listed earlier",
        ),
    ],
)
def test_search_space_errors_name_file_and_key(tmp_path, text, key, says):
    path = write_space(tmp_path, text, "bad.yaml")
    with pytest.raises(ValueError) as err:
        search_space.load(path, TrainConfig())
    assert "bad.yaml" in str(err.value) and key in str(err.value) and says in str(err.value)


@pytest.mark.parametrize("model", ["cnn_torch", "cnn_tf", "sanet", "vgg16", "resnet50"])
def test_shipped_spaces_are_valid(model):
    space = search_space.load(search_space.default_path(model), TrainConfig(model=model))
    assert space.grid_size() >= 8 and "lr" in space.space and space.start
    # The conditional alternative gets its own Optuna name, so each keeps one distribution.
    assert [a.label("lr") for a in space.space["lr"]] == ["lr[optimizer=sgd]", "lr"]


def test_storage_url_password_is_masked():
    masked = mask("postgresql+psycopg2://optuna:s3cret@db.internal:5432/studies")
    assert "s3cret" not in masked and "optuna:***@db.internal" in masked


def test_only_a_trial_that_can_become_the_best_logs_its_model():
    from emorec.study.trials import cannot_win

    study = optuna.create_study(direction="maximize")
    assert cannot_win(study, {"val_final_f1_macro": 0.1}, "f1") is None  # nothing to beat
    study.add_trial(optuna.trial.create_trial(values=[0.6], user_attrs={"val_final_accuracy": 0.7}))
    assert cannot_win(study, {"val_final_f1_macro": 0.61, "val_final_accuracy": 0.1}, "f1") is None
    # Worse on the objective but the best validation accuracy: the comparison report's pick.
    assert cannot_win(study, {"val_final_f1_macro": 0.5, "val_final_accuracy": 0.8}, "f1") is None
    # A tie may be reported as the best (the storage breaks ties in no set order).
    assert cannot_win(study, {"val_final_f1_macro": 0.6, "val_final_accuracy": 0.7}, "f1") is None
    why = cannot_win(study, {"val_final_f1_macro": 0.59, "val_final_accuracy": 0.69}, "f1")
    assert "cannot become the study's best" in why and "trial 0" in why
    assert cannot_win(study, {"val_final_accuracy": 0.1}, "multi") is None


def test_a_model_not_worth_logging_is_tagged_with_the_reason_instead():
    tracker = tracking.MlflowTracker(skip_model=lambda metrics: f"{metrics['v']} loses")
    with mlflow.start_run() as run:
        tracker.log_metrics({"v": 0.5})
        tracker.log_model(None, None, None, (), {}, None)  # the model is never touched
    logged = MlflowClient().get_run(run.info.run_id)
    assert logged.data.tags["model_not_logged"] == "0.5 loses"
    assert not logged.outputs.model_outputs


def test_decide_needs_the_same_split_and_a_strictly_better_value():
    new = {"value": 0.9, "split_digest": "a", "dataset_digest": "d"}
    assert model_registry.decide(new, None, "test_accuracy")[0] == "champion"
    assert model_registry.decide(new, {**new, "value": 0.8}, "test_accuracy")[0] == "champion"
    assert model_registry.decide(new, {**new, "value": 0.9}, "test_accuracy")[0] == "challenger"
    alias, why = model_registry.decide(
        new, {**new, "value": 0.5, "split_digest": "b"}, "test_accuracy"
    )
    assert alias == "challenger" and "split_digest" in why


# --- studies -------------------------------------------------------------------------------


def test_grid_study_runs_each_point_as_a_nested_run_and_resume_adds_nothing(tmp_path):
    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2, 1.0e-3]\n")
    options = StudyOptions(sampler="grid", space_file=space, register=False)
    first = run_study(FAST, options)
    assert first.new_trials == 2 and first.states == {"COMPLETE": 2}

    children = runs(kind="trial", study=first.name)
    assert sorted(r.data.tags["trial_number"] for r in children) == ["0", "1"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {first.parent_run_id}
    assert {(r.info.status, r.data.tags["trial_state"]) for r in children} == {
        ("FINISHED", "COMPLETE")
    }
    assert sorted(float(r.data.params["lr"]) for r in children) == [1e-3, 1e-2]

    parent = mlflow.get_run(first.parent_run_id)
    assert parent.data.tags["kind"] == "study" and parent.info.status == "FINISHED"
    assert float(parent.data.params["best.lr"]) == first.best[0]["config"]["lr"]
    assert parent.data.metrics["best_val_final_accuracy"] == first.best[0]["values"][0]
    assert parent.data.tags["best_run_id"] == first.best[0]["run_id"]
    logged = {a.path for a in MlflowClient().list_artifacts(first.parent_run_id, "optuna")}
    assert {
        "optuna/trials.csv",
        "optuna/optimization_history.png",
        "optuna/param_importances.png",
        "optuna/parallel_coordinate.png",
    } <= logged

    again = run_study(FAST, options)
    assert again.new_trials == 0 and again.parent_run_id is None
    assert again.states == {"COMPLETE": 2} and len(runs()) == 3


def test_tpe_study_prunes_a_bad_trial_and_records_why(tmp_path):
    data = write_easy(tmp_path / "easy")
    # Start points run first, in order: a good rate, then an absurd one to prune.
    space = write_space(
        tmp_path,
        "space:\n  lr: {choices: [3.0e-3, 1.0e-7]}\nstart:\n  - {lr: 3.0e-3}\n  - {lr: 1.0e-7}\n",
    )
    options = StudyOptions(
        sampler="tpe",
        space_file=space,
        n_trials=3,
        pruner="median",
        pruner_startup_trials=1,
        **QUIET,
    )
    result = run_study(easy_values(data, epochs=2), options)
    assert result.states.get("PRUNED", 0) >= 1 and result.states["COMPLETE"] >= 1
    assert result.best[0]["config"] == {"lr": 3e-3}

    pruned = runs(kind="trial", trial_state="PRUNED")
    assert pruned and all(r.info.status == "KILLED" for r in pruned)
    assert "median pruner" in pruned[0].data.tags["state_reason"]
    assert float(pruned[0].data.params["lr"]) == 1e-7
    epochs = MlflowClient().get_metric_history(pruned[0].info.run_id, "val_accuracy")
    assert len(epochs) == 1  # stopped after the first of two epochs


def test_another_workers_best_trial_is_registered_only_once_its_session_ended(tmp_path):
    """The registration rule among workers, decided from the study's parent runs: the
    session that ran the best trial registers it; another session does so only once that
    session's run has ended (it registered before ending, or died first)."""
    from emorec.study.summary import _ours

    name = "cnn_torch-synthetic-grid-accuracy"
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/optuna.db", study_name=name, direction="maximize"
    )
    trial = study.ask()
    trial.set_user_attr("worker", "otherhost:4242")
    study.tell(trial, 0.9)
    client = MlflowClient()
    owner = client.create_run(
        tracking.experiment_id("emorec-synthetic"),
        tags={"kind": "study", "study": name, "host": "otherhost", "pid": "4242"},
    )

    assert _ours(study, name, 0, ran=[0])  # the owner itself
    assert not _ours(study, name, 0, ran=[])  # the owner's session is still open
    client.set_terminated(owner.info.run_id, "FINISHED")
    assert _ours(study, name, 0, ran=[])  # it has ended: whoever finishes now registers


def test_a_dead_containers_session_is_closed_once_its_trial_lost_its_heartbeat(tmp_path):
    """A worker in another container (another host name: its pid cannot be checked) is
    known dead once Optuna failed its trial for a stopped heartbeat; its session run is
    closed, a live worker's (or one whose trial merely raised) is left open."""
    from emorec.study.recovery import recover

    name = "cnn_torch-synthetic-grid-accuracy"
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path}/optuna.db", study_name=name, direction="maximize"
    )
    lost = study.ask()  # failed by the heartbeat: no state_reason
    lost.set_user_attr("worker", "container-a:1")
    study.tell(lost, state=optuna.trial.TrialState.FAIL)
    raised = study.ask()  # its worker lives on and said why the trial failed
    raised.set_user_attr("worker", "container-b:1")
    raised.set_user_attr("state_reason", "ValueError: bad point")
    study.tell(raised, state=optuna.trial.TrialState.FAIL)
    client = MlflowClient()
    runs = {
        host: client.create_run(
            tracking.experiment_id("emorec-synthetic"),
            tags={"kind": "study", "study": name, "host": host, "pid": "1"},
        ).info.run_id
        for host in ("container-a", "container-b", "container-c")
    }

    closed = recover(study, name)

    status = {host: client.get_run(run).info.status for host, run in runs.items()}
    assert closed == [runs["container-a"]]
    assert status == {"container-a": "FAILED", "container-b": "RUNNING", "container-c": "RUNNING"}


def test_a_start_point_queued_twice_is_trained_once(tmp_path):
    """Two workers started together may both queue the space's start points: the second
    copy is refused before training and a sampled trial takes its place."""
    space = write_space(
        tmp_path, "space:\n  lr: {low: 1.0e-3, high: 1.0e-2, log: true}\nstart:\n  - {lr: 3.0e-3}\n"
    )
    options = StudyOptions(
        sampler="tpe",
        space_file=space,
        n_trials=2,
        pruner="none",
        storage=f"sqlite:///{tmp_path}/optuna.db",
        **QUIET,
    )
    name = "cnn_torch-synthetic-tpe-accuracy"
    first = optuna.create_study(storage=options.storage, study_name=name, direction="maximize")
    for _ in range(2):  # each worker checked that none was queued yet, then queued it
        first.enqueue_trial({"lr": 3e-3})

    result = run_study(FAST, options)

    trials = optuna.load_study(study_name=name, storage=options.storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "start point" in trials[1].user_attrs["state_reason"]
    assert "not run twice" in trials[1].user_attrs["state_reason"]
    assert trials[2].params["lr"] != 3e-3  # sampled, not the start point again
    assert result.states == {"COMPLETE": 2, "FAIL": 1}
    assert len(runs(kind="trial")) == 2  # the refused copy never opened a run


def test_dead_trial_is_failed_retried_and_its_run_closed(tmp_path):
    """A process died mid-trial: its Optuna trial and MLflow run were left RUNNING."""
    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2]\n")
    options = StudyOptions(
        sampler="grid",
        space_file=space,
        heartbeat_interval=1,
        grace_period=1,
        storage=f"sqlite:///{tmp_path}/optuna.db",
        **QUIET,
    )
    name = "cnn_torch-synthetic-grid-accuracy"
    storage = make_storage(options.storage, 1, 1)
    dead = optuna.create_study(
        storage=storage,
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.GridSampler({"lr": [1e-2]}),
    )
    trial = dead.ask()  # takes the only grid point, RUNNING
    trial.suggest_categorical("lr", [1e-2])
    storage.record_heartbeat(trial._trial_id)
    tracking.configure()
    experiment = tracking.experiment_id("emorec-synthetic")
    orphan = MlflowClient().create_run(
        experiment,
        tags={"kind": "trial", "study": name, "trial_number": "0", "trial_state": "RUNNING"},
    )
    gone = subprocess.Popen(["true"])  # a finished process: the dead session's pid
    gone.wait()
    session = MlflowClient().create_run(
        experiment,
        tags={"kind": "study", "study": name, "host": socket.gethostname(), "pid": str(gone.pid)},
    )
    time.sleep(2.1)  # past the grace period: the heartbeat is stale

    result = run_study(FAST, options)

    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == trials[0].params and trials[1].system_attrs["failed_trial"] == 0
    assert result.orphans_closed == [orphan.info.run_id, session.info.run_id]
    for run_id in result.orphans_closed:
        closed = mlflow.get_run(run_id)
        assert closed.info.status == "FAILED" and "orphaned" in closed.data.tags["failure_reason"]
    assert not mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string="attributes.status = 'RUNNING'",
    )


def test_bad_input_creates_no_trial_and_a_failed_grid_point_is_retried_on_resume(
    tmp_path, monkeypatch
):
    """A grid study is done when every point has a COMPLETE (or PRUNED) trial: a point
    that failed is not used up, the next session runs it again. Input errors never get
    as far as a trial."""
    import emorec.training
    from emorec.data import DatasetError

    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2, 1.0e-3]\n")
    options = StudyOptions(
        sampler="grid", space_file=space, storage=f"sqlite:///{tmp_path}/optuna.db", **QUIET
    )
    with pytest.raises(DatasetError, match="does not exist"):
        run_study({**FAST, "dataset": "folder", "data_dir": str(tmp_path / "typo")}, options)
    bad = write_space(tmp_path, "grid:\n  lr: [0.0]\n", "bad.yaml")
    with pytest.raises(ValueError, match="bad.yaml"):
        run_study(FAST, StudyOptions(sampler="grid", space_file=bad, storage=options.storage))
    assert not optuna.get_all_study_summaries(options.storage, include_best_trial=False)

    # The first session's first trial fails (an error fixed since, say a full disk).
    def full_disk(*_args, **_kwargs):
        raise OSError("No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(emorec.training, "train", full_disk)
        with pytest.raises(OSError):
            run_study(FAST, options)

    again = run_study(FAST, options)
    assert again.new_trials == 2 and again.states == {"FAIL": 1, "COMPLETE": 2}
    trials = optuna.load_study(study_name=again.name, storage=options.storage).get_trials()
    failed, retry = trials[:2]
    assert retry.params == failed.params and retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs["state_reason"] == ""  # the failed attempt's reason is not its
    assert {float(r.data.params["lr"]) for r in runs(kind="trial", trial_state="COMPLETE")} == {
        1e-2,
        1e-3,
    }
    assert run_study(FAST, options).new_trials == 0  # done: every point COMPLETE


@pytest.mark.skipif(
    not os.environ.get("EMOREC_SLOW_TESTS"), reason="about 40 s: set EMOREC_SLOW_TESTS=1 to run"
)
def test_study_killed_mid_trial_completes_on_rerun(tmp_path):
    """The real thing: SIGKILL a `emorec tune` process mid-trial, then run it again."""
    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2, 1.0e-3]\n")
    sets = [f"{k}={v}" for k, v in {**FAST, "epochs": 8}.items() if k not in ("model", "dataset")]
    cmd = [
        sys.executable,
        "-m",
        "emorec.cli",
        "tune",
        "--model",
        "cnn_torch",
        "--space",
        space,
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "2",
        "--no-plots",
        "--set",
        *sets,
    ]
    storage = f"sqlite:///{tmp_path}/mlruns/optuna.db"
    worker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and worker.poll() is None:
        time.sleep(0.5)
        if not (tmp_path / "mlruns" / "optuna.db").exists():
            continue
        try:
            trials = optuna.load_study(
                study_name="cnn_torch-synthetic-grid-accuracy", storage=storage
            ).get_trials()
        except KeyError:  # the study is not created yet
            continue
        if any(t.state.name == "RUNNING" and len(t.intermediate_values) >= 2 for t in trials):
            break
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(3)  # past the grace period

    assert subprocess.run(cmd, capture_output=True).returncode == 0
    trials = optuna.load_study(
        study_name="cnn_torch-synthetic-grid-accuracy", storage=storage
    ).get_trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert {t.params["lr"] for t in trials if t.state.name == "COMPLETE"} == {1e-2, 1e-3}
    tracking.configure()
    assert not mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string="attributes.status = 'RUNNING'",
    )


# --- registration and the report (one shared store: models are slow to log) -----------------


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A good then a worse study on ``easy``, and one on synthetic, all registered."""
    root = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlruns/mlflow.db")
        mp.setenv("EMOREC_CACHE_DIR", str(root / "cache"))
        data = write_easy(root / "easy")
        grid = lambda name, lr: StudyOptions(  # noqa: E731
            sampler="grid",
            study_name=name,
            plots=False,
            space_file=write_space(root, f"grid:\n  lr: [{lr}]\n", f"{name}.yaml"),
        )
        good = run_study(easy_values(data, log_model=True), grid("good", "3.0e-3"))
        worse = run_study(easy_values(data, log_model=True), grid("worse", "1.0e-7"))
        synthetic = run_study({**FAST, "log_model": True}, grid("synthetic", "3.0e-3"))
    return SimpleNamespace(root=root, good=good, worse=worse, synthetic=synthetic)


@pytest.fixture
def registry_store(registered, monkeypatch):
    monkeypatch.chdir(registered.root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{registered.root}/mlruns/mlflow.db")
    monkeypatch.setenv("EMOREC_CACHE_DIR", str(registered.root / "cache"))
    tracking.configure()  # MLflow keeps the last URI in a global: point it at this store
    return registered


def test_better_model_is_champion_and_worse_one_challenger(registry_store):
    good, worse = registry_store.good.registration, registry_store.worse.registration
    assert (good.name, good.alias, good.version) == ("emorec-cnn_torch-folder", "champion", "1")
    assert (worse.alias, worse.version, worse.previous_version) == ("challenger", "2", "1")
    version = MlflowClient().get_model_version(worse.name, worse.version)
    assert version.tags["decision"] == "challenger" and version.tags["compared_with_version"] == "1"
    assert "does not beat" in version.description

    model = mlflow.pyfunc.load_model("models:/emorec-cnn_torch-folder@champion")
    bright = cv2.imencode(".png", np.full((20, 20), 200, dtype=np.uint8))[1].tobytes()
    image = pd.DataFrame({"image": [base64.b64encode(bright).decode()]})  # the serving format
    assert model.predict(image)["label"].tolist() == ["happiness"]


def test_compare_writes_tables_charts_and_cross_matrix(registry_store, tmp_path):
    report = compare(out=tmp_path / "report", cross=True)
    names = {p.name for p in report.files}
    assert {
        "results.md",
        "results.csv",
        "test_accuracy.png",
        "train_time_s.png",
        "cross_dataset.md",
        "cross_dataset.png",
    } <= names
    with (tmp_path / "report" / "results.csv").open() as f:
        rows = {(r["model"], r["dataset"]): r for r in csv.DictReader(f)}
    assert set(rows) == {("cnn_torch", "folder"), ("cnn_torch", "synthetic")}
    champion_run = mlflow.get_run(registry_store.good.best[0]["run_id"])
    logged_accuracy = champion_run.data.metrics["test_accuracy"]
    assert float(rows["cnn_torch", "folder"]["test_accuracy"]) == logged_accuracy
    assert "champion v1" in (tmp_path / "report" / "results.md").read_text()

    cross = report.cross
    assert cross["datasets"] == ["folder", "synthetic"]
    assert cross["shared"]["folder->synthetic"] == ["happiness", "sadness"]
    assert cross["accuracy"][0, 0] == logged_accuracy
    assert mlflow.get_run(report.run_id).data.tags["kind"] == "comparison"


# --- command line --------------------------------------------------------------------------


def test_cli_tune_multi_objective_exits_zero_and_rejects_a_bad_sampler(tmp_path, capsys):
    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2]\n")
    sets = [f"{k}={v}" for k, v in FAST.items() if k not in ("model", "dataset")]
    code = cli.main(
        [
            "tune",
            "--model",
            "cnn_torch",
            "--space",
            space,
            "--objective",
            "multi",
            "--no-plots",
            "--no-register",
            "--set",
            *sets,
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "study cnn_torch-synthetic-grid-multi" in out and "1 complete" in out
    parent = runs(kind="study")[0]
    logged = {a.path for a in MlflowClient().list_artifacts(parent.info.run_id, "optuna")}
    assert "optuna/pareto_front.json" in logged and "best_peak_rss_mb" in parent.data.metrics

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["tune", "--model", "cnn_torch", "--sampler", "random"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'random'" in capsys.readouterr().err

    assert cli.main(["tune", "--model", "cnn_torch", "--set", "momentum=0.9"]) == 2
    assert "unknown parameter(s) momentum" in capsys.readouterr().err
    with pytest.raises(ValueError, match="single objective"):
        StudyOptions(objective="multi", pruner="median")


def test_cli_choices_match_the_study_module():
    from emorec import study

    assert cli.STUDY_SAMPLERS == study.SAMPLERS and cli.STUDY_PRUNERS == study.PRUNERS
    assert cli.STUDY_OBJECTIVES == tuple(study.OBJECTIVES)


def test_study_status_lists_states_best_and_running_trials(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(storage=url, study_name="demo", direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={"lr": 0.01},
            value=0.75,
            distributions={"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1)},
        )
    )
    running = study.ask()
    running.set_user_attr("worker", "host-b:4242")
    running.set_user_attr("config", {"lr": 0.001})
    assert cli.main(["study", "status", "--storage", url]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"1 study in {url}"
    assert "demo: 1 running, 1 complete; best 0.7500; 1 worker(s) so far" in out
    assert "running trial 1 on host-b:4242 since " in out and "{'lr': 0.001}" in out
    assert cli.main(["study", "status", "--storage", url, "--study-name", "other"]) == 2
    err = capsys.readouterr().err
    assert "no study 'other'" in err and "studies there: demo" in err


def test_storage_tracking_store_and_n_trials_mistakes_are_one_line_each(
    tmp_path, capsys, monkeypatch
):
    space = write_space(tmp_path, "grid:\n  lr: [1.0e-2]\n")
    sets = [f"{k}={v}" for k, v in FAST.items() if k not in ("model", "dataset")]
    tune = ["tune", "--model", "cnn_torch", "--space", space, "--no-plots", "--set", *sets]

    def one_line(says: str) -> None:
        err = capsys.readouterr().err  # after MLflow's own lines creating a store
        assert err.splitlines()[-1].startswith(f"emorec: error: {says}"), err
        assert "Traceback" not in err

    # A storage that cannot be opened: a server that is down, a folder that does not exist.
    assert cli.main([*tune, "--storage", "postgresql+psycopg2://emorec@127.0.0.1:1/studies"]) == 2
    one_line("cannot open the study storage postgresql+psycopg2://emorec@127.0.0.1:1/studies: ")
    assert cli.main([*tune, "--storage", f"sqlite:///{tmp_path}/nowhere/optuna.db"]) == 2
    one_line("cannot open the study storage sqlite:///")
    # `study status` reads a storage: a missing SQLite file is not created (empty) but named.
    assert cli.main(["study", "status", "--storage", f"sqlite:///{tmp_path}/typo.db"]) == 2
    one_line(f"no study storage at {tmp_path}/typo.db")
    assert not (tmp_path / "typo.db").exists()

    # A study resumed under another MLFLOW_TRACKING_URI: its runs are not in this store.
    url = f"sqlite:///{tmp_path}/optuna.db"
    study = optuna.create_study(
        storage=url, study_name="cnn_torch-synthetic-grid-accuracy", direction="maximize"
    )
    trial = study.ask()
    trial.set_user_attr("mlflow_run_id", "0" * 32)  # a run of the store the study began in
    study.tell(trial, 0.5)
    assert cli.main([*tune, "--storage", url]) == 2
    one_line("study 'cnn_torch-synthetic-grid-accuracy' was tracked in another MLflow store")
    assert len(study.get_trials()) == 1 and not runs()

    # --n-trials 0 (MLproject's "default") starts the whole study: it says so.
    seen = []
    monkeypatch.setattr(
        "emorec.study.run_study",
        lambda values, options: (
            seen.append(options.n_trials)
            or SimpleNamespace(
                name="s", storage=url, new_trials=0, states={}, best=[], registration=None
            )
        ),
    )
    cli.main(["tune", "--model", "cnn_torch", "--n-trials", "0"])
    assert seen == [None]
    assert "--n-trials 0 means the default: every grid point" in capsys.readouterr().err
    assert cli.main(["tune", "--model", "cnn_torch", "--n-trials", "-1"]) == 2
    one_line("n_trials must be >= 1, got -1")


def test_a_finished_run_whose_trial_failed_is_failed_and_left_out_of_the_report():
    """A worker killed after its run ended FINISHED but before Optuna recorded the trial
    COMPLETE: Optuna fails the trial; recovery fails its run too, so the comparison (and
    the UI's FINISHED filter) leaves it out, and the retry's run is the point's only one."""
    from emorec.tracking import queries, trial_runs

    client = mlflow.MlflowClient()
    experiment = client.create_experiment("emorec-synthetic")
    ids = []
    for number, state in ((0, "RUNNING"), (1, "COMPLETE")):
        run = client.create_run(
            experiment,
            tags={
                "kind": "trial",
                "study": "s",
                "trial_number": str(number),
                "trial_state": state,
                "model": "cnn_torch",
                "dataset": "synthetic",
            },
        )
        client.log_metric(run.info.run_id, "val_final_accuracy", 0.9 - number / 10)
        client.set_terminated(run.info.run_id, "FINISHED")
        ids.append(run.info.run_id)
    assert trial_runs.close_orphaned_trial_runs("s", {0: "FAIL", 1: "COMPLETE"}) == ids[:1]
    orphan, kept = client.get_run(ids[0]), client.get_run(ids[1])
    assert orphan.info.status == "FAILED" and orphan.data.tags["trial_state"] == "FAIL"
    assert "orphaned" in orphan.data.tags["failure_reason"]
    assert kept.info.status == "FINISHED" and kept.data.tags["trial_state"] == "COMPLETE"
    assert [r["run_id"] for r in queries.best_runs()] == [ids[1]]
