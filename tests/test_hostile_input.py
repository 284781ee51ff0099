"""Hostile but fair input, round two: every file read is bounded, every user error one
line, secrets masked wherever a URL is shown, signals and races leave no run open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest

import fixtures
from conftest import TINY
from emorec.cli import main
from emorec.config import TrainConfig
from services import (
    mlflow_server,
    postgres_database,
    postgres_unavailable,
    signalled_mid_training,
)

SECRET = "S3cret-pw"
TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


def one_line(capsys, expected: str) -> str:
    """The command's error output is one line holding ``expected`` (besides MLflow's note
    that it created a fresh store's tables)."""
    err = [
        line
        for line in capsys.readouterr().err.strip().splitlines()
        if "mlflow.store.db.utils" not in line
    ]
    assert len(err) == 1 and expected in err[0], err
    assert "Traceback" not in err[0]
    return err[0]


# -------------------------------------------------------------- files read ---


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("device", "is not a regular file"),
        ("folder", "is a folder; give a file"),
        ("huge", "is over 1000000 bytes"),
        ("duplicate", "duplicated key 'lr'"),
    ],
)
def test_a_space_file_is_read_bounded_and_strictly(kind, expected, tmp_path, capsys):
    space = {
        "device": Path("/dev/zero"),
        "folder": tmp_path,
        "huge": tmp_path / "huge.yaml",
        "duplicate": tmp_path / "twice.yaml",
    }[kind]
    (tmp_path / "huge.yaml").write_text("grid:\n  lr: [0.1]\n" + "#" * 1_000_001)
    (tmp_path / "twice.yaml").write_text("grid:\n  lr: [0.1]\n  lr: [0.01]\n")
    assert main(["tune", "--model", "cnn_torch", "--space", str(space)]) == 2
    one_line(capsys, expected)


def test_a_fifo_given_to_predict_is_skipped_not_waited_on(tiny_run, tmp_path):
    result, store = tiny_run
    pipe = tmp_path / "pipe.png"
    os.mkfifo(pipe)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "emorec.cli",
            "predict",
            "--model-uri",
            f"runs:/{result.run_id}/emotion_model",
            str(pipe),
        ],
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "not a regular file" in proc.stderr, proc.stderr


def test_unreadable_folders_are_skipped_counted_or_refused(tmp_path):
    """A class folder without read permission is skipped and counted, as an unreadable
    image is; strict mode refuses it in one line; an unreadable root is one line."""
    root = Path(tempfile.mkdtemp(prefix="emorec-perm-", dir="/tmp"))
    try:
        os.chmod(root, 0o755)
        data = fixtures.write_folder_set(root / "faces", n_per_class=3, corrupt=False)
        for folder in [data, *data.rglob("*")]:
            os.chmod(folder, 0o755 if folder.is_dir() else 0o644)
        (data / "happy").chmod(0o000)
        # Root reads any folder, whatever its permissions: as root (CI), the child drops to
        # the user nobody once its imports are done.
        code = (
            "import os, sys, tqdm.auto, emorec.data.folder\n"
            "from PIL import Image; Image.init()  # every image plugin, read as root\n"
            "from emorec.data import load_dataset, DatasetError\n"
            "if os.geteuid() == 0:\n"
            "    os.setgid(65534); os.setuid(65534)\n"
            "try:\n"
            "    ds = load_dataset('folder', sys.argv[1], strict=sys.argv[2] == 'strict',"
            " use_cache=False, progress=False)\n"
            "    print('ok', ds.stats.get('unreadable_folders'), len(ds))\n"
            "except DatasetError as exc:\n"
            "    print('refused', exc)\n"
        )

        def load(path, mode="lenient"):
            out = subprocess.run(
                [sys.executable, "-c", code, str(path), mode],
                capture_output=True,
                text=True,
                timeout=120,
                cwd=root,
            )
            assert out.returncode == 0, out.stderr
            return out.stdout.strip()

        assert load(data) == "ok 1 6"  # angry and sad read, happy skipped and counted
        assert load(data, "strict").startswith("refused 1 folder(s) of ")
        data.chmod(0o000)
        assert load(data).startswith(f"refused cannot read {data}: Permission denied")
    finally:
        subprocess.run(["chmod", "-R", "u+rwx", str(root)], check=False)
        subprocess.run(["rm", "-rf", str(root)], check=False)


