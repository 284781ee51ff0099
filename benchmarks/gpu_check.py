"""GPU readiness (issue 26): one prepared check for a machine with an NVIDIA GPU.

    python benchmarks/gpu_check.py [--minutes 3] [--samples 20000]

Trains the FER2013 recipe's settings (``tuning/fer2013.yaml``: cnn_torch, one-cycle SGD,
augmentation, TTA ...) on the built-in synthetic faces for a few minutes, through
emorec's own ``train()`` from this source tree with the no-op tracker (nothing is
recorded: the GPU machine needs no MLflow and no Optuna), then serves predictions with
the trained model on the GPU. It checks that the GPU is chosen, that ``precision=auto``
autocasts to float16 there, that peak GPU memory is measured (torch's counter and NVML
through pynvml), and reports images/s, ``gpu_peak_mb``, the precision used and the test
accuracy. Prints the figures and writes them as JSON to ``$OUT/gpu_check.json`` (or
``benchmarks/results/gpu_check.json`` without ``$OUT``). Exit status 0 when every check
passed, 1 otherwise. Needs: torch, torchvision, numpy, scikit-learn, opencv, pillow,
psutil, nvidia-ml-py (pyyaml optional).

Training with ``NoTracker`` and serving through ``Predictor`` import no MLflow and no Optuna
(``emorec.tracking`` imports its MLflow modules on first use); an import chain that
reaches either is recorded and fails the check.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import json
import os
import platform
import sys
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"


class _Blocked(importlib.abc.MetaPathFinder):
    """Makes ``names`` unimportable, as on a machine where they are not installed."""

    def __init__(self, names: set[str]):
        self.names = names

    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


def importable(name: str) -> bool:
    try:
        __import__(name)
        return True
    except ImportError:
        return False
    except Exception:  # a package that is present but broken
        return False


def _chain(exc: BaseException) -> list[str]:
    """The emorec frames an import error went through, ending in the missing module."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [
        f"{Path(f.filename).relative_to(SRC)}:{f.lineno}"
        for f in frames
        if f.filename.startswith(str(SRC))
    ] + [f"import {exc.name}"]


def import_emorec(modules: tuple[str, ...]) -> dict:
    """Import ``modules`` of emorec from the source tree; where one needs MLflow or Optuna
    and they are absent, record the chain (the check then fails)."""
    sys.path.insert(0, str(SRC))
    import emorec

    info: dict = {"emorec_from": str(Path(emorec.__file__).parent), "broken_chains": {}}
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] not in ("mlflow", "optuna"):
                raise
            info["broken_chains"][module] = _chain(exc)
    return info


def recipe(name: str = "fer2013") -> dict:
    """The ``fixed`` values of ``tuning/<name>.yaml`` and its grid's single values."""
    text = (REPO / "tuning" / f"{name}.yaml").read_text()
    try:
        import yaml

        data = yaml.safe_load(text)
        values = dict(data.get("fixed") or {})
        values.update({k: v[0] for k, v in (data.get("grid") or {}).items() if len(v) == 1})
        return values
    except ImportError:  # a flat `key: value  # comment` reading of the two sections
        values, section = {}, None
        for line in text.splitlines():
            body = line.split("#", 1)[0].rstrip()
            if not body:
                continue
            if not line.startswith(" "):
                section = body.rstrip(":")
                continue
            if section in ("fixed", "grid") and ":" in body:
                key, value = (s.strip() for s in body.split(":", 1))
                value = value.strip("[]").split(",")[0].strip()
                for cast in (int, float):
                    try:
                        value = cast(value)
                        break
                    except ValueError:
                        pass
                values[key] = {"true": True, "false": False}.get(value, value)
        return values


