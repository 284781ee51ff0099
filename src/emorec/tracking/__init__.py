"""Everything emorec says to MLflow, one module per concept; no other package imports
MLflow (but the engines' flavours and the serving pyfunc's base class).

- ``store``: where runs are kept (the tracking URI, experiments, UI links);
- ``runs``: opening and ending a run, what it records (parameters, tags, metrics,
  figures, JSON and text artifacts), and what a finished run trained on;
- ``datasets``: the dataset a run trained on, as an MLflow input;
- ``logged_models``: logging a trained model with its raw-image pyfunc, loading it back;
- ``model_uris``: what a model URI names (the run that logged it, a registered version);
- ``model_registry``: registered models, their aliases and the champion rule;
- ``queries``: reading runs and champions back for the comparison report;
- ``trial_runs``: the runs of a study's trials and sessions (marking, closing orphans);
- ``tracker``: ``Tracker`` / ``NoTracker``, what ``train`` records through, and
  ``mlflow_tracker``: ``MlflowTracker``, the default.

The names below are imported on first use: ``emorec.tracking.tracker`` (and so training
with ``NoTracker``) works where MLflow is not installed, as on a bare GPU machine.
"""

from __future__ import annotations

import importlib

# name -> the module defining it
_HOMES = {
    "dataset_digest": "datasets",
    "log_dataset": "datasets",
    "load_emotion_model": "logged_models",
    "load_pyfunc": "logged_models",
    "log_image_pyfunc": "logged_models",
    "log_trained_model": "logged_models",
    "quiet_model_logging": "logged_models",
    "requirements": "logged_models",
    "MlflowTracker": "mlflow_tracker",
    "check_model_uri": "model_uris",
    "EMOTION_MODEL": "model_uris",
    "ModelNotFound": "model_uris",
    "registered_summary": "model_uris",
    "registered_version": "model_uris",
    "run_id_of": "model_uris",
    "git_commit": "runs",
    "log_artifact_to_run": "runs",
    "log_config": "runs",
    "log_exploration": "runs",
    "log_figure": "runs",
    "log_files": "runs",
    "log_json": "runs",
    "log_metrics": "runs",
    "log_model_input": "runs",
    "log_params": "runs",
    "log_report": "runs",
    "log_text": "runs",
    "MlflowCallback": "runs",
    "set_tags": "runs",
    "start_run": "runs",
    "training_facts": "runs",
    "configure": "store",
    "default_tracking_uri": "store",
    "experiment_id": "store",
    "STORE_DIR": "store",
    "NoTracker": "tracker",
    "RunInfo": "tracker",
    "Tracker": "tracker",
}


_MODULES = {*_HOMES.values(), "queries", "model_registry", "trial_runs"}


def __getattr__(name: str):
    if name in _MODULES:  # ``tracking.store`` and the like, as with an eager package
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


__all__ = [
    "EMOTION_MODEL",
    "STORE_DIR",
    "MlflowCallback",
    "MlflowTracker",
    "ModelNotFound",
    "NoTracker",
    "RunInfo",
    "Tracker",
    "check_model_uri",
    "configure",
    "dataset_digest",
    "default_tracking_uri",
    "experiment_id",
    "git_commit",
    "load_emotion_model",
    "load_pyfunc",
    "log_artifact_to_run",
    "log_config",
    "log_dataset",
    "log_exploration",
    "log_figure",
    "log_files",
    "log_image_pyfunc",
    "log_json",
    "log_metrics",
    "log_model_input",
    "log_params",
    "log_report",
    "log_text",
    "log_trained_model",
    "quiet_model_logging",
    "registered_summary",
    "registered_version",
    "requirements",
    "run_id_of",
    "set_tags",
    "start_run",
    "training_facts",
]
