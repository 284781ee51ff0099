"""What every engine shares: the interface, callbacks and framework-free helpers."""

from __future__ import annotations

import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from emorec.config import TrainConfig
from emorec.data.augment import augment_batch
from emorec.data.preprocess import normalize


# Images per forward pass in evaluation (validation each epoch, test, predict_proba). Not
# more: at 256, one feature map of the proposed CNN's first stage (48x48, 32 filters) took
# 75 MB and evaluation set the run's memory peak; at 64 the run's own share fell ~110 MB
# (benchmarks/memory.py), and evaluation even ran faster here (768 CK+ faces: 2.0 s of CPU
# against 2.6 s at 256, the batch's activations staying in cache).
EVAL_BATCH = 64


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
        print(f"epoch {epoch}/{self.epochs}: train_loss {logs['train_loss']:.3f} "
              f"train_acc {logs['train_accuracy']:.3f} val_loss {logs['val_loss']:.3f} "
              f"val_acc {logs['val_accuracy']:.3f} ({took:.1f} s)", flush=True)


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0  # 1-based epoch whose weights were kept
    epochs_run: int = 0
    stopped_early: bool = False
    train_images: int = 0  # images processed in training, for throughput


class Engine(ABC):
    """Everything that differs between frameworks, so that training, tracking, serving and
    export never ask which framework a model is: building, training and the forward pass,
    the model's size, its MLflow flavour (log, save, load) and its ONNX export."""

    framework: str
    requirements: tuple[str, ...]  # pip packages a logged model of this framework imports

    @abstractmethod
    def build(self, cfg: TrainConfig, num_classes: int):
        """A fresh, seeded model for ``cfg``."""

    @abstractmethod
    def fit(self, model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
            cfg: TrainConfig, callbacks: list[Callback]) -> FitResult:
        """Train on uint8 (N, H, W, C) images and 0..K-1 targets."""

    @abstractmethod
    def probabilities(self, model, batch: np.ndarray) -> np.ndarray:
        """The forward pass: class probabilities (N, K) as float32 for a normalised float32
        (N, H, W, C) batch. Evaluation and every serving path go through it, so a served
        model computes exactly what was evaluated."""

    def predict_proba(self, model, images: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Class probabilities (N, K) for uint8 (N, H, W, C) images."""
        out = [self.probabilities(model, normalize(images[start:start + batch_size]))
               for start in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    @abstractmethod
    def count_parameters(self, model) -> int:
        """The number of (trainable) parameters, logged as ``num_parameters``."""

    @abstractmethod
    def weights_mb(self, model) -> float:
        """Size of the weights in memory (parameters and buffers such as BN statistics)."""

    @abstractmethod
    def save_flavor(self, model, example: np.ndarray, path: str, *,
                    pip_requirements: list[str], code_path: str | None = None,
                    mlflow_model=None) -> None:
        """Save ``model`` in this framework's MLflow flavour to the new folder ``path``:
        ``example``, uint8 (N, H, W, C) images, gives its signature and, where the flavour
        can keep one, its input example; ``code_path``, emorec's code where the saved
        model needs it to load; ``mlflow_model``, the ``mlflow.models.Model`` metadata of
        a logged model."""

    @abstractmethod
    def load_flavor(self, path: str):
        """The model saved by ``save_flavor`` at ``path``, on the CPU, ready to predict."""

    def save_network(self, model, example: np.ndarray, path: str, *,
                     pip_requirements: list[str]) -> None:
        """Save ``model`` where the raw-image pyfunc carries it (``load_network`` reads it
        back): by default in the MLflow flavour, without emorec's code (the pyfunc has
        its own)."""
        self.save_flavor(model, example, path, pip_requirements=pip_requirements)

    def load_network(self, path: str):
        """The network a raw-image pyfunc carries at ``path`` (``save_network``)."""
        return self.load_flavor(path)

    @abstractmethod
    def export_onnx(self, model, out, prep, *, opset: int, input_name: str,
                    output_name: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
        """Write ``model`` (softmax included, batch axis dynamic) as ONNX to ``out``; returns
        the graph's input layout ("NCHW" or "NHWC") and a reference function giving the
        model's probabilities for a normalised batch in that layout (the parity check)."""

    def run_tags(self, cfg: TrainConfig) -> dict[str, str]:
        """What the run computes on and in (device, CPU flags, the precision ``auto``
        resolved to), tagged on the run beside its timings."""
        from emorec.resources import cpu_flags

        return {"device": "cpu", "cpu_flags": " ".join(cpu_flags()), "precision_used": "fp32"}

    def start_from(self, model, source_model, rows: list[tuple[int, int]]) -> None:
        """Copy ``source_model``'s weights into ``model``: every layer of the same shape,
        and of the classifier's last layer the ``(new row, source row)`` pairs."""
        raise NotImplementedError(f"{self.framework} models cannot start from another model")

    def for_inference(self, model, cfg: TrainConfig):
        """The trained model as evaluated, logged and served (with its test-time
        augmentation, where the config asks for one)."""
        return model

    def without_tta(self, model):
        """The network inside ``for_inference``'s model: one forward pass per image, no
        test-time augmentation (``model`` itself when it has none)."""
        return model


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training samples ("balanced")."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def training_batches(images: np.ndarray, targets: np.ndarray, batch_size: int, augment: bool,
                     rng: np.random.Generator, erasing: float = 0.0):
    """Shuffled (float32 NHWC, int64) batches, augmented per batch when asked."""
    order = rng.permutation(len(targets))
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start:start + batch_size])  # sorted: faster gather
        batch = images[index]
        if augment:
            batch = augment_batch(batch, rng, erasing)
        yield normalize(batch), targets[index]


ONECYCLE_WARMUP = 0.15  # share of training spent warming the learning rate up
ONECYCLE_START = 0.04  # the warm-up starts at lr / 25 (PyTorch's OneCycleLR default)


def onecycle_factor(progress: float) -> float:
    """The one-cycle learning-rate multiplier at ``progress`` (0..1) of training: a linear
    warm-up to 1, then a cosine down to 0 (Smith & Topin, 2019)."""
    if progress < ONECYCLE_WARMUP:
        return ONECYCLE_START + (1 - ONECYCLE_START) * progress / ONECYCLE_WARMUP
    done = min(1.0, (progress - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP))
    return 0.5 * (1 + math.cos(math.pi * done))


class TrainingClock:
    """How far training is along: the share of its steps done or, under a wall-time
    budget, the share of the budget spent, whichever is larger."""

    def __init__(self, total_steps: int, budget_minutes: float = 0.0):
        self.total_steps, self.budget_s = max(1, total_steps), 60.0 * budget_minutes
        self.started = time.perf_counter()

    def progress(self, steps_done: int) -> float:
        by_time = ((time.perf_counter() - self.started) / self.budget_s if self.budget_s
                   else 0.0)
        return max(steps_done / self.total_steps, by_time)

    def out_of_time(self) -> bool:
        return bool(self.budget_s) and time.perf_counter() - self.started >= self.budget_s


def check_finite(loss: float, epoch: int) -> None:
    if not np.isfinite(loss):
        raise TrainingDiverged(f"loss became {loss} in epoch {epoch}; lower the learning "
                               f"rate or check the data")


class EarlyStopping:
    """Tracks the best validation loss; says when patience has run out."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = float("inf")
        self.best_epoch = 0

    def improved(self, val_loss: float, epoch: int) -> bool:
        if val_loss < self.best - 1e-6:
            self.best, self.best_epoch = val_loss, epoch
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return self.patience > 0 and epoch - self.best_epoch >= self.patience
