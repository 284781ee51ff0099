"""``train(config) -> TrainResult``: one tracked training run, start to finish.

Everything that can be wrong with the input (config, data layout, a class too
small to split) is found before an MLflow run is opened; from then on the run
records everything and always ends in a terminal state (see ``tracking.runs``).
What records the run is passed in (``tracker``): MLflow by default, nothing for
callers that want the training and its metrics only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from emorec import transfer
from emorec.config import TrainConfig
from emorec.data import load_dataset
from emorec.data.dedupe import drop_duplicates
from emorec.data.preprocess import Preprocessing
from emorec.data.splits import Split, make_split
from emorec.data.types import Dataset
from emorec.engines import Callback, get_engine
from emorec.engines.callbacks import EpochLog, interactive
from emorec.evaluation.metrics import classification_metrics, scalar_metrics
from emorec.resources import PeakMemorySampler
from emorec.tracking.tracker import Tracker

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]  # everything logged as a final metric
    history: dict[str, list[float]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    model: object = None  # the trained model (framework object), for callers that want it
    experiment_id: str = ""  # where the run is, for its link in the MLflow UI


def load_data(cfg: TrainConfig, prep: Preprocessing | None = None) -> Dataset:
    """The dataset of ``cfg`` as ``train`` loads it (cached after the first decode), for
    callers that choose their own ``split`` of it; ``prep``: prepared for another model
    than ``cfg``'s (cross-dataset tests)."""
    return load_dataset(
        cfg.dataset,
        cfg.data_dir,
        prep or cfg.preprocessing,
        options=cfg.dataset_options(),
        strict=cfg.strict,
        progress=interactive(cfg),
    )


def split_data(ds: Dataset, cfg: TrainConfig, split: Split | None = None) -> tuple[Split, dict]:
    """The train/val/test split ``train`` makes of ``ds`` for ``cfg`` (or ``split``), with
    ``dedupe``'s drops applied, and the counts it dropped: the split a run logs, rebuilt
    alike wherever a run's data is read again."""
    split = split or make_split(
        ds,
        strategy=cfg.split,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
    )
    if not cfg.dedupe:
        return split, {}
    split, counts = drop_duplicates(ds, split)
    log.info("dedupe: %s", counts)
    return split, counts


def train(
    cfg: TrainConfig,
    callbacks: list[Callback] | None = None,
    *,
    tracker: Tracker | None = None,
    nested: bool = False,
    tags: dict | None = None,
    split: Split | None = None,
    extra_metrics: dict[str, float] | None = None,
) -> TrainResult:
    """Train, evaluate and record one run of ``cfg``.

    ``tracker``: what records the run, ``MlflowTracker()`` by default; ``NoTracker()``
    records nothing (``run_id`` is then ""). ``callbacks`` see every epoch's values.
    ``nested``/``tags``: the run's place under a parent run, and extra tags.
    ``split``: train/val/test indices into the dataset (a cross-validation fold, say)
    instead of the split ``cfg.split`` makes; ``extra_metrics``: logged with the run's
    final ones (a cross-validated config's final fit carries its folds' ``cv_*``).
    """
    if tracker is None:
        from emorec.tracking.mlflow_tracker import MlflowTracker

        tracker = MlflowTracker()
    source = transfer.load_source(cfg) if cfg.init_from else None
    prep = cfg.preprocessing
    ds = load_data(cfg)
    split, dedupe_counts = split_data(ds, cfg, split)
    targets = ds.targets
    parts = {
        name: (ds.images[idx], targets[idx])
        for name, idx in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    classes = ds.classes
    engine = get_engine(cfg.framework)

    tags = {**(tags or {}), **engine.run_tags(cfg), **(source.tags() if source else {})}
    with tracker.run(cfg, nested=nested, tags=tags) as run:
        tracker.log_config(cfg)
        tracker.log_dataset(ds, split, cfg)
        # From here the three parts hold every image the run uses: dropping the loaded
        # array leaves one copy of the images in memory through training, not two.
        del ds
        if source and source.logged_model_id:
            tracker.log_model_input(source.logged_model_id)
        engine.load_framework()  # the process's one-time cost, not this run's memory
        with PeakMemorySampler() as memory:
            model = engine.build(cfg, num_classes=len(classes))
            if source:
                engine.start_from(model, source.model, source.rows(classes))
            # Progress bars in a terminal; anywhere else (a log file, CI) a line per epoch.
            lines = [EpochLog(cfg.epochs)] if cfg.progress and not interactive(cfg) else []
            start = time.perf_counter()
            fit = engine.fit(
                model,
                parts["train"],
                parts["val"],
                cfg,
                [*tracker.callbacks(), *lines, *(callbacks or [])],
            )
            train_time = time.perf_counter() - start
            model = engine.for_inference(model, cfg, fit.snapshots)
            start = time.perf_counter()
            proba = engine.predict_proba(model, parts["test"][0])
            eval_time = time.perf_counter() - start
        x_test, y_test = parts["test"]
        report = classification_metrics(y_test, proba, list(classes))
        val_report = classification_metrics(
            parts["val"][1], engine.predict_proba(model, parts["val"][0]), list(classes)
        )
        metrics = {
            **scalar_metrics(report, "test_"),
            **scalar_metrics(val_report, "val_final_"),
            "train_time_s": train_time,
            "eval_time_s": eval_time,
            "train_images_per_s": fit.images_seen / max(train_time, 1e-9),
            "eval_images_per_s": len(y_test) / max(eval_time, 1e-9),
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "num_parameters": engine.count_parameters(model),
            "flops_per_image": engine.flops_per_image(model, x_test.shape[1:]),
            "weights_mb": engine.weights_mb(model),
            **memory.as_metrics(),
            **dedupe_counts,
            **(extra_metrics or {}),
        }
        tracker.log_metrics(metrics)
        tracker.log_evaluation(report, fit.history, classes)
        if cfg.log_model:
            tracker.log_model(engine, model, cfg, classes, prep, x_test[:2])
        log.info(
            "run %s: test accuracy %.3f, macro F1 %.3f",
            run.run_id or "(untracked)",
            metrics["test_accuracy"],
            metrics["test_f1_macro"],
        )
        return TrainResult(run.run_id, metrics, fit.history, classes, model, run.experiment_id)
