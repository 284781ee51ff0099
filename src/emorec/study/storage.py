"""The Optuna storage: where it is, how it is opened (heartbeats, retries), what it holds.

Any SQLAlchemy URL: SQLite ``mlruns/optuna.db`` by default, PostgreSQL for
several workers. Passwords are masked wherever a URL is printed or logged.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from emorec import tracking
from emorec.errors import UserError
from emorec.urls import mask

_SCHEMA_ATTEMPTS = 5  # tries to open a storage whose tables another worker is creating


def default_storage() -> str:
    url = os.environ.get("EMOREC_OPTUNA_STORAGE")
    if url:
        return url
    path = (tracking.STORE_DIR / "optuna.db").resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


# SQLAlchemy's default driver for a bare scheme, and the one emorec installs.
INSTALLED_DRIVERS = {"postgresql": "postgresql+psycopg2", "postgres": "postgresql+psycopg2"}


def with_driver(url: str) -> str:
    """``url`` with the installed driver named where it gives a bare ``postgresql://``
    (SQLAlchemy would pick psycopg 3, which is not installed)."""
    scheme, sep, rest = url.partition("://")
    return f"{INSTALLED_DRIVERS[scheme]}://{rest}" if sep and scheme in INSTALLED_DRIVERS else url


def make_storage(
    url: str, heartbeat_interval: int, grace_period: int
) -> optuna.storages.RDBStorage:
    """RDB storage with heartbeats: a trial a dead process left RUNNING is failed, retried once."""
    from sqlalchemy.exc import ArgumentError, IntegrityError, OperationalError, ProgrammingError

    url = with_driver(url)
    # SQLite: wait for a lock rather than fail while another process writes;
    # servers: test pooled connections, which idle through hour-long trials.
    engine = (
        {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    )

    database = _sqlite_file(url)  # created by one process at a time, as MLflow's store
    if database and not database.parent.is_dir():  # a typo in a folder: said, not created
        database = None
    attempt = 0
    while True:
        creating = tracking.store.sqlite_lock(database) if database else contextlib.nullcontext()
        try:
            with creating, warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=(
                        optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                    ),
                )
        except ArgumentError:
            raise UserError(
                f"storage {mask(url)!r} is not a SQLAlchemy URL; e.g. sqlite:///"
                "mlruns/optuna.db or postgresql+psycopg2://user@host/db"
            ) from None
        except ImportError as exc:  # a database whose driver is not installed
            raise UserError(
                f"storage {mask(url)}: its driver is not installed ({exc.name or exc}); emorec "
                "supports sqlite:///FILE and postgresql+psycopg2://USER@HOST:PORT/DB"
            ) from None
        except OperationalError as exc:
            # A server that is down, a database or folder that does not exist: the user's
            # to fix, in one line (SQLAlchemy's own message is a page long).
            reason = str(exc.orig or exc).strip().splitlines()[0]
            raise UserError(f"cannot open the study storage {mask(url)}: {reason}") from None
        except (IntegrityError, ProgrammingError):
            # Workers started together on an empty database all create Optuna's tables;
            # all but one collide (duplicate type or table). Then the tables exist.
            attempt += 1
            if attempt == _SCHEMA_ATTEMPTS:
                raise
            time.sleep(0.2 + random.random())


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for a server or an in-memory database)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def status(storage: str | None = None, name: str | None = None) -> list[dict]:
    """Every study in ``storage`` (or the one named): trials by state, the best value, and
    the running trials with the worker (host:pid) that runs each and since when."""
    url = storage or default_storage()
    path = _sqlite_file(url)
    if path is not None and not path.exists():  # opening it would create an empty one
        raise UserError(
            f"no study storage at {path}: no study has run with it yet "
            "(check --storage or $EMOREC_OPTUNA_STORAGE)"
        )
    storage_obj = make_storage(url, 30, 120)
    names = [
        s.study_name for s in optuna.get_all_study_summaries(storage_obj, include_best_trial=False)
    ]
    if name is not None and name not in names:
        raise UserError(
            f"no study {name!r} in {mask(url)}; studies there: {', '.join(sorted(names)) or 'none'}"
        )
    rows = []
    for study_name in [name] if name else sorted(names):
        study = optuna.load_study(study_name=study_name, storage=storage_obj)
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        rows.append(
            {
                "study": study_name,
                "storage": mask(url),
                "directions": [d.name.lower() for d in study.directions],
                "states": {
                    s.name: n for s in TrialState if (n := sum(t.state == s for t in trials))
                },
                "best": (
                    max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
                )((t.values[0] for t in complete), default=None),
                "running": [
                    {
                        "number": t.number,
                        "worker": t.user_attrs.get("worker", "?"),
                        "since": t.datetime_start.isoformat(timespec="seconds")
                        if t.datetime_start
                        else None,
                        "config": t.user_attrs.get("config", t.params),
                    }
                    for t in trials
                    if t.state == TrialState.RUNNING
                ],
                "workers": sorted(
                    {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}
                ),
            }
        )
    return rows
