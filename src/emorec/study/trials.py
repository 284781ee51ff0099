"""One trial: sample its configuration, train it as a nested MLflow run, report each epoch
to the pruner, and record its outcome on the run (see ``emorec.tracking.trial_runs``)."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from emorec.config import TrainConfig
from emorec.engines.callbacks import Callback
from emorec.study.options import FINISHED, StudyOptions, ranked_by, worker_id
from emorec.tracking.trial_runs import mark_trial_run


class PointTaken(RuntimeError):
    """Another worker's trial already runs (or ran) this grid or start point: not run twice."""


class PruningCallback(Callback):
    """Reports each epoch's validation accuracy to the trial; raises TrialPruned when told to."""

    def __init__(self, trial: optuna.Trial, pruner: str, monitor: str = "val_accuracy"):
        self.trial, self.pruner, self.monitor = trial, pruner, monitor

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            return
        value = float(logs[self.monitor])
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"{self.monitor} {value:.4f} after epoch {epoch}: "
                f"stopped by the {self.pruner} pruner"
            )


class Objective:
    """One trial: sample a config, train it as a nested run, return the objective value(s)."""

    def __init__(self, name: str, base: TrainConfig, space, options: StudyOptions):
        self.name, self.base, self.space, self.options = name, base, space, options

    def __call__(self, trial: optuna.Trial):
        trial.set_user_attr("worker", worker_id())
        _claim_point(trial)
        overrides = _suggest(trial, self.space, self.options.sampler, self.base)
        trial.set_user_attr("config", overrides)
        # A retried trial inherits its user attributes: origin names the first attempt;
        # that attempt's outcome (why it failed, its run) is not this trial's.
        origin = trial.user_attrs.get("origin_trial", trial.number)
        trial.set_user_attr("origin_trial", origin)
        for key in ("state_reason", "mlflow_run_id"):
            if key in trial.user_attrs:
                trial.set_user_attr(key, "")
        cfg = self.base.replace(**overrides, run_name=f"{self.name}/trial-{trial.number}")
        tags = {
            "kind": "trial",
            "study": self.name,
            "trial_number": str(trial.number),
            "trial_state": "RUNNING",
            "origin_trial": str(origin),
        }
        # Report every epoch even without a pruner (the intermediate-values plot);
        # Optuna takes no reports from multi-objective trials, and the epochs of K folds
        # are not one trial's progress.
        callbacks = (
            []
            if self.options.objective == "multi" or cfg.folds
            else [PruningCallback(trial, self.options.pruner_name)]
        )
        from emorec.tracking import MlflowTracker
        from emorec.training import train  # heavy imports (engines) only when a trial runs

        objective = self.options.objective
        tracker = MlflowTracker(
            skip_model=lambda metrics: cannot_win(trial.study, metrics, objective)
        )
        try:
            if cfg.folds:  # the trial's run is the folds' parent (its model: see summary)
                from emorec.cross_validation import cross_validate

                result = cross_validate(cfg, callbacks, nested=True, tags=tags)
            else:
                result = train(cfg, callbacks, nested=True, tags=tags, tracker=tracker)
        except optuna.TrialPruned as exc:
            # KILLED, not FAILED: the run was stopped on purpose and nothing went wrong.
            self._mark(trial, "PRUNED", str(exc), status="KILLED")
            raise
        except (Exception, KeyboardInterrupt) as exc:
            self._mark(trial, "FAIL", f"{type(exc).__name__}: {exc}")
            raise
        trial.set_user_attr("mlflow_run_id", result.run_id)
        trial.set_user_attr(
            "test", {k: v for k, v in result.metrics.items() if k.startswith("test_")}
        )
        trial.set_user_attr("val_final_accuracy", result.metrics.get("val_final_accuracy"))
        if cfg.folds:
            trial.set_user_attr("cv", result.metrics)
        mark_trial_run(self.name, trial.number, "COMPLETE")
        return _values(result.metrics, self.options.objective, cfg.folds)

    def _mark(
        self, trial: optuna.Trial, state: str, reason: str, status: str | None = None
    ) -> None:
        trial.set_user_attr("state_reason", reason[:1000])
        run_id = mark_trial_run(self.name, trial.number, state, reason, status)
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)


