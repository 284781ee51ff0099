"""``benchmark_all``: one study per model x dataset, in sequence, then the comparison report.

A pair that fails (missing data, missing pretrained weights ...) is reported
and skipped so that one bad pair does not cost the others; Ctrl-C stops all.
Each pair is its own resumable study, so re-running the same command picks
up where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from tqdm.auto import tqdm

from emorec.errors import UserError
from emorec.evaluation import report as report_mod
from emorec.study.options import StudyOptions, StudyResult
from emorec.study.run import run_study

log = logging.getLogger(__name__)


@dataclass
class BenchmarkResult:
    studies: list[StudyResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # "model/dataset" -> error
    report: report_mod.Report | None = None


def benchmark_all(
    models: list[str],
    datasets: list[str],
    *,
    data_dirs: dict[str, str] | None = None,
    overrides: dict | None = None,
    options: StudyOptions = StudyOptions(),
    out: str = "outputs/compare",
    cross: bool = False,
    progress: bool = True,
) -> BenchmarkResult:
    if options.study_name:
        raise UserError("benchmark-all names one study per pair; drop --study-name")
    pairs = check_pairs(models, datasets, data_dirs or {}, overrides or {})
    result = BenchmarkResult()
    bar = tqdm(pairs, desc="benchmark", unit="study", disable=not progress)
    for values in bar:
        model, dataset = values["model"], values["dataset"]
        bar.set_postfix_str(f"{model} on {dataset}")
        try:
            study = run_study(values, options)
        except Exception as exc:  # keep going: the report shows what did finish
            log.error("%s on %s failed: %s", model, dataset, exc)
            result.failures[f"{model}/{dataset}"] = f"{type(exc).__name__}: {exc}"
            continue
        result.studies.append(study)
        if study.best:
            bar.set_postfix_str(f"{model} on {dataset}: best {study.best[0]['values'][0]:.4f}")
    bar.close()
    result.report = report_mod.compare(datasets, out, cross=cross)
    return result


def check_pairs(
    models: list[str], datasets: list[str], data_dirs: dict[str, str], overrides: dict
) -> list[dict]:
    """Each pair's config values, every name and value checked before any study runs: an
    unknown model or dataset, a data folder that is missing or given for no dataset, or a
    value a config refuses costs one line, not the studies before it."""
    from pathlib import Path

    from emorec.config import TrainConfig

    if not models or not datasets:
        raise UserError("benchmark-all needs at least one model and one dataset")
    unused = sorted(set(data_dirs) - set(datasets))
    if unused:
        raise UserError(
            f"--data-dir given for {', '.join(unused)}, which --datasets does not name "
            f"({', '.join(datasets)})"
        )
    for dataset, folder in data_dirs.items():
        if not Path(folder).exists():
            raise UserError(f"--data-dir {dataset}={folder}: no such file or folder")
    pairs = []
    for dataset in datasets:
        for model in models:
            values = {"model": model, "dataset": dataset, **overrides}
            if dataset in data_dirs:
                values["data_dir"] = data_dirs[dataset]
            TrainConfig.from_mapping(values)  # raises, naming the valid choices
            pairs.append(values)
    return pairs
