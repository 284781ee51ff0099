"""Logged models: saving a trained model with its raw-image pyfunc, and loading it back.

Every run with ``log_model`` logs two MLflow models: ``model``, the network in its
framework's own flavour (saved by the engine, ``Engine.save_flavor``), and
``emotion_model``, the ``emorec.emotion_model.EmotionModel`` pyfunc that takes raw
images and serves that network. Loading goes the other way: any URI of an
``emotion_model`` (runs:/, models:/NAME@ALIAS, models:/NAME/VERSION, models:/MODEL_ID)
gives the ``EmotionModel`` with its network loaded.

Both are logged by ``log_models_to_run`` through MLflow 3's logged-model calls (create, save,
upload, link to the run, finalize) rather than a flavour's ``log_model``, which does the
same and, per model, more: it reads every metric's history of the run to copy the
step-0 values to the model, and loads the model it just saved to predict its input
example. That was ~0.2 of the 0.3 s logging the two models took at the end of every run
(``benchmarks/tracking_overhead.py``); here the step-0 metrics are read once per run, and
the tests load every kind of logged model and predict with the pyfuncs instead
(tests/test_training.py, tests/test_logged_code.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from pathlib import Path

import mlflow
import numpy as np

from emorec.config import TrainConfig
from emorec.tracking.store import client, configure

log = logging.getLogger(__name__)
EMOTION_MODEL = "emotion_model"  # the raw-image pyfunc every run logs
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What a logged model imports of emorec when it is loaded and served, as paths in the
# package: the pyfuncs (emotion_model, onnx_pyfunc), the engines that load a network, the
# networks a pickled PyTorch model names, and what those import. Only these files travel
# with each model, so that the pyfunc and a pickled network find their classes wherever
# they are loaded; the rest of the package (training, studies, CLI, dataset loaders) does
# not: every file is one more upload to a tracking server. (Where emorec is installed too,
# the rest comes from there: a package listed here in part extends its ``__path__``, as
# ``emorec`` and ``emorec.data`` do.) tests/test_logged_code.py loads each
# kind of logged model in a fresh process and checks that every emorec module it imports
# is the model's own.
SERVED_CODE = ("__init__.py", "config.py", "emotion_model.py", "frameworks.py", "labels.py",
               "resources.py", "onnx_export.py", "onnx_pyfunc.py", "engines", "models",
               "data/__init__.py", "data/augment.py", "data/cache.py", "data/errors.py",
               "data/faces.py", "data/images.py", "data/preprocess.py", "data/types.py")


class ModelNotFound(ValueError):
    """A model URI that names nothing; the message lists what does exist."""


# What every raw-image pyfunc imports, besides its model's own runtime.
SERVING_REQUIREMENTS = ("mlflow", "numpy", "pandas", "pillow", "opencv-python-headless",
                        "cloudpickle")


def requirements(runtime: tuple[str, ...]) -> list[str]:
    """Exact pins of what a logged model imports: the serving base plus ``runtime`` (an
    engine's ``requirements``, or ``("onnxruntime",)``); skips MLflow's slow inference."""
    return list(_pins((*SERVING_REQUIREMENTS, *runtime)))


@functools.lru_cache(maxsize=None)
def _pins(names: tuple[str, ...]) -> tuple[str, ...]:
    # Once per process: each version() parses a package's metadata file, and the installed
    # versions do not change while a study runs.
    from importlib.metadata import version

    return tuple(f"{n}=={version(n)}" for n in names)


# Set on a thread while it saves a model pinned by ``requirements`` (``_pins_checked``).
_pinned_by_us = threading.local()


@contextlib.contextmanager
def _pins_checked():
    """Skip, on this thread, MLflow's check of a model's pins against the installed packages.

    Saving a model, MLflow compares every requirement with the installed version
    (``warn_dependency_requirement_mismatches``), parsing each package's metadata file:
    ~1.3 ms a requirement, ~10 ms a model saved (measured). emorec's
    pins are read from that same metadata (``_pins``), so the check can find nothing. The
    check is wrapped once per process to look at this thread's flag; where a later MLflow
    has no such function, nothing is wrapped and the check runs as before."""
    from mlflow.utils import environment

    check = getattr(environment, "warn_dependency_requirement_mismatches", None)
    if check is not None and not getattr(check, "emorec_wrapped", False):
        def unless_ours(requirements, _check=check):
            if not getattr(_pinned_by_us, "active", False):
                _check(requirements)

        unless_ours.emorec_wrapped = True
        environment.warn_dependency_requirement_mismatches = unless_ours
    _pinned_by_us.active = True
    try:
        yield
    finally:
        _pinned_by_us.active = False


def served_code() -> str:
    """A folder named ``emorec`` holding ``SERVED_CODE``, for a model's ``code_paths``:
    made once per process (a study logs many models; a copy per model cost ~0.03 s a run
    on a slow disk), made again if anything in it went missing (a /tmp cleaner under a
    worker that runs for days), removed when the process exits."""
    folder, files = _served_code_copy()
    if not all(f.is_file() for f in files):
        _served_code_copy.cache_clear()
        folder, files = _served_code_copy()
    return folder


@functools.lru_cache(maxsize=1)
def _served_code_copy() -> tuple[str, tuple[Path, ...]]:
    import atexit
    import shutil
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="emorec-served-code-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for entry in SERVED_CODE:
        source, target = PACKAGE_DIR / entry, root / "emorec" / entry
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return str(root / "emorec"), tuple((root / "emorec").rglob("*.py"))


@contextlib.contextmanager
def quiet_model_logging():
    """Silence MLflow's generic advice printed on every model save (pickle
    cautions, type-hint tips) so a training run's output stays readable."""
    import warnings

    names = ("mlflow.pytorch", "mlflow.keras", "mlflow.pyfunc", "mlflow.models")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


