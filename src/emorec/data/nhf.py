"""Natural Human Face Images for Emotion Recognition (Kaggle, sudarshanvaidya).

About 5,558 grayscale face crops in one folder per class, eight classes:
anger, contempt, disgust, fear, happiness, neutrality, sadness, surprise.
Only those folder names (and ``happy``, seen in some re-uploads) are accepted,
so pointing this format at another folder-per-class dataset fails loudly
instead of silently mixing datasets. No subject ids, no official split.
"""

from __future__ import annotations

import os

from emorec.data import folder
from emorec.data.types import Listing

NHF_FOLDERS: tuple[str, ...] = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "happy",
    "neutrality",
    "sadness",
    "surprise",
)


def scan(root: str | os.PathLike) -> Listing:
    """List the NHF class folders under ``root``."""
    return folder.scan(root, allowed=NHF_FOLDERS)
