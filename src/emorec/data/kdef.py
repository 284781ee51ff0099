"""KDEF (Karolinska Directed Emotional Faces): labels come from the file names.

Layout: ``root/<sitting>/AF01ANS.JPG`` (a folder per sitting such as ``AF01``),
files lying directly under ``root`` are accepted too. A name reads
session (A/B), gender (F/M), identity (two digits), expression (two letters,
``labels.KDEF_CODES``), angle (FL full left, HL half left, S straight,
HR half right, FR full right), optionally followed by stray letters as in
``AF01ANHRX.JPG``.

Groups are gender + identity (``"F01"``): the same person sat twice
(sessions A and B), and both sittings must land in the same split.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from emorec.data.errors import DatasetError, describe_contents, require_dir
from emorec.data.folder import add_note, class_folders, list_images
from emorec.data.types import Listing
from emorec.labels import EMOTION_ID, KDEF_CODES

ANGLES = ("FL", "HL", "S", "HR", "FR")
ALL_ANGLES = "all"
# Two-letter angles come first in the alternation so "HRX" reads as HR + "X",
# never as anything shorter; the expression is always exactly two letters.
KDEF_NAME = re.compile(r"^([AB])([FM])(\d{2})([A-Z]{2})(FL|HL|HR|FR|S)[A-Z]*$")


def scan(root: str | os.PathLike, *, angles: str = "S") -> Listing:
    """List KDEF images taken from the given camera angles.

    ``angles`` is a comma-separated list of angle codes (any case) or
    ``"all"``; the default keeps the 980 front-facing images.
    """
    wanted = parse_angles(angles)
    root = require_dir(root, "a KDEF folder (sitting folders such as AF01/ holding AF01ANS.JPG)")
    notes = {"unmatched_names": 0, "unknown_expressions": 0, "other_angles": 0}
    items: list[Path] = []
    labels: list[int] = []
    groups: list[str] = []
    for path in sorted(candidate_files(root, notes)):
        parsed = parse_name(path, notes)
        if parsed is None:
            continue
        emotion, group, angle = parsed
        if angle not in wanted:
            notes["other_angles"] += 1
            continue
        items.append(path)
        labels.append(EMOTION_ID[emotion])
        groups.append(group)
    if not items:
        raise DatasetError(
            f"expected KDEF images named like AF01ANS.JPG with angle "
            f"{' or '.join(sorted(wanted))} under {root} or its sitting "
            f"folders; found none among: {describe_contents(root)}"
        )
    return Listing(items=items, labels=labels, groups=np.asarray(groups, dtype=str), notes=notes)


def parse_angles(angles: str) -> frozenset[str]:
    """The angle codes of an ``angles`` option; ``DatasetError`` naming the valid ones."""
    codes = [a.strip().upper() for a in angles.split(",") if a.strip()]
    if [c.lower() for c in codes] == [ALL_ANGLES]:
        return frozenset(ANGLES)
    unknown = [c for c in codes if c not in ANGLES]
    if unknown or not codes:
        raise DatasetError(
            f"unknown KDEF angle(s) {', '.join(unknown) or repr(angles)}; "
            f"valid: {', '.join(ANGLES)} (comma-separated) or {ALL_ANGLES}"
        )
    return frozenset(codes)


def candidate_files(root: Path, notes: dict) -> list[Path]:
    """Image files directly under ``root`` and in its sitting folders."""
    top: dict = {}
    files = list_images(root, top)  # the sitting folders are not "ignored subfolders" here
    add_note(notes, "non_image_files", top["non_image_files"])
    for sitting in class_folders(root):
        files.extend(list_images(sitting, notes))
    return files


def parse_name(path: Path, notes: dict) -> tuple[str, str, str] | None:
    """``(emotion, group, angle)`` from a KDEF file name, or ``None`` (counted in notes)."""
    match = KDEF_NAME.match(path.stem.upper())
    if match is None:
        notes["unmatched_names"] += 1
        return None
    _session, gender, identity, expression, angle = match.groups()
    if expression not in KDEF_CODES:
        notes["unknown_expressions"] += 1
        return None
    return KDEF_CODES[expression], gender + identity, angle
