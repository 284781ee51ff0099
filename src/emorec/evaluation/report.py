"""The comparison report: one results table for every model x dataset, plus charts.

``compare()`` reads each registered model's champion (``emorec-<model>-<dataset>@champion``)
and, for pairs without one, the best finished run by validation accuracy; it writes
``results.md`` and ``results.csv`` (accuracy, macro F1, AUC ROC, training and
evaluation time, peak RSS, parameter count, hyperparameters, run link), one
bar chart per metric, and with ``cross`` the cross-dataset matrix
(``emorec.evaluation.cross_dataset``); the folder is then logged as a run of the
``emorec-comparison`` experiment. Numbers are read back from the runs, never
recomputed, so the report shows what MLflow recorded.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from emorec import tracking
from emorec.config import REPORTED
from emorec.errors import UserError
from emorec.evaluation import figures
from emorec.tracking import queries

log = logging.getLogger(__name__)

# (row key, Markdown header, format); the CSV keeps every key unformatted.
COLUMNS = (
    ("model", "model", "{}"),
    ("dataset", "dataset", "{}"),
    ("protocol", "protocol", "{}"),
    ("test_accuracy", "accuracy", "{:.4f}"),
    ("test_f1_macro", "F1 macro", "{:.4f}"),
    ("test_auc_roc_macro", "AUC ROC", "{:.4f}"),
    ("train_time_s", "train s", "{:.1f}"),
    ("eval_time_s", "eval s", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("peak_rss_share_mb", "its share MB", "{:.0f}"),
    ("num_parameters", "parameters", "{:,.0f}"),
    ("flops_per_image", "FLOPs/image", "{:.3g}"),
)
# A reference's figures (the seed study's) set beside emorec's, and the differences.
REFERENCED = (
    ("accuracy", "test_accuracy"),
    ("f1_macro", "test_f1_macro"),
    ("auc_roc_macro", "test_auc_roc_macro"),
    ("train_time_s", "train_time_s"),
    ("eval_time_s", "eval_time_s"),
    ("peak_rss_mb", "peak_rss_mb"),
)
CSV_KEYS = (
    [c[0] for c in COLUMNS]
    + [f"{m}_std" for m in queries.CV_REPORTED]
    + [f"reference_{k}" for k, _ in REFERENCED]
    + list(queries.REPORT_PARAMS)
    + ["source", "run_id", "run_link", "model_uri"]
)
HYPERPARAMS = REPORTED
CHARTS = (
    ("test_accuracy", "Test accuracy"),
    ("test_f1_macro", "Test macro F1"),
    ("train_time_s", "Training time (s)"),
    ("peak_rss_mb", "Peak RSS (MB)"),
)


@dataclass
class Report:
    folder: Path
    rows: list[dict]
    files: list[Path] = field(default_factory=list)
    cross: dict | None = None  # see cross_dataset.evaluate
    run_id: str | None = None  # the MLflow run holding the report, when logged
    experiment: str = ""  # its experiment (emorec-comparison unless under `mlflow run`)


def compare(
    datasets: list[str] | None = None,
    out: str | Path = "outputs/compare",
    *,
    cross: bool = False,
    log_mlflow: bool = True,
    reference: dict | None = None,
) -> Report:
    """Write the report for ``datasets`` (all when empty) into ``out``; log it to MLflow.
    ``reference``: dataset -> model -> {metric: figure} (a campaign's, the seed study's)
    to set beside each row, with the difference."""
    from emorec.data.errors import require_output_dir

    folder = require_output_dir(out, "--out")  # before the queries, not after them
    rows = collect_rows(datasets)
    if not rows:
        raise UserError(
            "nothing to compare: no registered champion or finished run"
            + (f" for dataset(s) {', '.join(datasets)}" if datasets else "")
            + "; run `emorec tune` or `emorec train` first"
        )
    for row in rows:
        known = (reference or {}).get(row["dataset"], {}).get(row["model"], {})
        row.update({f"reference_{k}": known.get(k) for k, _ in REFERENCED})
    report = Report(folder, rows)
    report.folder.mkdir(parents=True, exist_ok=True)
    report.files += write_tables(rows, report.folder, with_reference=bool(reference))
    report.files += [
        figures.save(bar_chart(rows, key, title), report.folder / f"{key}.png")
        for key, title in CHARTS
    ]
    if cross:
        from emorec.evaluation import cross_dataset

        report.cross = cross_dataset.evaluate(rows)
        report.files += cross_dataset.write(report.cross, report.folder)
    if log_mlflow:
        report.run_id, report.experiment = tracking.log_report(
            report.folder, tags={"datasets": ",".join(sorted({r["dataset"] for r in rows}))}
        )
    return report


def collect_rows(datasets: list[str] | None = None) -> list[dict]:
    """Champions first; the best run for any (model, dataset) without a champion."""
    rows = queries.champions()
    have = {(r["model"], r["dataset"]) for r in rows}
    rows += [r for r in queries.best_runs() if (r["model"], r["dataset"]) not in have]
    if datasets:
        rows = [r for r in rows if r["dataset"] in datasets]
    return sorted(rows, key=lambda r: (r["dataset"], r["model"]))


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown(rows: list[dict], *, with_reference: bool = False) -> str:
    """The results table; cross-validated figures carry their spread (mean +- std), and
    ``with_reference`` adds the reference's figure and the difference after each."""
    headers = [h for _, h, _ in COLUMNS]
    if with_reference:
        headers += [f"reference {k}" for k, _ in REFERENCED[:3]] + ["accuracy vs reference"]
    headers += ["hyperparameters", "run"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        hyper = ", ".join(f"{k}={r[k]}" for k in HYPERPARAMS if r.get(k))
        cells = [_cell(r.get(k), fmt) + _spread(r, k, fmt) for k, _, fmt in COLUMNS]
        if with_reference:
            cells += [_cell(r.get(f"reference_{k}"), "{:.4g}") for k, _ in REFERENCED[:3]]
            ours, theirs = r.get("test_accuracy"), r.get("reference_accuracy")
            cells.append(
                _cell(None if ours is None or theirs is None else ours - theirs, "{:+.4f}")
            )
        cells += [hyper, f"[{r['source']} {r['run_id'][:8]}]({r['run_link']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _spread(row: dict, key: str, fmt: str) -> str:
    std = row.get(f"{key}_std")
    return "" if std is None else f" ± {_cell(std, fmt)}"


def write_tables(rows: list[dict], folder: Path, *, with_reference: bool = False) -> list[Path]:
    md, table = folder / "results.md", folder / "results.csv"
    md.write_text(
        "# emorec: results per model and dataset\n\nEach registered champion (or the best "
        "run where none is registered): its test split's figures, or its folds' mean and "
        "spread where it was cross-validated.\n\n" + markdown(rows, with_reference=with_reference)
    )
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_KEYS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return [md, table]


def bar_chart(rows: list[dict], key: str, title: str):
    """Grouped bars: one group per model, one bar per dataset."""
    models = sorted({r["model"] for r in rows})
    datasets = sorted({r["dataset"] for r in rows})
    values = {(r["model"], r["dataset"]): r.get(key) for r in rows}
    return figures.grouped_bars(
        models,
        {d: [values.get((m, d)) for m in models] for d in datasets},
        title,
        f"{title} per model",
        legend="Dataset",
    )
