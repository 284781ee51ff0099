"""The model registry: registering a run's model, its aliases and the champion rule.

The best trial's raw-image ``emotion_model`` becomes a version of
``emorec-<model>-<dataset>``; the ``champion`` alias moves to it only when it beats
the current champion on the same test metric, the same split (``split_digest``) and
the same data (dataset digest), otherwise it is the ``challenger``; the comparison is
written into the version's description and tags.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from emorec.tracking import model_uris, store
from emorec.tracking.runs import training_facts

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"


def model_name(model: str, dataset: str) -> str:
    return f"emorec-{model}-{dataset}"


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


def register_best(
    run_id: str, name: str, metric: str, tags: dict | None = None
) -> Registration | None:
    """Register the run's ``emotion_model`` as a version of ``name`` and set its alias.

    Idempotent: a run already registered under ``name`` is not registered
    again (a resumed study that found no better trial changes nothing).
    """
    uri = model_uris.emotion_model_uri(run_id)
    if uri is None:
        log.warning(
            "run %s logged no %s (log_model=false?): nothing registered",
            run_id,
            model_uris.EMOTION_MODEL,
        )
        return None
    client = store.client()
    existing = client.search_model_versions(f"name = '{store.quote(name)}' AND run_id = '{run_id}'")
    if existing:
        return _from_version(existing[0], metric)
    facts = _facts(client, run_id, metric)
    champion = current(client, name, CHAMPION)
    held = champion and _facts(client, champion.run_id, metric)
    alias, reason = decide(facts, held, metric)
    version = mlflow.register_model(uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    _record(client, version, facts, champion, alias, reason, metric)
    client.set_registered_model_alias(name, alias, version.version)
    if alias == CHAMPION and champion is not None:
        client.set_model_version_tag(name, champion.version, "replaced_by_version", version.version)
    log.info("registered %s version %s as %s: %s", name, version.version, alias, reason)
    return Registration(
        name,
        str(version.version),
        alias,
        metric,
        facts["value"],
        reason,
        champion and str(champion.version),
        held and held["value"],
    )


def decide(new: dict, champion: dict | None, metric: str) -> tuple[str, str]:
    """(alias, why): champion only when strictly better on the same split and data."""
    if champion is None:
        return CHAMPION, "first registered model: no champion to beat"
    for key in ("split_digest", "dataset_digest"):
        if new[key] != champion[key]:
            return CHALLENGER, (
                f"not comparable: {key} {new[key]} differs from the champion's "
                f"{champion[key]} (a different test set)"
            )
    if new["value"] > champion["value"]:
        return CHAMPION, f"{metric} {new['value']:.4f} beats the champion's {champion['value']:.4f}"
    return CHALLENGER, (
        f"{metric} {new['value']:.4f} does not beat the champion's {champion['value']:.4f}"
    )


def _facts(client: MlflowClient, run_id: str, metric: str) -> dict:
    facts = training_facts(run_id)
    return {**facts, "value": float(facts["metrics"].get(metric, float("-inf")))}


def current(client: MlflowClient, name: str, alias: str):
    """The version of ``name`` holding ``alias``, or None."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no such model or alias yet
        return None


def _record(client, version, facts: dict, champion, alias: str, reason: str, metric: str) -> None:
    against = f"champion version {champion.version}" if champion else "no champion"
    client.update_model_version(
        version.name,
        version.version,
        description=(
            f"Run {facts['run_id']}: {metric} {facts['value']:.4f} on split "
            f"{facts['split_digest']}, "
            f"compared with {against} -> {alias}. {reason}."
        ),
    )
    for key, value in {
        "decision": alias,
        "decision_reason": reason,
        "metric": metric,
        "metric_value": facts["value"],
        "split_digest": facts["split_digest"],
        "dataset_digest": facts["dataset_digest"],
        "compared_with_version": champion.version if champion else "",
    }.items():
        client.set_model_version_tag(version.name, version.version, key, str(value))


def _from_version(version, metric: str) -> Registration:
    tags = version.tags or {}
    return Registration(
        version.name,
        str(version.version),
        tags.get("decision", CHALLENGER),
        tags.get("metric", metric),
        float(tags.get("metric_value", "nan")),
        "already registered: " + tags.get("decision_reason", ""),
        tags.get("compared_with_version") or None,
    )
