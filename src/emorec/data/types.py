"""The two records every dataset format produces.

A format's scanner returns a ``Listing`` (what is on disk: one item per image,
its canonical label, subject and official split); ``emorec.data.load_dataset``
decodes and preprocesses it into a ``Dataset`` of fixed-size uint8 arrays,
which is what the cache stores and every engine consumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emorec.errors import UserError
from emorec.labels import EMOTIONS

# Official split names a format may assign (e.g. FER2013's Usage column).
USAGES = ("train", "val", "test")


@dataclass
class Listing:
    """What a scanner found: one entry per image, nothing decoded yet.

    ``items`` holds an image file path, or already-decoded uint8 pixels for
    formats that store pixels inline (FER2013 CSV).
    """

    items: Sequence[Path | np.ndarray]
    labels: np.ndarray  # int64 canonical ids (indices into EMOTIONS)
    groups: np.ndarray | None = None  # subject/identity id per item (str), if the format has one
    usage: np.ndarray | None = None  # official split per item ("train"/"val"/"test"), if any
    notes: dict = field(default_factory=dict)  # format-specific counts worth reporting

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.items) != len(self.labels):
            raise UserError("a listing needs exactly one label per item")


@dataclass
class Dataset:
    """Decoded, preprocessed images ready for training, evaluation or plots."""

    name: str  # dataset format name, e.g. "fer2013"
    images: np.ndarray  # uint8, (N, H, W, C) with C = 1 (grayscale) or 3
    labels: np.ndarray  # int64 canonical ids
    classes: tuple[str, ...]  # canonical names present, in canonical order
    groups: np.ndarray | None = None
    usage: np.ndarray | None = None
    stats: dict = field(default_factory=dict)  # decode counts: skipped, faces not found ...

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def targets(self) -> np.ndarray:
        """Labels as indices into ``classes`` (0..K-1), what a model predicts."""
        lookup = np.full(len(EMOTIONS), -1, dtype=np.int64)
        lookup[[EMOTIONS.index(c) for c in self.classes]] = np.arange(len(self.classes))
        return lookup[self.labels]

    def subset(self, index: np.ndarray) -> Dataset:
        """The samples at ``index``, keeping the full class list."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Dataset(
            self.name,
            self.images[index],
            self.labels[index],
            self.classes,
            pick(self.groups),
            pick(self.usage),
            dict(self.stats),
        )
