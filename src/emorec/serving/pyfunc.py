"""The raw-image MLflow pyfunc: face photos in, per-emotion probabilities out.

Logged beside every trained model (artifact ``emotion_model``). It carries the class
names and the preprocessing the model was trained with, so ``mlflow models serve`` and
``mlflow.pyfunc.load_model`` see images exactly as evaluation did.

Input: a DataFrame with an ``image`` column of base64-encoded image files (PNG, JPEG
...) or raw bytes, the serving format. Output: a DataFrame, one row per image, a
probability column per emotion plus ``label`` and ``confidence``.

A request's images are measured from their headers before any is decoded: more than
``REQUEST_PIXELS`` pixels in all is refused whole. Then they are decoded and prepared
one at a time, so a request holds one full-size image in memory at most.

Bad input raises ``InvalidImageInput``: both an ``ImageError`` (for Python callers) and
an ``MlflowException`` with error code INVALID_PARAMETER_VALUE, which ``mlflow models
serve`` answers with HTTP 400 and the message.
"""

from __future__ import annotations

import base64
import binascii

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from emorec.data.images import ImageError, decode_image, header_size
from emorec.data.preprocess import Preprocessing, prepare_image

NATIVE = "native_model"  # the artifact key of the network (``Engine.save_network``)
# Decoded pixels one request may hold in all: a few photos at the per-image limit
# (``emorec.data.images.MAX_PIXELS``), not dozens of them.
REQUEST_PIXELS = 100_000_000


class InvalidImageInput(MlflowException, ImageError):
    """A user-input error from the pyfunc: HTTP 400 when served, an ImageError in Python."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def payload_bytes(index: int, value) -> bytes:
    """One cell of the ``image`` column (base64 text or bytes) -> the file's bytes."""
    if isinstance(value, str):
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"image {index}: not valid base64 ({exc})") from None
    if not isinstance(value, (bytes, bytearray)) or not value:
        raise ImageError(f"image {index}: must be non-empty base64 text or bytes")
    return bytes(value)


def prepared_request(frame, prep: Preprocessing) -> np.ndarray:
    """A request's ``image`` column -> uint8 (N, S, S, C) crops, within ``REQUEST_PIXELS``."""
    if not isinstance(frame, pd.DataFrame) or "image" not in frame.columns:
        columns = list(frame.columns) if isinstance(frame, pd.DataFrame) else type(frame).__name__
        raise ImageError(f"expected a DataFrame with an 'image' column, got {columns}")
    files = [payload_bytes(i, v) for i, v in enumerate(frame["image"])]
    if not files:
        raise ImageError(
            "the request holds no images (expected at least one row in the 'image' column)"
        )
    sizes = [_size(i, data) for i, data in enumerate(files)]
    total = sum(w * h for w, h in sizes)
    if total > REQUEST_PIXELS:
        raise ImageError(
            f"the request's {len(files)} images hold {total} pixels in all; the "
            f"limit is {REQUEST_PIXELS} pixels a request: send fewer or smaller "
            "images per request"
        )
    # One decoded image alive at a time: each is decoded and cropped in its own call.
    return np.stack([_prepared(i, data, prep) for i, data in enumerate(files)])


def _prepared(index: int, data: bytes, prep: Preprocessing) -> np.ndarray:
    try:
        pixels = decode_image(data)
    except ImageError as exc:
        raise ImageError(f"image {index}: {str(exc).removeprefix('<bytes>: ')}") from None
    return prepare_image(pixels, prep)[0]


def _size(index: int, data: bytes) -> tuple[int, int]:
    try:
        return header_size(data)
    except ImageError as exc:
        raise ImageError(f"image {index}: {str(exc).removeprefix('<bytes>: ')}") from None


class EmotionModel(mlflow.pyfunc.PythonModel):
    """Raw images in, probabilities out, through the engine of the model's framework.

    Every model that answers predictions (this one, ``OnnxModel``, the pyfunc of an ONNX
    file) has ``classes``, ``prep`` and ``probabilities(crops)``: the serving contract.
    """

    def __init__(self, framework: str, classes: list[str], prep: Preprocessing):
        self.framework, self.classes, self.prep = framework, list(classes), prep
        self.network = None  # loaded by load_context, never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "network": None, "_engine": None}

    @property
    def engine(self):
        """The framework's engine: it loads the network and runs its forward pass."""
        if getattr(self, "_engine", None) is None:
            from emorec.engines import get_engine

            self._engine = get_engine(self.framework)
        return self._engine

    def load_context(self, context) -> None:
        self.network = self.engine.load_network(context.artifacts[NATIVE])

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities (N, K) of uint8 (N, S, S, C) crops prepared by ``prep``."""
        return self.engine.predict_proba(self.network, crops)

    def signature(self):
        """The served schema: an ``image`` string column in; a probability per class,
        ``label`` and ``confidence`` out."""
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        outputs = [ColSpec("float", c) for c in self.classes]
        outputs += [ColSpec("string", "label"), ColSpec("float", "confidence")]
        return ModelSignature(inputs=Schema([ColSpec("string", "image")]), outputs=Schema(outputs))

    # The hint tells MLflow not to infer a schema from type hints (it warns otherwise).
    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        try:
            proba = self.probabilities(prepared_request(model_input, self.prep))
        except ImageError as exc:
            raise InvalidImageInput(str(exc)) from None
        out = pd.DataFrame(proba, columns=self.classes)
        out["label"] = [self.classes[i] for i in proba.argmax(1)]
        out["confidence"] = proba.max(1)
        return out
