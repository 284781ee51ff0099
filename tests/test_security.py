"""Hostile values through the MLproject entry points, and where a database password may go.

MLflow shell-quotes every ``-P`` value and runs the entry point's command with
``bash -c``: a template that quotes a placeholder again cancels that quoting, so
a value could run commands or split into several arguments. A storage URL with a
password is refused on emorec's command line (the process list shows it, and
``mlflow run`` logs and prints every parameter); it belongs in the environment.
The real ``mlflow run`` tests stay fast: the hostile one is refused by emorec's
``--set`` parsing before any data is loaded, the other trains one tiny trial.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from emorec import cli
from emorec.cli.args import parse_sets

REPO = Path(__file__).resolve().parents[1]
MLFLOW = str(Path(sys.executable).parent / "mlflow")
SECRET = "s3cret-pw"
# Quotes, a command separator, substitutions and a space: what a shell would act on.
HOSTILE = 'a b\'; touch INJECTED; echo "$(id)" `id` $HOME'


def _entry_point(name: str):
    from mlflow.projects._project_spec import load_project

    return load_project(str(REPO)).get_entry_point(name)


def _argv(entry: str, **params) -> list[str]:
    """The arguments ``bash -c`` gives emorec for an entry point: MLflow's own quoting of
    the values, split as a POSIX shell splits it."""
    command = _entry_point(entry).compute_command(params, storage_dir=None)
    return shlex.split(command)


@pytest.mark.parametrize(
    "entry", sorted(yaml.safe_load((REPO / "MLproject").read_text())["entry_points"])
)
def test_every_mlproject_value_reaches_emorec_as_one_argument(entry):
    point = _entry_point(entry)
    for name, param in point.parameters.items():
        if param.type == "string":
            argv = _argv(entry, **{name: HOSTILE})
            assert HOSTILE in argv, f"{entry}.{name} is split or run by the shell: {argv}"
    # The defaults ("" for "not set" included) are what emorec's parser accepts.
    argv = _argv(entry)
    assert argv[0] == "emorec"
    cli.build_parser().parse_args(argv[1:])


def test_tune_entry_point_passes_spaces_empty_values_and_several_pairs():
    argv = _argv("tune", data_dir="/data/my faces", set="epochs=1 image_size=32")
    args = cli.build_parser().parse_args(argv[1:])
    assert args.data_dir == "/data/my faces"
    assert parse_sets(args.set) == {"epochs": "1", "image_size": "32"}
    assert (args.study_name, args.space, args.timeout) == (None,) * 3
    args = cli.build_parser().parse_args(_argv("compare", out="/tmp/my report")[1:])
    assert args.out == "/tmp/my report" and args.dataset == [""]


def _project_env(tmp_path: Path, **extra) -> dict:
    """``mlflow run``'s environment: the venv's ``emorec`` first on PATH (as ``make run``),
    and an experiment created beforehand so that artifacts stay in this test's store."""
    from emorec import tracking

    tracking.experiment_id("emorec-security")
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "OMP_NUM_THREADS": "1",
        **extra,
    }


def test_mlflow_run_tune_does_not_let_a_value_run_a_command(tmp_path):
    marker = tmp_path / "INJECTED"
    cmd = [
        MLFLOW,
        "run",
        str(REPO),
        "-e",
        "tune",
        "--env-manager",
        "local",
        "--experiment-name",
        "emorec-security",
        "-P",
        f"set=epochs=1; touch {marker}",
        "-P",
        f"data_dir={tmp_path}/my faces",
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=tmp_path, env=_project_env(tmp_path), timeout=600
    )
    assert not marker.exists(), "a -P value was run by the shell"
    # The whole value reached emorec as one --set argument (and the folder with a space
    # as one --data-dir), where "touch" is refused as a key=value pair: nothing trained.
    assert proc.returncode != 0
    assert "emorec: error: --set expects key=value pairs, got 'touch'" in proc.stderr, proc.stderr[
        -3000:
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["tune", "--model", "cnn_torch"],
        ["benchmark-all", "--models", "cnn_torch"],
        ["study", "status"],
    ],
    ids=["tune", "benchmark-all", "study-status"],
)
def test_a_password_in_storage_on_the_command_line_is_refused(argv, capsys, monkeypatch):
    # Port 1: nothing listens, so a command that does not refuse fails fast instead of training.
    url = f"postgresql+psycopg2://emorec:{SECRET}@127.0.0.1:1/optuna"
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    assert cli.main([*argv, "--storage", url]) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("emorec: error: --storage holds a password")
    assert "PGPASSWORD" in err and ".pgpass" in err and "EMOREC_OPTUNA_STORAGE" in err
    assert SECRET not in out + err
    # Under `mlflow run -P storage=...` the value is already logged: the line says where.
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123abcd")
    assert cli.main([*argv, "--storage", url]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "parameter of run 0123abcd" in err, err
    assert not mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_mlflow_run_tune_keeps_the_password_out_of_params_tags_and_command(tmp_path):
    """The supported way: the URL (and its password) in $EMOREC_OPTUNA_STORAGE, one tiny trial;
    the space file's folder has a space and ``set`` several pairs, as users write them."""
    from services import postgres_database, postgres_unavailable

    if why := postgres_unavailable():
        pytest.skip(f"needs PostgreSQL: {why}")
    space = tmp_path / "my spaces" / "one.yaml"
    space.parent.mkdir()
    space.write_text("grid:\n  lr: [1.0e-3]\n")
    fixed = (
        "epochs=1 samples=70 image_size=16 batch_size=16 log_model=false "
        "system_metrics=false progress=false"
    )
    cmd = [
        MLFLOW,
        "run",
        str(REPO),
        "-e",
        "tune",
        "--env-manager",
        "local",
        "--experiment-name",
        "emorec-security",
        "-P",
        f"space={space}",
        "-P",
        f"set={fixed}",
    ]
    with postgres_database() as plain:
        # Trust auth ignores the password: it is here to prove that it is never shown.
        storage = plain.replace("postgres@", f"postgres:{SECRET}@")
        assert SECRET in storage
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=600,
            env=_project_env(tmp_path, EMOREC_OPTUNA_STORAGE=storage),
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "=== Running command 'emorec tune" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert "postgres:***@" in proc.stdout  # emorec names the storage, masked

    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    project = [r for r in runs if r.data.tags.get("mlflow.source.type") == "PROJECT"]
    assert len(project) == 1 and len(runs) == 2, [r.data.tags for r in runs]  # + the trial
    # No storage parameter for MLflow to log: the entry point does not take the URL at all.
    assert "storage" not in project[0].data.params
    assert project[0].data.params["study.storage"].startswith("postgresql+psycopg2://postgres:***@")
    for run in runs:
        assert SECRET not in str(run.data.params) + str(run.data.tags), run.info.run_id


def test_compose_puts_no_database_password_on_a_command_line():
    """Anyone who lists processes sees every container's command line: the server and the
    workers get the PostgreSQL password as PGPASSWORD (libpq reads it), not in a URL."""
    from sqlalchemy.engine import make_url

    services = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())["services"]
    for name, service in services.items():
        line = " ".join(
            str(part)
            for key in ("entrypoint", "command")
            for part in (
                [service[key]] if isinstance(service.get(key), str) else service.get(key, [])
            )
        )
        assert "POSTGRES_PASSWORD" not in line, f"{name}: {line}"
    for name in ("mlflow", "worker"):
        assert services[name]["environment"]["PGPASSWORD"] == "${POSTGRES_PASSWORD}", name
    assert make_url(services["worker"]["environment"]["EMOREC_OPTUNA_STORAGE"]).password is None
