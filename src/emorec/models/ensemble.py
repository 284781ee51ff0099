"""A snapshot ensemble as one model (PyTorch).

``snapshots=M`` trains in M learning-rate cycles and keeps the weights at the end of each
(Huang et al., 2017, "Snapshot ensembles: train 1, get M for free"); ``SnapshotEnsemble``
holds those M networks and averages their class probabilities. Like the test-time
augmentation wrappers (``emorec.models.tta``), which may wrap it in turn, it returns the
log of the mean, so evaluation, every serving path and the ONNX export run it as they
run a single network.
"""

from __future__ import annotations

import torch
from torch import nn

from emorec.models.tta import log_of_mean


class SnapshotEnsemble(nn.Module):
    """The mean of the class probabilities of ``members``, networks of one architecture."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        proba = torch.stack([torch.softmax(m(x).float(), dim=1) for m in self.members])
        return log_of_mean(proba)
