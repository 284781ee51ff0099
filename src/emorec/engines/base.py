"""What every engine shares: the interface, and the one training loop.

``Engine.fit`` is the loop for every framework: epochs, batches, the learning rate of
each step, the wall-time budget, validation, history, the best weights, early stopping,
the divergence check and the callbacks. An engine supplies what differs through a
``FitSession``: one optimisation step, the forward pass, and its weights' snapshot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from emorec.config import TrainConfig
from emorec.data.augment import mix_batch
from emorec.engines.batches import (
    EVAL_BATCH,
    batched,
    check_finite,
    class_weights,
    mean_loss,
    training_batches,
)
from emorec.engines.callbacks import Callback, StopTraining, interactive
from emorec.engines.schedule import EarlyStopping, LearningRate, TrainingClock
from emorec.models import build_model


@dataclass
class FitResult:
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0  # 1-based epoch whose weights were kept
    epochs_run: int = 0
    stopped_early: bool = False
    images_seen: int = 0  # training images processed over all epochs, for throughput
    snapshots: list = field(default_factory=list)  # each cycle's last weights (snapshots)


class FitSession(ABC):
    """What one engine's training of one model needs beyond the shared loop."""

    num_classes: int

    @abstractmethod
    def set_lr(self, lr: float) -> None:
        """The learning rate of the next steps."""

    @abstractmethod
    def step(self, batch: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
        """One optimisation step on a normalised float32 NHWC batch and its soft targets
        (N, K): its mean loss, and how many images the model gave their dominant class."""

    @abstractmethod
    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The forward pass in evaluation mode, at training's precision."""

    @abstractmethod
    def snapshot(self):
        """A copy of the weights, for ``restore``."""

    @abstractmethod
    def restore(self, snapshot) -> None:
        """Put back the weights of a ``snapshot``."""

    def freeze_backbone(self, frozen: bool) -> None:  # noqa: B027 (optional: a no-op)
        """Train only the classifier head while ``frozen`` (``freeze_epochs``)."""


class Engine(ABC):
    """Everything that differs between frameworks, so that training, tracking, serving and
    export never ask which framework a model is: building, the training step and the
    forward pass, the model's size, its MLflow flavour, saving and loading, ONNX export."""

    framework: str
    requirements: tuple[str, ...]  # pip packages a logged model of this framework imports

    def build(self, cfg: TrainConfig, num_classes: int):
        """A fresh, seeded model for ``cfg``."""
        self.seed(cfg.seed)
        return build_model(
            cfg.model,
            num_classes=num_classes,
            in_channels=cfg.channels,
            image_size=cfg.input_size,
            dropout=cfg.dropout,
            pretrained=cfg.pretrained,
        )

    def load_framework(self) -> None:  # noqa: B027 (optional: a no-op)
        """Import what the framework loads on first use in training, once per process:
        ``train()`` calls it before it measures a run's memory, so that the first run in a
        process is not charged for the framework's own code (later runs find it loaded)."""

    @abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's random numbers (initial weights, dropout)."""

    @abstractmethod
    def fit_session(self, model, cfg: TrainConfig, train_targets: np.ndarray) -> FitSession:
        """Set ``model`` up for training with ``cfg`` (device, loss, optimizer)."""

    def fit(
        self,
        model,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        cfg: TrainConfig,
        callbacks: list[Callback],
    ) -> FitResult:
        """Train on uint8 (N, H, W, C) images and 0..K-1 targets; the weights of the epoch
        with the lowest validation loss are kept or, with ``cfg.snapshots``, the last
        weights of every learning-rate cycle are returned (``FitResult.snapshots``)."""
        (x_train, y_train), (x_val, y_val) = train, val
        rng = np.random.default_rng(cfg.seed)
        session = self.fit_session(model, cfg, y_train)
        weights = class_weights(y_train, session.num_classes) if cfg.class_weighting else None
        lr, stopper = LearningRate(cfg), EarlyStopping(cfg.early_stopping)
        n_batches = -(-len(y_train) // cfg.batch_size)
        clock = TrainingClock(cfg.epochs * n_batches, cfg.time_budget_min)
        result, best, steps, rate = FitResult(), None, 0, cfg.lr
        for epoch in range(1, cfg.epochs + 1):
            session.freeze_backbone(epoch <= cfg.freeze_epochs)
            seen, loss_sum, correct = 0, 0.0, 0
            bar = tqdm(
                training_batches(
                    x_train, y_train, cfg.batch_size, cfg.augment, rng, cfg.random_erasing
                ),
                total=n_batches,
                desc=f"epoch {epoch}/{cfg.epochs}",
                unit="batch",
                leave=False,
                disable=not interactive(cfg),
            )
            for xb, yb in bar:
                progress = clock.progress(steps)
                if lr.cycle(progress) > len(result.snapshots):  # a cycle has just ended
                    result.snapshots.append(session.snapshot())
                rate = lr.at(progress)
                session.set_lr(rate)
                xb, soft = mix_batch(xb, yb, session.num_classes, rng, cfg.mixup, cfg.cutmix)
                loss, hits = session.step(xb, soft)
                check_finite(loss, epoch)
                steps, seen = steps + 1, seen + len(yb)
                loss_sum, correct = loss_sum + loss * len(yb), correct + hits
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if clock.out_of_time():  # the rest of the epoch would overrun the budget
                    break
            bar.close()
            proba = batched(session.probabilities, x_val)
            val_loss = mean_loss(proba, y_val, cfg.label_smoothing, weights)
            check_finite(val_loss, epoch)
            logs = {
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen,
                "val_loss": val_loss,
                "val_accuracy": float(np.mean(proba.argmax(1) == y_val)),
                "lr": rate,
            }
            for key, value in logs.items():
                result.history.setdefault(key, []).append(value)
            result.epochs_run, result.images_seen = epoch, result.images_seen + seen
            if stopper.improved(val_loss, epoch) and not cfg.snapshots:
                best = session.snapshot()
            lr.epoch_end(val_loss)
            try:
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
            except StopTraining:
                result.stopped_early = True
                break
            if stopper.should_stop(epoch) or clock.out_of_time():
                result.stopped_early = True
                break
        if cfg.snapshots:
            result.snapshots.append(session.snapshot())  # the last cycle's end
        elif best is not None:
            session.restore(best)
        result.best_epoch = stopper.best_epoch if best is not None else result.epochs_run
        return result

    @abstractmethod
    def probabilities(self, model, batch: np.ndarray) -> np.ndarray:
        """The forward pass: class probabilities (N, K) as float32 for a normalised float32
        (N, H, W, C) batch. Evaluation and every serving path go through it, so a served
        model computes exactly what was evaluated."""

    def predict_proba(self, model, images: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
        """Class probabilities (N, K) for uint8 (N, H, W, C) images."""
        return batched(lambda batch: self.probabilities(model, batch), images, batch_size)

    @abstractmethod
    def count_parameters(self, model) -> int:
        """The number of (trainable) parameters, logged as ``num_parameters``."""

    @abstractmethod
    def flops_per_image(self, model, shape: tuple[int, int, int]) -> float:
        """Floating-point operations (a multiply-add counts two) of one forward pass of an
        (H, W, C) image, as the model is evaluated (test-time augmentation included)."""

    @abstractmethod
    def weights_mb(self, model) -> float:
        """Size of the weights in memory (parameters and buffers such as BN statistics)."""

    @abstractmethod
    def log_flavor(
        self,
        model,
        name: str,
        example: np.ndarray,
        *,
        pip_requirements: list[str],
        code_paths: list[str],
    ) -> None:
        """Log ``model`` in this framework's MLflow flavour as ``name`` of the active run;
        ``example``, uint8 (N, H, W, C) images, gives its signature; ``code_paths``,
        emorec's code where the saved model needs it to load."""

    @abstractmethod
    def save_network(self, model, folder: Path) -> Path:
        """Save ``model`` as the raw-image pyfunc carries it, as the framework saves a
        model, into ``folder``; returns the file (``load_network`` reads it)."""

    @abstractmethod
    def load_network(self, path: str):
        """The network ``save_network`` wrote at ``path``, on the CPU, ready to predict."""

    @abstractmethod
    def export_onnx(
        self, model, out, prep, *, opset: int, input_name: str, output_name: str
    ) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
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

    def for_inference(self, model, cfg: TrainConfig, snapshots: list = ()):
        """The trained model as evaluated, logged and served: the ensemble of ``snapshots``
        (``FitResult.snapshots``) where there are some, with its test-time augmentation
        where the config asks for one."""
        return model

    def passes_per_image(self, model) -> int:
        """Forward passes of the trained network that one image costs in ``model``."""
        return 1

    def without_tta(self, model):
        """The network inside ``for_inference``'s model: one view per image, no
        test-time augmentation (``model`` itself when it has none)."""
        return model
