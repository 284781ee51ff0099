"""Dataset exploration: class distribution, sample grids and a summary.

``explore(...)`` writes ``class_distribution.png``, ``samples.png`` and
``summary.json`` to a folder, and logs them to MLflow when asked, so a user
sees what a dataset holds before training on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from emorec import plots
from emorec.data import load_dataset
from emorec.data.preprocess import Preprocessing
from emorec.data.splits import make_split
from emorec.labels import EMOTION_ID


def summarize(ds, split) -> dict:
    parts = {"train": split.train, "val": split.val, "test": split.test}
    counts = {part: {c: int(np.sum(ds.labels[idx] == EMOTION_ID[c])) for c in ds.classes}
              for part, idx in parts.items()}
    return {
        "dataset": ds.name,
        "images": len(ds),
        "classes": list(ds.classes),
        "counts_per_split": counts,
        "counts": {c: sum(counts[p][c] for p in parts) for c in ds.classes},
        "image_shape": list(ds.images.shape[1:]),
        "subjects": None if ds.groups is None else int(len(np.unique(ds.groups))),
        "split_strategy": split.strategy,
        "split_digest": split.digest,
        "decode": ds.stats,
    }


def explore(dataset: str, data_dir: str | None, out_dir: str | Path, *, image_size: int = 48,
            split: str = "auto", seed: int = 42, options: dict | None = None,
            log_to_mlflow: bool = False, progress: bool = True) -> dict:
    ds = load_dataset(dataset, data_dir, Preprocessing(image_size=image_size), options=options,
                      progress=progress)
    sp = make_split(ds, strategy=split, seed=seed)
    summary = summarize(ds, sp)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    samples = {c: ds.images[rng.permutation(np.flatnonzero(ds.labels == EMOTION_ID[c]))[:8]]
               for c in ds.classes}
    plots.save_figure(plots.class_distribution_figure(summary["counts_per_split"]),
                      out / "class_distribution.png")
    plots.save_figure(plots.sample_grid_figure(samples), out / "samples.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if log_to_mlflow:
        from emorec import tracking
        tracking.log_exploration(out, dataset)
    return summary
