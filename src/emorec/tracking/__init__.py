"""Everything emorec says to MLflow, one module per concept.

- ``store``: where runs are kept (the tracking URI, experiments, UI links);
- ``runs``: opening and ending a run, and what it records (parameters, tags, metrics,
  figures, JSON and text artifacts);
- ``datasets``: the dataset a run trained on, as an MLflow input;
- ``logged_models``: saving a trained model with its raw-image pyfunc, loading it back;
- ``registry``: registered models, their aliases and the champion rule;
- ``queries``: reading runs and champions back for the comparison report;
- ``tracker``: ``MlflowTracker`` / ``NoTracker``, what ``train`` records through.

The names below are the package's API (``from emorec import tracking``); the trial
runs of a study are ``emorec.study.trial_runs``'.
"""

from __future__ import annotations

from emorec.tracking.datasets import dataset_digest, log_dataset
from emorec.tracking.logged_models import (EMOTION_MODEL, ModelNotFound, load_emotion_model,
                                           load_pyfunc, log_trained_model, quiet_model_logging,
                                           registered_summary, run_id_of)
from emorec.tracking.runs import (MlflowCallback, git_commit, log_artifact_to_run, log_config,
                                  log_exploration, log_figure, log_json, log_metrics,
                                  log_model_input, log_params, log_report, log_text, set_tags,
                                  start_run)
from emorec.tracking.store import STORE_DIR, configure, default_tracking_uri, experiment_id
from emorec.tracking.tracker import MlflowTracker, NoTracker, RunInfo, Tracker

__all__ = ["EMOTION_MODEL", "STORE_DIR", "MlflowCallback", "MlflowTracker", "ModelNotFound",
           "NoTracker", "RunInfo", "Tracker", "configure", "dataset_digest",
           "default_tracking_uri", "experiment_id", "git_commit", "load_emotion_model",
           "load_pyfunc", "log_artifact_to_run", "log_config", "log_dataset",
           "log_exploration", "log_figure", "log_json", "log_metrics", "log_model_input",
           "log_params", "log_report", "log_text", "log_trained_model", "quiet_model_logging",
           "registered_summary", "run_id_of", "set_tags", "start_run"]
