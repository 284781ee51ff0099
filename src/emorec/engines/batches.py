"""The framework-free pieces of a training loop: shuffled, augmented batches, forward
passes in evaluation batches, the loss of probabilities, class weights, the divergence
check."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from emorec.data.augment import augment_batch
from emorec.data.preprocess import normalize
from emorec.engines.callbacks import TrainingDiverged

# Images per forward pass in evaluation (validation each epoch, test, predict_proba): larger
# batches raise the run's memory peak without making a CPU evaluation faster.
EVAL_BATCH = 64


def batched(
    forward: Callable[[np.ndarray], np.ndarray], images: np.ndarray, batch_size: int = EVAL_BATCH
) -> np.ndarray:
    """``forward`` over uint8 (N, H, W, C) ``images``, normalised, ``batch_size`` at a time."""
    out = [
        forward(normalize(images[start : start + batch_size]))
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def mean_loss(
    proba: np.ndarray,
    targets: np.ndarray,
    label_smoothing: float = 0.0,
    weights: np.ndarray | None = None,
) -> float:
    """The cross-entropy training minimises (label smoothing, class weights), of
    probabilities: the validation loss of every framework, computed one way."""
    logp = np.log(np.clip(proba.astype(np.float64), 1e-12, 1.0))
    per_image = -(
        (1 - label_smoothing) * logp[np.arange(len(targets)), targets]
        + label_smoothing * logp.mean(axis=1)
    )
    if weights is None:
        return float(per_image.mean())
    w = weights[targets]
    return float((per_image * w).sum() / w.sum())


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights, mean 1 over the training samples ("balanced")."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)
    return weights.astype(np.float32)


def training_batches(
    images: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    augment: bool,
    rng: np.random.Generator,
    erasing: float = 0.0,
):
    """Shuffled (float32 NHWC, int64) batches, augmented per batch when asked."""
    order = rng.permutation(len(targets))
    for start in range(0, len(order), batch_size):
        index = np.sort(order[start : start + batch_size])  # sorted: faster gather
        batch = images[index]
        if augment:
            batch = augment_batch(batch, rng, erasing)
        yield normalize(batch), targets[index]


def check_finite(loss: float, epoch: int) -> None:
    if not np.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} in epoch {epoch}; lower the learning rate or check the data"
        )
