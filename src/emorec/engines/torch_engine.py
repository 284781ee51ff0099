"""PyTorch engine: CUDA with mixed precision when present, the CPU otherwise.

Precision (``TrainConfig.precision``): float16 autocast on CUDA by default, float32 on
the CPU; bfloat16 autocast on request, which needs no loss scaling and runs a CPU step
~1.7x faster where the CPU has bfloat16 instructions (``benchmarks/throughput.py``).

Batches come straight from the in-memory uint8 arrays (no per-sample
decoding, no DataLoader workers to fork); an NHWC NumPy batch viewed as NCHW
is already a channels-last tensor, the layout oneDNN and cuDNN convolutions
run fastest in, so it costs no copy.
"""

from __future__ import annotations

import copy


import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emorec.config import TrainConfig
from emorec.data.preprocess import normalize
from emorec.engines.base import (Callback, EarlyStopping, Engine, FitResult, StopTraining,
                                 TrainingClock, check_finite, class_weights, onecycle_factor,
                                 interactive, training_batches)
from emorec.models import build_model
from emorec.models.tta import FlipAveraged
from emorec.resources import cpu_flags, native_bf16


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
    params = model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    """The per-epoch scheduler; one-cycle is stepped per batch by ``fit`` itself."""
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, cfg.epochs // 3), gamma=0.1)
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Train only the classifier ``head`` while ``frozen`` (transfer's first epochs)."""
    for name, param in model.named_parameters():
        param.requires_grad_(not frozen or name.startswith("head."))


class TorchEngine(Engine):
    framework = "torch"

    def build(self, cfg: TrainConfig, num_classes: int) -> nn.Module:
        torch.manual_seed(cfg.seed)
        return build_model(cfg.model, num_classes=num_classes, in_channels=cfg.channels,
                           image_size=cfg.input_size, dropout=cfg.dropout,
                           pretrained=cfg.pretrained)

    def fit(self, model: nn.Module, train, val, cfg: TrainConfig,
            callbacks: list[Callback]) -> FitResult:
        (x_train, y_train), (x_val, y_val) = train, val
        device = select_device()
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        num_classes = int(max(y_train.max(), y_val.max()) + 1)
        model.to(device, memory_format=torch.channels_last)
        weight = (torch.from_numpy(class_weights(y_train, num_classes)).to(device)
                  if cfg.class_weighting else None)
        loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        opt = make_optimizer(model, cfg)
        sched = make_scheduler(opt, cfg)
        amp = autocast_dtype(cfg, device)
        scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
        stopper = EarlyStopping(cfg.early_stopping)
        result, best_state = FitResult(), None
        n_batches = -(-len(y_train) // cfg.batch_size)
        clock = TrainingClock(cfg.epochs * n_batches, cfg.time_budget_min)
        steps = 0
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            freeze_backbone(model, epoch <= cfg.freeze_epochs)
            seen, loss_sum, correct = 0, 0.0, 0
            bar = tqdm(training_batches(x_train, y_train, cfg.batch_size, cfg.augment, rng,
                                        cfg.random_erasing),
                       total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                       leave=False, disable=not interactive(cfg))
            for xb, yb in bar:
                if cfg.lr_schedule == "onecycle":
                    for group in opt.param_groups:
                        group["lr"] = cfg.lr * onecycle_factor(clock.progress(steps))
                xb, yb = to_tensor(xb, device), torch.from_numpy(yb).to(device)
                opt.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                    logits = model(xb)
                    loss = loss_fn(logits, yb)
                check_finite(loss.item(), epoch)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                steps += 1
                seen += len(yb)
                loss_sum += loss.item() * len(yb)
                correct += (logits.argmax(1) == yb).sum().item()
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
                if clock.out_of_time():  # the rest of the epoch would overrun the budget
                    break
            bar.close()
            val_loss, val_acc = self._evaluate(model, x_val, y_val, loss_fn, device, amp)
            check_finite(val_loss, epoch)
            logs = {"train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                    "val_loss": val_loss, "val_accuracy": val_acc,
                    "lr": opt.param_groups[0]["lr"]}
            for key, value in logs.items():
                result.history.setdefault(key, []).append(value)
            result.epochs_run, result.train_images = epoch, result.train_images + seen
            if stopper.improved(val_loss, epoch):
                best_state = copy.deepcopy(model.state_dict())
            if sched is not None:
                sched.step(val_loss) if cfg.lr_schedule == "plateau" else sched.step()
            try:
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
            except StopTraining:
                result.stopped_early = True
                break
            if stopper.should_stop(epoch) or clock.out_of_time():
                result.stopped_early = True
                break
        if best_state is not None:  # restore the weights of the best validation loss
            model.load_state_dict(best_state)
        result.best_epoch = stopper.best_epoch or result.epochs_run
        return result

    def run_tags(self, cfg: TrainConfig) -> dict[str, str]:
        device = select_device()
        dtype = autocast_dtype(cfg, device)
        return {"device": device.type, "cpu_flags": " ".join(cpu_flags()),
                "precision_used": "fp32" if dtype is None else str(dtype).removeprefix("torch.")}

    def start_from(self, model: nn.Module, source_model: nn.Module,
                   rows: list[tuple[int, int]]) -> None:
        if isinstance(source_model, FlipAveraged):  # the weights are the wrapped model's
            source_model = source_model.model
        target = model.state_dict()
        last = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
        classifier = {f"{last}.weight", f"{last}.bias"}
        for key, value in source_model.state_dict().items():
            if key in classifier and key in target:
                for new, old in rows:
                    target[key][new] = value[old]
            elif key in target and target[key].shape == value.shape:
                target[key] = value
        model.load_state_dict(target)

    def for_inference(self, model: nn.Module, cfg: TrainConfig) -> nn.Module:
        return FlipAveraged(model) if cfg.tta == "flip" else model

    @torch.inference_mode()
    def _evaluate(self, model, images, targets, loss_fn, device,
                  amp: torch.dtype | None) -> tuple[float, float]:
        model.eval()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(targets), 256):
            xb = to_tensor(normalize(images[start:start + 256]), device)
            yb = torch.from_numpy(targets[start:start + 256]).to(device)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(xb)
            loss_sum += loss_fn(logits.float(), yb).item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        return loss_sum / len(targets), correct / len(targets)

    @torch.inference_mode()
    def predict_proba(self, model: nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        model.eval()
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            logits = model(to_tensor(normalize(images[start:start + batch_size]), device))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


