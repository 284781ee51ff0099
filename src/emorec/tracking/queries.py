"""Reading runs back for the comparison report: champions and the best run per pair."""

from __future__ import annotations

import mlflow

from emorec.config import REPORTED
from emorec.tracking import store
from emorec.tracking.model_registry import CHAMPION, current
from emorec.tracking.model_uris import EMOTION_MODEL

REPORT_METRICS = (
    "test_accuracy",
    "test_f1_macro",
    "test_auc_roc_macro",
    "train_time_s",
    "eval_time_s",
    "peak_rss_mb",
    "peak_rss_share_mb",
    "num_parameters",
    "flops_per_image",
)
# A cross-validated run (a final fit) is reported by its folds' figures: the mean, and
# the spread beside it.
CV_REPORTED = (
    "test_accuracy",
    "test_f1_macro",
    "test_auc_roc_macro",
    "train_time_s",
    "eval_time_s",
    "peak_rss_mb",
)
REPORT_PARAMS = (*REPORTED, "split_digest")  # the split identifies what the test set was


def champions() -> list[dict]:
    """One row per registered ``emorec-*`` model with a champion: its run's numbers."""
    client, rows = store.client(), []
    for rm in client.search_registered_models("name LIKE 'emorec-%'"):
        version = current(client, rm.name, CHAMPION)
        if version is not None:
            rows.append(
                run_row(
                    version.run_id,
                    source=f"champion v{version.version}",
                    model_uri=f"models:/{rm.name}@{CHAMPION}",
                )
            )
    return rows


def best_runs(metric: str = "val_final_accuracy") -> list[dict]:
    """The best FINISHED run per (model, dataset) by ``metric``, over every experiment.

    Chosen on validation accuracy by default: choosing on the test split would
    flatter the test numbers the report then shows.
    """
    store.configure()
    query = f"attributes.status = 'FINISHED' AND metrics.{metric} >= 0"
    runs = mlflow.search_runs(
        search_all_experiments=True,
        output_format="list",
        filter_string=query,
        order_by=[f"metrics.{metric} DESC"],
        max_results=5000,
    )
    best: dict[tuple[str, str], object] = {}
    for run in runs:
        best.setdefault((run.data.tags.get("model"), run.data.tags.get("dataset")), run)
    return [run_row(run.info.run_id, source="best run", run=run) for run in best.values()]


def run_row(run_id: str, *, source: str, model_uri: str = "", run=None) -> dict:
    """A run's report row: model, dataset, metrics, hyperparameters, link."""
    run = run or store.client().get_run(run_id)
    data = run.data
    metrics = {m: data.metrics.get(m) for m in REPORT_METRICS}
    folds = data.params.get("folds", "0")
    cross_validated = f"cv_{CV_REPORTED[0]}_mean" in data.metrics
    if cross_validated:
        for m in CV_REPORTED:
            metrics[m] = data.metrics.get(f"cv_{m}_mean")
            metrics[f"{m}_std"] = data.metrics.get(f"cv_{m}_std")
    return {
        "model": data.tags.get("model", "?"),
        "dataset": data.tags.get("dataset", "?"),
        "source": source,
        "protocol": f"{folds}-fold CV" if cross_validated else "test split",
        **metrics,
        **{p: data.params.get(p, "") for p in REPORT_PARAMS},
        "run_id": run_id,
        "run_link": store.run_link(run.info.experiment_id, run_id),
        "model_uri": model_uri or f"runs:/{run_id}/{EMOTION_MODEL}",
        "params": dict(data.params),
    }
