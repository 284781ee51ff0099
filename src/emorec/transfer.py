"""Transfer from a logged or registered emorec model (``TrainConfig.init_from``).

``load_source`` runs before any data is read or any run is opened: it loads the
model behind the URI and checks that it can start this config's training (same
framework, same architecture, same channel count), so bad input costs one line,
not a failed run. The engine then copies the weights
(``Engine.start_from``): the whole backbone, and of the classifier's last layer
the rows of the classes both models share, matched by name; a class the source
never saw starts from fresh weights.

The run records where it came from: ``init_from.*`` tags (URI, run, registered
name and version) and, in MLflow's own lineage, the source's logged model as an
input of the run, so the UI links the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from emorec.config import TrainConfig
from emorec.errors import UserError


class TransferError(UserError):
    """An ``init_from`` that cannot start this training; the message says why in one line."""


@dataclass
class Source:
    uri: str
    run_id: str
    model: object  # the framework model, as the source run evaluated it
    classes: list[str]
    model_name: str = ""  # registered model name, for models:/ URIs
    version: str = ""  # registered version
    logged_model_id: str = ""  # MLflow 3 logged model id, for lineage

    def rows(self, classes) -> list[tuple[int, int]]:
        """(row in the new classifier, row in the source's) for every shared class."""
        return [(i, self.classes.index(c)) for i, c in enumerate(classes) if c in self.classes]

    def tags(self) -> dict[str, str]:
        tags = {"init_from.uri": self.uri, "init_from.run_id": self.run_id}
        if self.model_name:
            tags |= {
                "init_from.model_name": self.model_name,
                "init_from.model_version": self.version,
            }
        return tags


def emotion_model_uri(uri: str) -> str:
    """``runs:/RUN/model`` (the framework flavour) -> the same run's ``emotion_model``,
    which carries the class names and preprocessing the weights go with."""
    if uri.startswith("runs:/") and uri.rstrip("/").endswith("/model"):
        return uri.rstrip("/").removesuffix("/model") + "/emotion_model"
    return uri


def load_source(cfg: TrainConfig) -> Source:
    from emorec import tracking

    uri = cfg.init_from
    try:
        emotion_model = tracking.load_emotion_model(emotion_model_uri(uri))
        run_id = tracking.run_id_of(uri)
        version = tracking.registered_version(uri)
    except ValueError as exc:  # ModelNotFound, or a URI of no accepted form
        raise TransferError(f"init_from: {str(exc).splitlines()[0]}") from None
    architecture = tracking.training_facts(run_id)["params"].get("model", "?")
    if emotion_model.framework != cfg.framework:
        raise TransferError(
            f"init_from {uri} is a {emotion_model.framework} model "
            f"({architecture}); {cfg.model} is {cfg.framework}: give a "
            f"{cfg.model} model"
        )
    if architecture != cfg.model:
        raise TransferError(
            f"init_from {uri} is a {architecture} model, not {cfg.model}: "
            f"its weights fit only {architecture} (--model {architecture})"
        )
    channels = emotion_model.prep.channels
    if channels != cfg.channels:
        raise TransferError(
            f"init_from {uri} takes {channels}-channel images; this run has "
            f"channels={cfg.channels} (--channels {channels})"
        )
    source = Source(uri, run_id, emotion_model.network, list(emotion_model.classes))
    if version is not None:
        source.model_name, source.version = version.name, str(version.version)
        source.logged_model_id = getattr(version, "model_id", "") or ""
    return source
