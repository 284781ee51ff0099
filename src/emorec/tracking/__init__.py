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

# module -> the names it defines that the package offers
_EXPORTS = {
    "datasets": ("dataset_digest", "log_dataset"),
    "logged_models": (
        "load_emotion_model",
        "load_pyfunc",
        "log_image_pyfunc",
        "log_trained_model",
        "quiet_model_logging",
        "requirements",
    ),
    "mlflow_tracker": ("MlflowTracker",),
    "model_uris": (
        "EMOTION_MODEL",
        "check_model_uri",
        "registered_summary",
        "registered_version",
        "run_id_of",
    ),
    "runs": (
        "MlflowCallback",
        "git_commit",
        "log_artifact_to_run",
        "log_config",
        "log_exploration",
        "log_figure",
        "log_files",
        "log_json",
        "log_metrics",
        "log_model_input",
        "log_params",
        "log_report",
        "log_text",
        "set_tags",
        "start_run",
        "training_facts",
    ),
    "store": ("STORE_DIR", "configure", "default_tracking_uri", "experiment_id"),
    "tracker": ("NoTracker", "RunInfo", "Tracker"),
}
_HOMES = {name: module for module, names in _EXPORTS.items() for name in names}

_MODULES = {*_EXPORTS, "queries", "model_registry", "trial_runs"}


def __getattr__(name: str):
    if name in _MODULES:  # ``tracking.store`` and the like, as with an eager package
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value  # once: later lookups skip this function
    return value


__all__ = sorted(_HOMES)
