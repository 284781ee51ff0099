"""Built-in synthetic faces: emorec's default dataset, generated, never downloaded.

``scan()`` draws grayscale cartoon faces with OpenCV for the seven basic
emotions (``BASIC_EMOTIONS``: no contempt) so that the whole pipeline -
training, tuning, MLflow tracking, export - can run anywhere in seconds
without fetching a real dataset. The task is meant to be *learnable but not
trivial*: on faces of subjects it has not seen, the proposed CNN learns it well above
chance with the training defaults but not perfectly, mostly confusing neighbouring
emotions, so metrics, confusion matrices and tuning all have something to show
(benchmarks/RESULTS.md, first run).

How an image is made
--------------------
1. **Identity** - each synthetic subject (``"s00"``, ``"s01"``, ...) has fixed
   traits drawn once from its own seed: face width and height/width ratio,
   eye spacing, skin, hair, iris and brow tones, brow thickness, hairline
   height, mouth and nose size, how expressive the subject is, and a slight
   resting bias of mouth, brows and eyes. Grouped (subject-wise) splits therefore
   test generalisation to unseen faces, as they do on real datasets.
2. **Expression** - every emotion is a vector of expression parameters
   (``EXPRESSIONS``): mouth curvature, openness, width and one-sided raise,
   brow height and tilt (inner ends up or down), eye openness and nose
   wrinkle. An image's parameters are ``neutral + intensity * (emotion -
   neutral)`` plus Gaussian noise of ``JITTER * SPREAD``; the intensity varies
   per image and per subject, so weak expressions drift towards neutral and
   neighbouring emotions (fear/surprise, anger/disgust, neutral/sadness)
   overlap, which is what keeps the task from being trivial.
3. **Rendering** - the face is drawn anti-aliased (``cv2.LINE_AA``, sub-pixel
   coordinates; ``emorec.data.synthetic_draw``) at 4x the target size (2x
   above 64 px) in a random pose (rotation within +-15 degrees, shift within
   +-8%, scale 0.85-1.15, applied to the drawing coordinates so nothing is
   resampled twice) on a plain background, then shrunk with ``INTER_AREA``.
4. **Capture** - a linear brightness gradient in a random direction, a global
   contrast and brightness change, Gaussian blur and Gaussian pixel noise.

Difficulty is set by module constants rather than ``scan()`` arguments, so
that "synthetic" means one fixed task across runs: ``JITTER`` (expression
noise), ``INTENSITY`` (expression strength range), ``SPREAD`` (noise per
parameter) and the pose ranges.

Determinism: the same arguments give byte-identical images. Every subject
and every image has its own child seed (``SeedSequence(seed)`` spawn keys),
and image ``i`` always has emotion ``BASIC_EMOTIONS[i % 7]`` and subject
``(i // 7) % subjects``, so raising ``count`` appends images without
changing the earlier ones.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from emorec.data.synthetic_draw import Pen, draw_face
from emorec.data.types import Listing
from emorec.errors import UserError
from emorec.labels import BASIC_EMOTIONS, EMOTION_ID

MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 512
MIN_COUNT = 2 * len(BASIC_EMOTIONS)  # two per class: the least a train/test split needs
MIN_SUBJECTS = 2  # a grouped split needs at least one subject on each side

# Expression parameters, in the order of each EXPRESSIONS row:
#   curve   mouth-corner lift (+ smile, - frown); 1 lifts corners 0.7 mouth half-widths
#   open    mouth opening (0 closed .. 1 wide open)
#   width   mouth width multiplier (stretched > 1 > pursed/round)
#   asym    one-sided raise of a mouth corner and upper lip (side is random)
#   raise   brow height (+ raised, - lowered)
#   tilt    inner brow ends (+ up, as in sadness/fear; - down to the centre, anger)
#   eye     eye openness (0.15 squint .. 1 wide, 0.55 relaxed)
#   wrinkle nose wrinkle / cheek tension lines (0 .. 1)
PARAMS = ("curve", "open", "width", "asym", "raise", "tilt", "eye", "wrinkle")
EXPRESSIONS: dict[str, tuple[float, ...]] = {
    #             curve  open  width  asym  raise  tilt   eye  wrinkle
    "anger": (-0.20, 0.00, 0.82, 0.00, -0.60, -0.80, 0.35, 0.25),
    "disgust": (-0.25, 0.08, 0.95, 0.65, -0.40, -0.30, 0.30, 0.70),
    "fear": (-0.20, 0.40, 1.22, 0.00, 0.55, 0.55, 0.85, 0.00),
    "happiness": (0.80, 0.25, 1.15, 0.00, 0.10, 0.00, 0.42, 0.10),
    "neutral": (0.00, 0.00, 1.00, 0.00, 0.00, 0.00, 0.55, 0.00),
    "sadness": (-0.55, 0.00, 0.95, 0.00, 0.10, 0.65, 0.42, 0.00),
    "surprise": (0.00, 0.85, 0.72, 0.00, 0.85, 0.05, 0.92, 0.00),
}
# Per-parameter standard deviation of the per-image noise (before JITTER).
SPREAD = np.array([0.30, 0.15, 0.12, 0.25, 0.28, 0.30, 0.15, 0.20])
# Global noise scale: the main difficulty knob (higher is harder); 0 leaves only the
# identity, intensity, pose and lighting variation.
JITTER = 0.6
# Per-image expression intensity range (times the subject's expressiveness):
# low values pull an expression towards neutral and blur class boundaries.
INTENSITY = (0.6, 1.1)
# Valid range of each parameter after noise, so no feature is drawn inside out.
_LOW = np.array([-1.2, 0.0, 0.6, 0.0, -1.2, -1.2, 0.12, 0.0])
_HIGH = np.array([1.2, 1.1, 1.45, 1.0, 1.2, 1.2, 1.15, 1.0])
_NEUTRAL = np.array(EXPRESSIONS["neutral"])

# Pose and capture ranges (see the module docstring).
MAX_ROTATION = 15.0  # degrees
MAX_SHIFT = 0.08  # fraction of the image side
SCALE_RANGE = (0.85, 1.15)


def scan(
    root=None, *, count: int = 1400, image_size: int = 48, seed: int = 0, subjects: int = 20
) -> Listing:
    """Generate ``count`` synthetic faces of ``image_size`` px: the default dataset.

    ``root`` is ignored: nothing is read from disk. It exists so that every
    dataset format's scanner is called the same way, ``scan(root, **options)``.

    Classes are the seven basic emotions, balanced (``count // 7`` each, the
    remainder going one each to the first classes in canonical order). Items
    are uint8 ``(image_size, image_size)`` grayscale arrays, labels are
    canonical emotion ids and groups are subject ids ``"s00"``, ``"s01"``, ...
    (image ``i`` belongs to subject ``(i // 7) % subjects``, so with fewer
    than ``7 * subjects`` images some subjects get none).
    """
    _validate(count, image_size, seed, subjects)
    root_seq = np.random.SeedSequence(seed)
    # Spawn keys (0, s) for identities and (1, i) for images: each child seed
    # depends only on its own index, never on count or subjects.
    identities = [_identity(_child(root_seq, 0, s)) for s in range(subjects)]
    width = max(2, len(str(subjects - 1)))
    names = [f"s{s:0{width}d}" for s in range(subjects)]

    items, labels, groups = [], [], []
    for i in range(count):
        emotion = BASIC_EMOTIONS[i % len(BASIC_EMOTIONS)]
        subject = (i // len(BASIC_EMOTIONS)) % subjects
        rng = np.random.default_rng(_child(root_seq, 1, i))
        items.append(_render(rng, identities[subject], emotion, image_size))
        labels.append(EMOTION_ID[emotion])
        groups.append(names[subject])
    notes = {"generator": "synthetic", "seed": seed, "subjects": subjects, "jitter": JITTER}
    return Listing(
        items=items, labels=np.array(labels, dtype=np.int64), groups=np.array(groups), notes=notes
    )


def _validate(count, image_size, seed, subjects) -> None:
    def integer(name, value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise UserError(f"{name} must be an integer, got {value!r}")

    for name, value in (
        ("count", count),
        ("image_size", image_size),
        ("seed", seed),
        ("subjects", subjects),
    ):
        integer(name, value)
    if count < MIN_COUNT:
        raise UserError(f"count must be >= {MIN_COUNT} (two images per emotion), got {count}")
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE:
        raise UserError(
            f"image_size must be in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}], got {image_size}"
        )
    if subjects < MIN_SUBJECTS:
        raise UserError(f"subjects must be >= {MIN_SUBJECTS}, got {subjects}")
    if seed < 0:
        raise UserError(f"seed must be >= 0, got {seed}")


def _child(root: np.random.SeedSequence, stream: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, stream, index))


def _identity(seq: np.random.SeedSequence) -> dict:
    """A subject's fixed traits (all sizes are fractions of the canvas side)."""
    rng = np.random.default_rng(seq)
    skin = rng.uniform(115, 215)
    # Hair is either clearly darker or clearly lighter than the skin so the
    # head outline stays visible.
    hair = skin - rng.uniform(60, 110) if rng.random() < 0.8 or skin > 185 else skin + 35
    return {
        "face_w": rng.uniform(0.29, 0.33),  # half-width of the face oval
        "ratio": rng.uniform(1.15, 1.35),  # face height / width
        "eye_spacing": rng.uniform(0.38, 0.47),  # eye centre offset, in face half-widths
        "eye_size": rng.uniform(0.2, 0.24),  # eye half-width, in face half-widths
        "skin": skin,
        "hair": float(np.clip(hair, 10, 235)),
        "hairline": rng.uniform(0.0, 1.0),  # 0 low fringe .. 1 high forehead
        "iris": rng.uniform(25, 75),
        "brow_tone": rng.uniform(15, 70),
        "brow_thick": rng.uniform(0.024, 0.038),
        "mouth_w": rng.uniform(0.40, 0.50),  # mouth half-width, in face half-widths
        "nose_len": rng.uniform(0.2, 0.28),
        # How strongly this subject emotes, and a resting bias of the face
        # (e.g. naturally down-turned mouth): people differ in both.
        "expressive": rng.uniform(0.8, 1.15),
        "bias": rng.normal(0.0, 1.0, len(PARAMS))
        * SPREAD
        * np.array([0.4, 0.2, 0.3, 0.0, 0.4, 0.4, 0.4, 0.0]),
    }


def _expression(rng: np.random.Generator, ident: dict, emotion: str) -> dict:
    mean = np.array(EXPRESSIONS[emotion])
    intensity = rng.uniform(*INTENSITY) * ident["expressive"]
    p = _NEUTRAL + intensity * (mean - _NEUTRAL) + ident["bias"]
    p = p + rng.normal(0.0, 1.0, len(PARAMS)) * SPREAD * JITTER
    # Asymmetry and wrinkles are one-sided quantities: noise should not create
    # them on every face, so small values are cut to zero.
    p[3] = max(p[3] - 0.1, 0.0)
    p[7] = max(p[7] - 0.1, 0.0)
    return dict(zip(PARAMS, np.clip(p, _LOW, _HIGH)))


def _render(rng: np.random.Generator, ident: dict, emotion: str, size: int) -> np.ndarray:
    ex = _expression(rng, ident, emotion)
    side = size * (4 if size <= 64 else 2)  # supersampling factor for anti-aliasing
    # Background differs from the skin by at least 35 levels, either way.
    gap = rng.uniform(35, 110)
    skin = ident["skin"]
    bg = skin + gap if skin - gap < 5 or (skin + gap <= 250 and rng.random() < 0.5) else skin - gap
    canvas = np.full((side, side), bg, dtype=np.uint8)

    # Pose: rotation and scale about the centre plus a shift. It is applied to
    # the drawing coordinates rather than by warping the image: as sharp,
    # and cheaper than a full-resolution warpAffine.
    pen = Pen(
        canvas,
        angle=rng.uniform(-MAX_ROTATION, MAX_ROTATION),
        scale=rng.uniform(*SCALE_RANGE),
        shift=rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2) * side,
    )
    draw_face(pen, ident, ex, flip=rng.random() < 0.5)
    img = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)

    # Capture: lighting gradient, contrast/brightness, blur, sensor noise.
    theta = rng.uniform(0, 2 * math.pi)
    coords = (np.arange(size, dtype=np.float32) - (size - 1) / 2) / size
    strength = rng.uniform(0.0, 0.4)  # up to +-20% from one side to the other
    img *= 1.0 + (
        coords[None, :] * (strength * math.cos(theta))
        + coords[:, None] * (strength * math.sin(theta))
    )
    contrast = rng.uniform(0.8, 1.2)
    img *= contrast
    img += (1.0 - contrast) * 128.0 + rng.uniform(-12, 12)
    sigma = rng.uniform(0.0, 0.7) * size / 48  # camera blur, in 48-px pixels
    if sigma > 0.2:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noise = rng.standard_normal(img.shape, dtype=np.float32)
    noise *= rng.uniform(2.0, 6.0)
    img += noise
    np.clip(img, 0, 255, out=img)
    return np.rint(img, out=img).astype(np.uint8)
