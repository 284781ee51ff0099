"""Runs: opening and ending them, and what a run records (parameters, tags, metrics,
figures, JSON and text artifacts, model inputs).

A run always ends FINISHED, FAILED (with the reason in the ``failure_reason`` tag) or
KILLED (Ctrl-C, SIGTERM): never RUNNING.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np

from emorec.config import TrainConfig
from emorec.engines.callbacks import Callback
from emorec.tracking.store import client, configure, experiment_id, mark_model_training


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    # Once per process (a study's trials each asked git again): the code a process runs is
    # the code it imported at its start, whatever is committed later.
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


@contextlib.contextmanager
def start_run(cfg: TrainConfig, *, nested: bool = False, tags: dict | None = None):
    """A run that always ends in a terminal state, with the failure reason recorded."""
    configure()
    # Under `mlflow run`, MLFLOW_RUN_ID names a run already created in the experiment
    # given to `mlflow run`; resume it there rather than in ours.
    resumed = not nested and bool(os.environ.get("MLFLOW_RUN_ID"))
    run = mlflow.start_run(
        experiment_id=None if resumed else experiment_id(cfg.experiment_name),
        run_name=cfg.run_name or f"{cfg.model}-{cfg.dataset}",
        nested=nested,
        log_system_metrics=cfg.system_metrics,
        # Strings: a tracking server's REST store refuses other types.
        tags={
            k: str(v)
            for k, v in {
                "framework": cfg.framework,
                "model": cfg.model,
                "dataset": cfg.dataset,
                "git_commit": git_commit(),
                **(tags or {}),
            }.items()
        },
    )
    try:
        if resumed:
            mark_model_training(mlflow.get_experiment(run.info.experiment_id))
        yield run
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (emorec.cli.Terminated says so)
        mlflow.set_tag("failure_reason", str(exc) or "interrupted by the user (Ctrl-C)")
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        mlflow.set_tag("failure_reason", f"{type(exc).__name__}: {exc}"[:5000])
        mlflow.end_run("FAILED")
        raise
    else:
        mlflow.end_run("FINISHED")


class MlflowCallback(Callback):
    """Logs each epoch's values as MLflow metrics, stepped by epoch, through MLflow's
    asynchronous logging, so that training does not wait for the store. ``written()``
    waits for them when the run ends; ending a failed or interrupted run writes what is
    queued too."""

    def __init__(self):
        self._queued = []

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        self._queued.append(mlflow.log_metrics(logs, step=epoch, synchronous=False))

    def written(self) -> None:
        """Write what is queued now and raise what failed to be written: a run whose
        epochs did not all reach the store must not end FINISHED."""
        mlflow.flush_async_logging()
        for operations in self._queued:
            operations.wait()


def log_config(cfg: TrainConfig) -> None:
    # `mlflow run` has already logged the MLproject parameters in its own spelling
    # ("false" for False) and MLflow forbids changing a logged value: add the rest. They
    # are in the active run as it was read when it was resumed (no store query needed:
    # nothing else logs parameters before this).
    logged = mlflow.active_run().data.params
    log_params({k: v for k, v in cfg.to_params().items() if k not in logged})


def log_params(values: dict) -> None:
    """Parameters of the active run (``None`` logged as "")."""
    mlflow.log_params({k: ("" if v is None else v) for k, v in values.items()})


def set_tags(values: dict) -> None:
    """Tags of the active run, values as text."""
    mlflow.set_tags({k: str(v) for k, v in values.items()})


def log_metrics(values: dict[str, float]) -> None:
    """Metrics of the active run at step 0 (its final ones), written before this returns
    (whatever $MLFLOW_ENABLE_ASYNC_LOGGING says)."""
    mlflow.log_metrics({k: float(v) for k, v in values.items()}, synchronous=True)


def log_figure(fig, name: str) -> None:
    """A matplotlib figure as an artifact of the active run, in the format its name's
    suffix says (``emorec.evaluation.figures`` encodes every figure)."""
    from emorec.evaluation.figures import figure_bytes

    log_files({name: figure_bytes(fig, Path(name).suffix.lstrip(".") or "png")})


def log_files(files: dict[str, bytes]) -> None:
    """Files' bytes as artifacts of the active run, by artifact path, in one upload."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        mlflow.log_artifacts(tmp)


def log_json(data: dict, name: str) -> None:
    """``data`` as a JSON artifact of the active run."""
    log_files({name: json_text(data).encode()})


def json_text(data: dict) -> str:
    """``data`` as indented JSON, numpy values as plain numbers and lists."""
    return json.dumps(data, default=_jsonable, indent=2)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def csv_text(rows: list[dict]) -> str:
    """Rows (dicts with the same keys) as CSV text."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def log_text(text: str, name: str) -> None:
    """A text artifact (a CSV table, a YAML file) of the active run."""
    mlflow.log_text(text, name)


def log_model_input(model_id: str) -> None:
    """Record an MLflow logged model as an input of the active run (its lineage in the UI)."""
    from mlflow.entities import LoggedModelInput

    mlflow.log_inputs(models=[LoggedModelInput(model_id)])


def training_facts(run_id: str) -> dict:
    """What a finished run trained on, read back: its parameters and metrics, its split
    digest and its dataset's content digest ("unknown" where it logged none)."""
    run = client().get_run(run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return {
        "run_id": run_id,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "split_digest": run.data.params.get("split_digest", "unknown"),
        "dataset_digest": inputs[0].dataset.digest if inputs else "unknown",
    }


def log_artifact_to_run(run_id: str, path, folder: str | None = None) -> None:
    """Add a local file to an existing (possibly finished) run's artifacts."""
    client().log_artifact(run_id, str(path), folder)


def log_exploration(folder: Path, dataset: str) -> str:
    """Log an exploration folder as its own run in the dataset's experiment."""
    configure()
    with mlflow.start_run(
        experiment_id=experiment_id(f"emorec-{dataset}"),
        run_name=f"explore-{dataset}",
        tags={"kind": "exploration"},
    ) as run:
        mlflow.log_artifacts(str(folder), "exploration")
        return run.info.run_id


def log_report(
    folder, experiment: str = "emorec-comparison", tags: dict | None = None
) -> tuple[str, str]:
    """Log a report folder as one run of ``experiment``; returns (run id, experiment name).

    Under `mlflow run` the run is the project run instead, in whatever experiment
    `--experiment-name` chose (MLflow resumes it from $MLFLOW_RUN_ID).
    """
    configure()
    with mlflow.start_run(
        experiment_id=experiment_id(experiment),
        run_name="compare",
        tags={"kind": "comparison", **(tags or {})},
    ) as run:
        mlflow.log_artifacts(str(folder), "report")
        return run.info.run_id, mlflow.get_experiment(run.info.experiment_id).name
