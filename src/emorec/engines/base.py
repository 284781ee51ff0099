"""What every engine shares: the interface, callbacks and framework-free helpers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from emorec.config import TrainConfig
from emorec.data.augment import augment_batch
from emorec.data.preprocess import normalize


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


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0  # 1-based epoch whose weights were kept
    epochs_run: int = 0
    stopped_early: bool = False
    train_images: int = 0  # images processed in training, for throughput


class Engine(ABC):
    framework: str

    @abstractmethod
    def build(self, cfg: TrainConfig, num_classes: int):
        """A fresh, seeded model for ``cfg``."""

    @abstractmethod
    def fit(self, model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
            cfg: TrainConfig, callbacks: list[Callback]) -> FitResult:
        """Train on uint8 (N, H, W, C) images and 0..K-1 targets."""

    @abstractmethod
    def predict_proba(self, model, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K) for uint8 (N, H, W, C) images."""


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training samples ("balanced")."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def training_batches(images: np.ndarray, targets: np.ndarray, batch_size: int, augment: bool,
                     rng: np.random.Generator):
    """Shuffled (float32 NHWC, int64) batches, augmented per batch when asked."""
    order = rng.permutation(len(targets))
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start:start + batch_size])  # sorted: faster gather
        batch = images[index]
        if augment:
            batch = augment_batch(batch, rng)
        yield normalize(batch), targets[index]


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
