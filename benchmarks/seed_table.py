"""The seed study's comparison, reproduced on this machine: ``emorec benchmark-all --preset
seed`` on FER2013 (every model at the same 20-minute budget, scored on PublicTest) and CK+48
(5-fold subject-independent cross-validation, each model fine-tuned from its own FER2013
champion), with the seed's figures beside emorec's.

Run it in stages sharing one store (``--store``), each under 2 hours of wall time:

    python benchmarks/seed_table.py --stage fer2013 --store /work/seedstore
    python benchmarks/seed_table.py --stage ckplus --store /work/seedstore

Each stage resumes what an earlier run of it finished (every pair is its own study). The
table, the targets (CK+: every model >= 95 % mean accuracy, SANet >= 98 %, the whole CK+
stage <= 1 hour; the proposed CNN's own training share of memory <= 346 MB) and each
stage's wall time go to ``seed_table.json``; a stage run later keeps the other's figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402

STAGES = {"fer2013": "fer2013", "ckplus": "ckplus"}  # stage -> the dataset it runs
COLUMNS = [
    "model",
    "dataset",
    "protocol",
    "accuracy",
    "F1 macro",
    "AUC ROC",
    "train s",
    "eval s",
    "peak RSS MB",
    "own share MB",
    "parameters",
    "MFLOPs/image",
    "seed accuracy",
    "seed F1",
    "seed AUC",
    "accuracy vs seed",
    "epochs",
]


def run_stage(stage: str, data_dir: Path, store: Path, args, before: dict) -> dict:
    """The stage's studies through ``benchmark_all`` (the product's command), then each
    pair's registered champion read back. ``before``: this stage's entry from an earlier
    run; where the store already holds trials of this stage's studies, they resume here
    (grid points finished are not run again) and the stage's wall time is the sum of the
    sittings."""
    from emorec.cli.args import parse_sets
    from emorec.study.comparison import benchmark_all, read_campaign

    dataset = STAGES[stage]
    campaign = read_campaign("seed")
    models = args.models.split(",") if args.models else list(campaign.models)
    overrides = parse_sets(args.set)
    resumed = resumes(dataset, models)
    started = time.perf_counter()
    result = benchmark_all(
        models,
        [dataset],
        data_dirs={dataset: str(data_dir)},
        overrides=overrides,
        out=str(store / f"report-{stage}"),
        preset="seed",
        progress=False,
    )
    seconds = time.perf_counter() - started
    earlier = before.get("sittings_s", [before["wall_s"]]) if resumed and before else []
    sittings = [*earlier, seconds]
    rows = {
        f"{r['model']}/{r['dataset']}": _row(r)
        for r in result.report.rows
        if r["dataset"] == dataset
    }
    return {
        "wall_s": sum(sittings),
        "sittings_s": sittings,
        "rows": rows,
        "failures": result.failures,
        "budget_min": overrides.get("time_budget_min", campaign.budget_min.get(dataset)),
        "folds": campaign.folds.get(dataset, 0),
    }


def resumes(dataset: str, models: list[str]) -> bool:
    """Whether the store already holds trials of this stage's studies (``emorec study
    status``'s reading of it); a store no study has used yet holds none."""
    from emorec.errors import UserError
    from emorec.study.storage import status

    names = {f"seed-{m}-{dataset}" for m in models}
    try:
        return any(row["states"] for row in status() if row["study"] in names)
    except UserError:  # no study storage yet
        return False


def _row(r: dict) -> dict:
    keep = (
        "model",
        "dataset",
        "protocol",
        "test_accuracy",
        "test_accuracy_std",
        "test_f1_macro",
        "test_f1_macro_std",
        "test_auc_roc_macro",
        "train_time_s",
        "eval_time_s",
        "peak_rss_mb",
        "peak_rss_share_mb",
        "num_parameters",
        "flops_per_image",
        "reference_accuracy",
        "reference_f1_macro",
        "reference_auc_roc_macro",
        "run_id",
        "model_uri",
    )
    row = {k: r.get(k) for k in keep}
    row["epochs_run"] = _metric(r["run_id"], "epochs_run")
    return row


def _metric(run_id: str, key: str):
    from emorec import tracking

    return tracking.training_facts(run_id)["metrics"].get(key)


