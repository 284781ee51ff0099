"""Dataset exploration: class distribution, sample grids and a summary.

``explore(...)`` writes ``class_distribution.png``, ``samples.png`` and
``summary.json`` to a folder, and logs them to MLflow when asked, so a user
sees what a dataset holds before training on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emorec.data import load_dataset
from emorec.data.errors import require_output_dir
from emorec.data.preprocess import Preprocessing
from emorec.data.splits import make_split
from emorec.evaluation import figures
from emorec.labels import EMOTION_ID

N_SAMPLES = 8  # images per class in the sample grid
# Splits whose median sharpness differs by more than this factor were not captured (or
# processed) alike: worth a warning.
SHARPNESS_GAP = 10.0


def sharpness(images) -> np.ndarray:
    """Variance of the Laplacian per image: near 0 when blurred, hundreds or more for a
    sharp 48 px face."""
    import cv2

    return np.array([cv2.Laplacian(im, cv2.CV_64F).var() for im in images], dtype=float)


def sharpness_gap(median_per_split: dict) -> float:
    """Ratio of the sharpest split's median sharpness to the blurriest's (1 = alike)."""
    values = [v for v in median_per_split.values() if v is not None]
    return max(values) / max(min(values), 1e-6) if values else 1.0


def image_quality(ds, parts: dict[str, np.ndarray]) -> dict:
    """Cheap checks that catch a broken or uneven dataset before any training.

    Sharpness is the median variance of the Laplacian per split (a blurred
    split scores near 0, a sharp 48 px face in the hundreds or more); a large
    gap between splits means train and test were not captured alike.
    """
    from emorec.data.dedupe import conflicting_groups, duplicate_groups

    flat = ds.images.reshape(len(ds), -1)
    sharp = sharpness(ds.images)
    group, counts = duplicate_groups(ds.images)
    return {
        "near_blank_images": int(np.sum(flat.std(axis=1) < 3.0)),
        "duplicate_groups": int(np.sum(counts > 1)),
        "images_in_duplicate_groups": int(counts[counts > 1].sum()),
        "duplicate_groups_with_conflicting_labels": len(conflicting_groups(group, ds.labels)),
        "median_sharpness_per_split": {
            part: round(float(np.median(sharp[idx])), 1) if len(idx) else None
            for part, idx in parts.items()
        },
    }


def summarize(ds, split) -> dict:
    parts = {"train": split.train, "val": split.val, "test": split.test}
    counts = {
        part: {c: int(np.sum(ds.labels[idx] == EMOTION_ID[c])) for c in ds.classes}
        for part, idx in parts.items()
    }
    subjects = (
        None
        if ds.groups is None
        else {part: int(len(np.unique(ds.groups[idx]))) for part, idx in parts.items()}
    )
    return {
        "dataset": ds.name,
        "images": len(ds),
        "classes": list(ds.classes),
        "counts_per_split": counts,
        "counts": {c: sum(counts[p][c] for p in parts) for c in ds.classes},
        "image_shape": list(ds.images.shape[1:]),
        "subjects": None if ds.groups is None else int(len(np.unique(ds.groups))),
        "subjects_per_split": subjects,
        "quality": image_quality(ds, parts),
        "split_strategy": split.strategy,
        "split_digest": split.digest,
        "decode": ds.stats,
    }


def pick_samples(ds, name: str, rng: np.random.Generator, n: int = N_SAMPLES) -> np.ndarray:
    """Up to ``n`` random images of class ``name``, one per subject while subjects last.

    CK+ and KDEF hold several near-identical frames per subject; without this
    a grid row often shows the same face twice.
    """
    index = rng.permutation(np.flatnonzero(ds.labels == EMOTION_ID[name]))
    if ds.groups is None:
        return index[:n]
    _, first = np.unique(ds.groups[index], return_index=True)
    distinct = index[np.sort(first)]  # one random image per subject, in random order
    rest = index[~np.isin(index, distinct)]
    return np.concatenate([distinct, rest])[:n]


def explore(
    dataset: str,
    data_dir: str | None,
    out_dir: str | Path,
    *,
    image_size: int = 48,
    split: str = "auto",
    seed: int = 42,
    options: dict | None = None,
    log_to_mlflow: bool = False,
    progress: bool = True,
) -> dict:
    out = require_output_dir(out_dir, "--out")  # before the slow load, not after it
    ds = load_dataset(
        dataset, data_dir, Preprocessing(image_size=image_size), options=options, progress=progress
    )
    sp = make_split(ds, strategy=split, seed=seed)
    summary = summarize(ds, sp)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = {c: ds.images[pick_samples(ds, c, rng)] for c in ds.classes}
    figures.save(
        figures.class_distribution_figure(summary["counts_per_split"]),
        out / "class_distribution.png",
    )
    grid = figures.sample_grid_figure(samples, n_per_class=N_SAMPLES)
    for ax in grid.axes:  # show the pixels the model sees, not a smoothed upscale
        for im in ax.get_images():
            im.set_interpolation("nearest")
    figures.save(grid, out / "samples.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if log_to_mlflow:
        from emorec import tracking

        tracking.log_exploration(out, dataset)
    return summary
