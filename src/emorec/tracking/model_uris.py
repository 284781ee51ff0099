"""What a model URI names: the forms emorec reads (runs:/, models:/NAME@ALIAS,
models:/NAME/VERSION, models:/MODEL_ID), the run that logged a model, a run's logged
``emotion_model``, and the registered models an error lists when a URI names nothing."""

from __future__ import annotations

import contextlib

from emorec.errors import ModelNotFound, UserError
from emorec.tracking.store import client

EMOTION_MODEL = "emotion_model"  # the raw-image pyfunc every run logs


URI_FORMS = (
    "runs:/RUN_ID/emotion_model",
    "models:/NAME@ALIAS",
    "models:/NAME/VERSION",
    "models:/MODEL_ID",
)


def check_model_uri(uri: str) -> None:
    """ValueError naming the accepted forms for a URI that is none of them."""
    if not str(uri).startswith(("runs:/", "models:/")):
        raise UserError(
            f"{uri!r} is not a model URI emorec reads; use one of {', '.join(URI_FORMS)}"
        )


def registered_summary() -> str:
    """'name@alias (vN), ...' for every registered model, for error messages."""
    parts = []
    for rm in client().search_registered_models():
        aliases = ", ".join(f"@{a} (v{v})" for a, v in sorted(rm.aliases.items())) or "no aliases"
        parts.append(f"{rm.name} [{aliases}]")
    return "; ".join(parts)


@contextlib.contextmanager
def _named(uri: str):
    """MLflow's error for a URI that names nothing, as ``ModelNotFound``."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise ModelNotFound(
            f"{uri}: {str(exc).splitlines()[0][:200]}; registered models: "
            f"{registered_summary() or 'none'}"
        ) from None


def registered_version(uri: str):
    """The model version a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI names,
    or None for any other URI."""
    rest = str(uri).removeprefix("models:/").strip("/") if str(uri).startswith("models:/") else None
    with _named(uri):
        if rest and "@" in rest:
            return client().get_model_version_by_alias(*rest.split("@", 1))
        if rest and "/" in rest:
            return client().get_model_version(*rest.rsplit("/", 1))
    return None


def run_id_of(uri: str) -> str:
    """The run that logged the model at ``uri``: runs:/RUN/..., models:/NAME@ALIAS,
    models:/NAME/VERSION or models:/MODEL_ID (an MLflow 3 logged model)."""
    check_model_uri(uri)
    if uri.startswith("runs:/"):
        return uri.removeprefix("runs:/").strip("/").split("/")[0]
    version = registered_version(uri)
    if version is not None:
        return version.run_id
    with _named(uri):
        return client().get_logged_model(uri.removeprefix("models:/").strip("/")).source_run_id


def emotion_model_uri(run_id: str) -> str | None:
    """``models:/<model_id>`` of the run's logged ``emotion_model`` (MLflow 3 logged models)."""
    mlflow_client = client()
    for output in mlflow_client.get_run(run_id).outputs.model_outputs:
        if mlflow_client.get_logged_model(output.model_id).name == EMOTION_MODEL:
            return f"models:/{output.model_id}"
    return None