def nvml_figures() -> dict:
    """The GPU as NVML sees it: name, driver, total memory and this process's share."""
    try:
        import pynvml
    except ImportError:
        return {"nvml": "pynvml not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"nvml": f"no NVML ({exc})"}
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        used = sum(
            p.usedGpuMemory or 0
            for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            if p.pid == os.getpid()
        )
        return {
            "nvml": "ok",
            "gpu_name": name.decode() if isinstance(name, bytes) else name,
            "driver": str(pynvml.nvmlSystemGetDriverVersion()),
            "gpu_total_mb": pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20,
            "nvml_process_mb": used / 2**20 if used else None,
        }
    finally:
        pynvml.nvmlShutdown()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0, help="training time budget")
    p.add_argument("--samples", type=int, default=20000, help="synthetic faces")
    p.add_argument("--out", default=None, help="JSON path (default: $OUT/gpu_check.json)")
    # A short CPU run of the same path, with MLflow and Optuna made unimportable as on the
    # GPU machine: for tests and for trying the script where there is no GPU.
    p.add_argument("--cpu-dry-run", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    dry = args.cpu_dry_run
    if dry:
        sys.meta_path.insert(0, _Blocked({"mlflow", "optuna", "optuna_integration"}))
    out = Path(
        args.out
        or (Path(os.environ["OUT"]) if os.environ.get("OUT") else REPO / "benchmarks" / "results")
        / ("gpu_check_cpu_dry_run.json" if dry else "gpu_check.json")
    )
    report: dict = {
        "mode": "cpu-dry-run" if dry else "gpu",
        "python": platform.python_version(),
        "mlflow_importable": importable("mlflow"),
        "optuna_importable": importable("optuna"),
        "checks": {},
    }
    checks = report["checks"]
    import torch

    report["torch"] = torch.__version__
    report["cuda_available"] = torch.cuda.is_available()
    report["torch_cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        report["device_name"] = torch.cuda.get_device_name(0)
        report["bf16_supported"] = torch.cuda.is_bf16_supported()
    report.update(nvml_figures())

    t0 = time.perf_counter()
    report["imports"] = import_emorec(("emorec.training", "emorec.serving.predictor"))
    report["import_s"] = round(time.perf_counter() - t0, 2)
    broken = report["imports"]["broken_chains"]
    if broken:
        raise SystemExit(
            "without MLflow/Optuna: "
            + "; ".join(f"{m} breaks at {' -> '.join(c)}" for m, c in broken.items())
        )
    import emorec
    from emorec.config import TrainConfig
    from emorec.engines import get_engine
    from emorec.tracking.tracker import NoTracker
    from emorec.training import train

    values = recipe()
    values.update(
        model="cnn_torch",
        dataset="synthetic",
        samples=300 if dry else args.samples,
        time_budget_min=0.05 if dry else args.minutes,
        epochs=1 if dry else values.get("epochs", 120),
        precision="auto",
        system_metrics=False,
        progress=False,
        log_model=False,
        seed=0,
    )
    values = {k: v for k, v in values.items() if k in TrainConfig.__dataclass_fields__}
    cfg = TrainConfig.from_mapping(values)
    engine = get_engine(cfg.framework)
    tags = engine.run_tags(cfg)
    report["config"] = {k: v for k, v in cfg.to_params().items() if k in values}
    report["device"], report["precision_used"] = tags["device"], tags["precision_used"]
    expected_device = "cpu" if dry else "cuda"
    checks[f"device chosen is {expected_device}"] = tags["device"] == expected_device
    if not dry:
        checks["precision auto is float16 autocast on CUDA"] = tags["precision_used"] == "float16"

    t0 = time.perf_counter()
    result = train(cfg, tracker=NoTracker())
    report["train_wall_s"] = round(time.perf_counter() - t0, 1)
    m = result.metrics
    for key in (
        "test_accuracy",
        "test_f1_macro",
        "train_images_per_s",
        "eval_images_per_s",
        "train_time_s",
        "epochs_run",
        "gpu_peak_mb",
        "peak_rss_mb",
        "num_parameters",
    ):
        if key in m:
            report[key] = round(float(m[key]), 4)
    report["run_id"] = result.run_id
    if dry or not (report["mlflow_importable"] or report["optuna_importable"]):
        checks["trained without importing mlflow or optuna"] = not (
            {"mlflow", "optuna"} & set(sys.modules)
        )
    checks["no-op tracker recorded nothing"] = result.run_id == ""
    checks["accuracy is a probability"] = 0.0 <= m["test_accuracy"] <= 1.0
    if not dry:
        checks["gpu_peak_mb measured"] = (m.get("gpu_peak_mb") or 0) > 0
        checks["accuracy above chance (1/7)"] = m["test_accuracy"] > 1 / 7

    # Serving: the trained model behind emorec's Predictor (the serving contract), on raw
    # images of any size, then a timed batch straight through the engine.
    import numpy as np

    model = result.model
    device = str(next(model.parameters()).device)
    report["model_device"] = device
    checks["trained model lives on the chosen device"] = device.startswith(expected_device)
    rng = np.random.default_rng(0)
    raw = [rng.integers(0, 256, (96, 80, 3), dtype=np.uint8) for _ in range(4)]
    served = types.SimpleNamespace(
        classes=result.classes,
        prep=cfg.preprocessing,
        probabilities=lambda crops: engine.predict_proba(model, crops),
    )
    try:
        from emorec.serving.predictor import Predictor

        predictions = Predictor(served, "in-memory", detector="haar").predict(
            raw, detect_faces=False
        )
        report["served_prediction"] = {
            "label": predictions[0].label,
            "confidence": round(predictions[0].confidence, 4),
        }
        checks["prediction served"] = len(predictions) == len(raw) and all(
            abs(sum(p.probabilities.values()) - 1) < 1e-3 for p in predictions
        )
    except Exception as exc:  # recorded, not fatal: the timed batch below still runs
        report["served_prediction"] = f"{type(exc).__name__}: {exc}"
        checks["prediction served"] = False
    size = cfg.input_size
    batch = rng.integers(0, 256, (512, size, size, cfg.channels), dtype=np.uint8)
    engine.predict_proba(model, batch[:64])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    proba = engine.predict_proba(model, batch)
    report["serve_images_per_s"] = round(len(batch) / (time.perf_counter() - t0), 1)
    checks["batch probabilities sum to 1"] = bool(np.allclose(proba.sum(1), 1, atol=1e-3))
    report.update({k: v for k, v in nvml_figures().items() if k == "nvml_process_mb"})

    report["emorec_version"] = emorec.__version__
    report["passed"] = all(checks.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    figures = (
        "device",
        "precision_used",
        "train_images_per_s",
        "gpu_peak_mb",
        "nvml_process_mb",
        "test_accuracy",
        "serve_images_per_s",
        "train_wall_s",
    )
    print(", ".join(f"{k} {report.get(k)}" for k in figures))
    print(f"wrote {out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
