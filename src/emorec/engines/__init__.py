"""Training engines: one per framework, one interface.

``get_engine(framework)`` imports only the engine asked for, so a PyTorch run
never imports TensorFlow. Both engines train on uint8 (N, H, W, C) arrays
straight from memory, augment per batch, report per-epoch values to
callbacks, and predict class probabilities as NumPy.

An engine owns every difference between the frameworks (``Engine`` lists them):
training, the forward pass that evaluation and serving share, the model's size,
its MLflow flavour and its ONNX export, so that training, tracking, serving and
export never branch on the framework.
"""

from __future__ import annotations

import importlib

from emorec.engines.base import Engine, FitResult
from emorec.engines.callbacks import Callback, StopTraining, TrainingDiverged
from emorec.errors import UserError

_ENGINES = {
    "torch": "emorec.engines.torch_engine:TorchEngine",
    "keras": "emorec.engines.keras_engine:KerasEngine",
}

FRAMEWORKS = tuple(_ENGINES)

__all__ = [
    "FRAMEWORKS",
    "Callback",
    "Engine",
    "FitResult",
    "StopTraining",
    "TrainingDiverged",
    "get_engine",
]


def get_engine(framework: str) -> Engine:
    """The engine of ``framework`` ("torch" or "keras"), importing that framework only."""
    if framework not in _ENGINES:
        raise UserError(f"unknown framework {framework!r}; valid: {', '.join(_ENGINES)}")
    module, cls = _ENGINES[framework].split(":")
    return getattr(importlib.import_module(module), cls)()
