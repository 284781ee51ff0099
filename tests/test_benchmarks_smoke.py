"""Smoke test of the benchmark scripts (benchmarks/*.py) on tiny synthetic data.

Each script runs in-process (one torch/MLflow import for all) on fixtures written in the
real archives' layouts (CK+48, FER2013 folders), with tiny knobs and a temporary results
dir, and must write its JSON with finite figures; with no data each must skip cleanly.
This checks that the scripts still run against the package; it measures nothing.
"""

from __future__ import annotations

import json
import math
import runpy
import sys
from pathlib import Path

import pytest

import fixtures

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
TINY = {
    "throughput": [
        "--images",
        "32",
        "--batch-size",
        "16",
        "--repeats",
        "1",
        "--models",
        "cnn_torch",
        "--flops-steps",
        "1",
        "--peak-seconds",
        "0.1",
    ],
    "tracking_overhead": ["--epochs", "1", "--repeats", "1", "--warmup", "0"],
    "tuning_efficiency": [
        "--lrs",
        "0.001",
        "--dropouts",
        "0.25",
        "--batch-sizes",
        "32",
        "--epochs",
        "1",
        "--tpe-trials",
        "1",
        "--image-size",
        "16",
    ],
    "memory": ["--models", "cnn_torch", "--epochs", "1", "--repeats", "1"],
    "inference": [
        "--train-images",
        "40",
        "--epochs",
        "1",
        "--single",
        "3",
        "--batch",
        "8",
        "--eval-images",
        "14",
        "--fer-python",
        "",
    ],
    "quality": [
        "--train-images",
        "70",
        "--set",
        "epochs=1",
        "time_budget_min=0",
        "--folds",
        "2",
        "--ck-set",
        "epochs=1",
    ],
    "epoch_speed": ["--train-images", "20", "--models", "cnn_torch"],
    "seed_table": [
        "--stage",
        "fer2013",
        "--store",
        "",
        "--models",
        "cnn_torch",
        "--set",
        "epochs=1",
        "image_size=16",
    ],
    "dedupe_effect": ["--minutes", "0.005"],
    "fer_levers": ["--levers", "recipe,mixup,snapshots", "--budget-min", "0.005"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-data")
    fixtures.write_ckplus48(root / "CK+48", subjects=12, odd_name=False)
    fixtures.write_fer2013_folders(root / "fer2013", n_train=10, n_test=2)
    return root


def run_script(name: str, args: list[str], monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(BENCH / f"{name}.py"), *args])
    monkeypatch.syspath_prepend(str(BENCH))
    runpy.run_path(str(BENCH / f"{name}.py"), run_name="__main__")


def finite_numbers(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from finite_numbers(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from finite_numbers(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


@pytest.mark.parametrize("name", list(TINY))
def test_script_writes_finite_results(name, data, tmp_path, monkeypatch):
    results = tmp_path / "results"
    run_script(name, ["--data", str(data), "--results-dir", str(results), *TINY[name]], monkeypatch)
    payload = json.loads((results / f"{name}.json").read_text())
    assert {"name", "machine", "targets", "figures", "notes", "args"} <= set(payload)
    assert payload["targets"], "every script states at least one target"
    for t in payload["targets"]:
        assert {"name", "measured", "goal", "met"} <= set(t)
    numbers = list(finite_numbers(payload["figures"]))
    assert numbers and all(math.isfinite(v) for v in numbers)
    assert f"`{name}`" in (results / "RESULTS.md").read_text()


# workers.py needs PostgreSQL and a tracking server: tests/test_workers.py covers what it runs.
@pytest.mark.parametrize("name", [*TINY, "workers"])
def test_script_skips_without_data(name, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        run_script(name, ["--data", str(empty), "--results-dir", str(tmp_path / "r")], monkeypatch)
        raise SystemExit(0)  # quality returns instead of exiting
    assert exit_info.value.code in (0, None)
    assert "SKIPPED" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_tracking_overhead_against_a_real_server(data, tmp_path, monkeypatch):
    # A real `mlflow server` started by the script, one worker: a run logged to it, clocked.
    results = tmp_path / "results"
    run_script(
        "tracking_overhead",
        [
            "--data",
            str(data),
            "--results-dir",
            str(results),
            *TINY["tracking_overhead"],
            "--server-workers",
            "1",
        ],
        monkeypatch,
    )
    payload = json.loads((results / "tracking_overhead_server.json").read_text())
    server = payload["figures"]["servers"]["1"]
    assert server["request_ms"] > 0 and server["clocked_tracking_s"] > 0
    assert server["finished_runs_on_server"] == 1  # the one timed run went to that server
    assert server["requests_per_run"] > 20 and server["clocked_s_per_site"]["log_trained_model"] > 0
    assert [t["name"] for t in payload["targets"]] == [
        "tracking overhead clocked, mlflow server --workers 1"
    ]