_preparing = None  # the thread started by prepare_in_background, once per process
_preparing_lock = threading.Lock()


def prepare_in_background(runtime: tuple[str, ...]) -> None:
    """Start, on a thread, the work a process's first model logging does once: pinning the
    requirements (the serving base plus ``runtime``, an engine's ``requirements``) and
    MLflow's map of installed packages, which reads every installed file list (~1.2-1.6 s
    in this project's environment, measured, for each `emorec train` or `mlflow run`).
    Called when a run opens, it is done while the model trains; logging a model waits
    for it."""
    global _preparing
    with _preparing_lock:
        if _preparing is None:
            _preparing = threading.Thread(target=_prepare, args=(tuple(runtime),),
                                          name="emorec-model-logging-prepare", daemon=True)
            _preparing.start()


def _prepare(runtime: tuple[str, ...]) -> None:
    try:
        from mlflow.utils import requirements_utils

        requirements(runtime)
        # Where a later MLflow has no such function, the first model saved builds it.
        getattr(requirements_utils, "_init_packages_to_modules_map", lambda: None)()
    except Exception as exc:  # a head start, never a failure: the logging does it itself
        log.debug("preparing model logging failed: %s", exc)


def _prepared() -> None:
    """Wait for ``prepare_in_background``'s thread: MLflow's map is not thread-safe."""
    if _preparing is not None:
        _preparing.join()


def log_trained_model(engine, model, cfg: TrainConfig, classes: tuple[str, ...],
                      prep_dict: dict, example: np.ndarray, metrics=(), per_epoch=()) -> None:
    """The model in its own flavour (``model``), plus the raw-image ``emotion_model`` pyfunc
    that serves it, in the active run; ``example``: a few uint8 test images (signature,
    input example); ``metrics``: ``Metric``s the run logged at step 0 (its final metrics,
    as ``runs.log_metrics`` returns them), which spares reading them back; ``per_epoch``:
    the keys it logged per epoch, from step 1, which spares reading their histories."""
    import tempfile

    from emorec.emotion_model import NATIVE, EmotionModel

    reqs = requirements(engine.requirements)
    run, metrics = _what_models_carry(mlflow.active_run().info.run_id, metrics, per_epoch)
    with quiet_model_logging(), _pins_checked(), tempfile.TemporaryDirectory() as tmp:
        # The copy the pyfunc carries needs no emorec code of its own: the pyfunc has it
        # on the path already (one copy of the package in the pyfunc, not two).
        native = Path(tmp) / NATIVE
        engine.save_network(model, example, str(native), pip_requirements=reqs)
        pyfunc = EmotionModel(cfg.framework, list(classes), prep_dict)
        log_models_to_run(run, metrics, {
            "model": lambda path, mlflow_model: engine.save_flavor(
                model, example, path, pip_requirements=reqs, code_path=served_code(),
                mlflow_model=mlflow_model),
            EMOTION_MODEL: lambda path, mlflow_model: save_image_pyfunc(
                path, mlflow_model, pyfunc, native, example[0], reqs)})


