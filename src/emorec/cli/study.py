"""``emorec tune`` and ``emorec study status`` (emorec.study), and the flags every
study-running command shares."""

from __future__ import annotations

import argparse
import os
import sys

from emorec.cli.args import EXIT_FAILED, optional, parse_sets
from emorec.config import describe
from emorec.errors import UserError

# The choices of emorec.study, repeated so that building the parser (every command)
# does not import Optuna and MLflow; tests/test_study.py checks that they agree.
STUDY_SAMPLERS = ("grid", "tpe")
STUDY_OBJECTIVES = ("accuracy", "f1", "multi")
STUDY_PRUNERS = ("median", "hyperband", "none")


def add_storage_flag(p: argparse.ArgumentParser) -> None:
    """``--storage``, as tune and study status both take it."""
    p.add_argument(
        "--storage",
        type=optional(str),
        default=None,
        help="SQLAlchemy URL of the Optuna storage, without a password (give it in "
        "PGPASSWORD or ~/.pgpass). Default: $EMOREC_OPTUNA_STORAGE, else "
        "SQLite mlruns/optuna.db.",
    )


def add_tuning_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sampler",
        choices=STUDY_SAMPLERS,
        default="grid",
        help="How trials are chosen: grid runs every point of the space file's grid "
        "and stops, tpe samples its space. Default: grid.",
    )
    p.add_argument(
        "--n-trials",
        type=int,
        default=None,
        help="Finished trials the study should reach; 0 or absent means every "
        "grid point, or 20 for tpe.",
    )
    p.add_argument(
        "--timeout",
        type=optional(float),
        default=None,
        help="Seconds after which no new trial starts; absent or 0 for no limit.",
    )
    add_storage_flag(p)
    p.add_argument(
        "--objective",
        choices=STUDY_OBJECTIVES,
        default="accuracy",
        help="What trials are ranked by: validation accuracy or macro F1 "
        "(maximised), or multi (accuracy, training time and peak RSS, a Pareto "
        "front). Default: accuracy.",
    )
    p.add_argument(
        "--pruner",
        choices=("auto", *STUDY_PRUNERS),
        default="auto",
        help="What stops weak trials early: auto is median for tpe and none for "
        "grid and multi. Default: auto.",
    )
    p.add_argument(
        "--pruner-startup-trials",
        type=int,
        default=5,
        help="With the median pruner: trials that finish before any is pruned. Default: 5.",
    )
    p.add_argument(
        "--pruner-warmup-epochs",
        type=int,
        default=0,
        help="With the median pruner: epochs every trial runs before it may be pruned. Default: 0.",
    )
    p.add_argument(
        "--space",
        type=optional(str),
        default=None,
        help="The search space YAML file. Default: tuning/<model>.yaml.",
    )
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        metavar="KEY=VALUE",
        help="Fixed values for every trial of any emorec train option (see emorec "
        "train --help), by field name, e.g. epochs=1 image_size=32.",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=int,
        default=30,
        help="Seconds between a running trial's heartbeats in the storage. Default: 30.",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=120,
        help="Seconds without a heartbeat after which a running trial counts as "
        "dead and is failed and retried. Default: 120.",
    )
    p.add_argument(
        "--no-register",
        action="store_true",
        help="Do not register the best trial's model in the model registry.",
    )
    p.add_argument(
        "--no-plots", action="store_true", help="Do not log Optuna's plots to the study's run."
    )


def _n_trials(value: int | None) -> int | None:
    """``--n-trials``; 0 (what MLproject passes for "default") reads like "run nothing"
    but starts the whole study, so say so."""
    if value == 0:
        print(
            "emorec: --n-trials 0 means the default: every grid point (or 20 trials for "
            "tpe); pass --n-trials N to stop after N",
            file=sys.stderr,
        )
        return None
    return value


def _storage_flag(url: str | None) -> str | None:
    """``--storage``, refused when it holds a password: a command line shows in the process
    list, and ``mlflow run`` logs it as a parameter and prints it; secrets go in the environment."""
    from emorec.urls import password_in

    if url and password_in(url):
        # Under `mlflow run -P storage=...` MLflow logged the value before this process
        # started: refusing cannot take it back, so say where it now is.
        run_id = os.environ.get("MLFLOW_RUN_ID")
        logged = (
            f" (mlflow run has already logged it as a parameter of run {run_id}: "
            "delete that run and change the password)"
            if run_id
            else ""
        )
        raise UserError(
            "--storage holds a password, which the process list and MLflow "
            "would show; give the URL without it and the password in "
            "PGPASSWORD or ~/.pgpass, or the whole URL in EMOREC_OPTUNA_STORAGE" + logged
        )
    return url


