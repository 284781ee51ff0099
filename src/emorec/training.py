"""``train(config) -> TrainResult``: one tracked training run, start to finish.

Everything that can be wrong with the input (config, data layout, a class too
small to split) is found before an MLflow run is opened; from then on the run
records everything and always ends in a terminal state (see ``tracking``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from emorec import tracking, transfer
from emorec.config import TrainConfig
from emorec.data import load_dataset
from emorec.data.dedupe import drop_duplicates
from emorec.data.preprocess import Preprocessing
from emorec.data.splits import make_split
from emorec.engines import Callback, get_engine
from emorec.engines.base import EpochLog, interactive
from emorec.metrics import classification_metrics, roc_curves, scalar_metrics
from emorec.resources import PeakMemorySampler

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    run_id: str
    metrics: dict[str, float]  # everything logged as a final metric
    history: dict[str, list[float]] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    model: object = None  # the trained model (framework object), for callers that want it
    experiment_id: str = ""  # where the run is, for its link in the MLflow UI


def train(cfg: TrainConfig, callbacks: list[Callback] | None = None, *, nested: bool = False,
          tags: dict | None = None) -> TrainResult:
    source = transfer.load_source(cfg) if cfg.init_from else None
    prep = Preprocessing(cfg.input_size, cfg.channels, cfg.face_detect)
    ds = load_dataset(cfg.dataset, cfg.data_dir, prep, options=cfg.dataset_options(),
                      strict=cfg.strict, progress=interactive(cfg))
    split = make_split(ds, strategy=cfg.split, val_fraction=cfg.val_fraction,
                       test_fraction=cfg.test_fraction, seed=cfg.seed)
    dedupe_counts = {}
    if cfg.dedupe:
        split, dedupe_counts = drop_duplicates(ds, split)
        log.info("dedupe: %s", dedupe_counts)
    targets = ds.targets
    parts = {name: (ds.images[idx], targets[idx])
             for name, idx in (("train", split.train), ("val", split.val), ("test", split.test))}
    engine = get_engine(cfg.framework)

    tags = {**(tags or {}), **engine.run_tags(cfg), **(source.tags() if source else {})}
    with tracking.start_run(cfg, nested=nested, tags=tags) as run:
        tracking.log_config(cfg)
        tracking.log_dataset(ds, split, cfg)
        if source and source.logged_model_id:
            tracking.log_model_input(source.logged_model_id)
        with PeakMemorySampler() as memory:
            model = engine.build(cfg, num_classes=len(ds.classes))
            if source:
                engine.start_from(model, source.model, source.rows(ds.classes))
            # Progress bars in a terminal; anywhere else (a log file, CI) a line per epoch.
            lines = [EpochLog(cfg.epochs)] if cfg.progress and not interactive(cfg) else []
            start = time.perf_counter()
            fit = engine.fit(model, parts["train"], parts["val"], cfg,
                             [tracking.MlflowCallback(), *lines, *(callbacks or [])])
            train_time = time.perf_counter() - start
            model = engine.for_inference(model, cfg)
            start = time.perf_counter()
            proba = engine.predict_proba(model, parts["test"][0])
            eval_time = time.perf_counter() - start
        x_test, y_test = parts["test"]
        report = classification_metrics(y_test, proba, list(ds.classes))
        val_report = classification_metrics(parts["val"][1],
                                            engine.predict_proba(model, parts["val"][0]),
                                            list(ds.classes))
        metrics = {
            **scalar_metrics(report, "test_"),
            **scalar_metrics(val_report, "val_final_"),
            "train_time_s": train_time,
            "eval_time_s": eval_time,
            "train_images_per_s": fit.train_images / max(train_time, 1e-9),
            "eval_images_per_s": len(y_test) / max(eval_time, 1e-9),
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "num_parameters": engine.count_parameters(model),
            "model_size_mb": engine.weights_mb(model),
            **memory.as_metrics(),
            **dedupe_counts,
        }
        tracking.log_metrics(metrics)
        _log_artifacts(report, fit.history, y_test, proba, ds.classes)
        if cfg.log_model:
            tracking.log_trained_model(engine, model, cfg, ds.classes, prep.to_dict(),
                                       x_test[:2])
        log.info("run %s: test accuracy %.3f, macro F1 %.3f", run.info.run_id,
                 metrics["test_accuracy"], metrics["test_f1_macro"])
        return TrainResult(run.info.run_id, metrics, fit.history, ds.classes, model,
                           run.info.experiment_id)


def _log_artifacts(report: dict, history: dict, y_true: np.ndarray, proba: np.ndarray,
                   classes: tuple[str, ...]) -> None:
    from emorec import plots

    tracking.log_figure(plots.confusion_matrix_figure(np.asarray(report["confusion_matrix"]),
                                                      list(classes)), "plots/confusion_matrix.png")
    tracking.log_figure(plots.roc_figure(roc_curves(y_true, proba), list(classes)),
                        "plots/roc_curves.png")
    tracking.log_figure(plots.learning_curves_figure(history), "plots/learning_curves.png")
    tracking.log_json(report, "reports/classification_report.json")
