"""emorec: MLflow-tracked training with Optuna tuning for facial emotion recognition.

``import emorec`` is light: frameworks (PyTorch, TensorFlow) and MLflow are
imported only by the modules that use them, when they are used. It does
install ``emorec.frameworks``' guard, which lets both frameworks load in one
process in either order.

    from emorec import TrainConfig, train
    result = train(TrainConfig(model="cnn_torch", dataset="synthetic", epochs=5))
    predictor = emorec.load(f"runs:/{result.run_id}/emotion_model")  # or models:/name@champion
"""

from __future__ import annotations

import pkgutil as _pkgutil

# A logged model carries the part of emorec it serves with (``SERVED_CODE``), and MLflow puts
# it first on the path when loading the model: modules it does not carry come from any
# other emorec on the path (the installed one), so loading a model never hides the rest.
__path__ = _pkgutil.extend_path(__path__, __name__)

from emorec import frameworks as _frameworks  # noqa: E402

_frameworks.install()

__version__ = "0.1.0"
__all__ = ["TrainConfig", "load", "train"]


def __getattr__(name: str):
    # Lazy exports keep `import emorec` free of MLflow and the frameworks.
    if name == "TrainConfig":
        from emorec.config import TrainConfig

        return TrainConfig
    if name == "load":
        from emorec.serving.predictor import load

        return load
    if name == "train":
        from emorec.training import train

        return train
    raise AttributeError(f"module 'emorec' has no attribute {name!r}")
