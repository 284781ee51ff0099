"""Everything emorec says to MLflow goes through this module.

Store: ``$MLFLOW_TRACKING_URI`` when set (a server, PostgreSQL ...), else a
SQLite database in ``./mlruns/mlflow.db`` with artifacts under
``./mlruns/artifacts`` (MLflow 3 no longer accepts the old ``./mlruns`` file
store). One experiment per dataset. A run always ends FINISHED, FAILED (with
the reason in the ``failure_reason`` tag) or KILLED (Ctrl-C, SIGTERM): never RUNNING.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path

import mlflow
import numpy as np
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.dataset_source import DatasetSource

from emorec.config import TrainConfig
from emorec.data.splits import Split
from emorec.data.types import Dataset
from emorec.engines.base import Callback

log = logging.getLogger(__name__)
STORE_DIR = Path("mlruns")
# MLflow 3's UI opens an experiment by this tag's kind, guessing (often the GenAI, traces
# view) where it is missing; this value opens its model-training view (runs, metrics, models).
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def default_tracking_uri() -> str:
    return f"sqlite:///{(STORE_DIR / 'mlflow.db').resolve()}"


def configure() -> str:
    """Point MLflow at the configured store (creating the local one) and return its URI."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    # Logging a model copies emorec's ~60 code files through MLflow's artifact download,
    # which draws a progress bar per model for a local copy: noise in every run's output.
    # (Set it to true to get the bars back.)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    return uri


