"""Optuna studies per model-dataset pair; the only package that talks to Optuna.

``run_study(values, options)`` creates or resumes the study
``<model>-<dataset>-<sampler>-<objective>`` (or ``options.study_name``) in
an RDB storage (default: SQLite ``mlruns/optuna.db``; any SQLAlchemy URL,
PostgreSQL for several workers), runs trials until ``n_trials`` trials have
finished, the grid is exhausted or the timeout passes, and registers the best
trial's model (``emorec.tracking.model_registry``).

- Samplers: ``grid`` (GridSampler over the YAML grid, stops when exhausted)
  and ``tpe`` (seeded, multivariate, over the YAML space, with the YAML start
  points first). Pruners: ``median`` (default for tpe), ``hyperband``,
  ``none`` (default for grid, whose table should hold fully trained points).
  Single-objective trials report validation accuracy after every epoch.
- Objectives: ``accuracy`` / ``f1`` maximise validation accuracy / macro F1;
  ``multi`` maximises validation accuracy and minimises training time and
  peak RSS (Pareto front; Optuna cannot prune multi-objective trials).
- Tracking: each session is a parent MLflow run (tag ``kind=study``); each
  trial a nested run (``kind=trial``, ``study``, ``trial_number``,
  ``trial_state``). A pruned trial's run ends KILLED with
  ``trial_state=PRUNED`` and ``state_reason``; a failed one FAILED with
  ``trial_state=FAIL``.
- Resume: the same command continues the study: finished trials are kept,
  grid points done (a COMPLETE or PRUNED trial) are skipped, a point whose
  trials all failed (an error, Ctrl-C, SIGTERM) is run again, trials whose
  heartbeat stopped (dead process) are failed and retried once, and their
  MLflow runs closed as FAILED. Bad input (data, space, storage, an MLflow
  store other than the study's) is refused before a trial is created.
- Workers: the same command started in several processes or machines on one
  RDB storage (PostgreSQL) shares the study. Optuna hands out trials: grid
  trial *n* is grid point *n* (trial numbers are unique in the storage), a
  retried or queued trial is popped by exactly one worker, and a grid point
  (or queued start point) that two workers raced for is run by the
  lower-numbered trial only. A worker with nothing left to start waits while
  other workers' trials run (one may die and come back as a retry), then
  leaves; the worker that ran the best trial registers it (another does only
  once that worker's session has ended). ``status()`` shows a study's trials
  by state and worker.

Modules: ``options`` (what a study is asked to do, what it returns),
``storage`` (the RDB storage and ``status()``), ``run`` (``run_study``: the
worker loop), ``trials`` (one trial: sample, train, report), ``summary`` (the
parent run's record and registration).
"""

from emorec.study.options import (
    OBJECTIVES,
    PRUNERS,
    SAMPLERS,
    TEST_METRIC,
    StudyOptions,
    StudyResult,
)
from emorec.study.run import run_study
from emorec.study.storage import default_storage, make_storage, mask, status
from emorec.study.trials import PointTaken, PruningCallback

__all__ = [
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "TEST_METRIC",
    "PointTaken",
    "PruningCallback",
    "StudyOptions",
    "StudyResult",
    "default_storage",
    "make_storage",
    "mask",
    "run_study",
    "status",
]
