"""CK+ (extended Cohn-Kanade) in either of its two native layouts, detected automatically.

(a) CK+48: ``root/<class>/S005_001_00000011.png``, the last three frames of
    each labelled sequence already cropped to 48x48; class folders anger,
    contempt, disgust, fear, happy, sadness, surprise.
(b) Original CK+: ``root/cohn-kanade-images/S005/001/S005_001_00000011.png``
    with the sequence's label in
    ``root/Emotion/S005/001/S005_001_00000011_emotion.txt`` (one float code,
    ``labels.CKPLUS_CODES``). Only labelled sequences are used: their last
    frames show the emotion at its peak, their first frame is neutral.

Groups are always the subject (``"S005"``): CK+ has several frames of every
sequence and several sequences per subject, so only subject-independent splits
measure anything but memorisation.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from emorec.data.errors import DatasetError, describe_contents, require_dir
from emorec.data.folder import add_note, class_folders, list_images, scan_class_folders
from emorec.data.types import Listing
from emorec.errors import UserError
from emorec.inputs import read_text
from emorec.labels import CKPLUS_CODES, EMOTION_ID

log = logging.getLogger(__name__)

IMAGES_DIR = "cohn-kanade-images"
LABELS_DIR = "Emotion"
LABEL_SUFFIX = "_emotion.txt"
# CK+48 file stem: subject, sequence, frame.
CK48_NAME = re.compile(r"^(S\d+)_(\d+)_(\d+)$")
LAYOUTS = f"CK+48 (<class>/S005_001_00000011.png) or original CK+ ({IMAGES_DIR}/ and {LABELS_DIR}/)"


def scan(
    root: str | os.PathLike, *, last_frames: int = 3, include_neutral: bool = False
) -> Listing:
    """List CK+ from either layout.

    ``last_frames`` (frames per labelled sequence that get its emotion) and
    ``include_neutral`` (add each labelled sequence's first frame as neutral)
    only apply to the original layout: CK+48 ships its three frames already
    chosen.
    """
    root = require_dir(root, f"a CK+ folder in the {LAYOUTS} layout")
    if (root / IMAGES_DIR).is_dir() or (root / LABELS_DIR).is_dir():
        return scan_original(root, last_frames=last_frames, include_neutral=include_neutral)
    return scan_ck48(root)


# ------------------------------------------------------------------- CK+48 ---


def scan_ck48(root: Path) -> Listing:
    """CK+48 class folders; the subject comes from each file name."""
    notes: dict = {"unparsed_names": 0}
    try:
        paths, labels = scan_class_folders(root, notes=notes)
    except DatasetError as exc:  # say that the original layout was an option too
        raise DatasetError(f"expected {LAYOUTS} under {root}: {exc}") from None
    groups = [subject_of(path, notes) for path in paths]
    return Listing(items=paths, labels=labels, groups=np.asarray(groups, dtype=str), notes=notes)


def subject_of(path: Path, notes: dict) -> str:
    """``"S005"`` from ``S005_001_00000011.png``; the stem for names off that pattern.

    A stem as group keeps an odd file out of every other subject's group, so
    it can never leak a subject across splits; ``notes["unparsed_names"]``
    counts such files.
    """
    match = CK48_NAME.match(path.stem)
    if match:
        return match.group(1)
    add_note(notes, "unparsed_names", 1)
    return path.stem


# ---------------------------------------------------------------- original ---


def scan_original(root: Path, *, last_frames: int, include_neutral: bool) -> Listing:
    """Labelled sequences of the original CK+ release."""
    images_dir, labels_dir = root / IMAGES_DIR, root / LABELS_DIR
    missing = [d.name + "/" for d in (images_dir, labels_dir) if not d.is_dir()]
    if missing:
        raise DatasetError(
            f"expected {LAYOUTS} under {root}; {' and '.join(missing)} "
            f"missing; found: {describe_contents(root)}"
        )
    if last_frames < 1:
        raise DatasetError(f"last_frames must be at least 1, got {last_frames}")
    notes = {
        "sequences": count_sequences(images_dir),
        "labelled_sequences": 0,
        "bad_label_files": 0,
        "labelled_sequences_without_images": 0,
    }
    items: list[Path] = []
    labels: list[int] = []
    groups: list[str] = []
    for subject, sequence, emotion in labelled_sequences(labels_dir, notes):
        frames = sequence_frames(images_dir / subject / sequence)
        if not frames:
            notes["labelled_sequences_without_images"] += 1
            continue
        notes["labelled_sequences"] += 1
        chosen = pick_frames(
            frames, emotion, last_frames=last_frames, include_neutral=include_neutral
        )
        items.extend(path for path, _ in chosen)
        labels.extend(EMOTION_ID[name] for _, name in chosen)
        groups.extend([subject] * len(chosen))
    if not items:
        raise DatasetError(
            f"expected labelled sequences ({LABELS_DIR}/S005/001/"
            f"S005_001_00000011{LABEL_SUFFIX} with images in {IMAGES_DIR}/"
            f"S005/001/) under {root}; found none ({notes})"
        )
    return Listing(items=items, labels=labels, groups=np.asarray(groups, dtype=str), notes=notes)


def count_sequences(images_dir: Path) -> int:
    """How many sequence folders the release holds, labelled or not."""
    return sum(len(class_folders(subject)) for subject in class_folders(images_dir))


def labelled_sequences(labels_dir: Path, notes: dict) -> Iterator[tuple[str, str, str]]:
    """Yield ``(subject, sequence, emotion)`` for each readable label file, in order.

    Unreadable label files are skipped and counted in ``notes["bad_label_files"]``.
    """
    for subject in class_folders(labels_dir):
        for sequence in class_folders(subject):
            label_file = find_label_file(sequence)
            if label_file is None:
                continue  # most CK+ sequences carry no emotion label
            try:
                emotion = read_label(label_file)
            except ValueError as exc:
                log.warning("skipping CK+ sequence %s: %s", sequence, exc)
                notes["bad_label_files"] += 1
                continue
            yield subject.name, sequence.name, emotion


def find_label_file(sequence: Path) -> Path | None:
    """The ``*_emotion.txt`` of a sequence folder, if it has one."""
    with os.scandir(sequence) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(LABEL_SUFFIX))
    return sequence / names[0] if names else None


def read_label(path: Path) -> str:
    """The canonical emotion of a CK+ label file (one float code, e.g. ``3.0000000e+00``)."""
    text = read_text(path, "CK+ label file", limit=1000).strip()
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path} holds {text[:40]!r}, not a number") from None
    if not value.is_integer() or int(value) not in CKPLUS_CODES:
        raise UserError(
            f"{path} holds code {text!r}; expected one of {', '.join(map(str, CKPLUS_CODES))}"
        )
    return CKPLUS_CODES[int(value)]


def sequence_frames(sequence: Path) -> list[Path]:
    """A sequence's frames in time order (names carry zero-padded frame numbers)."""
    return list_images(sequence) if sequence.is_dir() else []


def pick_frames(
    frames: list[Path], emotion: str, *, last_frames: int, include_neutral: bool
) -> list[tuple[Path, str]]:
    """The labelled frames of one sequence: ``(path, emotion)`` in time order.

    The first frame counts as neutral only when it is not also one of the last
    frames (sequences shorter than ``last_frames + 1``).
    """
    chosen = [(path, emotion) for path in frames[-last_frames:]]
    if include_neutral and len(frames) > last_frames:
        chosen.insert(0, (frames[0], "neutral"))
    return chosen
