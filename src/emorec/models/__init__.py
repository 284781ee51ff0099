"""The architectures (a torchvision/timm-style catalogue): one entry point, ``build_model``.

Each spec names its framework and the module that builds it; that module (and
so PyTorch or TensorFlow) is imported only when the model is built, which is
what keeps ``import emorec`` and a PyTorch run free of TensorFlow. A spec also
says which optional training features its framework's engine implements
(``FEATURES``), so the config can refuse a setting before any data is read
without knowing frameworks itself.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from emorec.errors import UserError

FRAMEWORKS = ("torch", "keras")
FRAMEWORK_NAMES = {"torch": "PyTorch", "keras": "Keras"}  # as a person writes them
# The optional training features each framework's engine implements (beyond what every
# engine does); a TrainConfig field that needs one names it (``needs``): bf16 autocast,
# test-time augmentation, a frozen backbone's first epochs, averaged weights, snapshot
# ensembles.
FEATURES = {"torch": frozenset({"bf16", "tta", "freeze", "ema", "snapshots"}), "keras": frozenset()}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    framework: str  # "torch" or "keras": which engine trains it
    builder: str  # "module:function", imported lazily
    min_image_size: int  # smallest input side the architecture accepts
    default_image_size: int
    summary: str

    def supports(self, feature: str) -> bool:
        return feature in FEATURES[self.framework]

    @staticmethod
    def supporting(feature: str) -> str:
        """The frameworks whose models have ``feature``, for an error message: "PyTorch"."""
        return " or ".join(FRAMEWORK_NAMES[f] for f in FRAMEWORKS if feature in FEATURES[f])

    def load_builder(self):
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)


_ARCHITECTURES: dict[str, ModelSpec] = {}


def register(
    name: str,
    *,
    framework: str,
    builder: str,
    min_image_size: int,
    default_image_size: int,
    summary: str,
) -> ModelSpec:
    if framework not in FRAMEWORKS:
        raise UserError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    if name in _ARCHITECTURES:
        raise UserError(f"model {name!r} is already registered")
    spec = ModelSpec(name, framework, builder, min_image_size, default_image_size, summary)
    _ARCHITECTURES[name] = spec
    return spec


def list_models() -> list[str]:
    return sorted(_ARCHITECTURES)


def get_spec(name: str) -> ModelSpec:
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise UserError(
            f"unknown model {name!r}; valid models: {', '.join(list_models())}"
        ) from None


def build_model(
    name: str, *, num_classes: int, in_channels: int = 1, image_size: int | None = None, **cfg
):
    """Build a fresh model by name; ``cfg`` holds architecture options (dropout, pretrained)."""
    spec = get_spec(name)
    size = image_size or spec.default_image_size
    if size < spec.min_image_size:
        raise UserError(
            f"image_size {size} is too small for {name}: it needs at least {spec.min_image_size}"
        )
    if num_classes < 2:
        raise UserError(f"num_classes must be >= 2, got {num_classes}")
    if in_channels not in (1, 3):
        raise UserError(f"in_channels must be 1 or 3, got {in_channels}")
    return spec.load_builder()(
        num_classes=num_classes, in_channels=in_channels, image_size=size, **cfg
    )


# The zoo. Four conv stages halve the input four times, hence min sizes of 16;
# VGG-16 and ResNet50 downsample 32x and need at least 32; they default to 32 px, where a
# training step costs about half of one at 48 px (FER's native size: pass image_size=48).
register(
    "cnn_torch",
    framework="torch",
    builder="emorec.models.cnn_torch:build",
    min_image_size=16,
    default_image_size=48,
    summary="the proposed CNN (4 conv stages 32-256, GAP, dense 256) in PyTorch",
)
register(
    "cnn_tf",
    framework="keras",
    builder="emorec.models.cnn_keras:build",
    min_image_size=16,
    default_image_size=48,
    summary="the proposed CNN, same architecture in Keras 3 / TensorFlow",
)
register(
    "sanet",
    framework="torch",
    builder="emorec.models.sanet:build",
    min_image_size=16,
    default_image_size=48,
    summary="the proposed CNN with a shuffle-attention block after each stage",
)
register(
    "vgg16",
    framework="torch",
    builder="emorec.models.torchvision_models:build_vgg16",
    min_image_size=32,
    default_image_size=32,
    summary="torchvision VGG-16 (batch-norm variant) with a small GAP classifier head",
)
register(
    "resnet50",
    framework="torch",
    builder="emorec.models.torchvision_models:build_resnet50",
    min_image_size=32,
    default_image_size=32,
    summary="torchvision ResNet50 with a small classifier head",
)