def study_options(args: argparse.Namespace, study_name: str | None = None):
    from emorec.study import StudyOptions

    return StudyOptions(
        sampler=args.sampler,
        objective=args.objective,
        pruner=None if args.pruner == "auto" else args.pruner,
        n_trials=_n_trials(args.n_trials),
        timeout=args.timeout,
        storage=_storage_flag(args.storage),
        study_name=study_name,
        space_file=args.space,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        pruner_startup_trials=args.pruner_startup_trials,
        pruner_warmup_epochs=args.pruner_warmup_epochs,
        register=not args.no_register,
        plots=not args.no_plots,
    )


def print_study(result) -> None:
    states = ", ".join(f"{n} {s.lower()}" for s, n in result.states.items()) or "no trials"
    print(f"study {result.name} ({result.storage}): {result.new_trials} new trial(s); {states}")
    for best in result.best[:5]:
        values = ", ".join(f"{v:.4f}" for v in best["values"])
        print(f"  best trial {best['number']}: {values} {best['config']} run {best['run_id']}")
    if result.registration:
        reg = result.registration
        print(
            f"  registered {reg.name} version {reg.version} as {reg.alias} ({reg.uri}): "
            f"{reg.reason}"
        )


def _apply_preset(args: argparse.Namespace) -> None:
    """``--preset NAME``: the model, dataset and search space of ``tuning/NAME.yaml``."""
    from emorec.search_space import read_preset

    path, preset = read_preset(args.preset)
    for key, value in preset.items():
        given = getattr(args, key)
        if given and given != value:
            raise UserError(
                f"--preset {args.preset} is for --{key} {value}, not {given}; "
                f"drop --{key} or the preset"
            )
        setattr(args, key, value)
    if args.space and args.space != str(path):
        raise UserError(
            f"--preset {args.preset} is the space {path}; give --space or --preset, not both"
        )
    args.space = str(path)


def cmd_tune(args: argparse.Namespace) -> int:
    from emorec.study import run_study

    if args.preset:
        _apply_preset(args)
    elif not args.model:
        raise UserError("emorec tune needs --model (or --preset NAME)")
    values = {"model": args.model, "dataset": args.dataset or "synthetic", **parse_sets(args.set)}
    if args.data_dir:
        values["data_dir"] = args.data_dir
    if args.folds:
        values["folds"] = args.folds
    result = run_study(values, study_options(args, args.study_name))
    print_study(result)
    if not result.best:
        print("emorec: no trial completed", file=sys.stderr)
        return EXIT_FAILED
    return 0


def cmd_study_status(args: argparse.Namespace) -> int:
    import json

    from emorec.study import status

    rows = status(_storage_flag(args.storage), args.study_name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    from emorec.study import default_storage, mask
    from emorec.study.storage import with_driver

    where = mask(with_driver(args.storage or default_storage()))
    print(f"{len(rows)} stud{'y' if len(rows) == 1 else 'ies'} in {where}")
    for row in rows:
        states = ", ".join(f"{n} {s.lower()}" for s, n in row["states"].items()) or "no trials"
        best = "-" if row["best"] is None else f"{row['best']:.4f}"
        print(f"{row['study']}: {states}; best {best}; {len(row['workers'])} worker(s) so far")
        for t in row["running"]:
            print(
                f"  running trial {t['number']} on {t['worker']} since {t['since']}: {t['config']}"
            )
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("tune", help="run or resume an Optuna study for one model and dataset")
    p.add_argument(
        "--model",
        type=optional(str),
        default=None,
        help=describe("model", default=False) + " Needed unless a preset names it.",
    )
    p.add_argument(
        "--dataset",
        type=optional(str),
        default=None,
        help=describe("dataset") + " A preset names its own.",
    )
    p.add_argument(
        "--preset",
        type=optional(str),
        default=None,
        help="A recipe in tuning/ that names the model, dataset and space, e.g. "
        "fer2013 (see README).",
    )
    p.add_argument("--data-dir", type=optional(str), default=None, help=describe("data_dir"))
    p.add_argument(
        "--study-name",
        type=optional(str),
        default=None,
        help="The Optuna study to create or resume. Default: "
        "<model>-<dataset>-<sampler>-<objective>.",
    )
    p.add_argument(
        "--folds",
        type=optional(int),
        default=None,
        help=describe("folds", default=False) + " Trials are ranked by their folds' mean "
        "(cv_test_accuracy_mean), and the best one's final fit is registered.",
    )
    add_tuning_flags(p)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("study", help="inspect studies: emorec study status")
    actions = p.add_subparsers(dest="action", required=True)
    p = actions.add_parser(
        "status",
        help="trials by state, best value and running trials "
        "(with their worker) of the studies in a storage",
    )
    add_storage_flag(p)
    p.add_argument(
        "--study-name",
        type=optional(str),
        default=None,
        help="Show only this study. Default: every study in the storage.",
    )
    p.add_argument("--json", action="store_true", help="Print the status as JSON.")
    p.set_defaults(func=cmd_study_status)