def experiment_id(name: str) -> str:
    """The experiment's id, creating it (artifacts under ./mlruns for a local store)."""
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        mark_model_training(existing)
        return existing.experiment_id
    location = None
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):  # keep artifacts beside the database, not in ./mlartifacts
        location = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location,
                                        tags=dict([EXPERIMENT_KIND]))
    except mlflow.exceptions.MlflowException:
        # Another worker created it since we looked (RESOURCE_ALREADY_EXISTS).
        existing = mlflow.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def mark_model_training(experiment) -> None:
    """Tag an experiment emorec did not create (``mlflow run --experiment-name`` creates
    its own) for the model-training view, unless it already has a kind."""
    key, value = EXPERIMENT_KIND
    if key in experiment.tags:
        return
    try:
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    except mlflow.exceptions.MlflowException as exc:  # a UI nicety must not fail a run
        log.warning("could not tag experiment %s %s: %s", experiment.name, key, exc)


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).parent)
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
    run = mlflow.start_run(experiment_id=None if resumed else experiment_id(cfg.experiment_name),
                           run_name=cfg.run_name or f"{cfg.model}-{cfg.dataset}", nested=nested,
                           log_system_metrics=cfg.system_metrics,
                           # Strings: a tracking server's REST store refuses other types.
                           tags={k: str(v) for k, v in {
                               "framework": cfg.framework, "model": cfg.model,
                               "dataset": cfg.dataset, "git_commit": git_commit(),
                               **(tags or {})}.items()})
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
    """Logs each epoch's values as MLflow metrics, stepped by epoch."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        mlflow.log_metrics(logs, step=epoch)


def log_config(cfg: TrainConfig) -> None:
    # `mlflow run` has already logged the MLproject parameters in its own spelling
    # ("false" for False) and MLflow forbids changing a logged value: add the rest.
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({k: ("" if v is None else v) for k, v in cfg.to_params().items()
                       if k not in logged})


class _FolderSource(DatasetSource):
    """Where a dataset came from: a local path, or 'builtin:synthetic'."""

    def __init__(self, uri: str):
        self.uri = uri

    @staticmethod
    def _get_source_type() -> str:
        return "local"

    def load(self, **_):
        return self.uri

    @staticmethod
    def _can_resolve(raw_source) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source):
        return cls(str(raw_source))

    def to_dict(self) -> dict:
        return {"uri": self.uri}

    @classmethod
    def from_dict(cls, source_dict: dict):
        return cls(source_dict["uri"])


def dataset_digest(ds: Dataset) -> str:
    import hashlib

    h = hashlib.sha256(ds.images.tobytes())
    h.update(ds.labels.tobytes())
    return h.hexdigest()[:16]


def log_dataset(ds: Dataset, split: Split, cfg: TrainConfig) -> None:
    """The dataset as an MLflow input (name, source, content digest) plus split facts."""
    source = _FolderSource(str(Path(cfg.data_dir).resolve()) if cfg.data_dir else "builtin:synthetic")
    # MLflow keeps one dataset per (name, digest) in an experiment, with the first run's
    # source: a second folder of equal content would show the first one's path. The folder
    # goes in the name (the column holds 500 characters); the digest stays the content's,
    # which the registry compares.
    name = f"{ds.name} {source.uri}"[-500:] if cfg.data_dir else ds.name
    mlflow.log_input(MetaDataset(source, name=name, digest=dataset_digest(ds)), context="training")
    sizes = split.sizes()
    mlflow.log_params({"split_strategy": split.strategy, "split_digest": split.digest,
                       "classes": ",".join(ds.classes), "num_classes": len(ds.classes),
                       **{f"{k}_size": v for k, v in sizes.items()}})
    mlflow.log_dict({"classes": list(ds.classes), "split_sizes": sizes,
                     "split_digest": split.digest, "decode": ds.stats},
                    "data/dataset.json")


def log_model_input(model_id: str) -> None:
    """Record an MLflow logged model as an input of the active run (its lineage in the UI)."""
    from mlflow.entities import LoggedModelInput

    mlflow.log_inputs(models=[LoggedModelInput(model_id)])


def log_metrics(values: dict[str, float]) -> None:
    mlflow.log_metrics({k: float(v) for k, v in values.items()})


def log_figure(fig, name: str) -> None:
    # emorec.plots builds figures outside pyplot, so there is nothing to close.
    mlflow.log_figure(fig, name)


def log_json(data: dict, name: str) -> None:
    mlflow.log_dict(json.loads(json.dumps(data, default=_jsonable)), name)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _requirements(engine) -> list[str]:
    """Exact pins of what the logged models import (skips MLflow's slow inference)."""
    from importlib.metadata import version

    names = ["mlflow", "numpy", "pandas", "pillow", "opencv-python-headless", "cloudpickle",
             *engine.requirements]
    return [f"{n}=={version(n)}" for n in names]


@contextlib.contextmanager
def _quiet_model_logging():
    """Silence MLflow's generic advice printed on every model save (pickle
    cautions, type-hint tips) so a training run's output stays readable."""
    import warnings

    names = ("mlflow.pytorch", "mlflow.keras", "mlflow.pyfunc", "mlflow.models")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def log_trained_model(engine, model, cfg: TrainConfig, classes: tuple[str, ...],
                      prep_dict: dict, example: np.ndarray) -> None:
    """The model in its own flavour (``model``), plus the raw-image ``emotion_model`` pyfunc
    that serves it; ``example``: a few uint8 test images (signature, input example)."""
    import base64
    import tempfile

    import cv2
    import pandas as pd

    from emorec.emotion_model import NATIVE, EmotionModel

    reqs = _requirements(engine)
    with _quiet_model_logging(), tempfile.TemporaryDirectory() as tmp:
        native_dir = Path(tmp) / NATIVE
        engine.log_flavor(model, example, name="model", save_to=str(native_dir),
                          pip_requirements=reqs, code_path=str(Path(__file__).parent))
        png = cv2.imencode(".png", example[0])[1].tobytes()
        mlflow.pyfunc.log_model(
            name="emotion_model",
            python_model=EmotionModel(cfg.framework, list(classes), prep_dict),
            artifacts={NATIVE: str(native_dir)},
            code_paths=[str(Path(__file__).parent)],
            input_example=pd.DataFrame({"image": [base64.b64encode(png).decode()]}),
            pip_requirements=reqs)


def log_exploration(folder: Path, dataset: str) -> str:
    """Log an exploration folder as its own run in the dataset's experiment."""
    configure()
    with mlflow.start_run(experiment_id=experiment_id(f"emorec-{dataset}"),
                          run_name=f"explore-{dataset}", tags={"kind": "exploration"}) as run:
        mlflow.log_artifacts(str(folder), "exploration")
        return run.info.run_id


# --- Added for studies (emorec.study) and the registry/report (emorec.registry) ---------------

def log_params(values: dict) -> None:
    """Parameters of the active run (``None`` logged as "", as ``log_config`` does)."""
    mlflow.log_params({k: ("" if v is None else v) for k, v in values.items()})


def set_tags(values: dict) -> None:
    """Tags of the active run, values as text."""
    mlflow.set_tags({k: str(v) for k, v in values.items()})


def log_text(text: str, name: str) -> None:
    """A text artifact (a CSV table, a YAML file) of the active run."""
    mlflow.log_text(text, name)


def load_emotion_model(uri: str):
    """The ``EmotionModel`` behind a logged pyfunc, ready to predict; a URI that names
    nothing raises ``inference.ModelNotFound`` listing the registered models and aliases."""
    from mlflow.exceptions import MlflowException

    from emorec.emotion_model import EmotionModel
    from emorec.inference import ModelNotFound

    configure()
    try:
        model = mlflow.pyfunc.load_model(uri).unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise ModelNotFound(f"cannot load {uri!r} ({str(exc).splitlines()[0][:200]}); "
                            f"registered models: {registered_summary() or 'none'}") from None
    if not isinstance(model, EmotionModel):
        raise ModelNotFound(f"{uri!r} is not an emorec emotion_model (it is a "
                            f"{type(model).__name__})")
    return model


def registered_summary() -> str:
    """'name@alias (vN), ...' for every registered model, for error messages."""
    client = mlflow.MlflowClient()
    parts = []
    for rm in client.search_registered_models():
        aliases = ", ".join(f"@{a} (v{v})" for a, v in sorted(rm.aliases.items())) or "no aliases"
        parts.append(f"{rm.name} [{aliases}]")
    return "; ".join(parts)


# --- Added for ONNX export (emorec.onnx_export) ------------------------------------------------

def run_id_of(uri: str) -> str:
    """The run that logged the model at ``uri``: runs:/RUN/..., models:/NAME@ALIAS,
    models:/NAME/VERSION or models:/MODEL_ID (an MLflow 3 logged model)."""
    configure()
    client = mlflow.MlflowClient()
    if uri.startswith("runs:/"):
        return uri.removeprefix("runs:/").strip("/").split("/")[0]
    if not uri.startswith("models:/"):
        raise ValueError(f"cannot tell which run logged {uri!r}: expected a runs:/ or "
                         "models:/ URI")
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return client.get_model_version_by_alias(name, alias).run_id
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return client.get_model_version(name, version).run_id
    return client.get_logged_model(rest).source_run_id


def log_artifact_to_run(run_id: str, path, folder: str | None = None) -> None:
    """Add a local file to an existing (possibly finished) run's artifacts."""
    configure()
    mlflow.MlflowClient().log_artifact(run_id, str(path), folder)