# ---------------------------------------------------------- values refused ---


def test_too_many_synthetic_samples_are_refused_naming_the_limit(capsys):
    assert main(["train", "--samples", "10000000000"]) == 2
    one_line(capsys, "samples must be in [14, 1000000]")


@pytest.mark.parametrize("timeout", ["-5", "nan", "inf"])
def test_a_timeout_that_cannot_end_a_study_is_refused(timeout, capsys):
    assert main(["tune", "--model", "cnn_torch", "--timeout", timeout]) == 2
    one_line(capsys, "timeout must be a positive number of seconds")


def test_benchmark_all_checks_every_name_before_any_study(capsys):
    assert main(["benchmark-all", "--models", "cnn_torch,nope", "--set", "epochs=1"]) == 2
    one_line(capsys, "unknown model 'nope'; valid models: cnn_tf, cnn_torch")
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing ran


def test_an_init_from_that_is_no_model_uri_names_the_forms(capsys):
    assert main(["train", *TINY_FLAGS, "--init-from", "http://127.0.0.1:9/x"]) == 2
    line = one_line(capsys, "is not a model URI emorec reads; use one of runs:/RUN_ID/")
    assert "models:/NAME@ALIAS" in line


def test_whole_numbers_given_as_floats_are_integers(capsys):
    """MLproject parameters are floats: -P epochs=2.0 means 2 epochs."""
    cfg = TrainConfig.from_mapping({"epochs": "2.0", "batch_size": 16.0, "seed": "7"})
    assert (cfg.epochs, cfg.batch_size, cfg.seed) == (2, 16, 7)
    assert isinstance(cfg.epochs, int)
    assert main(["train", "--epochs", "2.5"]) == 2
    one_line(capsys, "epochs: expected a whole number, got '2.5'")


def test_compare_into_an_existing_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "report.txt"
    taken.write_text("mine")
    assert main(["compare", "--out", str(taken), "--no-mlflow"]) == 2
    one_line(capsys, "cannot write there, it is a file, not a folder")
    assert taken.read_text() == "mine"


# ----------------------------------------------------------------- secrets ---


def test_every_credential_form_is_masked():
    from emorec.urls import mask, password_in

    for url in (
        f"postgresql+psycopg2://postgres@db:5432/optuna?password={SECRET}",
        f"postgresql+psycopg2://postgres:{SECRET}@db:5432/optuna",
        f"http://user:{SECRET}@mlflow.example:5000",
        f"postgresql://u@db/x?sslmode=require&PWD={SECRET}",
    ):
        assert password_in(url) and SECRET not in mask(url) and "***" in mask(url)
    assert not password_in("sqlite:///mlruns/optuna.db")
    assert mask("sqlite:///mlruns/optuna.db") == "sqlite:///mlruns/optuna.db"


@pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable()))
def test_a_query_string_password_is_refused_on_the_command_line_and_masked_from_env(
    monkeypatch, capsys, tmp_path
):
    with postgres_database() as storage:
        url = f"{storage}?password={SECRET}"
        assert main(["tune", "--model", "cnn_torch", "--storage", url]) == 2
        assert SECRET not in one_line(capsys, "--storage holds a password")
        monkeypatch.setenv("EMOREC_OPTUNA_STORAGE", url)  # trust auth ignores it
        space = tmp_path / "one.yaml"
        space.write_text("grid:\n  lr: [1.0e-3]\n")
        flags = [f"{k}={v}" for k, v in {**TINY, "log_model": False}.items()]
        assert main(["tune", "--model", "cnn_torch", "--space", str(space), "--set", *flags]) == 0
        out = capsys.readouterr()
        assert SECRET not in out.out + out.err and "password=***" in out.out
        params = [
            r.data.params
            for r in mlflow.search_runs(search_all_experiments=True, output_format="list")
        ]
        assert params and not [p for p in params if SECRET in str(p)]


