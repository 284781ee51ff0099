"""The MLflow side of studies and reports: trial runs, registered models, champions.

Like ``tracking`` (which it builds on) this module talks to MLflow so that
``study`` and ``report`` do not. It covers three things:

- trial-run bookkeeping: mark a trial's run PRUNED/FAIL, close the runs of
  trials whose process died (orphans) as FAILED;
- registration: the best trial's raw-image ``emotion_model`` becomes a
  version of ``emorec-<model>-<dataset>``; the ``champion`` alias moves to it
  only when it beats the current champion on the same test metric, the same
  split (``split_digest``) and the same data (dataset digest), otherwise it
  is the ``challenger``; the comparison is written into the version's
  description and tags;
- reading champions and best runs back for the comparison report.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from emorec import tracking

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
EMOTION_MODEL = "emotion_model"  # the raw-image pyfunc every run logs (see tracking)
REPORT_METRICS = ("test_accuracy", "test_f1_macro", "test_auc_roc_macro", "train_time_s",
                  "eval_time_s", "peak_rss_mb", "num_parameters")
REPORT_PARAMS = ("lr", "batch_size", "optimizer", "epochs", "dropout", "weight_decay",
                 "image_size", "split_digest")


def model_name(model: str, dataset: str) -> str:
    return f"emorec-{model}-{dataset}"


def _client() -> MlflowClient:
    tracking.configure()
    return MlflowClient()


# --- trial runs ------------------------------------------------------------------------------

def trial_runs(study: str, *, status: str | None = None, trial_number: int | None = None) -> list:
    """Runs of a study's trials (tag ``kind=trial``), newest first, in any experiment."""
    tracking.configure()
    query = f"tags.kind = 'trial' AND tags.study = '{_quote(study)}'"
    if status:
        query += f" AND attributes.status = '{status}'"
    if trial_number is not None:
        query += f" AND tags.trial_number = '{trial_number}'"
    return mlflow.search_runs(search_all_experiments=True, filter_string=query,
                              order_by=["attributes.start_time DESC"], output_format="list")


def run_exists(run_id: str) -> bool:
    """Whether the current tracking store holds ``run_id`` (a study resumed under another
    ``MLFLOW_TRACKING_URI`` does not find its runs)."""
    try:
        _client().get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise
    return True


def mark_trial_run(study: str, trial_number: int, state: str, reason: str = "",
                   status: str | None = None) -> str | None:
    """Record a trial's Optuna state (and reason) on its run; optionally end it with ``status``."""
    runs = trial_runs(study, trial_number=trial_number)
    if not runs:  # the trial failed before its run started (e.g. while loading data)
        return None
    run_id, client = runs[0].info.run_id, _client()
    client.set_tag(run_id, "trial_state", state)
    if reason:
        client.set_tag(run_id, "state_reason", reason[:5000])
    if status:
        client.set_terminated(run_id, status)
    return run_id


def close_orphaned_trial_runs(study: str, states: dict[int, str]) -> list[str]:
    """End as FAILED each RUNNING run whose trial Optuna has finished (``states``: number->state).

    Such a run belonged to a process that died mid-trial: Optuna's heartbeat
    has since failed (and maybe re-queued) the trial, but nothing ended the
    run (a live trial ends its run before Optuna records its state). Runs of
    trials RUNNING, or too new to be in ``states``, are left alone: another
    worker may own them.
    """
    closed, client = [], _client()
    for run in trial_runs(study, status="RUNNING"):
        number = int(run.data.tags.get("trial_number", -1))
        state = states.get(number)
        if state not in ("COMPLETE", "PRUNED", "FAIL"):
            continue
        client.set_tag(run.info.run_id, "trial_state", "FAIL")
        client.set_tag(run.info.run_id, "failure_reason",
                       f"orphaned: the process running trial {number} died; Optuna marks the "
                       f"trial {state}")
        client.set_terminated(run.info.run_id, "FAILED")
        closed.append(run.info.run_id)
    if closed:
        log.warning("closed %d orphaned run(s) of study %s as FAILED", len(closed), study)
    return closed


