"""Several workers on one study: wall time of one grid study with 1 worker, then with N.

The multi-machine set-up of docker/README.md, natively on this machine: a throwaway
PostgreSQL database for Optuna, another as the backend store of a real ``mlflow server``
on 127.0.0.1 (artifacts in a temporary folder), and ``emorec tune`` worker processes
on ``cnn_torch`` over CK+48 (subject-independent split). The same grid runs as two
studies: once with one worker, once with ``--workers`` workers started together.

What to expect: one worker already uses every core for its convolutions, so extra
workers on the same machine gain only what one worker leaves idle (data loading,
evaluation, plots, model logging, MLflow round trips, process start-up). The speed-up
that matters, N machines, is N workers on N machines; this measures the coordination
on one: every point run once, nothing left RUNNING, and the time it costs or saves.
Needs PostgreSQL (``$EMOREC_TEST_PG`` or 127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import benchlib  # noqa: E402
from services import mlflow_server, postgres_database, postgres_unavailable  # noqa: E402


def run_workers(
    n: int, args, data: Path, server: str, storage: str, study: str, logs: Path
) -> float:
    cmd = [
        sys.executable,
        "-m",
        "emorec.cli",
        "tune",
        "--model",
        "cnn_torch",
        "--dataset",
        "ckplus",
        "--data-dir",
        str(data),
        "--study-name",
        study,
        "--storage",
        storage,
        "--no-plots",
        "--set",
        f"epochs={args.epochs}",
        f"image_size={args.image_size}",
        "batch_size=64",
        "weight_decay=1.0e-4",
        f"dropout={args.dropout}",
        "progress=false",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": server}
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            cmd,
            env=env,
            cwd=logs,
            stdout=open(logs / f"{study}-{i}.log", "w"),
            stderr=subprocess.STDOUT,
        )
        for i in range(n)
    ]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    if any(codes):
        raise SystemExit(f"a worker of {study} failed ({codes}); see {logs}")
    return wall


def check(storage: str, study: str, points: int) -> dict:
    import collections

    import optuna

    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    per_point = collections.Counter(tuple(sorted(t.params.items())) for t in complete)
    return {
        "trials": len(trials),
        "complete": len(complete),
        "every_point_once": len(per_point) == points and set(per_point.values()) == {1},
        "left_running": sum(t.state.name == "RUNNING" for t in trials),
        "workers_used": len({t.user_attrs.get("worker") for t in complete}),
        "best_val_accuracy": max((t.value for t in complete), default=None),
    }


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--image-size", type=int, default=48)
    p.add_argument("--dropout", type=float, default=0.25)
    args = p.parse_args()
    started = time.time()
    data = benchlib.require(args.data, "ckplus")
    why = postgres_unavailable()
    if why:
        print(f"SKIPPED: {why}")
        return
    # The shipped grid with these fixed: lr x optimizer = 4 points.
    points = 4
    with (
        tempfile.TemporaryDirectory(prefix="emorec-workers-") as tmp,
        postgres_database("bench_mlflow") as backend,
        postgres_database("bench_optuna") as storage,
        mlflow_server(backend, Path(tmp) / "artifacts") as server,
    ):
        walls, checks = {}, {}
        for n in (1, args.workers):
            study = f"bench-{n}-workers"
            walls[n] = run_workers(n, args, data, server, storage, study, Path(tmp))
            checks[n] = check(storage, study, points)
            print(f"{n} worker(s): {walls[n]:.1f} s wall, {checks[n]}", flush=True)
    figures = {
        "grid_points": points,
        "epochs": args.epochs,
        "image_size": args.image_size,
        "one_worker_wall_s": walls[1],
        f"{args.workers}_workers_wall_s": walls[args.workers],
        "speedup": walls[1] / walls[args.workers],
        "one_worker": checks[1],
        f"{args.workers}_workers": checks[args.workers],
    }
    ok = all(c["every_point_once"] and not c["left_running"] for c in checks.values())
    benchlib.save(
        "workers",
        "Several workers on one study (PostgreSQL + mlflow server)",
        args,
        targets=[
            benchlib.target("every grid point run once, nothing left RUNNING", float(ok), "1", ok)
        ],
        figures=figures,
        started=started,
        notes=[
            "One machine with 2 cores: a single worker already trains on both "
            "cores, so the speed-up here comes only from overlapping what one "
            "worker leaves idle; N machines are what scale the study."
        ],
    )


if __name__ == "__main__":
    main()
