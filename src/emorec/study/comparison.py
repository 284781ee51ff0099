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
    data_dirs = data_dirs or {}
    result = BenchmarkResult()
    pairs = [(m, d) for d in datasets for m in models]
    bar = tqdm(pairs, desc="benchmark", unit="study", disable=not progress)
    for model, dataset in bar:
        bar.set_postfix_str(f"{model} on {dataset}")
        values = {"model": model, "dataset": dataset, **(overrides or {})}
        if dataset in data_dirs:
            values["data_dir"] = data_dirs[dataset]
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
