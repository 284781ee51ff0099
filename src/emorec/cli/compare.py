"""``emorec compare`` (the comparison report of every champion) and ``benchmark-all``
(a study per model and dataset, or a campaign such as the seed's, then the report)."""

from __future__ import annotations

import argparse
import sys

from emorec.cli.args import EXIT_FAILED, as_bool, parse_sets, split_list
from emorec.cli.study import add_tuning_flags, print_study, study_options
from emorec.errors import UserError

CROSS_HELP = (
    "Also test each dataset's champion on the other datasets' test splits; "
    "--cross alone or --cross true|false."
)


def _print_report(report) -> None:
    from emorec.evaluation.report import markdown

    print(markdown(report.rows), end="")
    logged = (
        f"; logged as run {report.run_id} (experiment {report.experiment})" if report.run_id else ""
    )
    print(f"wrote {len(report.files)} files to {report.folder}{logged}")


def cmd_compare(args: argparse.Namespace) -> int:
    from emorec.evaluation.report import compare

    datasets = [d for item in args.dataset for d in split_list(item.replace(" ", ","))]
    _print_report(
        compare(datasets or None, args.out, cross=args.cross, log_mlflow=not args.no_mlflow)
    )
    return 0


def cmd_benchmark_all(args: argparse.Namespace) -> int:
    from emorec.study.comparison import benchmark_all

    dirs = {}
    for item in args.data_dir or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise UserError(f"--data-dir expects dataset=path, got {item!r}")
        dirs[name] = path
    if not args.preset and not args.models:
        raise UserError("benchmark-all needs --models (or --preset NAME, e.g. seed)")
    datasets = args.datasets or ("" if args.preset else "synthetic")
    result = benchmark_all(
        split_list(args.models or ""),
        split_list(datasets),
        data_dirs=dirs,
        overrides=parse_sets(args.set),
        options=study_options(args),
        out=args.out,
        cross=args.cross,
        preset=args.preset,
    )
    for study in result.studies:
        print_study(study)
    for pair, error in result.failures.items():
        print(f"emorec: {pair} failed: {error}", file=sys.stderr)
    _print_report(result.report)
    return EXIT_FAILED if result.failures else 0


def add_commands(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="results table, charts (and cross-dataset matrix) "
        "of the registered champions and best runs",
    )
    p.add_argument(
        "--dataset",
        nargs="*",
        action="extend",
        default=[],
        help="Report only these datasets, space- or comma-separated. Default: all.",
    )
    p.add_argument(
        "--out",
        default="outputs/compare",
        help="The folder the report is written to. Default: outputs/compare.",
    )
    p.add_argument("--cross", nargs="?", const=True, default=False, type=as_bool, help=CROSS_HELP)
    p.add_argument(
        "--no-mlflow", action="store_true", help="Do not log the report as a run of MLflow."
    )
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("benchmark-all", help="a study per model x dataset, then the report")
    p.add_argument(
        "--models",
        default=None,
        help="The models to tune, comma-separated, e.g. cnn_torch,vgg16 (a preset names its own).",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="The datasets to tune on, comma-separated, e.g. ckplus,fer2013. Default: "
        "synthetic, or with a preset every dataset given a --data-dir.",
    )
    p.add_argument(
        "--preset",
        default=None,
        metavar="NAME",
        help="A campaign in tuning/ (its models, each pair's recipe, budgets, folds and the "
        "reference figures the report sets beside emorec's): seed reproduces the seed "
        "study's comparison.",
    )
    p.add_argument(
        "--data-dir",
        action="append",
        metavar="DATASET=PATH",
        help="A dataset's root folder; repeat the flag for each dataset.",
    )
    p.add_argument(
        "--out",
        default="outputs/compare",
        help="The folder the report is written to. Default: outputs/compare.",
    )
    p.add_argument("--cross", nargs="?", const=True, default=False, type=as_bool, help=CROSS_HELP)
    add_tuning_flags(p)
    p.set_defaults(func=cmd_benchmark_all)