def _point(trial: optuna.trial.FrozenTrial):
    """The point a trial was handed rather than sampled: a grid point, or a queued start
    point (enqueued parameters); None for a sampled trial."""
    if "grid_id" in trial.system_attrs:
        return "grid point", trial.system_attrs["grid_id"]
    if "fixed_params" in trial.system_attrs:
        return "start point", sorted(trial.system_attrs["fixed_params"].items())
    return None


def _claim_point(trial: optuna.Trial) -> None:
    """Refuse a point another live or finished trial holds: the lower number keeps it.

    Only a race makes two trials hold one point: a worker created a trial past
    the grid's size while the last points were being taken, or workers started
    together each queued the space's start points. This keeps every such point
    trained once, whichever worker got there first.
    """
    trials = trial.study.get_trials(deepcopy=False)
    point = _point(next(t for t in trials if t.number == trial.number))
    holder = point and next(
        (
            t
            for t in trials
            if t.number < trial.number
            and t.state in (TrialState.RUNNING, *FINISHED)
            and _point(t) == point
        ),
        None,
    )
    if holder:
        reason = (
            f"{point[0]} {point[1]} is trial {holder.number}'s (another worker took it "
            "first): not run twice"
        )
        trial.set_user_attr("state_reason", reason)
        raise PointTaken(reason)


def cannot_win(study: optuna.Study, metrics: dict, objective: str, folds: int = 0) -> str | None:
    """Why a trained trial's model is not worth logging, or None to log it.

    Only the study's best trial is registered (and the comparison report links the best
    run by validation accuracy), and the best only ever improves: a trial that beats no
    completed trial on the objective nor on validation accuracy can never become either,
    so its model would be logged (time and disk every trial) for nothing. A trial that
    ties the best logs its model: the storage breaks ties in no set order (PostgreSQL's
    ORDER BY returns either), so it may be the one reported and registered as the best.
    Multi-objective trials always log theirs: any of them may join the Pareto front.
    """
    if objective == "multi":
        return None
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    ((key, direction),) = ranked_by(objective, folds)
    best = (max if direction == "maximize" else min)(complete, key=lambda t: t.values[0])
    value = float(metrics.get(key, np.nan))
    if value >= best.values[0] if direction == "maximize" else value <= best.values[0]:
        return None
    held = max(
        (
            t.user_attrs["val_final_accuracy"]
            for t in complete
            if t.user_attrs.get("val_final_accuracy") is not None
        ),
        default=-np.inf,
    )
    if float(metrics.get("val_final_accuracy", np.nan)) >= held:
        return None
    return (
        f"{key} {value:.4f} is below trial {best.number}'s {best.values[0]:.4f}, so "
        "this trial cannot become the study's best (the one registered): model not logged"
    )


def _values(metrics: dict, objective: str, folds: int = 0):
    values = [float(metrics.get(key, np.nan)) for key, _ in ranked_by(objective, folds)]
    return values[0] if len(values) == 1 else values


def _suggest(trial: optuna.Trial, space, sampler: str, base: TrainConfig) -> dict:
    """The trial's config overrides (TrainConfig field -> value)."""
    if sampler == "grid":
        return {k: trial.suggest_categorical(k, v) for k, v in space.grid.items()}
    context, values = base.to_params(), {}
    for name, alternatives in space.space.items():
        alt = next((a for a in alternatives if a.holds(context)), None)
        if alt is None:  # no condition holds: the field keeps its fixed value
            continue
        label = alt.label(name)
        if alt.choices is not None:
            value = trial.suggest_categorical(label, list(alt.choices))
        elif alt.is_int:
            value = trial.suggest_int(
                label, int(alt.low), int(alt.high), step=int(alt.step or 1), log=alt.log
            )
        else:
            value = trial.suggest_float(label, alt.low, alt.high, step=alt.step, log=alt.log)
        values[name] = context[name] = value
    return values


def labelled(point: dict, space, base: TrainConfig) -> dict:
    """A start point in Optuna's parameter names (one per alternative)."""
    context, params = {**base.to_params(), **point}, {}
    for name, alternatives in space.space.items():
        alt = next((a for a in alternatives if a.holds(context)), None)
        if alt is not None and name in point:
            params[alt.label(name)] = point[name]
    return params
