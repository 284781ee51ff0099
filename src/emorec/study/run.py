"""``run_study``: create or resume a study, then run this worker's share of its trials."""

from __future__ import annotations

import logging
import time
import warnings
import zlib

import numpy as np
import optuna
from optuna.trial import TrialState

from emorec import search_space, tracking
from emorec.config import NOT_COMPARED, TrainConfig
from emorec.engines.callbacks import TrainingDiverged
from emorec.errors import UserError
from emorec.study.options import (
    DEFAULT_TPE_TRIALS,
    FINISHED,
    StudyOptions,
    StudyResult,
    ranked_by,
    target_trials,
    worker_id,
)
from emorec.study.recovery import (
    fail_stale,
    recover,
    retry_failed_points,
    session_tags,
    warn_failed_points,
)
from emorec.study.storage import default_storage, make_storage, mask
from emorec.study.summary import finish, log_settings
from emorec.study.trials import Objective, PointTaken, labelled
from emorec.tracking import trial_runs

log = logging.getLogger(__name__)


def run_study(values: dict, options: StudyOptions = StudyOptions()) -> StudyResult:
    """Create or resume the study for ``values`` (model, dataset, data_dir, fixed overrides)."""
    base, space = _resolve(values, options)
    _check_data(base)
    name = options.study_name or (
        f"{base.model}-{base.dataset}-{options.sampler}-{options.objective}"
    )
    # The tracking store first: a SQLite study storage beside it finds its folder made.
    tracking.configure()
    url = options.storage or default_storage()
    study, seed = _open(
        name,
        make_storage(url, options.heartbeat_interval, options.grace_period),
        base,
        space,
        options,
    )
    _check_tracking(study)
    orphans = recover(study, name)
    retry_failed_points(study, space, options)
    result = StudyResult(name, mask(url), options.objective, 0, {}, [], orphans_closed=orphans)
    if _work_left(study, space, options) != "done":
        with tracking.start_run(
            base.replace(run_name=f"study:{name}", system_metrics=False),
            tags={"kind": "study", "study": name, **session_tags()},
        ) as run:
            result.parent_run_id = run.info.run_id
            log_settings(name, url, base, space, options, seed)
            ran = _optimize(study, name, base, space, options)
            result.new_trials = len(ran)
            result.orphans_closed += recover(study, name)
            finish(study, name, base, options, result, ran)
        warn_failed_points(study, name, options)
    else:
        log.info(
            "study %s: nothing left to run (%d trials finished)",
            name,
            len(study.get_trials(deepcopy=False, states=FINISHED)),
        )
        finish(study, name, base, options, result, None)
    return result


def _resolve(values: dict, options: StudyOptions) -> tuple[TrainConfig, search_space.SearchSpace]:
    """The base config and the space: defaults < YAML ``fixed`` < sampled < caller's values."""
    first = TrainConfig.from_mapping(values)  # validates model, dataset, overrides
    path = options.space_file or search_space.default_path(first.model)
    space = search_space.load(path, first).without(set(values) - {"model", "dataset", "data_dir"})
    base = TrainConfig.from_mapping({**space.fixed, **values})
    if options.sampler == "grid" and not space.grid:
        raise UserError(
            f"{path} has no grid left to search (its grid is empty or fixed "
            "by --set); use --sampler tpe or edit the grid"
        )
    if options.sampler == "tpe" and not space.space:
        raise UserError(f"{path} has no space left to sample; use --sampler grid or add a space")
    return base, space


def _check_data(base: TrainConfig) -> None:
    """Load and split the data as a trial would: a missing folder, a layout the loader
    refuses or a class too small to split is the user's to fix, found before a trial is
    created (a trial would fail on it, for nothing). The decoded images are cached, so
    the trials with the base's preprocessing read them back rather than decode again."""
    from emorec.training import load_data, split_data

    ds = load_data(base)
    if base.folds:
        from emorec.cross_validation import check_folds

        check_folds(ds, base.folds)
    else:
        split_data(ds, base)


