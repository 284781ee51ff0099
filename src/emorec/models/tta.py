"""Test-time augmentation as part of the model (PyTorch).

A ``ViewAveraged`` module wraps a trained classifier so that its forward pass is the
augmented one. Evaluation, the logged model, the raw-image pyfunc, ``mlflow models
serve`` and the ONNX export all run this one module, so every path returns the same
probabilities the logged test metrics were computed from.

- ``FlipAveraged`` (``tta=flip``): the face and its mirror image, two passes.
- ``TenCropAveraged`` (``tta=tencrop``): five crops (the corners and the centre, each
  scaled back to the input size) and their mirror images, ten passes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def log_of_mean(proba: torch.Tensor) -> torch.Tensor:
    """The log of the mean over the first axis of stacked class probabilities: what an
    averaging model returns, so that a softmax of it gives back the mean exactly."""
    return torch.log(proba.mean(0).clamp_min(1e-30))  # no log(0) where one underflows


class ViewAveraged(nn.Module):
    """The mean of the class probabilities over views of each image.

    It returns the log of that mean: what every caller does with logits
    (softmax) gives back exactly the averaged probabilities.
    """

    mode = "none"  # the config's ``tta`` value this wrapper implements
    passes = 1  # views per image: what it costs over the bare network

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def views(self, x: torch.Tensor) -> torch.Tensor:
        """Every view of the batch ``x``, view after view: (views * N, C, H, W)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One forward pass over every view: a larger batch is faster on a CPU than
        # several passes.
        logits = self.model(self.views(x))
        proba = torch.softmax(logits.float(), dim=1)
        return log_of_mean(proba.reshape(self.passes, -1, proba.shape[1]))


class FlipAveraged(ViewAveraged):
    """The image and its mirror image."""

    mode, passes = "flip", 2

    def views(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, torch.flip(x, dims=[3])])


class TenCropAveraged(ViewAveraged):
    """Five crops of ``CROP`` of the side, scaled back to the input size, and their mirrors.

    The corner crops move the face by 4 % of the frame and the scaling enlarges it by 9 %:
    inside the shifts and zooms training augments with, so every view is one the network
    learnt to read.
    """

    mode, passes = "tencrop", 10
    CROP = 0.92  # 44 of FER2013's 48 pixels

    def views(self, x: torch.Tensor) -> torch.Tensor:
        # Python ints: an export traces the crops as constants of the model's input size.
        h, w = int(x.shape[-2]), int(x.shape[-1])
        ch, cw = round(h * self.CROP), round(w * self.CROP)
        top, left = (h - ch) // 2, (w - cw) // 2
        crops = [
            x[..., :ch, :cw],
            x[..., :ch, w - cw :],
            x[..., h - ch :, :cw],
            x[..., h - ch :, w - cw :],
            x[..., top : top + ch, left : left + cw],
        ]
        scaled = F.interpolate(torch.cat(crops), size=(h, w), mode="bilinear", align_corners=False)
        return torch.cat([scaled, torch.flip(scaled, dims=[3])])


WRAPPERS = {wrapper.mode: wrapper for wrapper in (FlipAveraged, TenCropAveraged)}