def table_rows(stages: dict) -> list[list]:
    rows = []
    for stage in STAGES:
        for r in stages.get(stage, {}).get("rows", {}).values():
            acc, ref = r["test_accuracy"], r["reference_accuracy"]
            std = f" ± {r['test_accuracy_std']:.4f}" if r.get("test_accuracy_std") else ""
            rows.append(
                [
                    r["model"],
                    r["dataset"],
                    r["protocol"],
                    f"{acc:.4f}{std}",
                    r["test_f1_macro"],
                    r["test_auc_roc_macro"],
                    r["train_time_s"],
                    r["eval_time_s"],
                    r["peak_rss_mb"],
                    r["peak_rss_share_mb"],
                    r["num_parameters"],
                    (r["flops_per_image"] or 0) / 1e6,
                    ref if ref is not None else "-",
                    r["reference_f1_macro"] or "-",
                    r["reference_auc_roc_macro"] or "-",
                    f"{acc - ref:+.4f}" if ref is not None else "-",
                    r["epochs_run"],
                ]
            )
    return rows


def targets(stages: dict) -> list[dict]:
    out = []
    ck = stages.get("ckplus")
    if ck:
        for _, r in sorted(ck["rows"].items()):
            goal = 0.98 if r["model"] == "sanet" else 0.95
            out.append(
                benchlib.target(
                    f"CK+48 5-fold CV mean accuracy, {r['model']}",
                    100 * r["test_accuracy"],
                    f">= {100 * goal:.0f} %",
                    r["test_accuracy"] >= goal,
                    " %",
                )
            )
        minutes = ck["wall_s"] / 60
        out.append(
            benchlib.target(
                "the whole CK+ stage (5 models x 5 folds + final fits)",
                minutes,
                "<= 60 min",
                minutes <= 60,
                " min",
            )
        )
    for stage in STAGES:
        r = stages.get(stage, {}).get("rows", {}).get(f"cnn_torch/{STAGES[stage]}")
        if r and r.get("peak_rss_share_mb") is not None:
            out.append(
                benchlib.target(
                    f"cnn_torch's own training share of memory, {stage}",
                    r["peak_rss_share_mb"],
                    "<= 346 MB (seed 345.85)",
                    r["peak_rss_share_mb"] <= 346,
                    " MB",
                )
            )
    fer = stages.get("fer2013")
    if fer:
        minutes = fer["wall_s"] / 60
        out.append(
            benchlib.target(
                "the FER2013 column (5 models at the same budget)",
                minutes,
                "<= 120 min",
                minutes <= 120,
                " min",
            )
        )
    return out


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--stage", choices=tuple(STAGES), default="fer2013")
    p.add_argument(
        "--store",
        default="",
        help="the MLflow/Optuna store the stages share (default: a throwaway one)",
    )
    p.add_argument("--models", default="", help="only these models (default: the campaign's)")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override every recipe's values (e.g. epochs=1 for a trial run)",
    )
    args = p.parse_args()
    started = time.time()
    archive_name = STAGES[args.stage]
    data_dir = benchlib.require(args.data, archive_name)
    previous = benchlib.previous("seed_table", args).get("figures", {}).get("stages", {})
    with benchlib.temporary_store(args.store or None) as store:
        stage = run_stage(args.stage, data_dir, store, args, previous.get(args.stage, {}))
    stages = {**previous, args.stage: stage}
    notes = [
        f"{s}: {v['wall_s'] / 60:.0f} min of wall time"
        + (
            f" in {len(v['sittings_s'])} sittings resuming one store"
            if len(v.get("sittings_s", ())) > 1
            else ""
        )
        + f", budget {v['budget_min']} min a training run"
        + (f", {v['folds']}-fold CV" if v["folds"] else "")
        + (f"; failed: {v['failures']}" if v["failures"] else "")
        for s, v in stages.items()
    ]
    benchlib.save(
        "seed_table",
        "The seed study's table, reproduced (benchmark-all --preset seed)",
        args,
        started=started,
        targets=targets(stages),
        figures={"stages": stages},
        notes=notes,
        tables={"seed_table": benchlib.markdown_table(COLUMNS, table_rows(stages))},
    )


if __name__ == "__main__":
    main()
