"""Tracking overhead: one training run with full MLflow logging vs the same work untracked.

Same config (cnn_torch on CK+48, subject-independent split, ``--epochs`` epochs, early
stopping off, so every variant trains the same number of epochs), and the same function,
``emorec.training.train``, with another tracker:

- ``full``: the default ``MlflowTracker``, as users run it: per-epoch metrics, MLflow
  system metrics, dataset input, plots, classification report and the model (native
  flavour + raw-image pyfunc), into a throwaway SQLite store;
- ``no_model``: the same with ``log_model=False`` (to show what model logging costs);
- ``none``: ``NoTracker``, which records nothing: no MLflow call at all.

Variants alternate within each repeat after one untimed warm-up of each; overhead is
median(full) / median(none) - 1 of the wall time of the whole call.

That difference of two ~30 s totals is as noisy as the machine (repeats vary by a second or
more on a shared 2-core box), so the ``full`` runs are also clocked from inside: the wall
time spent in each of the tracker's calls (opening and closing the run, parameters,
dataset input, per-epoch metrics, plots and report, model), summed per run. That figure
does not depend on how fast training ran; it misses the system-metrics thread's
background sampling, which the side-by-side totals include.

So the run's end is also timed side by side: from the last epoch's end to the return, in
each ``full`` and ``none`` run (a short span, far less noisy than whole runs). The calls
clocked before the end plus the paired difference of the ends give a third figure, which
holds whatever the tracking costs the run's end outside its own calls.

``--server-workers N [N ...]`` measures the same ``full`` run logging to a real
``mlflow server`` on 127.0.0.1 instead (SQLite backend, proxied artifacts, as the README's
several-workers set-up runs one), one server per N uvicorn workers, each beside the
untracked run, and writes ``tracking_overhead_server.json``. It also times one keep-alive
request through MLflow's client: with more than one worker, uvicorn's listening socket
loses TCP_NODELAY (Kludex/uvicorn#3149) and each response waits ~40 ms on the client's
delayed ACK; a run makes hundreds of requests.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' real services, as workers.py
import benchlib  # noqa: E402
from services import mlflow_server  # noqa: E402

# The share of an 8-epoch CK+48 run that tracking may take, through MLflow's public API.
GOAL = 0.03


class ClockedTracker:
    """A tracker that passes every call on to another and sums the wall time spent in each
    call site (opening and ending the run, parameters, dataset input, per-epoch metrics,
    plots and report, the model)."""

    SITES = {
        "log_config": "log_config",
        "log_dataset": "log_dataset",
        "log_model_input": "log_model_input",
        "log_metrics": "log_metrics",
        "log_evaluation": "plots_and_report",
        "log_model": "log_trained_model",
    }

    def __init__(self, inner):
        self.inner, self.seconds = inner, defaultdict(float)
        for method, site in self.SITES.items():
            setattr(self, method, self._timed(site, getattr(inner, method)))

    def _timed(self, site: str, fn):
        def timed(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[site] += time.perf_counter() - start

        return timed

    @contextlib.contextmanager
    def run(self, *a, **k):
        start = time.perf_counter()
        with self.inner.run(*a, **k) as run:
            self.seconds["start_run"] += time.perf_counter() - start
            yield run  # an exception here leaves through the inner run, untimed
            start = time.perf_counter()
        self.seconds["end_run"] += time.perf_counter() - start

    def callbacks(self) -> list:
        callbacks = self.inner.callbacks()
        for cb in callbacks:
            cb.on_epoch_end = self._timed("epoch_metrics", cb.on_epoch_end)
        return callbacks


def clocked_train(cfg, clocks: list, callbacks: list | None = None) -> None:
    from emorec.tracking import MlflowTracker
    from emorec.training import train

    clock = ClockedTracker(MlflowTracker())
    train(cfg, callbacks, tracker=clock)
    clocks.append(dict(clock.seconds))


# The call sites of a run's end, after its last epoch (the rest come before or during it).
END_SITES = ("plots_and_report", "log_metrics", "log_trained_model", "end_run")


def timing_the_end(tails: list[float], run) -> Callable[[], None]:
    """``run(callbacks)`` wrapped to append to ``tails`` the wall time from its last
    epoch's end to its return: evaluation, figures, report, model, ending the run."""
    from emorec.engines.callbacks import Callback

    class LastEpoch(Callback):
        at = None

        def on_epoch_end(self, epoch, logs):
            self.at = time.perf_counter()

    def timed_run():
        mark = LastEpoch()
        run([mark])
        if mark.at is None:
            raise RuntimeError("a run trained no epoch: nothing to time its end from")
        tails.append(time.perf_counter() - mark.at)

    return timed_run


