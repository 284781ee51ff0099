"""Optuna studies per model-dataset pair; the only module that talks to Optuna.

``run_study(values, options)`` creates or resumes the study
``<model>-<dataset>-<sampler>-<objective>`` (or ``options.study_name``) in
an RDB storage (default: SQLite ``mlruns/optuna.db``; any SQLAlchemy URL,
PostgreSQL for several workers), runs trials until ``n_trials`` trials have
finished, the grid is exhausted or the timeout passes, and registers the best
trial's model (``emorec.registry``).

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
  grid points done are skipped, trials whose heartbeat stopped (dead process)
  are failed and retried once, and their MLflow runs closed as FAILED.
- Workers: the same command started in several processes or machines on one
  RDB storage (PostgreSQL) shares the study. Optuna hands out trials: grid
  trial *n* is grid point *n* (trial numbers are unique in the storage), a
  retried or queued trial is popped by exactly one worker, and a grid point
  that two workers raced for is run by the lower-numbered trial only. A worker
  with nothing left to start waits while other workers' trials run (one may
  die and come back as a retry), then leaves; the worker that ran the best
  trial registers it. ``status()`` shows a study's trials by state and worker.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import socket
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from emorec import registry, search_space, tracking
from emorec.config import TrainConfig
from emorec.engines.base import Callback, TrainingDiverged

log = logging.getLogger(__name__)

# objective -> ((run metric, direction), ...); the first is what pruning and "best" use.
OBJECTIVES = {
    "accuracy": (("val_final_accuracy", "maximize"),),
    "f1": (("val_final_f1_macro", "maximize"),),
    "multi": (("val_final_accuracy", "maximize"), ("train_time_s", "minimize"),
              ("peak_rss_mb", "minimize")),
}
# The test metric registration compares champions on, per objective.
TEST_METRIC = {"accuracy": "test_accuracy", "f1": "test_f1_macro", "multi": "test_accuracy"}
SAMPLERS = ("grid", "tpe")
PRUNERS = ("median", "hyperband", "none")
DEFAULT_TPE_TRIALS = 20
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)  # what counts towards n_trials
_SCHEMA_ATTEMPTS = 5  # tries to open a storage whose tables another worker is creating
# Config fields a study's trials must share to be comparable (checked on resume).
_NOT_COMPARED = ("data_dir", "experiment", "run_name", "progress", "system_metrics", "log_model")


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
            raise ValueError("pruning needs a single objective; use --pruner none with "
                             "--objective multi")
        if self.n_trials is not None and self.n_trials < 1:
            raise ValueError(f"n_trials must be >= 1, got {self.n_trials}")
        if self.heartbeat_interval < 1 or self.grace_period < self.heartbeat_interval:
            raise ValueError("heartbeat_interval must be >= 1 and grace_period at least as "
                             f"long, got {self.heartbeat_interval} and {self.grace_period}")

    @property
    def pruner_name(self) -> str:
        if self.pruner is not None:
            return self.pruner
        return "median" if self.sampler == "tpe" and self.objective != "multi" else "none"


@dataclass
class GridPointTaken(RuntimeError):
    """Another worker's trial already runs (or ran) this grid point: this trial is not run."""


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
    registration: registry.Registration | None = None
    orphans_closed: list[str] = field(default_factory=list)


def _choice(name: str, value, valid: tuple) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")


# --- storage -----------------------------------------------------------------------------------

def default_storage() -> str:
    url = os.environ.get("EMOREC_OPTUNA_STORAGE")
    if url:
        return url
    path = (tracking.STORE_DIR / "optuna.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def mask(url: str) -> str:
    """The URL with its password hidden, for anything printed or logged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<not a database URL>"


def make_storage(url: str, heartbeat_interval: int,
                 grace_period: int) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats: a trial a dead process left RUNNING is failed, retried once."""
    from sqlalchemy.exc import ArgumentError, IntegrityError, ProgrammingError

    # SQLite: wait for a lock rather than fail while another process writes;
    # servers: test pooled connections, which idle through hour-long trials.
    engine = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
              else {"pool_pre_ping": True})

    attempt = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, heartbeat_stale_trial_callback=(
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)))
        except ArgumentError:
            raise ValueError(f"storage {mask(url)!r} is not a SQLAlchemy URL; e.g. sqlite:///"
                             "mlruns/optuna.db or postgresql+psycopg2://user@host/db") from None
        except (IntegrityError, ProgrammingError):
            # Workers started together on an empty database all create Optuna's tables;
            # all but one collide (duplicate type or table). Then the tables exist.
            attempt += 1
            if attempt == _SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.2 + random.random())


