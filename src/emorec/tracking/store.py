"""Where runs are kept: the tracking store, experiments, links into the MLflow UI.

Store: ``$MLFLOW_TRACKING_URI`` when set (a server, PostgreSQL ...), else a
SQLite database in ``./mlruns/mlflow.db`` with artifacts under
``./mlruns/artifacts`` (MLflow 3 no longer accepts the old ``./mlruns`` file
store). One experiment per dataset.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

import mlflow

from emorec.urls import mask, password_in

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
    # Logging a model copies emorec's served code files through MLflow's artifact download,
    # which draws a progress bar per model for a local copy: noise in every run's output.
    # (Set it to true to get the bars back.)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow's asynchronous logging (each epoch's metrics): with a buffer time, ending a run
    # waits for the queue's own event rather than a fixed timeout; queued metrics are
    # written after at most this long.
    os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")
    if password_in(uri):  # MLflow prints its server's URL as given at each run's end
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        _create_once(Path(uri.removeprefix("sqlite:///")))
    return uri


_created: set[Path] = set()


def _create_once(database: Path) -> None:
    """Create (or upgrade) a local SQLite store under a file lock: two processes that start
    on a fresh store at once would otherwise both run MLflow's schema migrations on it, and
    one fails (duplicate column, circular dependency). The first query creates the schema."""
    if database in _created:
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    with sqlite_lock(database):
        mlflow.search_experiments(max_results=1)
    _created.add(database)


@contextlib.contextmanager
def sqlite_lock(database: Path):
    """An exclusive lock beside a SQLite file (``<file>.lock``), held through the block:
    one process at a time creates or upgrades the schema in it."""
    import fcntl

    with open(database.with_name(database.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def client() -> mlflow.MlflowClient:
    """A client of the configured store."""
    configure()
    return mlflow.MlflowClient()


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
        return mlflow.create_experiment(
            name, artifact_location=location, tags=dict([EXPERIMENT_KIND])
        )
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


def run_link(experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI (the tracking server, or $EMOREC_MLFLOW_UI, or `make ui`)."""
    uri = mlflow.get_tracking_uri()
    base = (
        uri
        if uri.startswith(("http://", "https://"))
        else os.environ.get("EMOREC_MLFLOW_UI", "http://127.0.0.1:5000")
    )
    return f"{mask(base).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def quote(text: str) -> str:
    """``text`` as a value inside single quotes of an MLflow search filter."""
    return text.replace("'", "\\'")
