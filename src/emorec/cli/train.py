"""``emorec train`` (one flag per TrainConfig field), ``explore``, ``models``, ``datasets``."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from emorec.config import TrainConfig, describe


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field, parsed as strings and coerced by the config;
    its help is the field's own description (``emorec.config.describe``)."""
    for f in dataclasses.fields(TrainConfig):
        kind = "str" if f.default is None else type(f.default).__name__
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            default=None,
            metavar=kind.upper(),
            help=describe(f.name).replace("%", "%%"),
        )  # argparse formats %


def _config_from(args: argparse.Namespace) -> TrainConfig:
    values = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return TrainConfig.from_mapping(values)


def cmd_train(args: argparse.Namespace) -> int:
    from emorec.tracking.store import run_link

    cfg = _config_from(args)
    if cfg.folds:
        return _cross_validate(cfg)
    from emorec.training import train

    result = train(cfg)
    m = result.metrics
    # What a person reads at the end: how good, where to look, what to do next.
    print(
        f"\ntest accuracy {m['test_accuracy']:.3f} (chance {1 / len(result.classes):.3f}), "
        f"macro F1 {m['test_f1_macro']:.3f}, AUC {m['test_auc_roc_macro']:.3f}; "
        f"trained {m['epochs_run']:.0f} epochs in {m['train_time_s']:.1f} s, "
        f"peak RSS {m.get('peak_rss_mb', float('nan')):.0f} MB"
    )
    _where(run_link(result.experiment_id, result.run_id), result.run_id, cfg.log_model)
    return 0


def _cross_validate(cfg) -> int:
    """``--folds K``: the folds, then (with log_model) the final fit whose model the
    cross-validation stands for."""
    from emorec.cross_validation import cross_validate, final_fit
    from emorec.tracking.store import run_link

    cv = cross_validate(cfg)
    m = cv.metrics
    print(
        f"\n{cfg.folds}-fold cross-validation ({len(cv.classes)} classes): test accuracy "
        f"{m['cv_test_accuracy_mean']:.3f} +- {m['cv_test_accuracy_std']:.3f}, macro F1 "
        f"{m['cv_test_f1_macro_mean']:.3f} +- {m['cv_test_f1_macro_std']:.3f}, AUC "
        f"{m['cv_test_auc_roc_macro_mean']:.3f}; folds: "
        + ", ".join(f"{f['test_accuracy']:.3f}" for f in cv.folds)
    )
    if not cfg.log_model:
        return 0
    final = final_fit(cfg, cv.metrics)
    print(f"final fit on every image but a validation part: run {final.run_id}")
    _where(run_link(final.experiment_id, final.run_id), final.run_id, True)
    return 0


def _where(link: str, run_id: str, logged: bool) -> None:
    server = os.environ.get("MLFLOW_TRACKING_URI", "").startswith(("http://", "https://"))
    print(f"the run:  {link}" if server else f"the run:  make ui, then open {link}")
    if logged:
        print(f"predict:  emorec predict --model-uri runs:/{run_id}/emotion_model photos/")


def cmd_explore(args: argparse.Namespace) -> int:
    from emorec.explore import SHARPNESS_GAP, explore, sharpness_gap

    # The scanner options of the dataset explored, as emorec train takes them.
    cfg = TrainConfig.from_mapping(
        {
            "dataset": args.dataset,
            "data_dir": args.data_dir or None,
            "samples": args.samples,
            "seed": args.seed,
            "angles": args.angles,
            "include_neutral": args.include_neutral,
        }
    )
    options = cfg.dataset_options()
    summary = explore(
        args.dataset,
        args.data_dir,
        args.out,
        image_size=args.image_size,
        split=args.split,
        seed=args.seed,
        options=options,
        log_to_mlflow=args.log_mlflow,
    )
    print(
        f"{summary['dataset']}: {summary['images']} images, classes "
        f"{', '.join(f'{c} {n}' for c, n in summary['counts'].items())}"
    )
    for part, counts in summary["counts_per_split"].items():
        print(f"  {part:5s} {sum(counts.values()):6d}")
    q = summary["quality"]
    sharpness = " / ".join(f"{part} {v}" for part, v in q["median_sharpness_per_split"].items())
    print(
        f"  quality: {q['near_blank_images']} near-blank, {q['duplicate_groups']} duplicate "
        f"groups ({q['duplicate_groups_with_conflicting_labels']} with conflicting labels), "
        f"median sharpness {sharpness}"
    )
    gap = sharpness_gap(q["median_sharpness_per_split"])
    if gap > SHARPNESS_GAP:
        print(
            f"  WARNING: the splits' median sharpness differs {gap:.0f}x: they were not "
            "captured (or were processed) alike, so accuracy on the sharper split will "
            "understate what the model learnt; look at samples.png",
            file=sys.stderr,
        )
    print(f"wrote {args.out}/class_distribution.png, samples.png, summary.json")
    return 0


def cmd_models(_args) -> int:
    from emorec.models import get_spec, list_models

    for name in list_models():
        spec = get_spec(name)
        print(f"{name:10s} {spec.framework:6s} {spec.summary}")
    return 0


def cmd_datasets(_args) -> int:
    from emorec.data import FORMATS

    print("\n".join(FORMATS))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train one model, tracked in MLflow")
    _add_config_flags(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("explore", help="class distribution, sample grid and summary of a dataset")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/explore")
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--split", default="auto")
    p.add_argument("--samples", type=int, default=1400, help="synthetic dataset size")
    p.add_argument("--angles", default="S", help=describe("angles"))
    p.add_argument("--include-neutral", default="false", help=describe("include_neutral"))
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--log-mlflow", action="store_true", help="also log the files to MLflow")
    p.set_defaults(func=cmd_explore)

    sub.add_parser("models", help="list the model architectures").set_defaults(func=cmd_models)
    sub.add_parser("datasets", help="list the dataset formats").set_defaults(func=cmd_datasets)
