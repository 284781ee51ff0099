"""VGG-16 (with batch norm) and ResNet50 from torchvision, with our small classifier head.

VGG-16 is torchvision's ``vgg16_bn``: the same 13 conv layers as the original,
each followed by batch norm. Without it, VGG-16 trained from scratch with
Adam at our learning rates tends to sit at chance for many epochs, which on
a 2-core CPU budget means it never leaves chance at all.

Both keep torchvision's convolutional body (VGG-16 ``features``; ResNet50 up
to ``layer4``) and replace ImageNet's classifier (VGG's two 4096-wide layers,
ResNet's 1000-way fc) with the head shared with the proposed CNN:
``GAP -> Dropout -> Linear(512 | 2048 -> 256) -> ReLU -> Dropout -> Linear(256 -> classes)``.
The output is LOGITS; the engine applies softmax.

Grayscale input (``in_channels=1``) is repeated to 3 channels inside
``forward``, so the first conv keeps its ImageNet shape and pretrained
weights load unchanged. Inputs are our usual [-1, 1] images; we do not
apply ImageNet's mean/std normalisation, even when pretrained (fine-tuning
adapts to the shift, and every model sees one preprocessing).

``pretrained=True`` loads the ImageNet (IMAGENET1K_V1) weights ONLY from the
local torch hub cache, ``<torch.hub.get_dir()>/checkpoints/<file>`` (that is
``$TORCH_HOME/hub/checkpoints``); nothing is ever downloaded. A missing file
raises ``FileNotFoundError`` naming the path to place it at.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
import torchvision
from torch import nn

from emorec.errors import MissingFile
from emorec.models.cnn_torch import classifier_head


class TorchvisionClassifier(nn.Module):
    """A torchvision body + our head; repeats grayscale input to RGB."""

    def __init__(
        self,
        body: nn.Module,
        out_channels: int,
        *,
        num_classes: int,
        in_channels: int,
        dropout: float,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.features = body
        self.head = classifier_head(out_channels, num_classes, dropout, input_dropout=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)  # a view, no copy
        return self.head(self.features(x))


def _cached_state_dict(weights) -> dict:
    """The state dict of ``weights`` (a torchvision enum) from the hub cache, never the web."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
    if not path.is_file():
        raise MissingFile(
            f"pretrained weights not found at {path}. Nothing is downloaded at run time: "
            f"on a machine with internet, fetch {weights.url} and copy it to that path "
            f"(set TORCH_HOME to use another cache; the file goes in $TORCH_HOME/hub/checkpoints), "
            f"or use pretrained=False."
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def build_vgg16(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.25,
    pretrained: bool = False,
) -> nn.Module:
    """VGG-16-BN conv body + our head; 512 channels out, 32x downsampling."""
    # Read the checkpoint first: a missing file fails before the slow model init.
    weights = torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1
    state = _cached_state_dict(weights) if pretrained else None
    vgg = torchvision.models.vgg16_bn(weights=None)
    if state is not None:
        vgg.load_state_dict(state)
    return TorchvisionClassifier(
        vgg.features, 512, num_classes=num_classes, in_channels=in_channels, dropout=dropout
    )


def build_resnet50(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.25,
    pretrained: bool = False,
) -> nn.Module:
    """ResNet50 up to layer4 + our head; 2048 channels out, 32x downsampling."""
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    state = _cached_state_dict(weights) if pretrained else None
    # Each residual block starts as the identity (its last batch norm zeroed): from scratch,
    # a 50-layer net then learns in the few epochs a CPU budget allows instead of sitting at
    # the majority class. Pretrained weights overwrite those norms.
    resnet = torchvision.models.resnet50(weights=None, zero_init_residual=True)
    if state is not None:
        resnet.load_state_dict(state)
    # Everything but torchvision's own avgpool and fc: our head pools itself.
    body = nn.Sequential(
        OrderedDict(
            (name, child)
            for name, child in resnet.named_children()
            if name not in ("avgpool", "fc")
        )
    )
    return TorchvisionClassifier(
        body, 2048, num_classes=num_classes, in_channels=in_channels, dropout=dropout
    )
