"""An ``emorec export`` ONNX file on ONNX Runtime, alone or as the raw-image MLflow pyfunc.

    model = OnnxModel("champion.onnx")       # classes, prep, probabilities(crops)
    uri = log_to_run(run_id, "champion-int8.onnx", "emotion_model_int8")
    emorec.load(uri)                          # the same Predictor API, without PyTorch
    # mlflow models serve -m runs:/RUN/emotion_model_int8 --env-manager local

The class names and the eval preprocessing travel in the file's metadata (key
``emorec``, JSON), so the file alone is enough to predict on raw photos. ``OnnxPyfunc``
is ``EmotionModel`` with this runtime underneath: the same input, output and errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emorec.data.preprocess import Preprocessing, network_input
from emorec.errors import MissingFile, UserError
from emorec.serving.pyfunc import NATIVE, EmotionModel

METADATA_KEY = "emorec"
# What the served model needs besides the serving base: no TensorFlow, no PyTorch.
RUNTIME = ("onnxruntime",)


class OnnxModel:
    """An exported model on ONNX Runtime, with the serving contract: ``classes``, ``prep``
    and ``probabilities(crops)``."""

    framework = "onnx"

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFile(f"no such ONNX model: {self.path}")
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise UserError(
                f"cannot load {self.path} with ONNX Runtime: {str(exc).splitlines()[0][:300]}"
            ) from None
        raw = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if raw is None:
            raise UserError(
                f"{self.path} is not an emorec ONNX export (no {METADATA_KEY!r} "
                "metadata with classes and preprocessing)"
            )
        self.metadata = json.loads(raw)
        self.classes = list(self.metadata["classes"])
        self.prep = Preprocessing.from_dict(self.metadata["prep"])
        self.layout = self.metadata["layout"]
        self._input = self.session.get_inputs()[0].name

    @property
    def tta_left_out(self) -> bool:
        """Exported with ``tta=False`` from a model evaluated with test-time augmentation:
        its probabilities are not those of the run's logged test metrics."""
        return self.metadata.get("tta") != self.metadata.get("tta_trained")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for a normalised float32 batch already in the graph's ``layout``."""
        return self.session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        if not len(crops):
            return np.zeros((0, len(self.classes)), np.float32)
        return self.run(network_input(crops, self.layout))


class OnnxPyfunc(EmotionModel):
    """``EmotionModel`` (framework ``"onnx"``) whose network is an ``OnnxModel``."""

    def __init__(self, onnx_model: OnnxModel):
        super().__init__("onnx", onnx_model.classes, onnx_model.prep)

    def load_context(self, context) -> None:
        self.network = OnnxModel(context.artifacts[NATIVE])

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        return self.network.probabilities(crops)


def log_to_run(run_id: str, onnx_path: str | Path, name: str) -> str:
    """Log ``onnx_path`` as an ``OnnxPyfunc`` named ``name`` in the (finished) run
    ``run_id``; returns its ``runs:/`` URI."""
    from emorec.tracking import logged_models

    model = OnnxModel(onnx_path)
    logged_models.log_image_pyfunc(
        OnnxPyfunc(model), onnx_path, logged_models.requirements(RUNTIME), name=name, run_id=run_id
    )
    return f"runs:/{run_id}/{name}"
