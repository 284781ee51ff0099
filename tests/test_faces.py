"""Faces as users' pictures bring them: found, levelled and framed one way in training and
serving; video followed frame to frame; bad photos and videos refused in one line.

The face is a real photograph that matplotlib ships (Grace Hopper, public domain),
tilted, moved and filmed here; nothing is downloaded."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from matplotlib import cbook
from PIL import Image

import emorec
from emorec.cli import main
from emorec.data import faces
from emorec.data.preprocess import Preprocessing, prepare_batch, prepare_image


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


def tilted(img: np.ndarray, degrees: float) -> np.ndarray:
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(img, matrix, (w, h), borderMode=cv2.BORDER_REPLICATE)


def test_a_tilted_face_is_found_and_cut_out_level(photo):
    """Tilted by known angles, colour and gray, the face is found and levelled to within a
    few degrees (YuNet's landmarks are that precise: benchmarks/faces.py measures it)."""
    upright = faces.level_angle(photo, faces.largest_face(photo))
    errors = []
    for degrees, gray in ((20, False), (-25, True), (10, True), (-15, False)):
        img = tilted(photo, degrees)
        if gray:  # most news photos are grayscale
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        face = faces.largest_face(img, "yunet")
        assert face is not None and face.score > 0.7 and len(face.landmarks) == 5
        crop = faces.face_crop(img, face)
        assert crop.shape[0] == crop.shape[1] == round(face.box[2] / faces.FRAME["yunet"])
        # The photo's own tilt plus the one added: what levelling must undo.
        errors.append(faces.level_angle(img, face) - (upright - degrees))
    assert np.abs(errors).max() < 8 and np.abs(errors).mean() < 5, errors


def test_the_haar_fallback_finds_the_face_and_a_bad_detector_is_named(photo):
    face = faces.largest_face(photo, "haar")
    assert face is not None and face.landmarks is None and face.roll == 0.0
    yunet = faces.largest_face(photo, "yunet")
    # Two detectors, one face: the boxes' centres within a tenth of the face.
    centres = [np.add(f.box[:2], np.divide(f.box[2:], 2)) for f in (face, yunet)]
    assert np.linalg.norm(centres[0] - centres[1]) < 0.1 * yunet.box[2]
    with pytest.raises(ValueError, match="unknown detector 'mtcnn'; valid: yunet, haar"):
        faces.detect_faces(photo, "mtcnn")


def test_training_and_serving_cut_the_same_face_identically(photo, tiny_run, tiny_store):
    """The dataset loader (training), the pyfunc (a request) and the Predictor (emorec.load)
    all give the model the same pixels for one photo."""
    from emorec.serving.pyfunc import prepared_request

    prep = Preprocessing(48, 1, face_detect=True, detector="yunet")
    img = tilted(photo, 15)
    trained_on, face = prepare_image(img, prep)
    assert face is not None
    png = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()
    import base64

    import pandas as pd

    requested = prepared_request(pd.DataFrame({"image": [base64.b64encode(png).decode()]}), prep)
    found = faces.detect_faces(img, prep.detector)
    served = prepare_batch([faces.face_crop(img, found[0])], prep, detect=False)
    assert np.array_equal(trained_on, requested[0]) and np.array_equal(trained_on, served[0])


def test_a_prediction_carries_box_landmarks_scores_and_the_dominant_emotion(
    photo, tiny_run, tiny_store
):
    result, _ = tiny_run
    predictor = emorec.load(f"runs:/{result.run_id}/emotion_model")
    (p,) = predictor.predict([photo])
    assert p.face_found and p.detector_score > 0.7 and len(p.landmarks) == 5
    assert p.box[2] > 100 and set(p.probabilities) == set(result.classes)
    label, score = predictor.dominant_emotion(photo)
    assert label == p.label and score == pytest.approx(p.confidence)


# ------------------------------------------------------------------- video ---


def write_clip(path, photo, frames: int = 20, size=(640, 480), fps: float = 10.0):
    """A clip of the photo's face drifting across a grey frame."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    face = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2BGR), (200, 234))
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 128, np.uint8)
        x, y = 100 + 5 * i, 120 + 2 * i
        frame[y : y + 234, x : x + 200] = face
        writer.write(frame)
    writer.release()
    return path


def test_a_clip_gives_a_timeline_row_per_sampled_frame_and_one_stable_track(
    photo, tiny_run, tiny_store, tmp_path, capsys
):
    result, _ = tiny_run
    clip = write_clip(tmp_path / "clip.mp4", photo)
    predictor = emorec.load(f"runs:/{result.run_id}/emotion_model")
    from emorec.serving.video import predict_video

    frames = list(predict_video(predictor, clip, every=2, smoothing=0.5))
    assert [f.index for f in frames] == list(range(0, 20, 2))
    assert all(len(f.faces) == 1 and f.faces[0].track == 0 for f in frames)
    assert frames[3].time == pytest.approx(0.6)

    out = tmp_path / "out"
    assert (
        main(
            [
                "predict",
                "--model-uri",
                f"runs:/{result.run_id}/emotion_model",
                str(clip),
                "--fps",
                "5",
                "--timeline",
                str(out),
                "--annotate",
                str(out),
            ]
        )
        == 0
    )
    assert "clip: 10 frames read" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "clip.csv")))
    assert len(rows) == 10 and {r["track"] for r in rows} == {"0"}
    assert set(result.classes) <= set(rows[0])
    timeline = json.load(open(out / "clip.json"))
    assert len(timeline["frames"]) == 10 and timeline["name"] == "clip"
    annotated = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == 10


def test_an_interrupted_clip_leaves_valid_partial_timelines(photo, tiny_run, tiny_store, tmp_path):
    from emorec.serving.timeline import write_timeline
    from emorec.serving.video import predict_video

    result, _ = tiny_run
    predictor = emorec.load(f"runs:/{result.run_id}/emotion_model")
    clip = write_clip(tmp_path / "clip.mp4", photo)

    def interrupted():
        for i, frame in enumerate(predict_video(predictor, clip)):
            if i == 3:
                raise KeyboardInterrupt
            yield frame

    info: dict = {}
    with pytest.raises(KeyboardInterrupt):
        write_timeline(
            interrupted(),
            predictor.classes,
            tmp_path / "t.csv",
            tmp_path / "t.json",
            info,
            progress=False,
        )
    assert len(json.load(open(tmp_path / "t.json"))["frames"]) == 3
    assert len(list(csv.DictReader(open(tmp_path / "t.csv")))) == 3


@pytest.mark.parametrize(
    "case", ["not a video", "no frames", "huge frames", "no camera", "over an input"]
)
def test_bad_videos_are_one_line(case, photo, tiny_run, tiny_store, tmp_path, capsys):
    result, _ = tiny_run
    clip = tmp_path / "clip.mp4"
    extra = []
    if case == "not a video":
        clip.write_text("not a video at all")
    elif case == "no frames":  # a valid container with no frame in it
        clip = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
        writer.release()
    elif case == "huge frames":
        clip = tmp_path / "clip.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 1, (8000, 8000))
        writer.write(np.zeros((8000, 8000, 3), np.uint8))
        writer.release()
    elif case == "no camera":
        extra = ["--camera", "7"]
    else:
        write_clip(clip, photo, frames=2)
        extra = ["--annotate", str(tmp_path)]  # the annotated clip.mp4 would be the input
    inputs = [] if case == "no camera" else [str(clip)]
    before = clip.read_bytes() if clip.exists() else None
    code = main(
        [
            "predict",
            "--model-uri",
            f"runs:/{result.run_id}/emotion_model",
            *inputs,
            "--timeline",
            str(tmp_path / "t"),
            *extra,
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("emorec")]
    expected = {
        "not a video": "not a video OpenCV can read",
        "no frames": "no frame could be read",
        "huge frames": "frames of 8000x8000 exceed the limit",
        "no camera": "no camera 7 on this machine",
        "over an input": "would replace the input",
    }[case]
    assert code == 2 and len(err) == 1 and expected in err[0], err
    if before is not None:
        assert clip.read_bytes() == before
