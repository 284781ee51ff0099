"""PyTorch and Keras/TensorFlow meet in one process without crashing (emorec.frameworks).

Loading Triton (torch's kernel compiler) after TensorFlow segfaults; the commands
that meet both frameworks run here as real subprocesses, Keras first, the order
that crashed, and must exit 0. Tiny data keeps each to one import of both frameworks
and seconds of training.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# One batch of 32 holds a tiny split's training images: no batch of one for BatchNorm.
TINY = [
    "epochs=1",
    "samples=70",
    "image_size=16",
    "batch_size=32",
    "system_metrics=false",
    "progress=false",
]


def emorec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny models: one thread is faster
    return subprocess.run(
        [sys.executable, "-m", "emorec.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_point_grid(folder: Path) -> str:
    path = folder / "one.yaml"
    path.write_text("grid:\n  lr: [3.0e-3]\n")
    return str(path)


def test_triton_counts_as_missing_once_tensorflow_loads(tmp_path):
    """The guard itself, against a stand-in TensorFlow (no real import: fast)."""
    (tmp_path / "tensorflow").mkdir()
    (tmp_path / "tensorflow" / "__init__.py").write_text("")
    check = (
        "import importlib.util, sys\n"
        "{first}\n"
        "assert importlib.util.find_spec('triton') is None\n"
        "try:\n    import triton\nexcept ImportError:\n    pass\n"
        "else:\n    sys.exit('triton imported after tensorflow')\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    for first in ("import emorec, tensorflow", "import tensorflow, emorec"):
        done = subprocess.run(
            [sys.executable, "-c", check.format(first=first)],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    # Without TensorFlow nothing changes: emorec's import hides no module.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import emorec, sys; assert sys.modules.get('triton', 0) is not None",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def write_easy(root: Path) -> str:
    """A two-class folder set (bright "happy", dark "sad" noise): a second dataset."""
    rng = np.random.default_rng(0)
    for cls, level in (("happy", 190), ("sad", 60)):
        (root / "easy" / cls).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(rng.normal(level, 25, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / "easy" / cls / f"{i:02d}.png")
    return str(root / "easy")


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory):
    """``emorec benchmark-all --models cnn_tf,cnn_torch`` (Keras first) on the folder set,
    both registered."""
    root = tmp_path_factory.mktemp("frameworks")
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlruns/mlflow.db",
        "EMOREC_CACHE_DIR": str(root / "cache"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        done = emorec(
            "benchmark-all",
            "--models",
            "cnn_tf,cnn_torch",
            "--datasets",
            "folder",
            "--data-dir",
            f"folder={write_easy(root)}",
            "--space",
            one_point_grid(root),
            "--no-plots",
            "--set",
            *TINY,
            cwd=root,
        )
    return done, root, env


@pytest.fixture
def store(benchmarked, monkeypatch):
    """This test pointed at the benchmark's tracking store."""
    import mlflow

    _, root, env = benchmarked
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])  # MLflow keeps the last one globally
    return root


def test_benchmark_all_trains_keras_then_pytorch_in_one_process(benchmarked):
    done, _, _ = benchmarked
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| cnn_")]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| cnn_tf", "folder", "test split"],
        ["| cnn_torch", "folder", "test split"],
    ], done.stdout
    assert all("[champion v1 " in row for row in rows), done.stdout


def test_compare_cross_loads_a_keras_and_a_pytorch_champion(benchmarked, store):
    """The Keras model is the folder set's only champion (loaded first: datasets go in
    name order), a PyTorch one synthetic's (loaded second: the order that crashed)."""
    from mlflow import MlflowClient

    from emorec.study import StudyOptions, run_study

    assert benchmarked[0].returncode == 0, "the benchmark made no champions"
    MlflowClient().delete_registered_model_alias("emorec-cnn_torch-folder", "champion")
    values = {"model": "cnn_torch", "dataset": "synthetic", **dict(s.split("=") for s in TINY)}
    options = StudyOptions(space_file=one_point_grid(store), plots=False)
    assert run_study(values, options).registration.alias == "champion"

    done = emorec("compare", "--cross", "--no-mlflow", "--out", "report", cwd=store)
    assert done.returncode == 0, done.stderr[-3000:]
    matrix = (store / "report" / "cross_dataset.md").read_text()
    assert "cnn_tf" in matrix and "cnn_torch" in matrix, matrix
