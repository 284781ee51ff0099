"""The ``emorec`` command line.

``emorec train`` takes one flag per ``TrainConfig`` field (the MLproject
``main`` entry point maps the same names one to one); ``emorec explore``
summarises a dataset; ``emorec models`` and ``emorec datasets`` list the
valid names. ``emorec tune`` runs or resumes an Optuna study, ``emorec
compare`` writes the comparison report, ``emorec benchmark-all`` does both
for many models and datasets. ``emorec predict`` runs a logged or registered
model on image files and folders; ``emorec export`` writes a PyTorch or Keras model as
ONNX (``emorec predict --model-uri model.onnx`` then runs it on ONNX Runtime).
User mistakes end with one clear line, never a stack trace.

One module per area (``train``, ``predict``, ``study``), each adding its
commands to the parser; ``args`` holds the shared little parsers.
"""

from __future__ import annotations

import argparse
import logging
import sys

from emorec.cli import predict, study, train
from emorec.cli.args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE
from emorec.cli.study import STUDY_OBJECTIVES, STUDY_PRUNERS, STUDY_SAMPLERS
from emorec.data.errors import DatasetError
from emorec.engines.base import TrainingDiverged

__all__ = ["STUDY_OBJECTIVES", "STUDY_PRUNERS", "STUDY_SAMPLERS", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emorec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for area in (train, predict, study):
        area.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, DatasetError, FileNotFoundError) as exc:
        print(f"emorec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as exc:
        print(f"emorec: training failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("emorec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
