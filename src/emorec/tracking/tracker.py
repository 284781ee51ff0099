"""What ``train`` tells about a run, as a collaborator passed in: ``train(cfg, tracker=...)``.

``MlflowTracker`` (the default, ``mlflow_tracker``) records the run in MLflow; ``NoTracker``
records nothing, for callers that want the training and its metrics only (benchmarks,
quick checks).
Both go through the same ``train``, so an untracked run is the tracked one minus the
tracking, never a copy of the pipeline.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from emorec.engines.callbacks import Callback


@dataclass(frozen=True)
class RunInfo:
    run_id: str = ""  # empty when nothing was recorded
    experiment_id: str = ""


class Tracker:
    """The interface ``train`` records through; every method here records nothing."""

    @contextlib.contextmanager
    def run(self, cfg, *, nested: bool = False, tags: dict | None = None):
        """Open the run for ``cfg`` around the block; yields its ``RunInfo``."""
        yield RunInfo()

    def callbacks(self) -> list[Callback]:
        """Callbacks that record each epoch's values."""
        return []

    def log_config(self, cfg) -> None:
        """The run's configuration."""

    def log_dataset(self, ds, split, cfg) -> None:
        """The dataset and split the run trains and evaluates on."""

    def log_model_input(self, model_id: str) -> None:
        """A logged model the run starts from (``init_from``)."""

    def log_metrics(self, values: dict[str, float]) -> None:
        """The run's final metrics."""

    def log_evaluation(self, report: dict, history: dict, classes: tuple[str, ...]) -> None:
        """The test evaluation's plots and classification report."""

    def log_model(
        self, engine, model, cfg, classes: tuple[str, ...], prep, example: np.ndarray
    ) -> None:
        """The trained model, as ``logged_models.log_trained_model`` logs it."""

    def log_table(self, rows: list[dict], name: str) -> None:
        """A table (one dict per row) as ``<name>.csv`` of the run."""

    def child(self) -> Tracker:
        """The tracker of a run nested under this one (a cross-validation fold): a new one
        of the same kind."""
        return type(self)()


class NoTracker(Tracker):
    """Records nothing: ``train(cfg, tracker=NoTracker())`` trains and evaluates only."""