def log_image_pyfunc(run_id: str, name: str, python_model, native_path, image: np.ndarray,
                     pip_requirements: list[str]) -> None:
    """Log ``python_model`` (an ``EmotionModel``) as the raw-image pyfunc ``name`` of the
    run ``run_id`` (a finished one too): ``native_path`` is the network it loads."""
    log_models_to_run(*_what_models_carry(run_id), {name: lambda path, mlflow_model:
                      save_image_pyfunc(path, mlflow_model, python_model, native_path, image,
                                        pip_requirements)})


def save_image_pyfunc(path: str, mlflow_model, python_model, native_path, image: np.ndarray,
                      pip_requirements: list[str]) -> None:
    """Save ``python_model`` as a raw-image pyfunc at ``path``: ``native_path`` is the
    network it loads, ``image`` (uint8) the input example as the REST API receives it, a
    base64 image file."""
    import base64

    import cv2
    import mlflow.pyfunc
    import pandas as pd

    from emorec.emotion_model import NATIVE

    png = cv2.imencode(".png", image)[1].tobytes()
    mlflow.pyfunc.save_model(
        path, mlflow_model=mlflow_model, python_model=python_model,
        artifacts={NATIVE: str(native_path)}, code_paths=[served_code()],
        input_example=pd.DataFrame({"image": [base64.b64encode(png).decode()]}),
        signature=python_model.signature(), pip_requirements=pip_requirements)


def _what_models_carry(run_id: str, known=(), per_epoch=()) -> tuple:
    """The run and its metrics at step 0 (its final ones), which every model logged to it
    carries; ``known``: ``Metric``s the caller logged there itself, not read back;
    ``per_epoch``: keys with no step 0 (logged from the first epoch on), not looked up.
    Read once for all the run's models, not per model and metric key as ``Model.log``
    does."""
    mlflow_client = client()
    run = mlflow_client.get_run(run_id)
    at_step_0 = {m.key: m for m in known if m.key in run.data.metrics}
    for key in run.data.metrics.keys() - at_step_0.keys() - set(per_epoch):
        # What is left is MLflow's system metrics, whose first sample is at step 0.
        first = [m for m in mlflow_client.get_metric_history(run_id, key) if m.step == 0]
        if first:
            at_step_0[key] = first[0]
    return run, list(at_step_0.values())


def log_models_to_run(run, metrics: list, saves: dict) -> dict[str, str]:
    """Log models to ``run`` (an ``mlflow.entities.Run``), each with the run's parameters
    and ``metrics`` (``_what_models_carry``), as MLflow's flavours' ``log_model`` does:
    ``saves`` maps each model's name to ``save(path, mlflow_model)``, which writes it into
    a new folder with that ``mlflow.models.Model`` as its metadata. Returns their model ids
    by name. The models are linked to the run and given their metrics in one call each,
    not one per model (each write is a store transaction, or a request to a server); if
    any fails to save or upload, every one of them is finalized FAILED."""
    import tempfile

    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric
    from mlflow.models import Model

    _prepared()
    mlflow_client = client()
    run_id, ids = run.info.run_id, {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, save in saves.items():
                # The fluent call, unlike the client's: it tags the model with where it
                # came from (user, source, git commit), as a flavour's log_model does.
                logged = mlflow.initialize_logged_model(
                    name=name, source_run_id=run_id, experiment_id=run.info.experiment_id,
                    params={k: str(v) for k, v in run.data.params.items()})
                ids[name] = logged.model_id
                metadata = Model(artifact_path=logged.artifact_location, run_id=run_id,
                                 model_uuid=logged.model_id, model_id=logged.model_id)
                if folder := _local_artifact_folder(logged.artifact_location):
                    save(folder, metadata)
                else:
                    path = str(Path(tmp) / name)
                    save(path, metadata)
                    mlflow_client.log_model_artifacts(logged.model_id, path)
        # (Unlike a flavour's log_model, the active run object's outputs are not updated:
        # emorec reads a run's models from the store.)
        mlflow_client.log_outputs(run_id, [LoggedModelOutput(i, step=0) for i in ids.values()])
        if metrics:  # the run's own values, timestamps included: the run keeps one point
            mlflow_client.log_batch(run_id, metrics=[
                Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id)
                for model_id in ids.values() for m in metrics])
        for model_id in ids.values():
            mlflow_client.finalize_logged_model(model_id, LoggedModelStatus.READY)
    except BaseException:
        # What went wrong is what the run reports, not a failure to say so here as well.
        for model_id in ids.values():
            with contextlib.suppress(Exception):
                mlflow_client.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
        raise
    return ids


