"""Several tuning workers on one study: real PostgreSQL, a real ``mlflow server``, real processes.

Each test gets its own Optuna database on the machine's PostgreSQL; the module
shares one tracking server (PostgreSQL backend store, artifacts proxied to a
tmp folder) on 127.0.0.1. Workers are ``emorec tune`` processes, exactly what
a user starts on each machine, training ``cnn_torch`` on tiny synthetic faces.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from mlflow import MlflowClient
from sqlalchemy.pool import NullPool

from services import mlflow_server, postgres_database, postgres_unavailable

_WHY = postgres_unavailable()
if _WHY:
    print(
        f"\n*** tests/test_workers.py SKIPPED: {_WHY}. Start PostgreSQL (see .ci/run) or set "
        "EMOREC_TEST_PG to run the multi-worker tests. ***\n",
        file=sys.stderr,
    )
pytestmark = pytest.mark.skipif(bool(_WHY), reason=f"multi-worker tests need PostgreSQL: {_WHY}")

SECRET = "s3cret-pw"
TINY = {
    "epochs": 1,
    "samples": 70,
    "image_size": 16,
    "batch_size": 32,
    "system_metrics": "false",
    "progress": "false",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The tracking server every worker of this module logs to, over HTTP."""
    root = tmp_path_factory.mktemp("server")
    with (
        postgres_database("emorec_mlflow") as backend,
        mlflow_server(backend, root / "artifacts") as url,
    ):
        yield url


def worker(
    tmp_path: Path, server: str, storage: str, study: str, space: str, **sets
) -> subprocess.Popen:
    """One `emorec tune` worker process, as a user would start it on another machine
    (the storage in the environment: emorec refuses a password on its command line)."""
    values = {**TINY, **sets}
    cmd = [
        sys.executable,
        "-m",
        "emorec.cli",
        "tune",
        "--model",
        "cnn_torch",
        "--space",
        space,
        "--study-name",
        study,
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
        "--no-plots",
        "--set",
        *[f"{k}={v}" for k, v in values.items()],
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": server,
        "OMP_NUM_THREADS": "1",
        "EMOREC_CACHE_DIR": str(tmp_path / "cache"),
        "EMOREC_OPTUNA_STORAGE": storage,
    }
    log = open(tmp_path / f"worker-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def finish(workers: list[subprocess.Popen], tmp_path: Path, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    for w in workers:
        w.wait(timeout=max(deadline - time.time(), 1))
    logs = "\n".join(p.read_text()[-1500:] for p in sorted(tmp_path.glob("worker-*.log")))
    assert all(w.returncode == 0 for w in workers if w.returncode != -signal.SIGKILL), logs


def trials(storage: str, name: str) -> list:
    # No pool: a storage made per poll (every 0.2 s) kept its pooled connection open until
    # the garbage collector found it, and PostgreSQL refused the 101st client.
    rdb = optuna.storages.RDBStorage(storage, engine_kwargs={"poolclass": NullPool})
    return optuna.load_study(study_name=name, storage=rdb).get_trials()


def study_runs(client: MlflowClient, name: str, kind: str) -> list:
    return client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.kind = '{kind}' AND tags.study = '{name}'",
        max_results=1000,
    )


def test_three_workers_share_a_grid_study_each_point_once(tmp_path, server, monkeypatch):
    """(a) and (c): 3 workers, 6 grid points, all through the tracking server."""
    space = tmp_path / "grid.yaml"
    space.write_text("grid:\n  lr: [1.0e-2, 3.0e-3, 1.0e-3]\n  dropout: [0.1, 0.3]\n")
    name = "three-workers"
    with postgres_database() as plain:
        # Trust auth ignores the password: it is here to prove that it is never shown.
        storage = plain.replace("postgres@", f"postgres:{SECRET}@")
        workers = [
            worker(tmp_path, server, storage, name, str(space), log_model="true") for _ in range(2)
        ]
        time.sleep(4)  # the third joins late, while the others already train
        workers.append(worker(tmp_path, server, storage, name, str(space), log_model="true"))
        finish(workers, tmp_path)
        done = trials(storage, name)
        status = subprocess.run(
            [sys.executable, "-m", "emorec.cli", "study", "status"],
            capture_output=True,
            text=True,
            env={**os.environ, "EMOREC_OPTUNA_STORAGE": storage},
        )

    complete = [t for t in done if t.state.name == "COMPLETE"]
    points = collections.Counter((t.params["lr"], t.params["dropout"]) for t in complete)
    assert len(points) == 6 and set(points.values()) == {1}, points  # every point, once
    assert not [t for t in done if t.state.name in ("RUNNING", "WAITING")]
    # Trials that lost a race for a point were refused before training, and say why.
    for t in done:
        if t.state.name == "FAIL":
            assert "not run twice" in t.user_attrs["state_reason"]
    assert len({t.user_attrs["worker"] for t in complete}) >= 2  # the work was shared

    # Read back through the server: one FINISHED run per grid point, one parent per worker.
    client = MlflowClient(tracking_uri=server)
    runs = study_runs(client, name, "trial")
    assert sorted(int(r.data.tags["trial_number"]) for r in runs) == sorted(
        t.number for t in complete
    )
    assert {r.info.status for r in runs} == {"FINISHED"}
    parents = study_runs(client, name, "study")
    assert len(parents) == 3 and {r.info.status for r in parents} == {"FINISHED"}
    for run in [*parents, *runs]:
        assert SECRET not in str(run.data.params) + str(run.data.tags)
    assert not [p for p in tmp_path.glob("worker-*.log") if SECRET in p.read_text()]

    # Registered once (by the worker that ran the best trial), and usable through the server.
    versions = client.search_model_versions("name = 'emorec-cnn_torch-synthetic'")
    assert len(versions) == 1
    best = max(complete, key=lambda t: t.values[0])
    assert versions[0].run_id == best.user_attrs["mlflow_run_id"]
    assert (
        client.get_model_version_by_alias("emorec-cnn_torch-synthetic", "champion").version
        == versions[0].version
    )
    import emorec

    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)  # emorec.load reads the store from the env
    predictor = emorec.load("models:/emorec-cnn_torch-synthetic@champion")
    proba = predictor.predict_proba([np.full((20, 20), 128, np.uint8)])
    assert proba.shape == (1, len(predictor.classes))
    assert abs(float(proba.sum()) - 1) < 1e-4

    assert status.returncode == 0, status.stderr
    assert f"\n{name}: {len(complete)} complete" in status.stdout
    assert SECRET not in status.stdout and "postgres:***@" in status.stdout