# --- the study ---------------------------------------------------------------------------------

def run_study(values: dict, options: StudyOptions = StudyOptions()) -> StudyResult:
    """Create or resume the study for ``values`` (model, dataset, data_dir, fixed overrides)."""
    base, space = _resolve(values, options)
    name = options.study_name or (f"{base.model}-{base.dataset}-{options.sampler}-"
                                  f"{options.objective}")
    url = options.storage or default_storage()
    study, seed = _open(name, make_storage(url, options.heartbeat_interval,
                                           options.grace_period), base, space, options)
    orphans = _recover(study, name)
    result = StudyResult(name, mask(url), options.objective, 0, {}, [], orphans_closed=orphans)
    if _work_left(study, space, options) != "done":
        with tracking.start_run(base.replace(run_name=f"study:{name}", system_metrics=False),
                                tags={"kind": "study", "study": name, **_session_tags()}) as run:
            result.parent_run_id = run.info.run_id
            _log_settings(name, url, base, space, options, seed)
            ran = _optimize(study, name, base, space, options)
            result.new_trials = len(ran)
            result.orphans_closed += _recover(study, name)
            _finish(study, name, base, options, result, ran)
    else:
        log.info("study %s: nothing left to run (%d trials finished)", name,
                 len(study.get_trials(deepcopy=False, states=FINISHED)))
        _finish(study, name, base, options, result, None)
    return result


def _resolve(values: dict, options: StudyOptions) -> tuple[TrainConfig, search_space.SearchSpace]:
    """The base config and the space: defaults < YAML ``fixed`` < sampled < caller's values."""
    first = TrainConfig.from_mapping(values)  # validates model, dataset, overrides
    path = options.space_file or search_space.default_path(first.model)
    space = search_space.load(path, first).without(set(values) - {"model", "dataset", "data_dir"})
    base = TrainConfig.from_mapping({**space.fixed, **values})
    if options.sampler == "grid" and not space.grid:
        raise ValueError(f"{path} has no grid left to search (its grid is empty or fixed "
                         "by --set); use --sampler tpe or edit the grid")
    if options.sampler == "tpe" and not space.space:
        raise ValueError(f"{path} has no space left to sample; use --sampler grid or add a space")
    return base, space


