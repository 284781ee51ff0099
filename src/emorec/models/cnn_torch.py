"""The proposed CNN in PyTorch.

Architecture (input N x C x H x W, C = 1 or 3, values in [-1, 1]):

* four conv stages with 32, 64, 128, 256 filters; each stage is
  ``[3x3 conv (same padding, no bias) -> BatchNorm -> ReLU] x 2``, then a
  2x2 max-pool and dropout;
* global average pooling, so any input side >= 16 works;
* classifier head: ``Linear(256 -> 256) -> ReLU -> Dropout -> Linear(256 -> classes)``.

The model returns LOGITS: the training engine applies softmax / cross-entropy
(``nn.CrossEntropyLoss`` expects logits, and softmax at inference is the
engine's job). The Keras twin (``cnn_keras``) ends in a softmax instead,
because that is the Keras convention; both have the same parameters.

``conv_stage``, ``backbone`` and ``classifier_head`` are public so that
``sanet`` and ``torchvision_models`` reuse them instead of redefining them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from emorec.errors import UserError

FILTERS = (32, 64, 128, 256)
HIDDEN_UNITS = 256


def conv_stage(in_ch: int, out_ch: int, dropout: float) -> nn.Sequential:
    """Two conv-BN-ReLU blocks, a 2x2 max-pool and dropout; halves H and W."""
    layers = []
    for ch in (in_ch, out_ch):
        # No conv bias: the BatchNorm right after it has its own shift.
        layers += [
            nn.Conv2d(ch, out_ch, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        ]
    layers += [nn.MaxPool2d(2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def backbone(
    in_channels: int, dropout: float, after_stage: Callable[[int], nn.Module] | None = None
) -> nn.Sequential:
    """The four stages; ``after_stage(channels)`` adds a block after each (e.g. attention)."""
    stages = OrderedDict()
    prev = in_channels
    for i, ch in enumerate(FILTERS, start=1):
        stages[f"stage{i}"] = conv_stage(prev, ch, dropout)
        if after_stage is not None:
            stages[f"attn{i}"] = after_stage(ch)
        prev = ch
    return nn.Sequential(stages)


def classifier_head(
    in_features: int, num_classes: int, dropout: float, *, input_dropout: bool = False
) -> nn.Sequential:
    """GAP + dense 256 head returning logits.

    ``input_dropout`` adds dropout on the pooled features, for backbones (VGG,
    ResNet) whose last layer is not already followed by dropout.
    """
    layers = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    if input_dropout:
        layers.append(nn.Dropout(dropout))
    layers += [
        nn.Linear(in_features, HIDDEN_UNITS),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(HIDDEN_UNITS, num_classes),
    ]
    return nn.Sequential(*layers)


def no_pretrained_weights(name: str, pretrained: bool) -> None:
    if pretrained:
        raise UserError(
            f"{name} is trained from scratch: it has no pretrained weights (use pretrained=False)"
        )


def build(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.25,
    pretrained: bool = False,
) -> nn.Module:
    """Build the proposed CNN. ``image_size`` is unused: global pooling makes it size-agnostic."""
    no_pretrained_weights("cnn_torch", pretrained)
    return nn.Sequential(
        OrderedDict(
            features=backbone(in_channels, dropout),
            head=classifier_head(FILTERS[-1], num_classes, dropout),
        )
    )
