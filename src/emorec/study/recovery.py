"""What a study does about failure: trials whose worker died, runs left RUNNING, grid
points whose trials all failed.

A dead worker's trial is failed once its heartbeat stops and queued again once; the
MLflow runs it left open are closed (``trial_runs``); a grid point whose trials all
failed is retried by the next session, never the one it failed in.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings

import optuna
from optuna.trial import TrialState

from emorec.engines.callbacks import TrainingDiverged
from emorec.study.options import StudyOptions, session_worker, target_trials
from emorec.tracking import trial_runs

log = logging.getLogger(__name__)


def failed_points(study: optuna.Study) -> tuple[int, dict]:
    """The number of grid points some trial holds, and {point: its latest trial} for the
    points whose trials all failed (a point is done once a trial on it is COMPLETE or
    PRUNED, or diverged)."""
    by_point: dict[int, list] = {}
    for t in study.get_trials():  # copies: a retry appends to its trial's retry_history
        if "grid_id" in t.system_attrs:
            by_point.setdefault(t.system_attrs["grid_id"], []).append(t)
    return len(by_point), {
        p: ts[-1]
        for p, ts in sorted(by_point.items())
        if all(t.state == TrialState.FAIL for t in ts) and not _diverged(ts[-1])
    }


def _diverged(trial: optuna.trial.FrozenTrial) -> bool:
    """A diverged trial is a result (a bad point, seeded: it would diverge again), not a
    failure to retry."""
    return trial.user_attrs.get("state_reason", "").startswith(f"{TrainingDiverged.__name__}:")


def retry_failed_points(study: optuna.Study, space, options: StudyOptions) -> list[int]:
    """Queue a retry of every grid point whose trials all failed; returns the points.

    Such a point (an error since fixed, a worker that crashed twice) is run again
    by the next session, not by the session it failed in: a point that always
    fails cannot loop. TPE needs nothing: a failed trial does not count towards
    ``n_trials``, a new one takes its place.
    """
    if options.sampler != "grid":
        return []
    held, failed = failed_points(study)
    # With --n-trials below the grid's size, retry only as many as the target still needs.
    points = list(failed)[: max(0, target_trials(space, options) - (held - len(failed)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback()  # keeps the grid point
    for point in points:
        retry(study, failed[point])
    if points:
        log.info(
            "study %s: retrying grid point(s) %s, which failed before (trial(s) %s)",
            study.study_name,
            ", ".join(map(str, points)),
            ", ".join(str(failed[p].number) for p in points),
        )
    return points


def warn_failed_points(study: optuna.Study, name: str, options: StudyOptions) -> None:
    """Say which grid points are left failed: the study is not done yet."""
    failed = failed_points(study)[1] if options.sampler == "grid" else {}
    if failed:
        log.warning(
            "study %s: grid point(s) %s failed (see the trials' state_reason); run "
            "the same command again to retry them",
            name,
            ", ".join(map(str, failed)),
        )


def recover(study: optuna.Study, name: str) -> list[str]:
    """Fail trials whose heartbeat stopped (retried once), then close their MLflow runs.

    Parent runs of dead sessions are closed too: on this machine their process id is
    checked; on another (a container), a session is dead once Optuna failed one of its
    worker's trials for a stopped heartbeat.
    """
    fail_stale(study)
    trials = study.get_trials(deepcopy=False)
    closed = trial_runs.close_orphaned_trial_runs(name, {t.number: t.state.name for t in trials})
    dead = dead_workers(trials)
    return closed + trial_runs.close_orphaned_study_runs(
        name, lambda run: session_worker(run) not in dead and session_alive(run)
    )


def dead_workers(trials) -> set[str]:
    """The workers (``host:pid``) a trial of which Optuna failed for its stopped heartbeat:
    their process died, on any machine. A trial that raised or was pruned says why in
    its ``state_reason``; a heartbeat-failed one never got to."""
    return {
        t.user_attrs["worker"]
        for t in trials
        if t.state == TrialState.FAIL
        and t.user_attrs.get("worker")
        and not t.user_attrs.get("state_reason")
    }


def fail_stale(study: optuna.Study) -> None:
    """Fail the RUNNING trials whose heartbeat stopped; each is queued again once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def session_tags() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def session_alive(run) -> bool:
    """Whether the process that opened this parent run still runs (unknown -> assume so)."""
    import psutil

    tags = run.data.tags
    if tags.get("host") != socket.gethostname() or not tags.get("pid", "").isdigit():
        return True
    try:
        process = psutil.Process(int(tags["pid"]))
        # A recycled pid belongs to a process younger than the run; a killed process
        # whose parent has not reaped it yet is a zombie, dead all the same.
        return (
            process.create_time() * 1000 <= run.info.start_time + 1000
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.NoSuchProcess:
        return False