def _open(name: str, storage, base: TrainConfig, space,
          options: StudyOptions) -> tuple[optuna.Study, int]:
    """The study, created or loaded and checked, with this session's sampler and its seed."""
    directions = [d for _, d in OBJECTIVES[options.objective]]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # we log each trial ourselves
    study = optuna.create_study(storage=storage, study_name=name, directions=directions,
                                pruner=_pruner(options, base), load_if_exists=True)
    _check_settings(study, base, space, options)
    # Grid: the same seed in every worker, so that trial n is grid point n everywhere.
    # TPE: seeded differently per session (a resumed study must not replay its first draws)
    # and per worker (workers started together must not draw the same random points);
    # the seed is logged with the session. Optuna's constant liar (on by default) keeps
    # concurrent workers from proposing the same point as each other's running trials.
    # (Host and pid both: containers all run their worker as pid 1.)
    seed = base.seed if options.sampler == "grid" else int(np.random.SeedSequence(
        [base.seed, len(study.get_trials(deepcopy=False)), os.getpid(),
         zlib.crc32(socket.gethostname().encode())]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = (optuna.samplers.GridSampler(space.grid, seed=seed)
                         if options.sampler == "grid" else
                         optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                    n_startup_trials=_startup(options)))
    if options.sampler == "tpe":
        for point in space.start:  # skip_if_exists: a resumed study does not enqueue twice
            study.enqueue_trial(_labelled(point, space, base), skip_if_exists=True)
    return study, seed


def _startup(options: StudyOptions) -> int:
    """Random trials before TPE models the space: Optuna's 10, fewer on small budgets."""
    return min(10, max(2, (options.n_trials or DEFAULT_TPE_TRIALS) // 3))


def _pruner(options: StudyOptions, base: TrainConfig) -> optuna.pruners.BasePruner:
    if options.pruner_name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=options.pruner_startup_trials,
                                           n_warmup_steps=options.pruner_warmup_epochs)
    if options.pruner_name == "hyperband":  # resource = epochs
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=base.epochs,
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def _check_settings(study: optuna.Study, base: TrainConfig, space, options: StudyOptions) -> None:
    """A resumed study must mean the same thing: same objective, space and fixed values."""
    settings = {"objective": options.objective, "space": space.digest(options.sampler),
                **{k: v for k, v in base.to_params().items() if k not in _NOT_COMPARED}}
    stored = study.user_attrs.get("emorec")
    if stored is None:
        study.set_user_attr("emorec", settings)
        return
    changed = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if changed:
        diff = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        raise ValueError(f"study {study.study_name!r} was created with other settings ({diff}); "
                         "re-run with the original ones or start a new study with --study-name")


def _recover(study: optuna.Study, name: str) -> list[str]:
    """Fail trials whose heartbeat stopped (retried once), then close their MLflow runs.

    Parent runs of dead sessions are closed too when they ran on this machine
    (their process id is checked); another machine's are left to it.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state.name for t in study.get_trials(deepcopy=False)}
    closed = registry.close_orphaned_trial_runs(name, states)
    return closed + registry.close_orphaned_study_runs(name, _session_alive)


def _session_tags() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _session_alive(run) -> bool:
    """Whether the process that opened this parent run still runs (unknown -> assume so)."""
    import psutil

    tags = run.data.tags
    if tags.get("host") != socket.gethostname() or not tags.get("pid", "").isdigit():
        return True
    try:
        process = psutil.Process(int(tags["pid"]))
        # A recycled pid belongs to a process younger than the run; a killed process
        # whose parent has not reaped it yet is a zombie, dead all the same.
        return (process.create_time() * 1000 <= run.info.start_time + 1000
                and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _target(space, options: StudyOptions) -> int:
    """Finished trials the study should reach (grid: points to run)."""
    if options.sampler == "grid":
        return min(options.n_trials or space.grid_size(), space.grid_size())
    return options.n_trials or DEFAULT_TPE_TRIALS


def _work_left(study: optuna.Study, space, options: StudyOptions) -> str:
    """"start" a trial, "wait" for other workers' running trials, or "done".

    Grid: a point is taken once a trial holds it (whatever its state); TPE: the
    running trials count towards the target, as they will finish (or die and be
    queued again as a retry). Queued trials (retries, start points) always run.
    """
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return "start"
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if options.sampler == "grid":
        taken = len({t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs})
    else:
        taken = sum(t.state in FINISHED for t in trials) + running
    if taken < _target(space, options):
        return "start"
    return "wait" if running else "done"


def _optimize(study, name: str, base: TrainConfig, space, options: StudyOptions) -> list[int]:
    """This worker's share of the study: a trial at a time while any is left to start,
    waiting while other workers' trials run; returns the numbers of the trials it ran."""
    ran: list[int] = []
    deadline = time.monotonic() + options.timeout if options.timeout else float("inf")
    poll = min(options.heartbeat_interval, 10)
    objective, waited = _Objective(name, base, space, options), False

    def log_trial(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran.append(trial.number)
        values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else "-"
        log.info("trial %d %s: %s %s %s", trial.number, trial.state.name, values,
                 trial.user_attrs.get("config"), trial.user_attrs.get("state_reason", ""))

    while time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial becomes a retry
        todo = _work_left(study, space, options)
        if todo == "done":
            break
        if todo == "wait":
            if not waited:
                log.info("study %s: nothing left to start; waiting for other workers' running "
                         "trials (a dead one is retried here after %d s)", name,
                         options.grace_period)
            waited = True
            time.sleep(poll)
            continue
        waited = False
        # A diverged trial is a result (a bad point), not a reason to stop the study.
        study.optimize(objective, n_trials=1, catch=(TrainingDiverged, GridPointTaken),
                       gc_after_trial=True, callbacks=[log_trial])
    return ran


class PruningCallback(Callback):
    """Reports each epoch's validation accuracy to the trial; raises TrialPruned when told to."""

    def __init__(self, trial: optuna.Trial, pruner: str, monitor: str = "val_accuracy"):
        self.trial, self.pruner, self.monitor = trial, pruner, monitor

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            return
        value = float(logs[self.monitor])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.monitor} {value:.4f} after epoch {epoch}: "
                                     f"stopped by the {self.pruner} pruner")


class _Objective:
    """One trial: sample a config, train it as a nested run, return the objective value(s)."""

    def __init__(self, name: str, base: TrainConfig, space, options: StudyOptions):
        self.name, self.base, self.space, self.options = name, base, space, options

    def __call__(self, trial: optuna.Trial):
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        if self.options.sampler == "grid":
            _claim_grid_point(trial)
        overrides = _suggest(trial, self.space, self.options.sampler, self.base)
        trial.set_user_attr("config", overrides)
        # A retried trial inherits its user attributes: origin names the first attempt.
        origin = trial.user_attrs.get("origin_trial", trial.number)
        trial.set_user_attr("origin_trial", origin)
        cfg = self.base.replace(**overrides, run_name=f"{self.name}/trial-{trial.number}")
        tags = {"kind": "trial", "study": self.name, "trial_number": str(trial.number),
                "trial_state": "RUNNING", "origin_trial": str(origin)}
        # Report every epoch even without a pruner (the intermediate-values plot);
        # Optuna takes no reports from multi-objective trials.
        callbacks = ([] if self.options.objective == "multi"
                     else [PruningCallback(trial, self.options.pruner_name)])
        from emorec.training import train  # heavy imports (engines) only when a trial runs

        try:
            result = train(cfg, callbacks, nested=True, tags=tags)
        except optuna.TrialPruned as exc:
            # KILLED, not FAILED: the run was stopped on purpose and nothing went wrong.
            self._mark(trial, "PRUNED", str(exc), status="KILLED")
            raise
        except (Exception, KeyboardInterrupt) as exc:
            self._mark(trial, "FAIL", f"{type(exc).__name__}: {exc}")
            raise
        trial.set_user_attr("mlflow_run_id", result.run_id)
        trial.set_user_attr("test", {k: v for k, v in result.metrics.items()
                                     if k.startswith("test_")})
        registry.mark_trial_run(self.name, trial.number, "COMPLETE")
        return _values(result.metrics, self.options.objective)

    def _mark(self, trial: optuna.Trial, state: str, reason: str,
              status: str | None = None) -> None:
        trial.set_user_attr("state_reason", reason[:1000])
        run_id = registry.mark_trial_run(self.name, trial.number, state, reason, status)
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)


