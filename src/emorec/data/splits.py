"""Deterministic train/validation/test splits.

Strategies:
- ``official``: the dataset's own split (FER2013 Usage, Kaggle train/test);
  a part it lacks (usually validation) is carved from its training part.
- ``grouped``: subject-independent, no subject on two sides (the default
  whenever the format has subject ids: CK+, KDEF, synthetic); a random
  frame-level split of CK+ leaks subjects and inflates accuracy.
- ``stratified``: class-balanced random split.
- ``auto``: official if the format has one, else grouped if it has subjects,
  else stratified.
Same dataset, strategy, fractions and seed give the same split; its digest
(a hash of the index lists) is logged with every run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedShuffleSplit

from emorec.data.errors import DatasetError
from emorec.data.types import Dataset
from emorec.errors import UserError
from emorec.labels import EMOTION_ID, EMOTIONS

STRATEGIES = ("auto", "official", "grouped", "stratified")


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    strategy: str  # the strategy actually used (never "auto")

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for part in (self.train, self.val, self.test):
            h.update(np.sort(part).astype(np.int64).tobytes())
            h.update(b"|")
        return h.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def resolve_strategy(ds: Dataset, strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise UserError(f"unknown split strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    if strategy == "auto":
        if ds.usage is not None:
            return "official"
        return "grouped" if ds.groups is not None else "stratified"
    if strategy == "official" and ds.usage is None:
        raise DatasetError(f"dataset {ds.name!r} has no official split; use grouped or stratified")
    if strategy == "grouped" and ds.groups is None:
        raise DatasetError(f"dataset {ds.name!r} has no subject ids; use stratified")
    return strategy


def carve(
    ds: Dataset, index: np.ndarray, fraction: float, seed: int, grouped: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``index`` into (rest, carved) with ~``fraction`` carved, class-stratified."""
    y = ds.labels[index]
    if grouped:
        n_folds = max(2, int(round(1.0 / fraction)))
        n_groups = len(np.unique(ds.groups[index]))
        if n_groups < n_folds:
            raise DatasetError(
                f"{n_groups} subjects cannot give a grouped split of "
                f"{fraction:.0%}; use split=stratified or smaller fractions"
            )
        folds = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
        rest, carved = next(folds.split(np.zeros(len(index)), y, ds.groups[index]))
    else:
        ids, counts = np.unique(y, return_counts=True)
        too_small = [f"{EMOTIONS[i]} ({n})" for i, n in zip(ids, counts) if n < 2]
        if too_small:
            raise DatasetError(
                f"cannot split {ds.name!r}: class(es) {', '.join(too_small)} "
                f"have fewer than 2 images to divide; add images or drop them"
            )
        try:
            sss = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
            rest, carved = next(sss.split(np.zeros(len(index)), y))
        except ValueError as exc:  # a class with a single image cannot be stratified
            raise DatasetError(f"cannot split {ds.name!r}: {exc}") from exc
    return index[rest], index[carved]


def make_split(
    ds: Dataset,
    *,
    strategy: str = "auto",
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> Split:
    """Split ``ds`` into index arrays; every class must appear in every part."""
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < frac < 0.5:
            raise UserError(f"{name} must be in (0, 0.5), got {frac}")
    used = resolve_strategy(ds, strategy)
    everything = np.arange(len(ds))
    if used == "official":
        parts = {u: everything[ds.usage == u] for u in ("train", "val", "test")}
        grouped = ds.groups is not None
        if len(parts["test"]) == 0:
            parts["train"], parts["test"] = carve(ds, parts["train"], test_fraction, seed, grouped)
        if len(parts["val"]) == 0:
            frac = val_fraction / (1.0 - test_fraction)
            parts["train"], parts["val"] = carve(ds, parts["train"], frac, seed + 1, grouped)
        split = Split(parts["train"], parts["val"], parts["test"], used)
    else:
        grouped = used == "grouped"
        rest, test = carve(ds, everything, test_fraction, seed, grouped)
        train, val = carve(ds, rest, val_fraction / (1.0 - test_fraction), seed + 1, grouped)
        split = Split(train, val, test, used)
    _check_classes(ds, split)
    return split


def _check_classes(ds: Dataset, split: Split) -> None:
    for part, index in (("train", split.train), ("val", split.val), ("test", split.test)):
        present = set(ds.labels[index].tolist())
        missing = [c for c in ds.classes if EMOTION_ID[c] not in present]
        if missing:
            raise DatasetError(
                f"the {split.strategy} split leaves class(es) {', '.join(missing)} empty in "
                f"{part} ({len(index)} images); add images, use larger fractions or another "
                f"split strategy ({', '.join(STRATEGIES)})"
            )
