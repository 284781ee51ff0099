"""Shared test set-up: an isolated tracking store and dataset cache per test.

The suite builds models of both frameworks in one process in whatever order
the tests run: ``emorec.frameworks`` makes that safe, not an import here.
"""

import os

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import mlflow  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Each test gets its own MLflow store, working directory and dataset cache."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # also reset the URI an earlier test left in this process
    monkeypatch.setenv("EMOREC_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path


# A tiny cnn_torch run on synthetic faces: small enough to train in seconds.
TINY = dict(
    epochs=1, samples=70, image_size=16, batch_size=16, system_metrics=False, progress=False
)


def run_failed_by(monkeypatch, owner, name: str):
    """Train ``TINY`` with ``owner.name`` raising OSError("disk full"); returns the run,
    which must have ended FAILED for that reason."""
    from emorec.config import TrainConfig
    from emorec.training import train

    def broken(*_, **__):
        raise OSError("disk full")

    monkeypatch.setattr(owner, name, broken)
    with pytest.raises(OSError, match="disk full"):
        train(TrainConfig(**TINY))
    (run,) = mlflow.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FAILED" and "disk full" in run.data.tags["failure_reason"]
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny trained run for the whole session, in a store of its own: (TrainResult, URI).

    Inference, CLI and export tests only read it (or add uniquely named things), so
    training it once saves a training run per test module.
    """
    from emorec.config import TrainConfig
    from emorec.training import train

    uri = f"sqlite:///{tmp_path_factory.mktemp('tiny_store')}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        result = train(TrainConfig(**TINY))
    return result, uri


@pytest.fixture
def tiny_store(tiny_run, monkeypatch):
    """Point this test at the tiny run's store; returns the run's TrainResult."""
    result, uri = tiny_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    return result