def _local_artifact_folder(artifact_location: str) -> str | None:
    """The folder a logged model's artifacts are copied to when the store keeps them on
    this machine (MLflow's local artifact repository), else None. There the model is saved
    in place rather than in a temporary folder and then copied (~12 ms a model, ~30 files
    each, measured); a store elsewhere (a server, S3) gets the upload."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    repository = get_artifact_repository(artifact_location,
                                         tracking_uri=mlflow.get_tracking_uri())
    return repository.artifact_dir if isinstance(repository, LocalArtifactRepository) else None


def load_pyfunc(uri: str):
    """The MLflow pyfunc at ``uri``, from the configured store."""
    import mlflow.pyfunc

    configure()
    return mlflow.pyfunc.load_model(uri)


def load_emotion_model(uri: str):
    """The ``EmotionModel`` behind a logged pyfunc, ready to predict; a URI that names
    nothing raises ``ModelNotFound`` listing the registered models and aliases."""
    from mlflow.exceptions import MlflowException

    from emorec.emotion_model import EmotionModel

    try:
        model = load_pyfunc(uri).unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise ModelNotFound(f"cannot load {uri!r} ({str(exc).splitlines()[0][:200]}); "
                            f"registered models: {registered_summary() or 'none'}") from None
    if not isinstance(model, EmotionModel):
        raise ModelNotFound(f"{uri!r} is not an emorec emotion_model (it is a "
                            f"{type(model).__name__})")
    return model


def registered_summary() -> str:
    """'name@alias (vN), ...' for every registered model, for error messages."""
    parts = []
    for rm in client().search_registered_models():
        aliases = ", ".join(f"@{a} (v{v})" for a, v in sorted(rm.aliases.items())) or "no aliases"
        parts.append(f"{rm.name} [{aliases}]")
    return "; ".join(parts)


def run_id_of(uri: str) -> str:
    """The run that logged the model at ``uri``: runs:/RUN/..., models:/NAME@ALIAS,
    models:/NAME/VERSION or models:/MODEL_ID (an MLflow 3 logged model)."""
    mlflow_client = client()
    if uri.startswith("runs:/"):
        return uri.removeprefix("runs:/").strip("/").split("/")[0]
    if not uri.startswith("models:/"):
        raise ValueError(f"cannot tell which run logged {uri!r}: expected a runs:/ or "
                         "models:/ URI")
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, alias = rest.split("@", 1)
        return mlflow_client.get_model_version_by_alias(name, alias).run_id
    if "/" in rest:
        name, version = rest.rsplit("/", 1)
        return mlflow_client.get_model_version(name, version).run_id
    return mlflow_client.get_logged_model(rest).source_run_id


def emotion_model_uri(run_id: str) -> str | None:
    """``models:/<model_id>`` of the run's logged ``emotion_model`` (MLflow 3 logged models)."""
    mlflow_client = client()
    for output in mlflow_client.get_run(run_id).outputs.model_outputs:
        if mlflow_client.get_logged_model(output.model_id).name == EMOTION_MODEL:
            return f"models:/{output.model_id}"
    return None