def _open(
    name: str, storage, base: TrainConfig, space, options: StudyOptions
) -> tuple[optuna.Study, int]:
    """The study, created or loaded and checked, with this session's sampler and its seed."""
    directions = [d for _, d in ranked_by(options.objective, base.folds)]
    # emorec logs each trial in a line; Optuna's own warning for a failed trial repeats it
    # with a traceback, which only -v (debug logging) asks for.
    debugging = logging.getLogger().isEnabledFor(logging.DEBUG)
    optuna.logging.set_verbosity(optuna.logging.WARNING if debugging else optuna.logging.ERROR)
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=directions,
        pruner=_pruner(options, base),
        load_if_exists=True,
    )
    _check_settings(study, base, space, options)
    # Grid: the same seed in every worker, so that trial n is grid point n everywhere.
    # TPE: seeded differently per session (a resumed study must not replay its first draws)
    # and per worker (workers started together must not draw the same random points);
    # the seed is logged with the session. Optuna's constant liar (on by default) keeps
    # concurrent workers from proposing the same point as each other's running trials.
    seed = (
        base.seed
        if options.sampler == "grid"
        else int(
            np.random.SeedSequence(
                [base.seed, len(study.get_trials(deepcopy=False)), zlib.crc32(worker_id().encode())]
            ).generate_state(1)[0]
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = (
            optuna.samplers.GridSampler(space.grid, seed=seed)
            if options.sampler == "grid"
            else optuna.samplers.TPESampler(
                seed=seed, multivariate=True, group=True, n_startup_trials=_startup(options)
            )
        )
    if options.sampler == "tpe":
        for point in space.start:  # skip_if_exists: a resumed study does not enqueue twice
            study.enqueue_trial(labelled(point, space, base), skip_if_exists=True)
    return study, seed


def _startup(options: StudyOptions) -> int:
    """Random trials before TPE models the space: Optuna's 10, fewer on small budgets."""
    return min(10, max(2, (options.n_trials or DEFAULT_TPE_TRIALS) // 3))


def _pruner(options: StudyOptions, base: TrainConfig) -> optuna.pruners.BasePruner:
    if options.pruner_name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options.pruner_startup_trials,
            n_warmup_steps=options.pruner_warmup_epochs,
        )
    if options.pruner_name == "hyperband":  # resource = epochs
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=base.epochs, reduction_factor=3
        )
    return optuna.pruners.NopPruner()


def _check_settings(study: optuna.Study, base: TrainConfig, space, options: StudyOptions) -> None:
    """A resumed study must mean the same thing: same objective, space and fixed values."""
    settings = {
        "objective": options.objective,
        "space": space.digest(options.sampler),
        **{k: v for k, v in base.to_params().items() if k not in NOT_COMPARED},
    }
    stored = study.user_attrs.get("emorec")
    if stored is None:
        study.set_user_attr("emorec", settings)
        return
    changed = {k: (stored.get(k), v) for k, v in settings.items() if stored.get(k) != v}
    if changed:
        diff = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
        raise UserError(
            f"study {study.study_name!r} was created with other settings ({diff}); "
            "re-run with the original ones or start a new study with --study-name"
        )


def _check_tracking(study: optuna.Study) -> None:
    """A resumed study must be tracked in the MLflow store it started in: its trials' runs
    (the best one to register, the orphans to close) are looked up there."""
    tracked = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("mlflow_run_id")]
    if tracked and not trial_runs.run_exists(tracked[-1].user_attrs["mlflow_run_id"]):
        raise UserError(
            f"study {study.study_name!r} was tracked in another MLflow store (trial "
            f"{tracked[-1].number}'s run {tracked[-1].user_attrs['mlflow_run_id']} is not in "
            "this one): set MLFLOW_TRACKING_URI to the store it started with, or start a new "
            "study with --study-name"
        )


def _work_left(study: optuna.Study, space, options: StudyOptions) -> str:
    """ "start" a trial, "wait" for other workers' running trials, or "done".

    Grid: a point is taken once a trial holds it (whatever its state: a failed
    point is queued again by the next session, see ``recovery.retry_failed_points``);
    TPE: the running trials count towards the target, as they will finish (or die and
    be queued again as a retry). Queued trials (retries, start points) always run.
    """
    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return "start"
    running = sum(t.state == TrialState.RUNNING for t in trials)
    if options.sampler == "grid":
        taken = len({t.system_attrs["grid_id"] for t in trials if "grid_id" in t.system_attrs})
    else:
        taken = sum(t.state in FINISHED for t in trials) + running
    if taken < target_trials(space, options):
        return "start"
    return "wait" if running else "done"


def _optimize(study, name: str, base: TrainConfig, space, options: StudyOptions) -> list[int]:
    """This worker's share of the study: a trial at a time while any is left to start,
    waiting while other workers' trials run; returns the numbers of the trials it ran."""
    ran: list[int] = []
    deadline = time.monotonic() + options.timeout if options.timeout else float("inf")
    poll = min(options.heartbeat_interval, 10)
    objective, waited = Objective(name, base, space, options), False

    def log_trial(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        ran.append(trial.number)
        values = ", ".join(f"{v:.4g}" for v in trial.values) if trial.values else "-"
        log.info(
            "trial %d %s: %s %s %s",
            trial.number,
            trial.state.name,
            values,
            trial.user_attrs.get("config"),
            trial.user_attrs.get("state_reason", ""),
        )

    while time.monotonic() < deadline:
        fail_stale(study)  # a dead worker's trial becomes a retry
        todo = _work_left(study, space, options)
        if todo == "done":
            break
        if todo == "wait":
            if not waited:
                log.info(
                    "study %s: nothing left to start; waiting for other workers' running "
                    "trials (a dead one is retried here after %d s)",
                    name,
                    options.grace_period,
                )
            waited = True
            time.sleep(poll)
            continue
        waited = False
        # A diverged trial is a result (a bad point), not a reason to stop the study.
        study.optimize(
            objective,
            n_trials=1,
            catch=(TrainingDiverged, PointTaken),
            gc_after_trial=True,
            callbacks=[log_trial],
        )
    return ran
