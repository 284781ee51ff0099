"""The ``emorec`` command line.

``emorec train`` takes one flag per ``TrainConfig`` field (the MLproject
``main`` entry point maps the same names one to one); ``emorec explore``
summarises a dataset; ``emorec models`` and ``emorec datasets`` list the
valid names. ``emorec tune`` runs or resumes an Optuna study, ``emorec
compare`` writes the comparison report, ``emorec benchmark-all`` does both
for many models and datasets. ``emorec predict`` runs a logged or registered
model on image files and folders; ``emorec export`` writes a PyTorch or Keras model as
ONNX (``emorec predict --model-uri model.onnx`` then runs it on ONNX Runtime).
User mistakes (``emorec.errors.UserError``) end with one clear line, never a stack
trace; any other error is a fault, shown in one line too, with its traceback under ``-v``.

One module per area (``train``, ``predict``, ``study``, ``compare``), each adding its
commands to the parser; ``args`` holds the shared little parsers.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from emorec.cli import compare, predict, study, train
from emorec.cli.args import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE
from emorec.cli.study import STUDY_OBJECTIVES, STUDY_PRUNERS, STUDY_SAMPLERS
from emorec.engines.callbacks import TrainingDiverged
from emorec.errors import UserError

__all__ = ["STUDY_OBJECTIVES", "STUDY_PRUNERS", "STUDY_SAMPLERS", "build_parser", "main"]


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``docker stop``, systemd) or SIGHUP (a closed terminal, a
    dropped ssh connection) as an interrupt: the open runs end KILLED with this reason, as
    on Ctrl-C, rather than the process vanishing mid-run."""


# The signals that end a command as Ctrl-C does, and who usually sends them.
ENDING_SIGNALS = {
    signal.SIGTERM: "timeout, docker stop, systemd",
    signal.SIGHUP: "a closed terminal or a dropped connection",
}


def _terminate(signum, _frame) -> None:
    # Once: a second signal must not cut short the first one's cleanup (ending the runs).
    for ending in ENDING_SIGNALS:
        signal.signal(ending, signal.SIG_IGN)
    raise Terminated(f"terminated by {signal.Signals(signum).name} ({ENDING_SIGNALS[signum]})")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:500]}" if lines else type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emorec", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for area in (train, predict, study, compare):
        area.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        previous = {sig: signal.signal(sig, _terminate) for sig in ENDING_SIGNALS}
    except ValueError:  # not the main thread: the embedding program owns the signals
        previous = {}
    try:
        return args.func(args)
    except UserError as exc:
        print(f"emorec: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as exc:
        print(f"emorec: training failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Terminated as exc:
        print(f"emorec: {exc}", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("emorec: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"emorec: failed: {_first_line(exc)} (not an input error: run with -v for its "
            "traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        for sig, handler in previous.items():  # main() also runs inside other programs
            signal.signal(sig, handler or signal.SIG_DFL)