def _claim_grid_point(trial: optuna.Trial) -> None:
    """Refuse a grid point another live or finished trial holds: the lower number keeps it.

    Only a race makes two trials hold one point (a worker created a trial past
    the grid's size while the last points were being taken); this keeps every
    grid point trained once, whichever worker got there first.
    """
    trials = trial.study.get_trials(deepcopy=False)
    point = next(t for t in trials if t.number == trial.number).system_attrs.get("grid_id")
    holder = next((t for t in trials if t.number < trial.number and t.state in
                   (TrialState.RUNNING, *FINISHED) and t.system_attrs.get("grid_id") == point),
                  None)
    if holder is not None:
        reason = (f"grid point {point} is trial {holder.number}'s (another worker took it "
                  "first): not run twice")
        trial.set_user_attr("state_reason", reason)
        raise GridPointTaken(reason)


def _values(metrics: dict, objective: str):
    values = [float(metrics.get(key, np.nan)) for key, _ in OBJECTIVES[objective]]
    return values[0] if len(values) == 1 else values


def _suggest(trial: optuna.Trial, space, sampler: str, base: TrainConfig) -> dict:
    """The trial's config overrides (TrainConfig field -> value)."""
    if sampler == "grid":
        return {k: trial.suggest_categorical(k, v) for k, v in space.grid.items()}
    context, values = base.to_params(), {}
    for name, alternatives in space.space.items():
        alt = next((a for a in alternatives if a.holds(context)), None)
        if alt is None:  # no condition holds: the field keeps its fixed value
            continue
        label = alt.label(name)
        if alt.choices is not None:
            value = trial.suggest_categorical(label, list(alt.choices))
        elif alt.is_int:
            value = trial.suggest_int(label, int(alt.low), int(alt.high), step=int(alt.step or 1),
                                      log=alt.log)
        else:
            value = trial.suggest_float(label, alt.low, alt.high, step=alt.step, log=alt.log)
        values[name] = context[name] = value
    return values


