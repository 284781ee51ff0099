"""Inference on the user's own photos with a logged or registered model.

    import emorec
    predictor = emorec.load("models:/emorec-cnn_torch-ckplus@champion")
    for p in predictor.predict(["photo.jpg", pil_image, numpy_array]):
        print(p.source, p.face, p.label, p.confidence, p.box)

Each photo is searched for faces with the detector the model was trained with
(``emorec.data.faces``): every face found gives one prediction, cut out levelled and
framed as training cut faces (``faces.face_crop``); a photo where none is found is
classified whole and flagged (``face_found=False``). The crop is then prepared by the
model's own preprocessing (``prep``), never re-guessed. Arrays and PIL images are checked like files
(``emorec.data.images.as_pixels``): integers 0..255 (uint16 scaled) or floats
in [0, 1], 8 px to 40 megapixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emorec.data import faces
from emorec.data.images import ImageError, as_pixels, decode_image
from emorec.data.preprocess import prepare_batch
from emorec.errors import ModelNotFound, UserError  # noqa: F401 (ModelNotFound: what load raises)


@dataclass(frozen=True)
class Prediction:
    source: str  # file path, or "<array 3>" for the 4th in-memory image
    face: int  # index of the face within its photo (0 when the whole image was used)
    box: tuple[int, int, int, int]  # (x, y, w, h) of the face, or of the whole image
    face_found: bool
    label: str
    confidence: float
    probabilities: dict[str, float]
    detector_score: float | None = None  # the detector's confidence in the face
    # (x, y) of the right eye, left eye, nose tip, right and left mouth corners
    landmarks: tuple[tuple[float, float], ...] | None = None
    track: int | None = None  # in a video, the face's id across frames


class Predictor:
    """Faces found, levelled, framed and classified by ``model``: anything with the serving
    contract (``classes``, ``prep``, ``probabilities(crops)``), a logged model's
    ``EmotionModel`` or an ``OnnxModel``. Faces are found by the detector the model was
    trained with (``prep.detector``) unless ``detector`` names another."""

    def __init__(self, model, uri: str, detector: str | None = None):
        self.uri, self.model = uri, model
        self.classes: list[str] = list(model.classes)
        self.prep = model.prep
        self.detector = detector or self.prep.detector
        faces.detect_faces(np.zeros((16, 16), np.uint8), self.detector)  # a bad name: now

    def check_classes(self, expected) -> None:
        """Raise ValueError when the model's class set differs from ``expected`` (order
        does not matter: predictions are labelled by name; aliases the dataset loaders
        accept, such as ``happy`` or ``sad``, stand for their canonical name)."""
        from emorec.labels import canonical

        def name(c: str) -> str:  # an unknown name stays as given, to be reported missing
            try:
                return canonical(c)
            except ValueError:
                return c

        expected = [str(c) for c in expected]
        named = {c: name(c) for c in expected}
        if set(named.values()) == set(self.classes):
            return
        missing = [c for c in expected if named[c] not in self.classes]
        extra = [c for c in self.classes if c not in named.values()]
        raise UserError(
            f"model {self.uri} was trained on classes {self.classes}, but "
            f"{expected} were expected (not in the model: {missing or 'none'}; "
            f"only in the model: {extra or 'none'})"
        )

    def predict(
        self, images, *, detect_faces: bool = True, batch_size: int = 256
    ) -> list[Prediction]:
        """One prediction per face (or per image without a face), in input order."""
        items = images if isinstance(images, (list, tuple)) else [images]
        return self.predict_pixels(
            [_as_pixels(image, i) for i, image in enumerate(items)], detect_faces, batch_size
        )

    def dominant_emotion(self, images) -> tuple[str, float]:
        """The emotion of a photo (or of several, or of a video file: every sampled frame)
        in one call: the class with the highest mean probability over every face found,
        and that mean."""
        from emorec.serving import video

        if isinstance(images, (str, Path)) and video.is_video(images):
            predictions = [p for frame in video.predict_video(self, images) for p in frame.faces]
        else:
            predictions = self.predict(images)
        if not predictions:
            raise UserError("no face and no image to read an emotion from")
        mean = np.mean([[p.probabilities[c] for c in self.classes] for p in predictions], axis=0)
        return self.classes[int(mean.argmax())], float(mean.max())

    def predict_pixels(
        self, sourced, detect_faces: bool, batch_size: int, detect_side: int = faces.DETECT_SIDE
    ) -> list[Prediction]:
        """``predict`` for decoded images: ``sourced`` holds (source name, pixels) pairs;
        faces are searched with the image scaled to ``detect_side`` at most."""
        crops, meta = [], []
        for source, pixels in sourced:
            found = faces.detect_faces(pixels, self.detector, detect_side) if detect_faces else []
            if not found:
                h, w = pixels.shape[:2]
                crops.append(pixels)
                meta.append((source, 0, None, (0, 0, w, h)))
            for j, face in enumerate(found):
                crops.append(faces.face_crop(pixels, face))
                meta.append((source, j, face, face.box))
        proba = self.predict_proba(crops, batch_size=batch_size)
        return [
            Prediction(
                src,
                index,
                box,
                face is not None,
                self.classes[int(p.argmax())],
                float(p.max()),
                dict(zip(self.classes, map(float, p))),
                None if face is None else face.score,
                None if face is None else face.landmarks,
            )
            for (src, index, face, box), p in zip(meta, proba)
        ]

    def predict_proba(self, crops: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, K) for face crops of any size (no detection: they are faces
        already), through the model's preprocessing."""
        out = [
            self.model.probabilities(
                prepare_batch(crops[s : s + batch_size], self.prep, detect=False)
            )
            for s in range(0, len(crops), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)


def _as_pixels(image, index: int) -> tuple[str, np.ndarray]:
    if isinstance(image, (str, Path)):
        return str(image), decode_image(image)
    if isinstance(image, np.ndarray):
        return f"<array {index}>", as_pixels(image, f"<array {index}>")
    if hasattr(image, "convert"):  # a PIL image
        return f"<image {index}>", as_pixels(image, f"<image {index}>")
    raise ImageError(
        f"item {index}: expected a file path, a PIL image or a NumPy array, "
        f"got {type(image).__name__}"
    )


def load(model_uri: str, *, expect_classes=None, detector: str | None = None) -> Predictor:
    """A predictor for any MLflow URI of an emorec ``emotion_model`` (runs:/, models:/ ...),
    or for the path of an ``.onnx`` file written by ``emorec export`` (run on ONNX Runtime).

    ``expect_classes``: the class names the caller relies on; a model trained on another
    class set raises ValueError naming both (see ``Predictor.check_classes``).
    ``detector``: find faces with another detector than the model's (``haar``, ``yunet``).
    """
    uri = str(model_uri)
    if (
        uri.lower().endswith(".onnx")
        and "://" not in uri
        and not uri.startswith(("runs:/", "models:/"))
    ):
        from emorec.serving.onnx_model import OnnxModel

        predictor = Predictor(OnnxModel(uri), uri, detector)
    else:
        from emorec import tracking

        predictor = Predictor(tracking.load_emotion_model(uri), uri, detector)
    if expect_classes is not None:
        predictor.check_classes(expect_classes)
    return predictor
