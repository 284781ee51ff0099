"""Test-time augmentation as part of the model (PyTorch).

``FlipAveraged`` wraps a trained classifier so that its forward pass is the
augmented one. Evaluation, the logged model, the raw-image pyfunc, ``mlflow
models serve`` and the ONNX export all run this one module, so every path
returns the same probabilities the logged test metrics were computed from.
"""

from __future__ import annotations

import torch
from torch import nn


class FlipAveraged(nn.Module):
    """The mean of the class probabilities of each image and its mirror image.

    It returns the log of that mean: what every caller does with logits
    (softmax) gives back exactly the averaged probabilities.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One forward pass over both views: a batch twice as large is faster on a CPU
        # than two passes.
        logits = self.model(torch.cat([x, torch.flip(x, dims=[3])]))
        proba = torch.softmax(logits.float(), dim=1)
        proba = proba.reshape(2, -1, proba.shape[1]).mean(0)
        return torch.log(proba.clamp_min(1e-30))  # no log(0) where a probability underflows
