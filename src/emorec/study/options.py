"""What a study is asked to do (``StudyOptions``) and what it returns (``StudyResult``)."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field

from optuna.trial import TrialState

from emorec.errors import UserError
from emorec.tracking import model_registry

# objective -> ((run metric, direction), ...); the first is what pruning and "best" use.
OBJECTIVES = {
    "accuracy": (("val_final_accuracy", "maximize"),),
    "f1": (("val_final_f1_macro", "maximize"),),
    "multi": (
        ("val_final_accuracy", "maximize"),
        ("train_time_s", "minimize"),
        ("peak_rss_mb", "minimize"),
    ),
}
# The test metric registration compares champions on, per objective.
TEST_METRIC = {"accuracy": "test_accuracy", "f1": "test_f1_macro", "multi": "test_accuracy"}
# Cross-validated trials (--folds) are ranked and registered by their folds' means: the
# test folds' for quality (each image tested once), training time and memory per fold.
CV_OBJECTIVES = {
    "accuracy": (("cv_test_accuracy_mean", "maximize"),),
    "f1": (("cv_test_f1_macro_mean", "maximize"),),
    "multi": (
        ("cv_test_accuracy_mean", "maximize"),
        ("cv_train_time_s_mean", "minimize"),
        ("cv_peak_rss_mb_mean", "minimize"),
    ),
}
CV_TEST_METRIC = {
    "accuracy": "cv_test_accuracy_mean",
    "f1": "cv_test_f1_macro_mean",
    "multi": "cv_test_accuracy_mean",
}


def ranked_by(objective: str, folds: int) -> tuple[tuple[str, str], ...]:
    """(run metric, direction) of each value a trial returns; the first is what pruning and
    "best" use."""
    return (CV_OBJECTIVES if folds else OBJECTIVES)[objective]


def registered_by(objective: str, folds: int) -> str:
    """The metric registration compares a study's best model with the champion on."""
    return (CV_TEST_METRIC if folds else TEST_METRIC)[objective]


SAMPLERS = ("grid", "tpe")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TPE_TRIALS = 20
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials


def worker_id() -> str:
    """This process among a study's workers: ``host:pid`` (containers all run pid 1)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def session_worker(run) -> str:
    """The ``worker_id`` of the process that opened a study's parent run (its tags)."""
    return f"{run.data.tags.get('host')}:{run.data.tags.get('pid')}"


@dataclass(frozen=True)
class StudyOptions:
    sampler: str = "grid"  # grid | tpe
    objective: str = "accuracy"  # accuracy | f1 | multi
    pruner: str | None = None  # median | hyperband | none; None = median for tpe, none otherwise
    n_trials: int | None = None  # finished trials the study should reach; None = grid size or 20
    timeout: float | None = None  # seconds after which this session starts no new trial
    storage: str | None = None  # SQLAlchemy URL; None = $EMOREC_OPTUNA_STORAGE or mlruns/optuna.db
    study_name: str | None = None  # None = <model>-<dataset>-<sampler>-<objective>
    space_file: str | None = None  # None = tuning/<model>.yaml
    heartbeat_interval: int = 30  # seconds between a running trial's heartbeats
    grace_period: int = 120  # a RUNNING trial without heartbeat for this long is failed (dead)
    pruner_startup_trials: int = 5  # median: trials that finish before any is pruned
    pruner_warmup_epochs: int = 0  # median: epochs a trial runs before it may be pruned
    register: bool = True  # register the best trial's model at the end
    plots: bool = True  # log Optuna's plots to the parent run

    def __post_init__(self) -> None:
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("objective", self.objective, tuple(OBJECTIVES))
        if self.pruner is not None:
            _choice("pruner", self.pruner, PRUNERS)
        if self.pruner not in (None, "none") and self.objective == "multi":
            raise UserError(
                "pruning needs a single objective; use --pruner none with --objective multi"
            )
        if self.n_trials is not None and self.n_trials < 1:
            raise UserError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.timeout is not None and not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UserError(
                f"timeout must be a positive number of seconds (absent or 0 for none), "
                f"got {self.timeout}"
            )
        if self.heartbeat_interval < 1 or self.grace_period < self.heartbeat_interval:
            raise UserError(
                "heartbeat_interval must be >= 1 and grace_period at least as "
                f"long, got {self.heartbeat_interval} and {self.grace_period}"
            )

    @property
    def pruner_name(self) -> str:
        if self.pruner is not None:
            return self.pruner
        return "median" if self.sampler == "tpe" and self.objective != "multi" else "none"


@dataclass
class StudyResult:
    name: str
    storage: str  # password masked
    objective: str
    new_trials: int  # trials run by this session
    states: dict[str, int]  # every trial of the study by state
    # The best trial, or the Pareto front for multi (best first): number, values, config, run_id.
    best: list[dict]
    parent_run_id: str | None = None  # None when there was nothing left to do
    registration: model_registry.Registration | None = None
    orphans_closed: list[str] = field(default_factory=list)


def _choice(name: str, value, valid: tuple) -> None:
    if value not in valid:
        raise UserError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


def target_trials(space, options: StudyOptions) -> int:
    """Finished trials the study should reach (grid: points to run)."""
    if options.sampler == "grid":
        return min(options.n_trials or space.grid_size(), space.grid_size())
    return options.n_trials or DEFAULT_TPE_TRIALS
