"""The raw-image MLflow pyfunc: face photos in, per-emotion probabilities out.

Logged beside every trained model (artifact ``emotion_model``). It carries
the class names and the preprocessing settings the model was trained with and
applies the shared eval preprocessing (``emorec.data.preprocess.eval_batch``),
so ``mlflow models serve`` and ``mlflow.pyfunc.load_model`` see images
exactly as evaluation did.

Input, any of:
- a DataFrame with an ``image`` column of base64-encoded image files (PNG,
  JPEG ...) or raw bytes: the serving format, and the only one
  ``mlflow.pyfunc.load_model(...).predict`` accepts (the logged signature
  enforces it);
- a NumPy array (N, H, W) or (N, H, W, C), or a list of (H, W[, C]) arrays,
  through ``unwrap_python_model().predict`` or, better, ``emorec.load``.
Output: a DataFrame, one row per image, a probability column per emotion
plus ``label`` and ``confidence``.

Bad input (garbage bytes, an empty request, an image too small or over the
pixel limit) raises ``InvalidImageInput``: both an ``ImageError`` (so
``except ImageError`` keeps working for Python callers) and an
``MlflowException`` with error code INVALID_PARAMETER_VALUE, which
``mlflow models serve`` answers with HTTP 400 and the message; any other
exception would be a generic 400 without our message.
"""

from __future__ import annotations

import base64
import binascii

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from emorec.data.images import ImageError, decode_image
from emorec.data.preprocess import Preprocessing, eval_batch

NATIVE = "native_model"  # the artifact key of the network (``Engine.save_network``)


class InvalidImageInput(MlflowException, ImageError):
    """A user-input error from the pyfunc: HTTP 400 when served, an ImageError in Python."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def decode_payload(value) -> np.ndarray:
    """One cell of the ``image`` column (base64 text or bytes) -> pixels."""
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"image is not valid base64 ({exc})") from None
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise ImageError("image must be non-empty base64 text or bytes")
    return decode_image(bytes(value))


def _decode_row(index: int, value) -> np.ndarray:
    try:
        return decode_payload(value)
    except ImageError as exc:
        raise ImageError(f"image {index}: {str(exc).removeprefix('<bytes>: ')}") from None


def as_images(model_input) -> list[np.ndarray]:
    if isinstance(model_input, pd.DataFrame):
        if "image" not in model_input.columns:
            raise ImageError(f"expected an 'image' column, got {list(model_input.columns)}")
        return [_decode_row(i, v) for i, v in enumerate(model_input["image"])]
    if isinstance(model_input, np.ndarray) and model_input.ndim in (3, 4):
        return list(model_input)
    if isinstance(model_input, (list, tuple)):
        return [np.asarray(v) for v in model_input]
    raise ImageError("expected a DataFrame with an 'image' column, an (N, H, W[, C]) array "
                     "or a list of images")


class EmotionModel(mlflow.pyfunc.PythonModel):
    """Raw images in, probabilities out, through the engine of the model's framework.

    Pickled into every logged model: its attributes (``framework``, ``classes``, ``prep``,
    ``_model``) are what models logged by earlier versions carry, so they stay as they are.
    """

    def __init__(self, framework: str, classes: list[str], prep: dict):
        self.framework, self.classes, self.prep = framework, list(classes), dict(prep)
        self._model = None

    @property
    def engine(self):
        """The framework's engine: it loads the native model and runs its forward pass."""
        from emorec.engines import get_engine

        return get_engine(self.framework)

    def load_context(self, context) -> None:
        self._model = self.engine.load_network(context.artifacts[NATIVE])

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        batch = eval_batch(images, Preprocessing.from_dict(self.prep))
        return self.engine.probabilities(self._model, batch)

    def signature(self):
        """The served schema: an ``image`` string column in; a probability per class,
        ``label`` and ``confidence`` out. Given to MLflow when logging, it spares it a
        prediction on the input example to infer the same schema."""
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        outputs = [ColSpec("float", c) for c in self.classes]
        outputs += [ColSpec("string", "label"), ColSpec("float", "confidence")]
        return ModelSignature(inputs=Schema([ColSpec("string", "image")]),
                              outputs=Schema(outputs))

    # The hint tells MLflow not to infer a schema from type hints (it warns otherwise);
    # arrays and lists still arrive unchanged.
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            images = as_images(model_input)
            if not images:
                raise ImageError("the request holds no images (expected at least one row "
                                 "in the 'image' column)")
            proba = self.predict_proba(images)
        except ImageError as exc:
            raise InvalidImageInput(str(exc)) from None
        out = pd.DataFrame(proba, columns=self.classes)
        out["label"] = [self.classes[i] for i in proba.argmax(1)]
        out["confidence"] = proba.max(1)
        return out
