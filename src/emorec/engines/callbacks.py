"""What a training loop tells the world each epoch: callbacks, and how training ends early."""

from __future__ import annotations

import sys
import time

from emorec.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is failed with this reason."""


class StopTraining(Exception):
    """Raised by a callback to end training early (the result so far is kept)."""


class Callback:
    """Receives per-epoch values; MLflow logging and Optuna pruning are callbacks.

    ``logs`` holds train_loss, train_accuracy, val_loss, val_accuracy and lr.
    A callback may raise (e.g. ``optuna.TrialPruned``) to stop the run.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:  # pragma: no cover
        pass


def interactive(cfg: TrainConfig) -> bool:
    """Draw progress bars? Only when asked for and stderr, where they are drawn, is a
    terminal: in a log file, CI or a captured ``mlflow run`` every redraw would become a
    line of its own, so ``EpochLog`` prints one line per epoch there instead."""
    isatty = getattr(sys.stderr, "isatty", None)
    return cfg.progress and bool(isatty and isatty())


class EpochLog(Callback):
    """One line per epoch on stdout, for output that is not a terminal (see ``interactive``)."""

    def __init__(self, epochs: int):
        self.epochs, self.started = epochs, time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        now = time.perf_counter()
        took, self.started = now - self.started, now
        print(
            f"epoch {epoch}/{self.epochs}: train_loss {logs['train_loss']:.3f} "
            f"train_acc {logs['train_accuracy']:.3f} val_loss {logs['val_loss']:.3f} "
            f"val_acc {logs['val_accuracy']:.3f} ({took:.1f} s)",
            flush=True,
        )
