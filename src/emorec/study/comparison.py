"""``benchmark_all``: one study per model x dataset, in sequence, then the comparison report.

A pair that fails (missing data, missing pretrained weights ...) is reported and skipped
so that one bad pair does not cost the others; Ctrl-C stops all. Each pair is its own
resumable study, so re-running the same command picks up where it stopped. Every model,
dataset, folder and value is checked before the first study starts.

``--preset NAME`` runs a campaign (``tuning/NAME.yaml``, section ``campaign``): its models
on the datasets given, each pair with its recipe, a wall-time budget per training run,
cross-validation where the dataset calls for it, and the reference figures (the seed
study's, for ``seed``) set beside emorec's in the report.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass(frozen=True)
class Campaign:
    """A named comparison (``tuning/<name>.yaml``'s ``campaign`` section)."""

    name: str
    models: tuple[str, ...]
    datasets: tuple[str, ...]  # the order the pairs run in
    recipes: dict  # dataset -> {model or "default": recipe name, "{model}" filled in}
    budget_min: dict  # dataset -> time_budget_min of each training run
    folds: dict  # dataset -> cross-validation folds
    sets: dict  # dataset -> further config values
    reference: dict  # dataset -> model -> {metric: the reference's figure}

    def recipe(self, model: str, dataset: str) -> str:
        names = self.recipes.get(dataset, {})
        return str(names.get(model) or names.get("default", "")).format(model=model)


def read_campaign(name: str) -> Campaign:
    """The campaign named ``name``; one line naming the valid ones otherwise."""
    from emorec.inputs import read_yaml
    from emorec.search_space import default_path

    try:
        path = default_path(name)
    except FileNotFoundError:
        path = None
    section = (read_yaml(path, "campaign") or {}).get("campaign") if path else None
    if not isinstance(section, dict):
        raise UserError(f"unknown campaign {name!r}; valid: {', '.join(list_campaigns())}")
    return Campaign(
        name,
        tuple(section.get("models", ())),
        tuple(section.get("datasets", ())),
        section.get("recipes", {}),
        section.get("budget_min", {}),
        section.get("folds", {}),
        section.get("set", {}),
        section.get("reference", {}),
    )


def list_campaigns() -> list[str]:
    from emorec.search_space import default_path

    folder = default_path("cnn_torch").parent
    return sorted(p.stem for p in folder.glob("*.yaml") if "\ncampaign:" in "\n" + p.read_text())


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
    preset: str | None = None,
) -> BenchmarkResult:
    if options.study_name:
        raise UserError("benchmark-all names one study per pair; drop --study-name")
    data_dirs = data_dirs or {}
    campaign = read_campaign(preset) if preset else None
    if campaign:
        models = models or list(campaign.models)
        # The campaign's order (CK+ starts from the FER2013 champions), of the data given.
        datasets = [d for d in campaign.datasets if d in (datasets or data_dirs)]
    pairs = check_pairs(models, datasets, data_dirs, overrides or {}, campaign, options)
    result = BenchmarkResult()
    bar = tqdm(pairs, desc="benchmark", unit="study", disable=not progress)
    for values, pair_options in bar:
        model, dataset = values["model"], values["dataset"]
        bar.set_postfix_str(f"{model} on {dataset}")
        try:
            study = run_study(values, pair_options or options)
        except Exception as exc:  # keep going: the report shows what did finish
            log.error("%s on %s failed: %s", model, dataset, exc)
            result.failures[f"{model}/{dataset}"] = f"{type(exc).__name__}: {exc}"
            continue
        result.studies.append(study)
        if study.best:
            bar.set_postfix_str(f"{model} on {dataset}: best {study.best[0]['values'][0]:.4f}")
    bar.close()
    result.report = report_mod.compare(
        datasets, out, cross=cross, reference=campaign.reference if campaign else None
    )
    return result


def check_pairs(
    models: list[str],
    datasets: list[str],
    data_dirs: dict[str, str],
    overrides: dict,
    campaign: Campaign | None = None,
    options: StudyOptions = StudyOptions(),
) -> list[tuple]:
    """Each pair's (config values, study options or None for the caller's), every name
    and value checked before any study runs: an unknown model or dataset, a data folder
    that is missing or given for no dataset, or a value a config refuses costs one line,
    not the studies before it."""
    from emorec.config import TrainConfig
    from emorec.search_space import default_path, load

    if not models or not datasets:
        raise UserError(
            "benchmark-all needs at least one model and one dataset (with "
            "--preset: a --data-dir for a dataset the campaign names)"
        )
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
            values = {"model": model, "dataset": dataset}
            if dataset in data_dirs:
                values["data_dir"] = data_dirs[dataset]
            pair_options = None
            if campaign:
                recipe = campaign.recipe(model, dataset)
                if not recipe:
                    raise UserError(f"campaign {campaign.name} has no recipe for {dataset}")
                space = default_path(recipe)  # raises, naming where it looked
                values.update(
                    {
                        "time_budget_min": campaign.budget_min.get(dataset, 0),
                        "folds": campaign.folds.get(dataset, 0),
                        **campaign.sets.get(dataset, {}),
                    }
                )
                pair_options = dataclasses.replace(
                    options, space_file=str(space), study_name=f"{campaign.name}-{model}-{dataset}"
                )
                load(space, TrainConfig.from_mapping({**values, **overrides}))
            values.update(overrides)
            TrainConfig.from_mapping(values)  # raises, naming the valid choices
            pairs.append((values, pair_options))
    return pairs
