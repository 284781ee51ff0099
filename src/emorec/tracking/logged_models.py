"""Logged models: saving a trained model with its raw-image pyfunc, and loading it back.

Every run with ``log_model`` logs two MLflow models: ``model``, the network in its
framework's own flavour (written by the engine, ``Engine.log_flavor``), and
``emotion_model``, the ``emorec.emotion_model.EmotionModel`` pyfunc that takes raw
images and serves that network. Loading goes the other way: any URI of an
``emotion_model`` (runs:/, models:/NAME@ALIAS, models:/NAME/VERSION, models:/MODEL_ID)
gives the ``EmotionModel`` with its network loaded.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path

import mlflow
import numpy as np

from emorec.config import TrainConfig
from emorec.tracking.store import client, configure

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


def log_trained_model(engine, model, cfg: TrainConfig, classes: tuple[str, ...],
                      prep_dict: dict, example: np.ndarray) -> None:
    """The model in its own flavour (``model``), plus the raw-image ``emotion_model`` pyfunc
    that serves it; ``example``: a few uint8 test images (signature, input example)."""
    import tempfile

    from emorec.emotion_model import NATIVE, EmotionModel

    reqs = requirements(engine.requirements)
    with quiet_model_logging(), tempfile.TemporaryDirectory() as tmp:
        native_dir = Path(tmp) / NATIVE
        engine.log_flavor(model, example, name="model", save_to=str(native_dir),
                          pip_requirements=reqs, code_path=served_code())
        log_image_pyfunc(EMOTION_MODEL, EmotionModel(cfg.framework, list(classes), prep_dict),
                         native_dir, example[0], reqs)


def log_image_pyfunc(name: str, python_model, native_path, image: np.ndarray,
                     pip_requirements: list[str]) -> None:
    """Log ``python_model`` (an ``EmotionModel``) as the raw-image pyfunc ``name`` in the
    active run: ``native_path`` is the network it loads, ``image`` (uint8) the input example
    as the REST API receives it, a base64 image file."""
    import base64

    import cv2
    import pandas as pd

    from emorec.emotion_model import NATIVE

    png = cv2.imencode(".png", image)[1].tobytes()
    mlflow.pyfunc.log_model(
        name=name, python_model=python_model, artifacts={NATIVE: str(native_path)},
        code_paths=[served_code()],
        input_example=pd.DataFrame({"image": [base64.b64encode(png).decode()]}),
        signature=python_model.signature(), pip_requirements=pip_requirements)


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
