"""The dataset a run trained on, as an MLflow input: name, source, content digest, split."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import mlflow
import mlflow.data
import numpy as np

from emorec.config import TrainConfig
from emorec.data.splits import Split
from emorec.data.types import Dataset


def dataset_digest(ds: Dataset) -> str:
    # The arrays' own buffers (C-contiguous, as loaded): tobytes() would copy the whole
    # image array once more for the length of the hash.
    h = hashlib.sha256(memoryview(np.ascontiguousarray(ds.images)).cast("B"))
    h.update(memoryview(np.ascontiguousarray(ds.labels)).cast("B"))
    return h.hexdigest()[:16]


# How each SQL backend of MLflow names a second row of one dataset: PostgreSQL (and
# MSSQL) by the constraint, SQLite by its columns, MySQL by the table's primary key.
_DATASET_KEY_CLASHES = (
    "dataset_pk",
    "UNIQUE constraint failed: datasets",
    "for key 'datasets.PRIMARY'",
)


def _log_input_once_stored(dataset, attempts: int = 3) -> None:
    """``mlflow.log_input``, surviving another worker storing the same dataset at once.

    MLflow's SQL store looks the (experiment, name, digest) row up and inserts it when it
    is missing, with nothing between the two: two runs of one study that start together
    both insert, and the second fails on the table's primary key (seen with three workers
    on PostgreSQL). The row exists once the first has committed, so asking again finds
    it and only links it to this run.
    """
    for attempt in range(attempts):
        try:
            mlflow.log_input(dataset, context="training")
            return
        except mlflow.exceptions.MlflowException as e:
            lost_race = any(key in str(e) for key in _DATASET_KEY_CLASHES)
            if not lost_race or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def log_dataset(ds: Dataset, split: Split, cfg: TrainConfig) -> None:
    """The dataset as an MLflow input (name, source folder, content digest, array shapes)
    plus split facts."""
    import warnings

    # MLflow keeps one dataset per (name, digest) in an experiment, with the first run's
    # source: a second folder of equal content would show the first one's path. The folder
    # goes in the name (the column holds 500 characters); the digest stays the content's,
    # which the registry compares.
    source = str(Path(cfg.data_dir).resolve()) if cfg.data_dir else None
    name = f"{ds.name} {source}"[-500:] if source else ds.name
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": a local folder
        warnings.simplefilter("ignore", UserWarning)
        # No source for the synthetic set: MLflow records the code that generated it.
        dataset = mlflow.data.from_numpy(
            ds.images, targets=ds.labels, source=source, name=name, digest=dataset_digest(ds)
        )
    _log_input_once_stored(dataset)
    sizes = split.sizes()
    mlflow.log_params(
        {
            "split_strategy": split.strategy,
            "split_digest": split.digest,
            "classes": ",".join(ds.classes),
            "num_classes": len(ds.classes),
            **{f"{k}_size": v for k, v in sizes.items()},
        }
    )
    mlflow.log_dict(
        {
            "classes": list(ds.classes),
            "split_sizes": sizes,
            "split_digest": split.digest,
            "decode": ds.stats,
        },
        "data/dataset.json",
    )
