"""Inference on the user's own photos with a logged or registered model.

    import emorec
    predictor = emorec.load("models:/emorec-cnn_torch-ckplus@champion")
    for p in predictor.predict(["photo.jpg", pil_image, numpy_array]):
        print(p.source, p.face, p.label, p.confidence, p.box)

Each photo is searched for faces with the detector training uses
(``emorec.data.faces``): every face found gives one prediction; a photo
where none is found is classified whole and flagged (``face_found=False``).
The crop is then prepared by the model's own eval preprocessing, read from
the logged model (``EmotionModel.prep``), never re-guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from emorec.data import faces
from emorec.data.images import ImageError, decode_image
from emorec.data.preprocess import Preprocessing


@dataclass(frozen=True)
class Prediction:
    source: str  # file path, or "<array 3>" for the 4th in-memory image
    face: int  # index of the face within its photo (0 when the whole image was used)
    box: tuple[int, int, int, int]  # (x, y, w, h) of the face, or of the whole image
    face_found: bool
    label: str
    confidence: float
    probabilities: dict[str, float]


class ModelNotFound(ValueError):
    """A model URI that names nothing; the message lists what does exist."""


class Predictor:
    def __init__(self, emotion_model, uri: str):
        self.uri = uri
        self._model = emotion_model  # an emorec.emotion_model.EmotionModel with its model loaded
        self.classes: list[str] = list(emotion_model.classes)
        self.prep = Preprocessing.from_dict(emotion_model.prep)

    def predict(self, images, *, detect_faces: bool = True, batch_size: int = 256) -> list[Prediction]:
        """One prediction per face (or per image without a face), in input order."""
        crops, meta = [], []
        for i, image in enumerate(images if isinstance(images, (list, tuple)) else [images]):
            source, pixels = _as_pixels(image, i)
            boxes = faces.detect_faces(pixels) if detect_faces else []
            if not boxes:
                h, w = pixels.shape[:2]
                crops.append(pixels)
                meta.append((source, 0, (0, 0, w, h), False))
            for j, (x, y, w, h) in enumerate(boxes):
                crops.append(pixels[y:y + h, x:x + w])
                meta.append((source, j, (x, y, w, h), True))
        proba = self.predict_proba(crops, batch_size=batch_size)
        return [Prediction(src, face, box, found, self.classes[int(p.argmax())], float(p.max()),
                           dict(zip(self.classes, map(float, p))))
                for (src, face, box, found), p in zip(meta, proba)]

    def predict_proba(self, crops: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Probabilities for already-cropped faces, through the eval preprocessing."""
        # Faces were cropped above, so the model's own detector must not run again.
        self._model.prep = replace(self.prep, face_detect=False).to_dict()
        out = [self._model.predict_proba(crops[s:s + batch_size])
               for s in range(0, len(crops), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)


def _as_pixels(image, index: int) -> tuple[str, np.ndarray]:
    if isinstance(image, (str, Path)):
        return str(image), decode_image(image)
    if isinstance(image, np.ndarray):
        return f"<array {index}>", image
    if hasattr(image, "convert"):  # a PIL image
        mode = "L" if image.mode in ("L", "I;16", "I", "F", "1") else "RGB"
        return f"<image {index}>", np.asarray(image.convert(mode))
    raise ImageError(f"item {index}: expected a file path, a PIL image or a NumPy array, "
                     f"got {type(image).__name__}")


def load(model_uri: str) -> Predictor:
    """A predictor for any MLflow URI of an emorec ``emotion_model`` (runs:/, models:/ ...)."""
    from emorec import tracking

    return Predictor(tracking.load_emotion_model(model_uri), model_uri)
