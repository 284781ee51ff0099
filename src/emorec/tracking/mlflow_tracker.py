"""``MlflowTracker``: ``train``'s default tracker, recording the run in MLflow (kept apart
from ``tracker`` so that training with ``NoTracker`` needs no MLflow installed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from emorec.engines.callbacks import Callback
from emorec.tracking import datasets, logged_models, runs
from emorec.tracking.tracker import RunInfo, Tracker


class MlflowTracker(Tracker):
    """Records the run in MLflow: parameters, dataset input, per-epoch and final metrics,
    plots, the classification report and the model (see ``runs`` and ``logged_models``).

    ``skip_model(final metrics)`` says why the model is not worth logging (a study's trial
    that cannot become its best, see ``emorec.study.trials``), or None to log it; the
    reason is tagged on the run (``model_not_logged``)."""

    def __init__(self, skip_model: Callable[[dict[str, float]], str | None] | None = None):
        self.skip_model, self._final_metrics = skip_model, {}
        self._epochs = None  # the callback logging each epoch's metrics

    @contextlib.contextmanager
    def run(self, cfg, *, nested: bool = False, tags: dict | None = None):
        with runs.start_run(cfg, nested=nested, tags=tags) as run:
            yield RunInfo(run.info.run_id, run.info.experiment_id)
            if self._epochs is not None:
                self._epochs.written()

    def callbacks(self) -> list[Callback]:
        self._epochs = runs.MlflowCallback()
        return [self._epochs]

    def log_config(self, cfg) -> None:
        runs.log_config(cfg)

    def log_dataset(self, ds, split, cfg) -> None:
        datasets.log_dataset(ds, split, cfg)

    def log_model_input(self, model_id: str) -> None:
        runs.log_model_input(model_id)

    def log_metrics(self, values: dict[str, float]) -> None:
        runs.log_metrics(values)
        self._final_metrics = dict(values)

    def log_table(self, rows: list[dict], name: str) -> None:
        runs.log_text(runs.csv_text(rows), f"{name}.csv")

    def log_evaluation(self, report, history, classes) -> None:
        from emorec.evaluation.figures import run_figures

        drawn = run_figures(report["confusion_matrix"], classes, report["roc"], history)
        saved = {k: v for k, v in report.items() if k != "roc"}  # the curves are drawn
        runs.log_files(
            {**drawn, "reports/classification_report.json": runs.json_text(saved).encode()}
        )

    def log_model(self, engine, model, cfg, classes, prep, example) -> None:
        reason = self.skip_model and self.skip_model(self._final_metrics)
        if reason:
            runs.set_tags({"model_not_logged": reason})
            return
        logged_models.log_trained_model(engine, model, classes, prep, cfg.framework, example)
