"""Keras 3 engine (TensorFlow backend), the twin of the PyTorch engine.

Trained by the same loop (``Engine.fit``): the same batches, schedules, wall-time
budget, early stopping and callbacks; Keras supplies the optimisation step.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

import keras  # noqa: E402
import numpy as np  # noqa: E402

from emorec.config import TrainConfig  # noqa: E402
from emorec.data.preprocess import normalize  # noqa: E402
from emorec.engines.base import Engine, FitSession  # noqa: E402
from emorec.engines.batches import class_weights  # noqa: E402
from emorec.engines.schedule import SGD_MOMENTUM  # noqa: E402


def _optimizer(cfg: TrainConfig):
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(
            cfg.lr, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=cfg.weight_decay or None
        )
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(cfg.lr, weight_decay=cfg.weight_decay)
    return keras.optimizers.Adam(cfg.lr, weight_decay=cfg.weight_decay or None)


class _KerasFit(FitSession):
    """One model's training through Keras' own step (``train_on_batch``): one-hot targets,
    so that the loss can smooth labels."""

    def __init__(self, model, cfg: TrainConfig, train_targets: np.ndarray):
        self.model, self.num_classes = model, int(model.output_shape[-1])
        keras.utils.set_random_seed(cfg.seed)
        self.class_weights = (
            class_weights(train_targets, self.num_classes) if cfg.class_weighting else None
        )
        model.compile(
            optimizer=_optimizer(cfg),
            metrics=["accuracy"],
            loss=keras.losses.CategoricalCrossentropy(label_smoothing=cfg.label_smoothing),
        )

    def set_lr(self, lr: float) -> None:
        self.model.optimizer.learning_rate = lr

    def step(self, batch: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
        self.model.reset_metrics()  # this batch's loss and accuracy, not running means
        # Class weights as sample weights: Keras' class_weight wants integer targets.
        weights = self.class_weights[targets.argmax(1)] if self.class_weights is not None else None
        logs = self.model.train_on_batch(batch, targets, sample_weight=weights, return_dict=True)
        return float(logs["loss"]), int(round(float(logs["accuracy"]) * len(targets)))

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False), dtype=np.float32)

    def snapshot(self):
        return self.model.get_weights()

    def restore(self, snapshot) -> None:
        self.model.set_weights(snapshot)


class KerasEngine(Engine):
    framework = "keras"
    requirements = ("tensorflow-cpu", "keras")

    def run_tags(self, cfg: TrainConfig) -> dict[str, str]:
        import tensorflow as tf

        gpu = bool(tf.config.list_physical_devices("GPU"))
        return {**super().run_tags(cfg), "device": "gpu" if gpu else "cpu"}

    def seed(self, seed: int) -> None:
        keras.utils.set_random_seed(seed)

    def fit_session(self, model, cfg: TrainConfig, train_targets: np.ndarray) -> FitSession:
        return _KerasFit(model, cfg, train_targets)

    def start_from(self, model, source_model, rows: list[tuple[int, int]]) -> None:
        # Layers are matched by name (the builder names every one); the classifier's
        # kernel holds a column per class.
        last = model.layers[-1].name
        for layer in model.layers:
            try:
                source = source_model.get_layer(layer.name).get_weights()
            except ValueError:  # no such layer in the source
                continue
            target = layer.get_weights()
            if layer.name == last:
                for new, old in rows:
                    target[0][:, new], target[1][new] = source[0][:, old], source[1][old]
                layer.set_weights(target)
            elif [w.shape for w in source] == [w.shape for w in target]:
                layer.set_weights(source)

    def probabilities(self, model, batch: np.ndarray) -> np.ndarray:
        return np.asarray(model(batch, training=False), dtype=np.float32)  # ends in softmax

    def count_parameters(self, model) -> int:
        return int(sum(np.prod(w.shape) for w in model.trainable_weights))

    def flops_per_image(self, model, shape: tuple[int, int, int]) -> float:
        # Convolutions and dense layers, which are nearly all of the work: Keras counts no
        # FLOPs itself, so each layer's are read off its kernel and output shapes.
        flops = 0.0
        for layer in model.layers:
            kernel = getattr(layer, "kernel", None)
            if kernel is None:
                continue
            out = layer.output.shape[1:-1]  # spatial positions (none for a dense layer)
            positions = float(np.prod(out)) if len(out) else 1.0
            flops += 2.0 * positions * float(np.prod(kernel.shape))
        return flops

    def weights_mb(self, model) -> float:
        return sum(np.asarray(w).nbytes for w in model.weights) / 2**20

    def log_flavor(
        self,
        model,
        name: str,
        example: np.ndarray,
        *,
        pip_requirements: list[str],
        code_paths: list[str],
    ) -> None:
        # No code_paths: a Keras model is saved as its own graph, with no emorec class.
        import mlflow.keras
        from mlflow.models import infer_signature

        x = normalize(example)
        signature = infer_signature(x, np.asarray(model(x, training=False)))
        mlflow.keras.log_model(
            model, name=name, signature=signature, pip_requirements=pip_requirements
        )

    def save_network(self, model, folder: Path) -> Path:
        path = Path(folder) / "network.keras"
        path.parent.mkdir(parents=True, exist_ok=True)
        model.save(path)
        return path

    def load_network(self, path: str):
        return keras.models.load_model(path, compile=False)

    def export_onnx(self, model, out, prep, *, opset: int, input_name: str, output_name: str):
        # Keras' own exporter (tf2onnx) names the graph's input and output itself; the
        # model already ends in softmax.
        import warnings

        model(np.zeros((1, prep.image_size, prep.image_size, prep.channels), np.float32))  # built
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf2onnx's NumPy deprecation notices
            model.export(str(out), format="onnx", verbose=False, opset_version=opset)
        return "NHWC", lambda x: self.probabilities(model, x)
