"""How a PyTorch fit is set up: device, precision, optimizer, frozen layers.

Split from ``torch_engine`` so that the engine module holds the engine itself; these are
plain functions of the config (and the model), tested on their own.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from emorec.config import TrainConfig
from emorec.engines.schedule import SGD_MOMENTUM
from emorec.resources import native_bf16


def select_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_tensor(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 NHWC -> NCHW view in channels-last memory on ``device``."""
    return torch.from_numpy(batch).permute(0, 3, 1, 2).to(device, non_blocking=True)


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype autocast runs in, or None for plain float32. ``auto`` takes the fastest
    sound choice: float16 on CUDA, bfloat16 on a CPU that computes it natively, float32
    on any other CPU (where bfloat16 is emulated and slower)."""
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision == "auto" and device.type == "cuda":
        return torch.float16  # where it is fast and sound, with loss scaling
    if cfg.precision == "auto" and native_bf16():
        return torch.bfloat16
    return None


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg``; the learning rate is set before every step by the loop."""
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=SGD_MOMENTUM, nesterov=True, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def num_outputs(model: nn.Module) -> int:
    """The classes a classifier outputs: its last linear layer's width."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Train only the classifier ``head`` while ``frozen`` (transfer's first epochs)."""
    for name, param in model.named_parameters():
        param.requires_grad_(not frozen or name.startswith("head."))