def _labelled(point: dict, space, base: TrainConfig) -> dict:
    """A start point in Optuna's parameter names (one per alternative)."""
    context, params = {**base.to_params(), **point}, {}
    for name, alternatives in space.space.items():
        alt = next((a for a in alternatives if a.holds(context)), None)
        if alt is not None and name in point:
            params[alt.label(name)] = point[name]
    return params


# --- results -----------------------------------------------------------------------------------

def _finish(study: optuna.Study, name: str, base: TrainConfig, options: StudyOptions,
            result: StudyResult, ran: list[int] | None) -> None:
    """Summarise the study; register its best trial when this session ran it (``ran``:
    the trial numbers this worker ran; None for a session that had nothing to run)."""
    trials = study.get_trials(deepcopy=False)
    result.states = {s.name: sum(t.state == s for t in trials) for s in TrialState
                     if any(t.state == s for t in trials)}
    result.best = _best(study, options.objective)
    if result.parent_run_id:
        _log_summary(study, result, options)
    best_run = result.best[0]["run_id"] if result.best else None
    # With several workers, the one that ran the best trial registers it (once, not N times);
    # a best trial of an earlier session (which may have died before registering) is
    # registered by whoever finishes now: registration is idempotent.
    mine = ran is None or (result.best and _ours(study, result.best[0]["number"], ran))
    if options.register and best_run and not mine:
        log.info("study %s: best trial %d ran on another worker, which registers it", name,
                 result.best[0]["number"])
    elif options.register and best_run:
        result.registration = registry.register_best(
            best_run, registry.model_name(base.model, base.dataset), TEST_METRIC[options.objective],
            tags={"study": name, "trial_number": result.best[0]["number"],
                  "objective": options.objective})
        if result.parent_run_id and result.registration:
            reg = result.registration
            tracking.set_tags({"registered_model": reg.name, "registered_version": reg.version,
                               "registered_alias": reg.alias})


def _ours(study: optuna.Study, number: int, ran: list[int]) -> bool:
    """Whether this session ran trial ``number`` or it finished before this session began."""
    if number in ran:
        return True
    trials = study.get_trials(deepcopy=False)
    mine = [t for t in trials if t.number in ran]
    best = next(t for t in trials if t.number == number)
    return bool(mine) and best.datetime_complete < min(t.datetime_start for t in mine)


def _best(study: optuna.Study, objective: str) -> list[dict]:
    """Best trial first; for multi the Pareto front ordered by validation accuracy, then time."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    trials = study.best_trials if objective == "multi" else [study.best_trial]
    trials = sorted(trials, key=lambda t: (-t.values[0], *t.values[1:]))
    return [{"number": t.number, "values": list(t.values), "config": t.user_attrs.get("config", {}),
             "run_id": t.user_attrs.get("mlflow_run_id")} for t in trials]


def _log_settings(name: str, url: str, base: TrainConfig, space, options: StudyOptions,
                  seed: int) -> None:
    """Study settings as ``study.*`` params: under `mlflow run` the parent run is the project
    run, which already holds the entry point's parameters under the plain names."""
    settings = {k: v for k, v in dataclasses.asdict(options).items()
                if k not in ("storage", "study_name", "pruner", "register", "plots")}
    settings.update(name=name, storage=mask(url), pruner=options.pruner_name,
                    space_digest=space.digest(options.sampler), grid_size=space.grid_size(),
                    sampler_seed=seed,
                    worker=f"{socket.gethostname()}:{os.getpid()}")
    tracking.log_params({f"study.{k}": v for k, v in settings.items()})
    tracking.log_text(Path(space.path).read_text(), "optuna/space.yaml")
    tracking.log_json({"base_config": base.to_params(), "fixed": space.fixed}, "optuna/base.json")