def running_study_sessions(study: str) -> list:
    """The RUNNING parent runs of ``study``: one per worker session still open (or dead
    and not yet closed), tagged with its ``host`` and ``pid``."""
    tracking.configure()
    query = (f"tags.kind = 'study' AND tags.study = '{_quote(study)}' "
             "AND attributes.status = 'RUNNING'")
    return mlflow.search_runs(search_all_experiments=True, filter_string=query,
                              output_format="list")


def close_orphaned_study_runs(study: str, alive) -> list[str]:
    """End as FAILED every RUNNING parent run of ``study`` whose process ``alive(run)`` denies."""
    closed, client = [], _client()
    for run in running_study_sessions(study):
        if alive(run):
            continue
        client.set_tag(run.info.run_id, "failure_reason",
                       f"orphaned: its process ({run.data.tags.get('host')}, pid "
                       f"{run.data.tags.get('pid')}) died before the session ended")
        client.set_terminated(run.info.run_id, "FAILED")
        closed.append(run.info.run_id)
    return closed


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


# --- registration ----------------------------------------------------------------------------

@dataclass
class Registration:
    name: str
    version: str
    alias: str  # champion | challenger
    metric: str
    value: float
    reason: str
    previous_version: str | None = None
    previous_value: float | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}"


def emotion_model_uri(run_id: str) -> str | None:
    """``models:/<model_id>`` of the run's logged ``emotion_model`` (MLflow 3 logged models)."""
    client = _client()
    for output in client.get_run(run_id).outputs.model_outputs:
        if client.get_logged_model(output.model_id).name == EMOTION_MODEL:
            return f"models:/{output.model_id}"
    return None


