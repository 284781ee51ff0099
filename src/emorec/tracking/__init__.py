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
- ``tracker``: ``MlflowTracker`` / ``NoTracker``, what ``train`` records through.
"""

from __future__ import annotations

from emorec.tracking.datasets import dataset_digest, log_dataset
from emorec.tracking.logged_models import (
    load_emotion_model,
    load_pyfunc,
    log_image_pyfunc,
    log_trained_model,
    quiet_model_logging,
    requirements,
)
from emorec.tracking.model_uris import (
    EMOTION_MODEL,
    ModelNotFound,
    check_model_uri,
    registered_summary,
    registered_version,
    run_id_of,
)
from emorec.tracking.runs import (
    MlflowCallback,
    git_commit,
    log_artifact_to_run,
    log_config,
    log_exploration,
    log_figure,
    log_files,
    log_json,
    log_metrics,
    log_model_input,
    log_params,
    log_report,
    log_text,
    set_tags,
    start_run,
    training_facts,
)
from emorec.tracking.store import STORE_DIR, configure, default_tracking_uri, experiment_id
from emorec.tracking.tracker import MlflowTracker, NoTracker, RunInfo, Tracker

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
