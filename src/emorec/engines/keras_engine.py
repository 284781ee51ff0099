"""Keras 3 engine (TensorFlow backend), the twin of the PyTorch engine.

Same batches (the shared augmentation on uint8 arrays), same optimizers,
schedules, early stopping with best-weights restore, class weighting and
label smoothing; our callbacks see the same per-epoch keys.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emorec.config import TrainConfig  # noqa: E402
from emorec.data.augment import augment_batch  # noqa: E402
from emorec.data.preprocess import normalize  # noqa: E402
from emorec.engines.base import (EVAL_BATCH, Callback, EarlyStopping, Engine,  # noqa: E402
                                 FitResult, StopTraining, TrainingDiverged, class_weights,
                                 interactive)
from emorec.models import build_model  # noqa: E402


class _Batches(keras.utils.PyDataset):
    """Shuffled, augmented, normalised batches; one-hot targets for label smoothing."""

    def __init__(self, images, targets, num_classes, cfg: TrainConfig, rng):
        super().__init__()
        self.images, self.targets, self.cfg, self.rng = images, targets, cfg, rng
        self.onehot = np.eye(num_classes, dtype=np.float32)
        self.order = rng.permutation(len(targets))

    def __len__(self):
        return math.ceil(len(self.targets) / self.cfg.batch_size)

    def __getitem__(self, i):
        index = np.sort(self.order[i * self.cfg.batch_size:(i + 1) * self.cfg.batch_size])
        batch = self.images[index]
        if self.cfg.augment:
            batch = augment_batch(batch, self.rng, self.cfg.random_erasing)
        return normalize(batch), self.onehot[self.targets[index]]

    def on_epoch_end(self):
        self.order = self.rng.permutation(len(self.targets))


class _Bridge(keras.callbacks.Callback):
    """Forwards Keras epoch logs to emorec callbacks; tracks early stopping."""

    def __init__(self, callbacks: list[Callback], cfg: TrainConfig, result: FitResult):
        super().__init__()
        self.callbacks, self.cfg, self.result = callbacks, cfg, result
        self.stopper = EarlyStopping(cfg.early_stopping)
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        epoch += 1
        values = {"train_loss": float(logs["loss"]), "train_accuracy": float(logs["accuracy"]),
                  "val_loss": float(logs["val_loss"]), "val_accuracy": float(logs["val_accuracy"]),
                  "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))}
        if not all(np.isfinite(v) for v in values.values()):
            raise TrainingDiverged(f"loss became {values['train_loss']} in epoch {epoch}; "
                                   f"lower the learning rate or check the data")
        for key, value in values.items():
            self.result.history.setdefault(key, []).append(value)
        self.result.epochs_run = epoch
        if self.stopper.improved(values["val_loss"], epoch):
            self.best_weights = self.model.get_weights()
        try:
            for cb in self.callbacks:
                cb.on_epoch_end(epoch, values)
        except StopTraining:
            self.result.stopped_early = self.model.stop_training = True
        if self.stopper.should_stop(epoch):
            self.result.stopped_early = self.model.stop_training = True


def _schedule(cfg: TrainConfig):
    if cfg.lr_schedule == "cosine":
        return keras.callbacks.LearningRateScheduler(
            lambda e, lr: cfg.lr * 0.5 * (1 + math.cos(math.pi * e / cfg.epochs)))
    if cfg.lr_schedule == "step":
        step = max(1, cfg.epochs // 3)
        return keras.callbacks.LearningRateScheduler(lambda e, lr: cfg.lr * 0.1 ** (e // step))
    if cfg.lr_schedule == "plateau":
        return keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2)
    return None


def _optimizer(cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(cfg.lr, momentum=0.9, nesterov=True,
                                    weight_decay=cfg.weight_decay or None)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(cfg.lr, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(cfg.lr, weight_decay=cfg.weight_decay or None)


class KerasEngine(Engine):
    framework = "keras"
    requirements = ("tensorflow-cpu", "keras")

    def run_tags(self, cfg: TrainConfig) -> dict[str, str]:
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
        return {**super().run_tags(cfg), "device": "gpu" if gpu else "cpu"}

    def build(self, cfg: TrainConfig, num_classes: int):
        keras.utils.set_random_seed(cfg.seed)
        return build_model(cfg.model, num_classes=num_classes, in_channels=cfg.channels,
                           image_size=cfg.input_size, dropout=cfg.dropout,
                           pretrained=cfg.pretrained)

    def fit(self, model, train, val, cfg: TrainConfig, callbacks: list[Callback]) -> FitResult:
        (x_train, y_train), (x_val, y_val) = train, val
        keras.utils.set_random_seed(cfg.seed)
        num_classes = model.output_shape[-1]
        model.compile(optimizer=_optimizer(cfg),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
                      metrics=["accuracy"])
        result = FitResult()
        bridge = _Bridge(callbacks, cfg, result)
        keras_callbacks = [bridge] + [s for s in [_schedule(cfg)] if s is not None]
        weights = class_weights(y_train, num_classes) if cfg.class_weighting else None
        model.fit(_Batches(x_train, y_train, num_classes, cfg, np.random.default_rng(cfg.seed)),
                  validation_data=(normalize(x_val), np.eye(num_classes, dtype=np.float32)[y_val]),
                  validation_batch_size=EVAL_BATCH, epochs=cfg.epochs, callbacks=keras_callbacks,
                  class_weight=None if weights is None else dict(enumerate(weights.tolist())),
                  verbose=1 if interactive(cfg) else 0)
        if bridge.best_weights is not None:  # restore the weights of the best validation loss
            model.set_weights(bridge.best_weights)
        result.best_epoch = bridge.stopper.best_epoch or result.epochs_run
        result.train_images = len(y_train) * result.epochs_run
        return result

    def probabilities(self, model, batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False), dtype=np.float32)  # ends in softmax

    def count_parameters(self, model) -> int:
        return int(sum(np.prod(w.shape) for w in model.trainable_weights))

    def weights_mb(self, model) -> float:
        return sum(np.asarray(w).nbytes for w in model.weights) / 2**20

    def save_flavor(self, model, example: np.ndarray, path: str, *,
                    pip_requirements: list[str], code_path: str | None = None,
                    mlflow_model=None) -> None:
        import mlflow.keras
        from mlflow.models import infer_signature

        x = normalize(example)
        sig = infer_signature(x, np.asarray(model(x, training=False)))
        # No input_example: mlflow.keras 3.17 writes it before creating the model
        # folder and fails; the signature still documents the input. No code_path: a
        # Keras model is saved as its own graph, with no emorec class to import.
        mlflow.keras.save_model(model, path, mlflow_model=mlflow_model, signature=sig,
                                pip_requirements=pip_requirements)

    def load_flavor(self, path: str):
        import mlflow.keras

        return mlflow.keras.load_model(path)

    def export_onnx(self, model, out, prep, *, opset: int, input_name: str, output_name: str):
        # Keras' own exporter (tf2onnx) names the graph's input and output itself; the
        # model already ends in softmax.
        import warnings

        model(np.zeros((1, prep.image_size, prep.image_size, prep.channels), np.float32))  # built
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecation notices
            model.export(str(out), format="onnx", verbose=False, opset_version=opset)
        return "NHWC", lambda x: self.probabilities(model, x)
