"""Pixel-identical images: found once for ``emorec explore``'s report and for the
``dedupe`` training option.

FER2013, for one, holds about 1,100 groups of identical images; some carry two
labels, and some sit in both the Training split and the test split. Training on
a test image's twin inflates test accuracy, and training on one face labelled
two ways teaches noise: ``drop_duplicates`` removes both from the training part
(validation and test are never touched, so results stay comparable).
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from emorec.data.splits import Split
from emorec.data.types import Dataset


def duplicate_groups(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per image, size of each group): images with equal pixels share an id."""
    digests = [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in images]
    _, inverse, counts = np.unique(digests, return_inverse=True, return_counts=True)
    return inverse, counts


def conflicting_groups(group: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The ids of the groups whose images carry more than one label."""
    pairs = np.unique(np.stack([group, labels]), axis=1)  # each (group, label) once
    ids, n_labels = np.unique(pairs[0], return_counts=True)
    return ids[n_labels > 1]


def drop_duplicates(ds: Dataset, split: Split) -> tuple[Split, dict[str, int]]:
    """The split without the training images that duplicate a validation or test image
    or that belong to a group labelled two ways, and how many of each it dropped."""
    group, _ = duplicate_groups(ds.images)
    held_out = np.isin(group[split.train], group[np.concatenate([split.val, split.test])])
    conflicting = np.isin(group[split.train], conflicting_groups(group, ds.labels))
    keep = split.train[~(held_out | conflicting)]
    counts = {
        "dedupe_dropped_held_out_twins": int(held_out.sum()),
        "dedupe_dropped_conflicting": int((conflicting & ~held_out).sum()),
        "dedupe_train_images": len(keep),
    }
    return replace(split, train=keep), counts
