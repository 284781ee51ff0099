"""Real services for the tests: a throw-away PostgreSQL database, an ``mlflow server``
and an ``mlflow models serve`` process on loopback, all removed afterwards.

PostgreSQL is the machine's own (127.0.0.1:5432, trust auth; ``.ci/run`` starts it
when it is installed but down); ``$EMOREC_TEST_PG`` names another server as a
SQLAlchemy URL without a database. Where none answers, the tests that need it
skip with a message saying so.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

PG_SERVER = os.environ.get("EMOREC_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def _admin():
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(f"{PG_SERVER}/postgres")
    conn = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname="postgres",
        connect_timeout=5,
    )
    conn.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    return conn


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None when it can."""
    try:
        _admin().close()
    except Exception as exc:  # psycopg2.OperationalError, or psycopg2 missing
        return f"no PostgreSQL at {PG_SERVER} ({str(exc).strip().splitlines()[0]})"
    return None


@contextlib.contextmanager
def postgres_database(prefix: str = "emorec_test"):
    """A new, uniquely named database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, timeout: float = 120, workers: int = 1):
    """``mlflow server`` on 127.0.0.1 (a free port) over ``backend_uri``, artifacts proxied to
    the ``artifacts`` folder, with ``workers`` uvicorn workers (one, as the README starts
    it); yields its URL and stops it with its process group afterwards."""
    port = free_port()
    log = artifacts.parent / f"mlflow-server-{port}.log"
    cmd = [
        str(Path(sys.executable).parent / "mlflow"),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
    ]
    with open(log, "w") as out:
        server = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )  # its workers die with the group
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"mlflow server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, 15)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, folder: Path, timeout: float = 120):
    """``mlflow models serve`` of ``model_uri`` on 127.0.0.1 (a free port); yields the
    process and its URL, and stops it with its workers (one process group) afterwards."""
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = folder / f"serve-{port}.log"
    # The server runs `uvicorn` from PATH (as with an activated virtualenv).
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(mlflow_cli),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {proc.returncode}: {log.read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url + "/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server not ready after {timeout:.0f} s: {log.read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield proc, url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` as JSON; (HTTP status, decoded answer), errors included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def training_run_started(store: str, deadline: float) -> str | None:
    """The id of a RUNNING run in the tracking ``store`` that has logged an epoch's
    ``val_loss`` (a training process past its start), or None by ``deadline``."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=store)
    while time.time() < deadline:
        try:
            experiments = [e.experiment_id for e in client.search_experiments()]
            for run in client.search_runs(experiments, "attributes.status = 'RUNNING'"):
                if client.get_metric_history(run.info.run_id, "val_loss"):
                    return run.info.run_id
        except Exception:  # the store is being created
            pass
        time.sleep(0.3)
    return None


def signalled_mid_training(
    store: str, cwd: Path, flags: list[str], sig: int
) -> tuple[str, int, str]:
    """``emorec train *flags`` in its own process, tracking to ``store``, sent ``sig`` once a
    run has logged an epoch; returns that run's id, the exit status and the error output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "emorec.cli", "train", *flags],
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = training_run_started(store, time.time() + 180)
        assert run_id, "no run reached its first epoch"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    return run_id, proc.returncode, err