def timed(fn, *a) -> float:
    start = time.perf_counter()
    fn(*a)
    return time.perf_counter() - start


def request_ms(repeats: int = 20) -> float:
    """Median wall time of one small keep-alive request through MLflow's client."""
    from emorec.tracking.store import client as tracking_client

    client = tracking_client()
    client.search_experiments(max_results=1)  # the connection, opened once
    times = [timed(lambda: client.search_experiments(max_results=1)) for _ in range(repeats)]
    return 1000 * benchlib.median(times)


def interleaved(variants: dict, repeats: int) -> dict[str, list[float]]:
    """Wall times of each variant, alternating within each repeat so that load changes on
    the machine hit all alike."""
    times = {k: [] for k in variants}
    for r in range(repeats):
        for name, fn in variants.items():
            times[name].append(timed(fn))
        print(
            f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
            flush=True,
        )
    return times


def clocked_share(clocks: list[dict], full_times: list[float]) -> float:
    """Median over runs of the time in tracking calls over the rest of the run."""
    inside = [sum(c.values()) for c in clocks]
    return benchlib.median([s / (t - s) for s, t in zip(inside, full_times)])


def per_site(clocks: list[dict]) -> dict[str, float]:
    """Median seconds a run spent at each call site."""
    return {k: benchlib.median([c.get(k, 0.0) for c in clocks]) for k in clocks[0]}


def by_size(sites: dict[str, float]) -> str:
    """The call sites, largest first, for a note."""
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(sites.items(), key=lambda kv: -kv[1]))


@contextlib.contextmanager
def counting_requests(counts: list[int]):
    """Appends to ``counts`` how many HTTP requests were sent inside the block (MLflow's
    client sends every call and every artifact upload through requests' HTTPAdapter)."""
    from requests.adapters import HTTPAdapter

    send, sent = HTTPAdapter.send, [0]

    def counted(self, *a, **k):
        sent[0] += 1
        return send(self, *a, **k)

    HTTPAdapter.send = counted
    try:
        yield
    finally:
        HTTPAdapter.send = send
        counts.append(sent[0])


def finished_runs(experiment: str) -> int:
    """How many FINISHED runs the configured store holds in ``experiment``."""
    from emorec.tracking.store import client as tracking_client

    client = tracking_client()
    found = client.get_experiment_by_name(experiment)
    return (
        0
        if found is None
        else len(
            client.search_runs(
                [found.experiment_id], filter_string="attributes.status = 'FINISHED'"
            )
        )
    )