def test_a_tracking_server_password_never_reaches_the_output(tmp_path):
    """emorec prints the run's link with the password masked, and MLflow's own link line
    (which would carry it) is suppressed."""
    with mlflow_server(f"sqlite:///{tmp_path}/server.db", tmp_path / "artifacts") as base:
        uri = base.replace("http://", f"http://user:{SECRET}@")
        proc = subprocess.run(
            [sys.executable, "-m", "emorec.cli", "train", *TINY_FLAGS, "--log-model=false"],
            env={**os.environ, "MLFLOW_TRACKING_URI": uri},
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert SECRET not in proc.stdout + proc.stderr
    assert "the run:  http://user:***@" in proc.stdout


# ------------------------------------------------------- signals and races ---


def test_sighup_ends_the_run_killed_with_its_reason(tmp_path, monkeypatch):
    """A closed terminal or a dropped ssh connection: the run ends KILLED, not RUNNING."""
    store = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    mlflow.set_tracking_uri(store)
    flags = [*TINY_FLAGS, "--epochs=500", "--early-stopping=0", "--log-model=false"]
    run_id, status, err = signalled_mid_training(store, tmp_path, flags, signal.SIGHUP)
    assert status == 143, err
    run = mlflow.get_run(run_id)
    assert run.info.status == "KILLED"
    assert "SIGHUP" in run.data.tags["failure_reason"]


def test_two_first_runs_on_a_fresh_sqlite_store_both_succeed(tmp_path):
    """MLflow creates a fresh SQLite store's schema in the first process that opens it:
    two starting at once both did, and one failed. Both must succeed."""
    store = tmp_path / "fresh"
    start = time.time() + 8  # past both processes' imports: they open the store together
    code = (
        "import sys, time; from emorec.cli import main; "
        "time.sleep(max(float(sys.argv[1]) - time.time(), 0)); sys.exit(main(sys.argv[2:]))"
    )
    space = tmp_path / "one.yaml"
    space.write_text("grid:\n  lr: [1.0e-3]\n")
    commands = [
        ["train", *TINY_FLAGS, "--log-model=false"],
        [
            "tune",
            "--model",
            "cnn_torch",
            "--space",
            str(space),
            "--no-plots",
            "--set",
            *[f"{k}={v}" for k, v in TINY.items()],
            "log_model=false",
        ],
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "EMOREC_OPTUNA_STORAGE": f"sqlite:///{store}/optuna.db",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(start), *cmd],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for cmd in commands
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]


# ------------------------------------------------------------ storage URLs ---


@pytest.mark.skipif(postgres_unavailable() is not None, reason=str(postgres_unavailable()))
def test_a_bare_postgresql_url_uses_the_installed_driver(capsys):
    with postgres_database() as storage:
        bare = storage.replace("postgresql+psycopg2://", "postgresql://")
        assert main(["study", "status", "--storage", bare]) == 0
        assert "0 studies in postgresql+psycopg2://" in capsys.readouterr().out


def test_a_database_without_its_driver_is_one_line(capsys):
    assert main(["study", "status", "--storage", "mysql://root@127.0.0.1:3306/test"]) == 2
    one_line(capsys, "its driver is not installed")


def test_a_failed_trial_is_one_line_without_optunas_traceback(tmp_path, capsys):
    """A trial that fails (its init_from names no model) ends the study in emorec's one
    line, without Optuna's own warning and traceback before it."""
    space = tmp_path / "one.yaml"
    space.write_text("grid:\n  lr: [1.0e-3]\n")
    flags = [f"{k}={v}" for k, v in TINY.items()]
    code = main(
        ["tune", "--model", "cnn_torch", "--space", str(space), "--no-plots", "--set", *flags,
         "init_from=models:/emorec-nothing@champion"]
    )  # fmt: skip
    assert code == 2
    one_line(capsys, "init_from: ")
