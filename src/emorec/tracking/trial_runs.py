"""The MLflow side of a study's trials: each trial's run and each session's parent run.

Marks a trial's run with its Optuna state (PRUNED runs end KILLED, failed ones FAILED),
and closes the runs that a dead process left RUNNING: a trial's once Optuna has
finished the trial, a session's parent run once its process is gone.
"""

from __future__ import annotations

import logging

import mlflow
from mlflow.exceptions import MlflowException

from emorec.tracking import store

log = logging.getLogger(__name__)


def trial_runs(
    study: str, *, status: str | None = None, trial_number: int | None = None, kind: str = "trial"
) -> list:
    """Runs of a study's trials (tag ``kind=trial``; ``kind="cv_fold"``: the folds of its
    cross-validated trials), newest first, in any experiment."""
    store.configure()
    query = f"tags.kind = '{kind}' AND tags.study = '{store.quote(study)}'"
    if status:
        query += f" AND attributes.status = '{status}'"
    if trial_number is not None:
        query += f" AND tags.trial_number = '{trial_number}'"
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=query,
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )


def run_exists(run_id: str) -> bool:
    """Whether the current tracking store holds ``run_id`` (a study resumed under another
    ``MLFLOW_TRACKING_URI`` does not find its runs)."""
    try:
        store.client().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def mark_trial_run(
    study: str, trial_number: int, state: str, reason: str = "", status: str | None = None
) -> str | None:
    """Record a trial's Optuna state (and reason) on its run; optionally end it with ``status``."""
    runs = trial_runs(study, trial_number=trial_number)
    if not runs:  # the trial failed before its run started (e.g. while loading data)
        return None
    run_id, client = runs[0].info.run_id, store.client()
    client.set_tag(run_id, "trial_state", state)
    if reason:
        client.set_tag(run_id, "state_reason", reason[:5000])
    if status:
        client.set_terminated(run_id, status)
    return run_id


def close_orphaned_trial_runs(study: str, states: dict[int, str]) -> list[str]:
    """End as FAILED each run a dead process left behind (``states``: trial number ->
    Optuna's state of it).

    Such a run belonged to a process that died mid-trial: Optuna's heartbeat has since
    failed (and maybe re-queued) the trial. The run is either still RUNNING, or it had
    ended FINISHED just before the process died and Optuna never recorded the trial
    COMPLETE: either way its trial is FAIL, and so must the run be (the comparison report
    and the UI's FINISHED filter then leave it out). Runs of trials RUNNING, or too new to
    be in ``states``, are left alone: another worker may own them.
    """
    closed, client = [], store.client()
    for run in trial_runs(study) + trial_runs(study, kind="cv_fold", status="RUNNING"):
        number = int(run.data.tags.get("trial_number", -1))
        state = states.get(number)
        orphaned = run.info.status == "RUNNING" and state in ("COMPLETE", "PRUNED", "FAIL")
        unrecorded = (
            run.info.status == "FINISHED"
            and state == "FAIL"
            and run.data.tags.get("trial_state") != "FAIL"
        )
        if not (orphaned or unrecorded):
            continue
        client.set_tag(run.info.run_id, "trial_state", "FAIL")
        client.set_tag(
            run.info.run_id,
            "failure_reason",
            f"orphaned: the process running trial {number} died; Optuna marks the trial {state}",
        )
        client.set_terminated(run.info.run_id, "FAILED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("closed %d orphaned run(s) of study %s as FAILED", len(closed), study)
    return closed


def running_study_sessions(study: str) -> list:
    """The RUNNING parent runs of ``study``: one per worker session still open (or dead
    and not yet closed), tagged with its ``host`` and ``pid``."""
    store.configure()
    query = (
        f"tags.kind = 'study' AND tags.study = '{store.quote(study)}' "
        "AND attributes.status = 'RUNNING'"
    )
    return mlflow.search_runs(
        search_all_experiments=True, filter_string=query, output_format="list"
    )


def close_orphaned_study_runs(study: str, alive) -> list[str]:
    """End as FAILED every RUNNING parent run of ``study`` whose process ``alive(run)`` denies."""
    closed, client = [], store.client()
    for run in running_study_sessions(study):
        if alive(run):
            continue
        client.set_tag(
            run.info.run_id,
            "failure_reason",
            f"orphaned: its process ({run.data.tags.get('host')}, pid "
            f"{run.data.tags.get('pid')}) died before the session ended",
        )
        client.set_terminated(run.info.run_id, "FAILED")
        closed.append(run.info.run_id)
    return closed
