"""An ``emorec export`` ONNX file (float32 or int8) as the raw-image MLflow pyfunc.

    from emorec.onnx_pyfunc import log_to_run
    uri = log_to_run(run_id, "champion-int8.onnx", "emotion_model_int8")
    emorec.load(uri)                     # the same Predictor API, on ONNX Runtime
    # mlflow models serve -m runs:/RUN/emotion_model_int8 --env-manager local

``OnnxPyfunc`` is the ``EmotionModel`` pyfunc with ONNX Runtime underneath: the same
input (an ``image`` column of base64 image files, or arrays), the same output columns
in the same class order, the same one-line errors (HTTP 400 when served); the classes
and preprocessing come from the file's own metadata. Subclassing keeps
``tracking.load_emotion_model`` (and so ``emorec.load`` and ``emorec predict``) taking
it like any logged model, and needs neither PyTorch nor TensorFlow to serve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emorec.emotion_model import NATIVE, EmotionModel
from emorec.onnx_export import OnnxEmotionModel

# What the served model needs besides the serving base: no TensorFlow, no PyTorch.
RUNTIME = ("onnxruntime",)


class OnnxPyfunc(EmotionModel):
    """``EmotionModel`` (framework ``"onnx"``) whose model is an ``OnnxEmotionModel``."""

    def __init__(self, onnx_model: OnnxEmotionModel):
        super().__init__("onnx", onnx_model.classes, onnx_model.prep)

    def load_context(self, context) -> None:
        self._model = OnnxEmotionModel(context.artifacts[NATIVE])

    def __getstate__(self) -> dict:
        # Saving pickles the pyfunc: an ONNX Runtime session does not pickle, and
        # load_context opens a new one anyway.
        return {**self.__dict__, "_model": None}

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        # ``Predictor`` turns face detection off for crops it already made by changing
        # our ``prep``: the ONNX model must preprocess with that, not its own copy.
        self._model.prep = dict(self.prep)
        return self._model.predict_proba(images)


def log_to_run(run_id: str, onnx_path: str | Path, name: str) -> str:
    """Log ``onnx_path`` as an ``OnnxPyfunc`` named ``name`` in the (finished) run
    ``run_id``; returns its ``runs:/`` URI."""
    from emorec import tracking
    from emorec.tracking import logged_models

    tracking.configure()
    model = OnnxEmotionModel(onnx_path)
    side = int(model.prep["image_size"])
    with tracking.quiet_model_logging():
        logged_models.log_image_pyfunc(run_id, name, OnnxPyfunc(model), onnx_path,
                                       np.full((side, side), 128, np.uint8),
                                       logged_models.requirements(RUNTIME))
    return f"runs:/{run_id}/{name}"
