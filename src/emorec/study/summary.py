"""A study session's record: the parent run's metrics, tables and plots, and the
registration of the best trial's model."""

from __future__ import annotations

import dataclasses
import logging
import warnings

import numpy as np
import optuna
from optuna.trial import TrialState

from emorec import tracking
from emorec.config import TrainConfig
from emorec.inputs import read_text
from emorec.study.options import (
    StudyOptions,
    StudyResult,
    ranked_by,
    registered_by,
    session_worker,
    worker_id,
)
from emorec.study.storage import mask
from emorec.tracking import model_registry
from emorec.tracking.trial_runs import running_study_sessions

log = logging.getLogger(__name__)


def finish(
    study: optuna.Study,
    name: str,
    base: TrainConfig,
    options: StudyOptions,
    result: StudyResult,
    ran: list[int] | None,
) -> None:
    """Summarise the study; register its best trial when this session ran it (``ran``:
    the trial numbers this worker ran; None for a session that had nothing to run)."""
    trials = study.get_trials(deepcopy=False)
    result.states = {
        s.name: sum(t.state == s for t in trials)
        for s in TrialState
        if any(t.state == s for t in trials)
    }
    result.best = _best(study, options.objective)
    if result.parent_run_id:
        _log_summary(study, result, options, base.folds)
    if not (options.register and result.best and result.best[0]["run_id"]):
        return
    best = result.best[0]
    # With several workers, the one that ran the best trial registers it (once, not N times).
    if ran is not None and not _ours(study, name, best["number"], ran):
        log.info(
            "study %s: best trial %d ran on another worker, which registers it",
            name,
            best["number"],
        )
        return
    run_id = (
        _final_fit(study, best, base, nested=bool(result.parent_run_id))
        if base.folds
        else best["run_id"]
    )
    result.registration = reg = model_registry.register_best(
        run_id,
        model_registry.model_name(base.model, base.dataset),
        registered_by(options.objective, base.folds),
        tags={"study": name, "trial_number": best["number"], "objective": options.objective},
    )
    if result.parent_run_id and reg:
        tracking.set_tags(
            {
                "registered_model": reg.name,
                "registered_version": reg.version,
                "registered_alias": reg.alias,
            }
        )


def _final_fit(study: optuna.Study, best: dict, base: TrainConfig, nested: bool) -> str:
    """The run whose model a cross-validated study registers: the best trial's config
    trained on every image but a validation part (``cross_validation.final_fit``), made
    once and remembered in the study, so a resumed study does not train it again."""
    from emorec.cross_validation import final_fit

    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == best["number"])
    key = f"final_fit_of_trial_{trial.number}"
    if study.user_attrs.get(key):
        return study.user_attrs[key]
    cfg = base.replace(**best["config"], run_name=f"{study.study_name}/trial-{trial.number}")
    final = final_fit(
        cfg,
        trial.user_attrs.get("cv", {}),
        nested=nested,
        tags={"study": study.study_name, "trial_number": str(trial.number)},
    )
    study.set_user_attr(key, final.run_id)
    return final.run_id


def _ours(study: optuna.Study, name: str, number: int, ran: list[int]) -> bool:
    """Whether this session registers trial ``number``: it ran it, or the session that ran
    it has ended (having registered it before ending, or died first; registering again
    is a no-op). A session still open registers its own best trial itself."""
    if number in ran:
        return True
    worker = next(t for t in study.get_trials(deepcopy=False) if t.number == number).user_attrs.get(
        "worker"
    )
    return worker not in {session_worker(r) for r in running_study_sessions(name)}


def _best(study: optuna.Study, objective: str) -> list[dict]:
    """Best trial first; for multi the Pareto front ordered by validation accuracy, then time."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    trials = study.best_trials if objective == "multi" else [study.best_trial]
    trials = sorted(trials, key=lambda t: (-t.values[0], *t.values[1:]))
    return [
        {
            "number": t.number,
            "values": list(t.values),
            "config": t.user_attrs.get("config", {}),
            "run_id": t.user_attrs.get("mlflow_run_id"),
        }
        for t in trials
    ]


def log_settings(
    name: str, url: str, base: TrainConfig, space, options: StudyOptions, seed: int
) -> None:
    """Study settings as ``study.*`` params: under `mlflow run` the parent run is the project
    run, which already holds the entry point's parameters under the plain names."""
    settings = {
        k: v
        for k, v in dataclasses.asdict(options).items()
        if k not in ("storage", "study_name", "pruner", "register", "plots")
    }
    settings.update(
        name=name,
        storage=mask(url),
        pruner=options.pruner_name,
        space_digest=space.digest(options.sampler),
        grid_size=space.grid_size(),
        sampler_seed=seed,
        worker=worker_id(),
    )
    tracking.log_params({f"study.{k}": v for k, v in settings.items()})
    tracking.log_text(read_text(space.path, "search space"), "optuna/space.yaml")
    tracking.log_json({"base_config": base.to_params(), "fixed": space.fixed}, "optuna/base.json")


def _log_summary(
    study: optuna.Study, result: StudyResult, options: StudyOptions, folds: int
) -> None:
    """The parent run's record: trial counts, the best trial, the trials table, the plots."""
    tracking.log_metrics(
        {
            "new_trials": result.new_trials,
            **{f"trials_{k.lower()}": v for k, v in result.states.items()},
        }
    )
    if result.best:
        best = result.best[0]
        tracking.log_params({f"best.{k}": v for k, v in best["config"].items()})
        tracking.log_metrics(
            {
                f"best_{metric}": value
                for (metric, _), value in zip(ranked_by(options.objective, folds), best["values"])
            }
        )
        tracking.set_tags({"best_trial": best["number"], "best_run_id": best["run_id"]})
    if options.objective == "multi":
        tracking.log_json(
            {"objectives": [m for m, _ in ranked_by("multi", folds)], "pareto_front": result.best},
            "optuna/pareto_front.json",
        )
    tracking.log_text(study.trials_dataframe().to_csv(index=False), "optuna/trials.csv")
    if not options.plots:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)  # tight_layout on twin axes, small studies
        for name, make in _plots(study, options.objective, folds):
            try:
                axes = make()
            except Exception as exc:  # a plot is a bonus: never fail a finished study over one
                log.warning("skipped the %s plot: %s", name, exc)
                continue
            fig = np.ravel(axes)[0].figure
            fig.set_size_inches(9, 5.5)
            fig.tight_layout()  # Optuna's figures clip long names such as lr[optimizer=sgd]
            tracking.log_figure(fig, f"optuna/{name}.png")


def _plots(study: optuna.Study, objective: str, folds: int = 0):
    """(name, thunk) for each Optuna plot that makes sense for this study."""
    from optuna.visualization import matplotlib as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    metric = ranked_by(objective, folds)[0][0]
    # Multi-objective plots need one target: validation accuracy.
    target = (
        {"target": lambda t: t.values[0], "target_name": metric}
        if objective == "multi"
        else {"target_name": metric}
    )
    yield "optimization_history", lambda: vis.plot_optimization_history(study, **target)
    if len(complete) >= 2:  # importances need variation to attribute
        yield "param_importances", lambda: vis.plot_param_importances(study, **target)
    yield "parallel_coordinate", lambda: vis.plot_parallel_coordinate(study, **target)
    if objective == "multi":
        yield (
            "pareto_front",
            lambda: vis.plot_pareto_front(
                study, target_names=[m for m, _ in ranked_by("multi", folds)]
            ),
        )
    elif any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        yield "intermediate_values", lambda: vis.plot_intermediate_values(study)
