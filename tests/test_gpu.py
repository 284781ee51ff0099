"""GPU readiness (issue 26): ``benchmarks/gpu_check.py`` on a CUDA machine, and its CPU
dry run everywhere (the same path, with MLflow and Optuna made unimportable as on a GPU
machine that has only the training stack)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def _run(tmp_path, *args: str, timeout: int) -> dict:
    out = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
    )
    assert out.exists(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    failed = [name for name, ok in report["checks"].items() if not ok]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-2000:], proc.stderr[-3000:])
    return report


@pytest.mark.slow
def test_gpu_check_dry_run_trains_and_serves_without_mlflow_or_optuna(tmp_path):
    report = _run(tmp_path, "--cpu-dry-run", timeout=600)
    assert report["mode"] == "cpu-dry-run" and report["device"] == "cpu"
    assert not report["mlflow_importable"] and not report["optuna_importable"]
    assert report["run_id"] == "" and 0 <= report["test_accuracy"] <= 1
    assert "label" in report["served_prediction"]


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_gpu_check_on_cuda(tmp_path):
    report = _run(tmp_path, "--minutes", "1", "--samples", "5000", timeout=600)
    assert report["device"] == "cuda" and report["precision_used"] == "float16"
    assert report["gpu_peak_mb"] > 0 and report["model_device"].startswith("cuda")