def against_servers(args, cfg, started: float) -> None:
    """The ``full`` run logging to real local ``mlflow server``s, one per worker count."""
    import tempfile

    from emorec.tracking import NoTracker
    from emorec.training import train

    servers, notes = {}, []
    with tempfile.TemporaryDirectory(prefix="emorec-bench-servers-") as tmp:
        for workers in args.server_workers:
            folder = Path(tmp) / f"workers-{workers}"
            folder.mkdir()
            with (
                mlflow_server(
                    f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts", workers=workers
                ) as url,
                benchlib.environment(MLFLOW_TRACKING_URI=url),
            ):
                print(f"mlflow server --workers {workers} at {url}", flush=True)
                for _ in range(args.warmup):
                    train(cfg.replace(epochs=1))
                time.sleep(5)  # a new server answers slowly for a while (measured: ~20 ms)
                latency = request_ms()
                clocks: list[dict] = []
                requests: list[int] = []

                def full(requests=requests, clocks=clocks):
                    with counting_requests(requests):
                        clocked_train(cfg, clocks)

                times = interleaved(
                    {"full": full, "none": lambda: train(cfg, tracker=NoTracker())}, args.repeats
                )
                runs = finished_runs(cfg.experiment_name)  # proof the runs went to it
            share = clocked_share(clocks, times["full"])
            full_s, none_s = benchlib.median(times["full"]), benchlib.median(times["none"])
            server = servers[str(workers)] = {
                "request_ms": latency,
                "requests_per_run": benchlib.median(requests),
                "finished_runs_on_server": runs,
                "full_s": full_s,
                "none_s": none_s,
                "side_by_side_fraction": full_s / none_s - 1,
                "times_s": times,
                "clocked_tracking_s": benchlib.median([sum(c.values()) for c in clocks]),
                "clocked_overhead_fraction": share,
                "clocked_s_per_site": per_site(clocks),
            }
            notes.append(
                f"mlflow server --workers {workers}: one keep-alive request "
                f"{latency:.1f} ms; {server['requests_per_run']:.0f} HTTP requests a "
                f"run; a run {server['clocked_tracking_s']:.2f} s in tracking calls "
                f"({100 * share:.1f} % clocked; side by side {full_s:.2f} s against "
                f"{none_s:.2f} s untracked, {100 * (full_s / none_s - 1):.1f} %); per "
                f"call site (median s): {by_size(server['clocked_s_per_site'])}."
            )
    figures = {"servers": servers}
    if args.compare_with:  # this mode of the script on an earlier commit's code, same machine
        before = json.loads(Path(args.compare_with).read_text())
        figures["before"] = {
            "git_commit": before["git_commit"],
            "date": before["date"],
            "servers": before["figures"]["servers"],
        }
        notes += [
            f"Before (commit {before['git_commit']}, {before['date']}): mlflow server "
            f"--workers {w}: {s['clocked_tracking_s']:.2f} s a run in tracking calls "
            f"({100 * s['clocked_overhead_fraction']:.1f} % clocked), the model "
            f"{s['clocked_s_per_site']['log_trained_model']:.2f} s, "
            f"{s['requests_per_run']:.0f} HTTP requests a run."
            for w, s in before["figures"]["servers"].items()
        ]
    # The verdict is the recommended set-up's (one worker); others are there to compare.
    targets = [
        benchlib.target(
            f"tracking overhead clocked, mlflow server --workers {w}",
            100 * s["clocked_overhead_fraction"],
            f"<= {100 * GOAL:.0f} %" if w == "1" else "none (for comparison)",
            s["clocked_overhead_fraction"] <= GOAL if w == "1" else None,
            " %",
        )
        for w, s in servers.items()
    ]
    notes.insert(
        0,
        f"cnn_torch on CK+48, {args.epochs} epochs, {args.repeats} repeats per "
        f"server after {args.warmup} untimed warm-up(s); every server on this machine "
        "(127.0.0.1, SQLite backend, proxied artifacts), started afresh.",
    )
    benchlib.save(
        "tracking_overhead_server",
        "MLflow tracking overhead against a real server",
        args,
        started=started,
        targets=targets,
        figures=figures,
        notes=notes,
    )


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--model", default="cnn_torch")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (0 = none)")
    p.add_argument("--store", default=None, help="MLflow store folder (default: a temp dir)")
    p.add_argument(
        "--compare-with",
        default=None,
        help="a tracking_overhead.json of an earlier commit (run with that commit's "
        "src/ on PYTHONPATH) to report before/after in this run's notes",
    )
    p.add_argument(
        "--server-workers",
        type=int,
        nargs="+",
        metavar="N",
        default=None,
        help="log to real `mlflow server`s on 127.0.0.1 instead, one with N uvicorn "
        "workers for each N (e.g. 4 1: MLflow's default and one); writes "
        "tracking_overhead_server.json",
    )
    args = p.parse_args()
    started = time.time()
    ck = benchlib.require(args.data, "ckplus")
    from emorec.config import TrainConfig
    from emorec.tracking import NoTracker
    from emorec.training import train

    cfg = TrainConfig(
        model=args.model,
        dataset="ckplus",
        data_dir=str(ck),
        epochs=args.epochs,
        early_stopping=0,
        progress=False,
        experiment="bench-tracking",
    )
    if args.server_workers:
        return against_servers(args, cfg, started)
    clocks: list[dict] = []
    tails = {"full": [], "none": []}
    variants = {
        "full": timing_the_end(tails["full"], lambda cb: clocked_train(cfg, clocks, cb)),
        "no_model": lambda: train(cfg.replace(log_model=False)),
        "none": timing_the_end(tails["none"], lambda cb: train(cfg, cb, tracker=NoTracker())),
    }
    with benchlib.temporary_store(args.store):
        warm = cfg.replace(epochs=1)
        for _ in range(args.warmup):  # imports, store creation, dataset cache: in no variant
            train(warm)
            train(warm, tracker=NoTracker())
        times = interleaved(variants, args.repeats)
    med = {k: benchlib.median(v) for k, v in times.items()}
    overhead = med["full"] / med["none"] - 1
    # The side-by-side verdict needs repeats that agree better than the goal it must resolve;
    # on a loaded machine they do not (an earlier run here measured -7.9 %), so say so.
    noise = (max(times["none"]) - min(times["none"])) / med["none"]
    inside = [sum(c.values()) for c in clocks]
    clocked = clocked_share(clocks, times["full"])
    sites = per_site(clocks)
    # The end side by side: what the tracked run's end takes over the untracked one's, in
    # pairs from the same repeat; with the clocked calls before it, an overhead that also
    # holds what the tracking costs the end outside its own calls.
    end_extra = benchlib.median([f - n for f, n in zip(tails["full"], tails["none"])])
    before_end = [sum(v for k, v in c.items() if k not in END_SITES) for c in clocks]
    with_end = benchlib.median(
        [(b + end_extra) / (t - b - end_extra) for b, t in zip(before_end, times["full"])]
    )
    figures = {
        "epochs": args.epochs,
        "full_s": med["full"],
        "no_model_s": med["no_model"],
        "none_s": med["none"],
        "overhead_fraction": overhead,
        "overhead_s": med["full"] - med["none"],
        "model_logging_s": med["full"] - med["no_model"],
        "other_tracking_s": med["no_model"] - med["none"],
        "times_s": times,
        "untracked_repeat_spread_fraction": noise,
        "clocked_tracking_s": benchlib.median(inside),
        "clocked_overhead_fraction": clocked,
        "clocked_s_per_site": sites,
        "end_s": {k: benchlib.median(v) for k, v in tails.items()},
        "end_times_s": tails,
        "end_extra_s": end_extra,
        "clocked_before_end_s": benchlib.median(before_end),
        "overhead_with_end_side_by_side_fraction": with_end,
    }
    notes = [
        f"cnn_torch on CK+48, {args.epochs} epochs, {args.repeats} interleaved repeats "
        f"after {args.warmup} untimed warm-up(s) of each path; medians of the whole "
        "call's wall time.",
        f"Of the {med['full'] - med['none']:.2f} s overhead, logging the model "
        f"(native flavour + pyfunc) takes {med['full'] - med['no_model']:.2f} s and the "
        f"rest (run, params, dataset input, per-epoch metrics, system metrics thread, "
        f"plots, report) {med['no_model'] - med['none']:.2f} s. The overhead is mostly a "
        "fixed cost per run, so its share falls as runs get longer: a run of E epochs "
        "pays about that many seconds whatever E is.",
        f"The untracked repeats spread over {100 * noise:.1f} % of their median"
        + (
            ""
            if noise < GOAL
            else f": more than the {100 * GOAL:.0f} % to resolve, so the side-by-side "
            "figure gets no verdict (the clocked one below still holds)"
        )
        + ".",
        f"Clocked from inside the full runs: {benchlib.median(inside):.2f} s a run in "
        f"tracking calls, {100 * clocked:.1f} % of the untracked remainder; per call "
        "site (median s): " + by_size(sites) + ".",
        f"The run's end (from the last epoch to the return: evaluation, figures, "
        f"report, model) took {benchlib.median(tails['full']):.2f} s tracked and "
        f"{benchlib.median(tails['none']):.2f} s untracked (median of the paired "
        f"differences: {end_extra:.2f} s). With the clocked calls before it "
        f"({benchlib.median(before_end):.3f} s), the overhead is {100 * with_end:.1f} %: "
        "unlike the clocked figure, this holds whatever the tracked end costs outside "
        "its own calls (MLflow's threads, say).",
    ]
    if args.compare_with:  # the same script on an earlier commit's code, same machine
        before = json.loads(Path(args.compare_with).read_text())
        old = before["figures"]
        figures["before"] = {
            "git_commit": before["git_commit"],
            "date": before["date"],
            **{
                k: old[k]
                for k in (
                    "clocked_tracking_s",
                    "clocked_overhead_fraction",
                    "none_s",
                    "full_s",
                    "clocked_s_per_site",
                )
            },
        }
        # Say on what CPU the earlier figures were taken: a faster CPU shortens the training
        # the overhead is divided by, so the same seconds become a larger share.
        then = before.get("machine", {}).get("cpu_flags") or "not recorded"
        now = benchlib.machine().get("cpu_flags") or "not recorded"
        same = "same CPU flags" if then == now else f"CPU flags then: {then}; now: {now}"
        notes.append(
            f"Before (commit {before['git_commit']}, {before['date']}; {same}; "
            f"untracked run {old['none_s']:.1f} s then, {med['none']:.1f} s now): "
            f"{old['clocked_tracking_s']:.2f} s a run in tracking "
            f"calls, {100 * old['clocked_overhead_fraction']:.1f} % clocked; per call "
            "site: " + by_size(old["clocked_s_per_site"]) + "."
        )
    benchlib.save(
        "tracking_overhead",
        "MLflow tracking overhead",
        args,
        started=started,
        targets=[
            benchlib.target(
                "full tracking overhead (share of wall time)",
                100 * overhead,
                f"<= {100 * GOAL:.0f} %",
                overhead <= GOAL if noise < GOAL else None,
                " %",
            ),
            benchlib.target(
                "the same, clocked inside the tracking calls",
                100 * clocked,
                f"<= {100 * GOAL:.0f} %",
                clocked <= GOAL,
                " %",
            ),
            benchlib.target(
                "the same, the run's end timed side by side",
                100 * with_end,
                f"<= {100 * GOAL:.0f} %",
                with_end <= GOAL,
                " %",
            ),
        ],
        figures=figures,
        notes=notes,
    )


if __name__ == "__main__":
    main()