def _log_summary(study: optuna.Study, result: StudyResult, options: StudyOptions) -> None:
    """The parent run's record: trial counts, the best trial, the trials table, the plots."""
    tracking.log_metrics({"new_trials": result.new_trials,
                          **{f"trials_{k.lower()}": v for k, v in result.states.items()}})
    if result.best:
        best = result.best[0]
        tracking.log_params({f"best.{k}": v for k, v in best["config"].items()})
        tracking.log_metrics({f"best_{metric}": value for (metric, _), value
                              in zip(OBJECTIVES[options.objective], best["values"])})
        tracking.set_tags({"best_trial": best["number"], "best_run_id": best["run_id"]})
    if options.objective == "multi":
        tracking.log_json({"objectives": [m for m, _ in OBJECTIVES["multi"]],
                           "pareto_front": result.best}, "optuna/pareto_front.json")
    tracking.log_text(study.trials_dataframe().to_csv(index=False), "optuna/trials.csv")
    if not options.plots:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on twin axes, small studies
        for name, make in _plots(study, options.objective):
            try:
                axes = make()
            except Exception as exc:  # a plot is a bonus: never fail a finished study over one
                log.warning("skipped the %s plot: %s", name, exc)
                continue
            fig = np.ravel(axes)[0].figure
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()  # Optuna's figures clip long names such as lr[optimizer=sgd]
            tracking.log_figure(fig, f"optuna/{name}.png")


def _plots(study: optuna.Study, objective: str):
    """(name, thunk) for each Optuna plot that makes sense for this study."""
    from optuna.visualization import matplotlib as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    metric = OBJECTIVES[objective][0][0]
    # Multi-objective plots need one target: validation accuracy.
    target = ({"target": lambda t: t.values[0], "target_name": metric}
              if objective == "multi" else {"target_name": metric})
    yield "optimization_history", lambda: vis.plot_optimization_history(study, **target)
    if len(complete) >= 2:  # importances need variation to attribute
        yield "param_importances", lambda: vis.plot_param_importances(study, **target)
    yield "parallel_coordinate", lambda: vis.plot_parallel_coordinate(study, **target)
    if objective == "multi":
        yield "pareto_front", lambda: vis.plot_pareto_front(
            study, target_names=[m for m, _ in OBJECTIVES["multi"]])
    elif any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        yield "intermediate_values", lambda: vis.plot_intermediate_values(study)


# --- status (emorec study status) --------------------------------------------------------------

def status(storage: str | None = None, name: str | None = None) -> list[dict]:
    """Every study in ``storage`` (or the one named): trials by state, the best value, and
    the running trials with the worker (host:pid) that runs each and since when."""
    url = storage or default_storage()
    storage_obj = make_storage(url, 30, 120)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage_obj,
                                                                   include_best_trial=False)]
    if name is not None and name not in names:
        raise ValueError(f"no study {name!r} in {mask(url)}; studies there: "
                         f"{', '.join(sorted(names)) or 'none'}")
    rows = []
    for study_name in [name] if name else sorted(names):
        study = optuna.load_study(study_name=study_name, storage=storage_obj)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        rows.append({
            "study": study_name, "storage": mask(url),
            "directions": [d.name.lower() for d in study.directions],
            "states": {s.name: n for s in TrialState
                       if (n := sum(t.state == s for t in trials))},
            "best": max((t.values[0] for t in complete), default=None)
            if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
            else min((t.values[0] for t in complete), default=None),
            "running": [{"number": t.number, "worker": t.user_attrs.get("worker", "?"),
                         "since": t.datetime_start.isoformat(timespec="seconds")
                         if t.datetime_start else None,
                         "config": t.user_attrs.get("config", t.params)}
                        for t in trials if t.state == TrialState.RUNNING],
            "workers": sorted({t.user_attrs["worker"] for t in trials
                               if "worker" in t.user_attrs}),
        })
    return rows