def register_best(run_id: str, name: str, metric: str,
                  tags: dict | None = None) -> Registration | None:
    """Register the run's ``emotion_model`` as a version of ``name`` and set its alias.

    Idempotent: a run already registered under ``name`` is not registered
    again (a resumed study that found no better trial changes nothing).
    """
    uri = emotion_model_uri(run_id)
    if uri is None:
        log.warning("run %s logged no %s (log_model=false?): nothing registered", run_id,
                    EMOTION_MODEL)
        return None
    client = _client()
    existing = client.search_model_versions(f"name = '{_quote(name)}' AND run_id = '{run_id}'")
    if existing:
        return _from_version(existing[0], metric)
    facts = _facts(client, run_id, metric)
    champion = _current(client, name, CHAMPION)
    held = champion and _facts(client, champion.run_id, metric)
    alias, reason = decide(facts, held, metric)
    version = mlflow.register_model(uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    _record(client, version, facts, champion, alias, reason, metric)
    client.set_registered_model_alias(name, alias, version.version)
    if alias == CHAMPION and champion is not None:
        client.set_model_version_tag(name, champion.version, "replaced_by_version", version.version)
    log.info("registered %s version %s as %s: %s", name, version.version, alias, reason)
    return Registration(name, str(version.version), alias, metric, facts["value"], reason,
                        champion and str(champion.version), held and held["value"])


def decide(new: dict, champion: dict | None, metric: str) -> tuple[str, str]:
    """(alias, why): champion only when strictly better on the same split and data."""
    if champion is None:
        return CHAMPION, "first registered model: no champion to beat"
    for key in ("split_digest", "dataset_digest"):
        if new[key] != champion[key]:
            return CHALLENGER, (f"not comparable: {key} {new[key]} differs from the champion's "
                                f"{champion[key]} (a different test set)")
    if new["value"] > champion["value"]:
        return CHAMPION, f"{metric} {new['value']:.4f} beats the champion's {champion['value']:.4f}"
    return CHALLENGER, (f"{metric} {new['value']:.4f} does not beat the champion's "
                        f"{champion['value']:.4f}")


def _facts(client: MlflowClient, run_id: str, metric: str) -> dict:
    run = client.get_run(run_id)
    inputs = run.inputs.dataset_inputs if run.inputs else []
    return {"run_id": run_id, "value": float(run.data.metrics.get(metric, float("-inf"))),
            "split_digest": run.data.params.get("split_digest", "unknown"),
            "dataset_digest": inputs[0].dataset.digest if inputs else "unknown"}


def _current(client: MlflowClient, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such model or alias yet
        return None


def _record(client, version, facts: dict, champion, alias: str, reason: str, metric: str) -> None:
    against = f"champion version {champion.version}" if champion else "no champion"
    client.update_model_version(version.name, version.version, description=(
        f"Run {facts['run_id']}: {metric} {facts['value']:.4f} on split {facts['split_digest']}, "
        f"compared with {against} -> {alias}. {reason}."))
    for key, value in {"decision": alias, "decision_reason": reason, "metric": metric,
                       "metric_value": facts["value"], "split_digest": facts["split_digest"],
                       "dataset_digest": facts["dataset_digest"],
                       "compared_with_version": champion.version if champion else ""}.items():
        client.set_model_version_tag(version.name, version.version, key, str(value))


def _from_version(version, metric: str) -> Registration:
    tags = version.tags or {}
    return Registration(version.name, str(version.version), tags.get("decision", CHALLENGER),
                        tags.get("metric", metric), float(tags.get("metric_value", "nan")),
                        "already registered: " + tags.get("decision_reason", ""),
                        tags.get("compared_with_version") or None)


# --- reading back, for the report --------------------------------------------------------------

def champions() -> list[dict]:
    """One row per registered ``emorec-*`` model with a champion: its run's numbers."""
    client, rows = _client(), []
    for rm in client.search_registered_models("name LIKE 'emorec-%'"):
        version = _current(client, rm.name, CHAMPION)
        if version is not None:
            rows.append(run_row(version.run_id, source=f"champion v{version.version}",
                                model_uri=f"models:/{rm.name}@{CHAMPION}"))
    return rows


def best_runs(metric: str = "val_final_accuracy") -> list[dict]:
    """The best FINISHED run per (model, dataset) by ``metric``, over every experiment.

    Chosen on validation accuracy by default: choosing on the test split would
    flatter the test numbers the report then shows.
    """
    tracking.configure()
    query = f"attributes.status = 'FINISHED' AND metrics.{metric} >= 0"
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list",
                              filter_string=query, order_by=[f"metrics.{metric} DESC"],
                              max_results=5000)
    best: dict[tuple[str, str], object] = {}
    for run in runs:
        best.setdefault((run.data.tags.get("model"), run.data.tags.get("dataset")), run)
    return [run_row(run.info.run_id, source="best run", run=run) for run in best.values()]


def run_row(run_id: str, *, source: str, model_uri: str = "", run=None) -> dict:
    """A run's report row: model, dataset, metrics, hyperparameters, link."""
    run = run or _client().get_run(run_id)
    data = run.data
    return {"model": data.tags.get("model", "?"), "dataset": data.tags.get("dataset", "?"),
            "source": source, **{m: data.metrics.get(m) for m in REPORT_METRICS},
            **{p: data.params.get(p, "") for p in REPORT_PARAMS},
            "run_id": run_id, "run_link": run_link(run.info.experiment_id, run_id),
            "model_uri": model_uri or f"runs:/{run_id}/{EMOTION_MODEL}",
            "params": dict(data.params)}


def run_link(experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI (the tracking server, or $EMOREC_MLFLOW_UI, or `make ui`)."""
    uri = mlflow.get_tracking_uri()
    base = uri if uri.startswith(("http://", "https://")) else os.environ.get(
        "EMOREC_MLFLOW_UI", "http://127.0.0.1:5000")
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def load_pyfunc(uri: str):
    import mlflow.pyfunc

    tracking.configure()
    return mlflow.pyfunc.load_model(uri)


def log_report(folder, experiment: str = "emorec-comparison",
               tags: dict | None = None) -> tuple[str, str]:
    """Log a report folder as one run of ``experiment``; returns (run id, experiment name).

    Under `mlflow run` the run is the project run instead, in whatever experiment
    `--experiment-name` chose (MLflow resumes it from $MLFLOW_RUN_ID).
    """
    tracking.configure()
    with mlflow.start_run(experiment_id=tracking.experiment_id(experiment), run_name="compare",
                          tags={"kind": "comparison", **(tags or {})}) as run:
        mlflow.log_artifacts(str(folder), "report")
        return run.info.run_id, mlflow.get_experiment(run.info.experiment_id).name
