"""Hostile values through the MLproject entry points.

MLflow shell-quotes every ``-P`` value and runs the entry point's command with
``bash -c``: a template that quotes a placeholder again cancels that quoting, so
a value could run commands or split into several arguments. The real ``mlflow
run`` test stays fast: the hostile value is refused by emorec's ``--set`` parsing
before any data is loaded.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emorec import cli
from emorec.cli.args import parse_sets

REPO = Path(__file__).resolve().parents[1]
MLFLOW = str(Path(sys.executable).parent / "mlflow")
SECRET = "s3cret-pw"
# Quotes, a command separator, substitutions and a space: what a shell would act on.
HOSTILE = "a b'; touch INJECTED; echo \"$(id)\" `id` $HOME"


def _entry_point(name: str):
    from mlflow.projects._project_spec import load_project

    return load_project(str(REPO)).get_entry_point(name)


def _argv(entry: str, **params) -> list[str]:
    """The arguments ``bash -c`` gives emorec for an entry point: MLflow's own quoting of
    the values, split as a POSIX shell splits it."""
    command = _entry_point(entry).compute_command(params, storage_dir=None)
    return shlex.split(command)


@pytest.mark.parametrize("entry", sorted(
    yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]))
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
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "OMP_NUM_THREADS": "1", **extra}


def test_mlflow_run_tune_does_not_let_a_value_run_a_command(tmp_path):
    marker = tmp_path / "INJECTED"
    cmd = [MLFLOW, "run", str(REPO), "-e", "tune", "--env-manager", "local",
           "--experiment-name", "emorec-security",
           "-P", f"set=epochs=1; touch {marker}", "-P", f"data_dir={tmp_path}/my faces"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path,
                          env=_project_env(tmp_path), timeout=600)
    assert not marker.exists(), "a -P value was run by the shell"
    # The whole value reached emorec as one --set argument (and the folder with a space
    # as one --data-dir), where "touch" is refused as a key=value pair: nothing trained.
    assert proc.returncode != 0
    assert "emorec: error: --set expects key=value pairs, got 'touch'" in proc.stderr, \
        proc.stderr[-3000:]
