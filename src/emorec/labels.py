"""Canonical emotion labels and each dataset's map onto them.

Every dataset keeps its own class subset (CK+48 has contempt but no neutral,
FER2013 has no contempt, Natural Human Faces has all eight); labels are always
stored as indices into ``EMOTIONS`` so that models trained on different
datasets can be compared over the classes they share.
"""

from __future__ import annotations

from emorec.errors import UserError

EMOTIONS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
)
EMOTION_ID: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}

# The seven "basic" emotions (Ekman's six plus neutral) used by FER2013 and KDEF.
BASIC_EMOTIONS: tuple[str, ...] = tuple(e for e in EMOTIONS if e != "contempt")

# Folder/file names seen in the wild, mapped onto canonical names.
SYNONYMS: dict[str, str] = {
    "anger": "anger",
    "angry": "anger",
    "mad": "anger",
    "contempt": "contempt",
    "contemptuous": "contempt",
    "disgust": "disgust",
    "disgusted": "disgust",
    "fear": "fear",
    "fearful": "fear",
    "afraid": "fear",
    "scared": "fear",
    "happiness": "happiness",
    "happy": "happiness",
    "joy": "happiness",
    "neutral": "neutral",
    "neutrality": "neutral",
    "calm": "neutral",
    "sadness": "sadness",
    "sad": "sadness",
    "surprise": "surprise",
    "surprised": "surprise",
}

# FER2013 CSV `emotion` column codes.
FER2013_CODES: dict[int, str] = {
    0: "anger",
    1: "disgust",
    2: "fear",
    3: "happiness",
    4: "sadness",
    5: "surprise",
    6: "neutral",
}

# Original CK+ `Emotion/*_emotion.txt` codes.
CKPLUS_CODES: dict[int, str] = {
    0: "neutral",
    1: "anger",
    2: "contempt",
    3: "disgust",
    4: "fear",
    5: "happiness",
    6: "sadness",
    7: "surprise",
}

# KDEF file-name expression codes (characters 5-6 of e.g. ``AF01ANS.JPG``).
KDEF_CODES: dict[str, str] = {
    "AF": "fear",
    "AN": "anger",
    "DI": "disgust",
    "HA": "happiness",
    "NE": "neutral",
    "SA": "sadness",
    "SU": "surprise",
}


def canonical(name: str) -> str:
    """Map a class name as found on disk (any case) to its canonical emotion.

    Raises ``ValueError`` listing every accepted name when ``name`` is unknown.
    """
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in SYNONYMS:
        return SYNONYMS[key]
    accepted = ", ".join(sorted(SYNONYMS))
    raise UserError(f"unknown emotion class {name!r}; accepted names: {accepted}")


def sorted_classes(ids) -> tuple[str, ...]:
    """The canonical names of the ids present, in canonical order."""
    return tuple(EMOTIONS[i] for i in sorted(set(int(i) for i in ids)))
