"""Tracking overhead: one training run with full MLflow logging vs the same work untracked.

Same config (cnn_torch on CK+48, subject-independent split, ``--epochs`` epochs, early
stopping off, so every variant trains the same number of epochs):

- ``full``: ``emorec.training.train`` as users run it: per-epoch metrics, MLflow system
  metrics, dataset input, plots, classification report and the model (native flavour +
  raw-image pyfunc), into a throwaway SQLite store;
- ``no_model``: the same with ``log_model=False`` (to show what model logging costs);
- ``none``: the same steps through the same package functions (cached dataset load, split,
  engine build/fit/predict, test and validation metrics) with no MLflow call at all.

Variants alternate within each repeat after one untimed warm-up of each; overhead is
median(full) / median(none) - 1 of the wall time of the whole call.

That difference of two ~30 s totals is as noisy as the machine (repeats vary by a second or
more on a shared 2-core box), so the ``full`` runs are also clocked from inside: the wall
time spent in each of emorec's tracking calls (opening and closing the run, parameters,
dataset input, per-epoch metrics, plots and report, model), summed per run. That figure
does not depend on how fast training ran; it misses only the system-metrics thread's
background sampling, which the side-by-side totals include.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def untracked(cfg) -> dict:
    """What ``train`` does minus every MLflow call (same functions, same order)."""
    from emorec.data import load_dataset
    from emorec.data.preprocess import Preprocessing
    from emorec.data.splits import make_split
    from emorec.engines import get_engine
    from emorec.metrics import classification_metrics
    from emorec.resources import PeakMemorySampler

    ds = load_dataset(cfg.dataset, cfg.data_dir, Preprocessing(cfg.input_size, cfg.channels),
                      options=cfg.dataset_options(), progress=False)
    split = make_split(ds, strategy=cfg.split, val_fraction=cfg.val_fraction,
                       test_fraction=cfg.test_fraction, seed=cfg.seed)
    y = ds.targets
    parts = {k: (ds.images[i], y[i]) for k, i in
             (("train", split.train), ("val", split.val), ("test", split.test))}
    engine = get_engine(cfg.framework)
    with PeakMemorySampler():
        model = engine.build(cfg, num_classes=len(ds.classes))
        engine.fit(model, parts["train"], parts["val"], cfg, [])
        proba = engine.predict_proba(model, parts["test"][0])
    report = classification_metrics(parts["test"][1], proba, list(ds.classes))
    classification_metrics(parts["val"][1], engine.predict_proba(model, parts["val"][0]),
                           list(ds.classes))
    return report


class TrackingClock:
    """Wall time spent inside emorec's tracking calls while ``train`` runs, per call site.

    Patches the module attributes ``train`` calls through (``tracking.*``,
    ``training._log_artifacts``, ``MlflowCallback.on_epoch_end``) for the ``with`` block.
    """

    SITES = ("log_config", "log_dataset", "log_metrics", "log_trained_model")

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    def _timed(self, name: str, fn):
        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[name] += time.perf_counter() - start
        return timed

    def _timed_run(self, start_run):
        @contextlib.contextmanager
        def timed(*a, **k):
            start = time.perf_counter()
            with start_run(*a, **k) as run:
                self.seconds["start_run"] += time.perf_counter() - start
                yield run  # an exception here leaves through start_run, untimed
                start = time.perf_counter()
            self.seconds["end_run"] += time.perf_counter() - start
        return timed

    @contextlib.contextmanager
    def patched(self):
        from unittest import mock

        from emorec import tracking, training

        with contextlib.ExitStack() as stack:
            for name in self.SITES:
                stack.enter_context(mock.patch.object(
                    tracking, name, self._timed(name, getattr(tracking, name))))
            stack.enter_context(mock.patch.object(
                training, "_log_artifacts",
                self._timed("plots_and_report", training._log_artifacts)))
            stack.enter_context(mock.patch.object(
                tracking.MlflowCallback, "on_epoch_end",
                self._timed("epoch_metrics", tracking.MlflowCallback.on_epoch_end)))
            stack.enter_context(mock.patch.object(
                tracking, "start_run", self._timed_run(tracking.start_run)))
            yield self


def clocked_train(cfg, clocks: list) -> None:
    from emorec.training import train

    with TrackingClock().patched() as clock:
        train(cfg)
    clocks.append(dict(clock.seconds))


def timed(fn, *a) -> float:
    start = time.perf_counter()
    fn(*a)
    return time.perf_counter() - start


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--model", default="cnn_torch")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (0 = none)")
    p.add_argument("--store", default=None, help="MLflow store folder (default: a temp dir)")
    args = p.parse_args()
    started = time.time()
    ck = benchlib.require(args.data, "ckplus")
    from emorec.config import TrainConfig
    from emorec.training import train

    cfg = TrainConfig(model=args.model, dataset="ckplus", data_dir=str(ck), epochs=args.epochs,
                      early_stopping=0, progress=False, experiment="bench-tracking")
    clocks: list[dict] = []
    variants = {"full": lambda: clocked_train(cfg, clocks),
                "no_model": lambda: train(cfg.replace(log_model=False)),
                "none": lambda: untracked(cfg)}
    times = {k: [] for k in variants}
    with benchlib.temporary_store(args.store):
        warm = cfg.replace(epochs=1)
        for _ in range(args.warmup):  # imports, store creation, dataset cache: in no variant
            train(warm)
            untracked(warm)
        for r in range(args.repeats):
            for name, fn in variants.items():
                times[name].append(timed(fn))
            print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
                  flush=True)
    med = {k: benchlib.median(v) for k, v in times.items()}
    overhead = med["full"] / med["none"] - 1
    # The side-by-side verdict needs repeats that agree better than the 2 % it must resolve;
    # on a loaded machine they do not (an earlier run here measured -7.9 %), so say so.
    noise = (max(times["none"]) - min(times["none"])) / med["none"]
    inside = [sum(c.values()) for c in clocks]
    clocked = benchlib.median([s / (t - s) for s, t in zip(inside, times["full"])])
    sites = {k: benchlib.median([c.get(k, 0.0) for c in clocks]) for k in clocks[0]}
    figures = {"epochs": args.epochs, "full_s": med["full"], "no_model_s": med["no_model"],
               "none_s": med["none"], "overhead_fraction": overhead,
               "overhead_s": med["full"] - med["none"],
               "model_logging_s": med["full"] - med["no_model"],
               "other_tracking_s": med["no_model"] - med["none"], "times_s": times,
               "untracked_repeat_spread_fraction": noise,
               "clocked_tracking_s": benchlib.median(inside),
               "clocked_overhead_fraction": clocked, "clocked_s_per_site": sites}
    notes = [f"cnn_torch on CK+48, {args.epochs} epochs, {args.repeats} interleaved repeats "
             "after one untimed warm-up of each path; medians of the whole call's wall time.",
             f"Of the {med['full'] - med['none']:.2f} s overhead, logging the model "
             f"(native flavour + pyfunc) takes {med['full'] - med['no_model']:.2f} s and the "
             f"rest (run, params, dataset input, per-epoch metrics, system metrics thread, "
             f"plots, report) {med['no_model'] - med['none']:.2f} s. The overhead is mostly a "
             "fixed cost per run, so its share falls as runs get longer: a run of E epochs "
             "pays about that many seconds whatever E is.",
             f"The untracked repeats spread over {100 * noise:.1f} % of their median"
             + ("" if noise < 0.02 else ": more than the 2 % to resolve, so the side-by-side "
                "figure gets no verdict (the clocked one below still holds)") + ".",
             f"Clocked from inside the full runs: {benchlib.median(inside):.2f} s a run in "
             f"tracking calls, {100 * clocked:.1f} % of the untracked remainder; per call "
             "site (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(
                 sites.items(), key=lambda kv: -kv[1])) + "."]
    benchlib.save("tracking_overhead", "MLflow tracking overhead", args, started=started,
                  targets=[benchlib.target("full tracking overhead (share of wall time)",
                                           100 * overhead, "<= 2 %",
                                           overhead <= 0.02 if noise < 0.02 else None, " %"),
                           benchlib.target("the same, clocked inside the tracking calls",
                                           100 * clocked, "<= 2 %", clocked <= 0.02, " %")],
                  figures=figures, notes=notes)


if __name__ == "__main__":
    main()
