"""Logged models: a trained model and its raw-image pyfunc, logged and loaded back.

Every run with ``log_model`` logs two MLflow models through their flavours' own
``log_model``: ``model``, the network in its framework's flavour (``Engine.log_flavor``),
and ``emotion_model``, the ``emorec.serving.pyfunc.EmotionModel`` pyfunc that takes raw
images and serves that network. Loading goes the other way: any URI of an
``emotion_model`` (runs:/, models:/NAME@ALIAS, models:/NAME/VERSION, models:/MODEL_ID)
gives the ``EmotionModel`` with its network loaded.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
from pathlib import Path

import numpy as np

from emorec.errors import ModelNotFound
from emorec.tracking.model_uris import EMOTION_MODEL, check_model_uri, registered_summary
from emorec.tracking.store import client, configure

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
# What a logged model imports of emorec when it is loaded and served: the pyfuncs, the
# engines that load a network, the networks a pickled PyTorch model names, and what those
# import. Only these files travel with each model (each is one more upload to a tracking
# server); where emorec is installed too, the rest comes from there, as ``emorec`` and
# ``emorec.data`` extend their ``__path__``. tests/test_logged_code.py loads each kind of
# logged model in a fresh process and checks every emorec module it imports is its own.
SERVED_CODE = (
    "__init__.py",
    "config.py",
    "errors.py",
    "frameworks.py",
    "labels.py",
    "resources.py",
    "serving/__init__.py",
    "serving/pyfunc.py",
    "serving/onnx_model.py",
    "engines",
    "models",
    "data/__init__.py",
    "data/augment.py",
    "data/cache.py",
    "data/errors.py",
    "data/faces.py",
    "data/images.py",
    "data/preprocess.py",
    "data/types.py",
)
# What every raw-image pyfunc imports, besides its model's own runtime.
SERVING_REQUIREMENTS = (
    "mlflow",
    "numpy",
    "pandas",
    "pillow",
    "opencv-python-headless",
    "cloudpickle",
)


def requirements(runtime: tuple[str, ...]) -> list[str]:
    """Exact pins of what a logged model imports: the serving base plus ``runtime`` (an
    engine's ``requirements``, or ``("onnxruntime",)``); MLflow need not infer them."""
    return list(_pins((*SERVING_REQUIREMENTS, *runtime)))


@functools.cache
def _pins(names: tuple[str, ...]) -> tuple[str, ...]:
    from importlib.metadata import version

    return tuple(f"{n}=={version(n)}" for n in names)


def served_code() -> str:
    """A folder named ``emorec`` holding ``SERVED_CODE``, for a model's ``code_paths``:
    made once per process, again if anything in it went missing (a /tmp cleaner under a
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
    """Silence MLflow's generic advice printed on every model save (pickle cautions,
    type-hint tips) so a training run's output stays readable."""
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


def log_trained_model(
    engine, model, classes: tuple[str, ...], prep, framework: str, example: np.ndarray
) -> str:
    """The model in its own flavour (``model``), plus the raw-image ``emotion_model``
    pyfunc that serves it, in the active run; ``example``: a few uint8 test images (the
    signatures, and the pyfunc's input example). Returns the pyfunc's model id."""
    from emorec.serving.pyfunc import EmotionModel

    reqs = requirements(engine.requirements)
    with quiet_model_logging(), tempfile.TemporaryDirectory() as tmp:
        engine.log_flavor(
            model, "model", example, pip_requirements=reqs, code_paths=[served_code()]
        )
        native = engine.save_network(model, Path(tmp))
        return log_image_pyfunc(
            EmotionModel(framework, list(classes), prep), native, reqs, example=example[0]
        )


def log_image_pyfunc(
    python_model,
    native_path,
    pip_requirements: list[str],
    *,
    name: str = EMOTION_MODEL,
    run_id: str | None = None,
    example: np.ndarray | None = None,
) -> str:
    """Log ``python_model`` (an ``EmotionModel``) as the raw-image pyfunc ``name``: in the
    active run, or in the run ``run_id`` (a finished one too); ``native_path`` is the
    network it loads, ``example`` (uint8) the input example as the REST API receives it,
    a base64 image file. Returns the logged model's id."""
    import base64

    import cv2
    import mlflow
    import pandas as pd

    from emorec.serving.pyfunc import NATIVE

    side = python_model.prep.image_size
    image = example if example is not None else np.full((side, side), 128, np.uint8)
    png = cv2.imencode(".png", image)[1].tobytes()
    model_id = None
    if run_id is not None:  # a finished run: the model joins the run's experiment
        run = client().get_run(run_id)
        model_id = mlflow.initialize_logged_model(
            name=name,
            source_run_id=run_id,
            experiment_id=run.info.experiment_id,
            params=dict(run.data.params),
        ).model_id
    with quiet_model_logging():
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=python_model,
            artifacts={NATIVE: str(native_path)},
            code_paths=[served_code()],
            signature=python_model.signature(),
            input_example=pd.DataFrame({"image": [base64.b64encode(png).decode()]}),
            pip_requirements=pip_requirements,
            model_id=model_id,
        )
    return info.model_id


def load_pyfunc(uri: str):
    """The MLflow pyfunc at ``uri``, from the configured store."""
    import mlflow.pyfunc

    configure()
    return mlflow.pyfunc.load_model(uri)


def load_emotion_model(uri: str):
    """The ``EmotionModel`` behind a logged pyfunc, ready to predict; a URI that names
    nothing raises ``ModelNotFound`` listing the registered models and aliases."""
    from mlflow.exceptions import MlflowException

    from emorec.serving.pyfunc import EmotionModel

    check_model_uri(uri)
    try:
        model = load_pyfunc(uri).unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise ModelNotFound(
            f"cannot load {uri!r} ({str(exc).splitlines()[0][:200]}); "
            f"registered models: {registered_summary() or 'none'}"
        ) from None
    if not isinstance(model, EmotionModel):
        raise ModelNotFound(
            f"{uri!r} is not an emorec emotion_model (it is a {type(model).__name__})"
        )
    return model