def mid_training(storage: str, name: str, workers, epochs: int):
    """A worker frozen (SIGSTOP) while its trial is between its second and its last epoch,
    as Optuna records it once the worker is frozen, so that the kill that follows lands
    mid-training whatever the machine's speed; None if every worker ended first. A loaded
    CI machine took over 3 minutes to reach a second epoch: the wait follows the workers,
    with a cap only against a hang."""
    by_pid, deadline = {w.pid: w for w in workers}, time.time() + 900
    while time.time() < deadline and any(w.poll() is None for w in workers):
        time.sleep(0.2)
        try:
            running = [t for t in trials(storage, name) if t.state.name == "RUNNING"]
        except KeyError:  # the study is not created yet
            continue
        for t in running:
            proc = by_pid.get(int(t.user_attrs.get("worker", ":0").rsplit(":", 1)[1]))
            if proc is None or not 2 <= len(t.intermediate_values) < epochs:
                continue
            proc.send_signal(signal.SIGSTOP)
            now = next(n for n in trials(storage, name) if n.number == t.number)
            if now.state.name == "RUNNING" and 2 <= len(now.intermediate_values) < epochs:
                return proc
            proc.send_signal(signal.SIGCONT)  # it moved on before it stopped: try again
    return None


def test_killed_worker_its_trial_is_retried_and_nothing_stays_running(tmp_path, server):
    """(b): SIGKILL the worker of a trial mid-training; the other finishes the study."""
    space = tmp_path / "grid.yaml"
    space.write_text("grid:\n  lr: [1.0e-2, 3.0e-3, 1.0e-3]\n")
    name = "killed-worker"
    with postgres_database() as storage:
        workers = [
            worker(tmp_path, server, storage, name, str(space), epochs=6, log_model="false")
            for _ in range(2)
        ]
        victim = mid_training(storage, name, workers, epochs=6)
        assert victim is not None, "every worker ended before a trial reached its second epoch"
        victim.send_signal(signal.SIGKILL)
        victim.wait()  # reaped at once, as a shell or an init system would
        finish(workers, tmp_path)
        done = trials(storage, name)

    states = collections.Counter(t.state.name for t in done)
    assert states == {"COMPLETE": 3, "FAIL": 1}, states
    failed = next(t for t in done if t.state.name == "FAIL")
    retry = next(t for t in done if t.system_attrs.get("failed_trial") == failed.number)
    assert retry.state.name == "COMPLETE" and retry.params == failed.params
    assert {t.params["lr"] for t in done if t.state.name == "COMPLETE"} == {1e-2, 3e-3, 1e-3}

    client = MlflowClient(tracking_uri=server)
    for kind in ("trial", "study"):
        assert not [r for r in study_runs(client, name, kind) if r.info.status == "RUNNING"]
    killed = [
        r
        for r in study_runs(client, name, "trial")
        if r.data.tags["trial_number"] == str(failed.number)
    ]
    assert killed and killed[0].info.status == "FAILED"
    assert "orphaned" in killed[0].data.tags["failure_reason"]


def open_storage_together(storage: str, n: int, attempts: int) -> list[subprocess.CompletedProcess]:
    """``n`` processes open the storage at the same instant (a shared start time)."""
    start = time.time() + 6  # past every process's imports
    code = (
        "import sys, time; import emorec.study.storage as s; "
        "s._SCHEMA_ATTEMPTS = int(sys.argv[3]); "
        "time.sleep(max(float(sys.argv[2]) - time.time(), 0)); s.make_storage(sys.argv[1], 30, 120)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, storage, str(start), str(attempts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    return [
        subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs
    ]


def test_workers_starting_together_on_an_empty_database_all_open_it():
    """Optuna creates its tables on first use; workers started at once all try."""
    with postgres_database() as storage:
        done = open_storage_together(storage, 4, attempts=5)
    assert [p.returncode for p in done] == [0] * 4, [p.stderr[-800:] for p in done]
