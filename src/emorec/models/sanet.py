"""SANet: the proposed CNN with Shuffle Attention after each conv stage.

This is OUR definition of "SANet" for emotion recognition: the ``cnn_torch``
backbone and head unchanged, plus one Shuffle Attention (SA) block (Zhang &
Yang, "SA-Net: Shuffle Attention for Deep Convolutional Neural Networks",
ICASSP 2021) after each of the four stages (after its pool and dropout).

Shuffle Attention on an input of C channels, with G groups (G = 8 here; C
must be divisible by 2G, which holds for 32/64/128/256):

1. split the channels into G groups of C/G; each group is processed
   independently (folded into the batch dimension);
2. split each group into two halves of C/(2G) channels:
   * channel attention: ``x * sigmoid(cweight * GAP(x) + cbias)``;
   * spatial attention: ``x * sigmoid(sweight * GroupNorm(x) + sbias)``, where
     the GroupNorm has one group per channel (it normalises each channel over
     its H x W positions);
   ``cweight, cbias, sweight, sbias`` are per-channel (C/(2G) each) and
   shared across the G groups, as in the paper;
3. concatenate the halves, restore the C channels, and shuffle them with 2
   groups so information flows between the two halves in the next layers.

The gates start at sigmoid(bias = 1) with zero weights, so the block begins
as a fixed rescaling and learns its attention, as in the reference code.
Unlike the reference code, the GroupNorm has no affine parameters of its own:
``sweight``/``sbias`` already are that affine, and a second one is redundant.
The block adds 4 * C/(2G) parameters per stage (120 in all).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from emorec.errors import UserError
from emorec.models.cnn_torch import FILTERS, backbone, classifier_head, no_pretrained_weights

SA_GROUPS = 8


class ShuffleAttention(nn.Module):
    def __init__(self, channels: int, groups: int = SA_GROUPS):
        super().__init__()
        if channels % (2 * groups):
            raise UserError(
                f"ShuffleAttention needs channels divisible by 2 * groups; "
                f"got channels={channels}, groups={groups}"
            )
        self.groups = groups
        half = channels // (2 * groups)
        shape = (1, half, 1, 1)
        self.cweight = nn.Parameter(torch.zeros(shape))
        self.cbias = nn.Parameter(torch.ones(shape))
        self.sweight = nn.Parameter(torch.zeros(shape))
        self.sbias = nn.Parameter(torch.ones(shape))
        self.norm = nn.GroupNorm(half, half, affine=False)  # one group per channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        # Fold the G groups into the batch: each is attended independently.
        x = x.reshape(b * self.groups, c // self.groups, h, w)
        xc, xs = x.chunk(2, dim=1)
        xc = xc * torch.sigmoid(self.cweight * xc.mean(dim=(2, 3), keepdim=True) + self.cbias)
        xs = xs * torch.sigmoid(self.sweight * self.norm(xs) + self.sbias)
        out = torch.cat((xc, xs), dim=1).reshape(b, c, h, w)
        # Channel shuffle with 2 groups: interleave the two halves' channels.
        return out.reshape(b, 2, c // 2, h, w).transpose(1, 2).reshape(b, c, h, w)


def build(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.25,
    pretrained: bool = False,
) -> nn.Module:
    """Build SANet returning logits. ``image_size`` is unused (global pooling)."""
    no_pretrained_weights("sanet", pretrained)
    return nn.Sequential(
        OrderedDict(
            features=backbone(in_channels, dropout, after_stage=ShuffleAttention),
            head=classifier_head(FILTERS[-1], num_classes, dropout),
        )
    )
