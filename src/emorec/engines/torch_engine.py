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
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from emorec.config import TrainConfig
from emorec.data.preprocess import normalize
from emorec.engines.base import (EVAL_BATCH, Callback, EarlyStopping, Engine, FitResult,
                                 StopTraining, TrainingClock, check_finite, class_weights,
                                 onecycle_factor, interactive, training_batches)
from emorec.engines.torch_setup import (autocast_dtype, freeze_backbone, make_optimizer,
                                        make_scheduler, select_device, to_tensor)
from emorec.models import build_model
from emorec.models.tta import FlipAveraged
from emorec.resources import cpu_flags


class _WithSoftmax(nn.Module):
    """The model with its softmax, for an ONNX graph that outputs probabilities."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x).float(), dim=1)


class TorchEngine(Engine):
    framework = "torch"
    requirements = ("torch", "torchvision")

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
        source_model = self.without_tta(source_model)  # the weights are the wrapped model's
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

    def without_tta(self, model: nn.Module) -> nn.Module:
        return model.model if isinstance(model, FlipAveraged) else model

    @torch.inference_mode()
    def _evaluate(self, model, images, targets, loss_fn, device,
                  amp: torch.dtype | None) -> tuple[float, float]:
        model.eval()
        loss_sum, correct = 0.0, 0
        for start in range(0, len(targets), EVAL_BATCH):
            xb = to_tensor(normalize(images[start:start + EVAL_BATCH]), device)
            yb = torch.from_numpy(targets[start:start + EVAL_BATCH]).to(device)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                logits = model(xb)
            loss_sum += loss_fn(logits.float(), yb).item() * len(yb)
            correct += (logits.argmax(1) == yb).sum().item()
        return loss_sum / len(targets), correct / len(targets)

    @torch.inference_mode()
    def probabilities(self, model: nn.Module, batch: np.ndarray) -> np.ndarray:
        model.eval()
        logits = model(to_tensor(batch, next(model.parameters()).device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def count_parameters(self, model: nn.Module) -> int:
        return int(sum(p.numel() for p in model.parameters()))

    def weights_mb(self, model: nn.Module) -> float:
        tensors = [*model.parameters(), *model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20

    def save_flavor(self, model: nn.Module, example: np.ndarray, path: str, *,
                    pip_requirements: list[str], code_path: str | None = None,
                    mlflow_model=None) -> None:
        import mlflow.pytorch
        from mlflow.models import infer_signature

        model = model.cpu().eval()
        x = np.ascontiguousarray(normalize(example).transpose(0, 3, 1, 2))
        with torch.inference_mode():
            y = model(torch.from_numpy(x)).numpy()
        # Pickle (with our code beside it) rather than MLflow's default torch.export
        # graph, which fixes the batch size traced from the input example.
        mlflow.pytorch.save_model(model, path, mlflow_model=mlflow_model,
                                  signature=infer_signature(x, y), input_example=x,
                                  code_paths=[code_path] if code_path else None,
                                  pip_requirements=pip_requirements,
                                  serialization_format="pickle")

    def load_flavor(self, path: str) -> nn.Module:
        import mlflow.pytorch

        return mlflow.pytorch.load_model(path, map_location="cpu")

    def save_network(self, model: nn.Module, example: np.ndarray, path: str, *,
                     pip_requirements: list[str]) -> None:
        # One file pickled as the flavour pickles it (cloudpickle: a hook or a lambda on
        # the model pickles too), without the flavour's folder around it (metadata,
        # environment files, a signature from a forward pass): ~13 instead of ~36 ms of
        # every run's end (measured). The pyfunc that carries it has emorec's code on its
        # path, which the pickle's classes are imported from.
        from mlflow.pytorch import pickle_module

        torch.save(model.cpu().eval(), path, pickle_module=pickle_module)

    def load_network(self, path: str) -> nn.Module:
        if Path(path).is_dir():  # a pyfunc logged before, carrying the MLflow flavour
            return self.load_flavor(path)
        from mlflow.pytorch import pickle_module

        # A pickle of the model object, like the flavour's: emorec's own, or a logged
        # model the user chose to load (loading any MLflow pickle trusts it as much).
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=pickle_module)

    def export_onnx(self, model: nn.Module, out, prep, *, opset: int, input_name: str,
                    output_name: str):
        # The legacy TorchScript exporter (dynamo=False): the dynamo one needs onnxscript.
        # eval() on the wrapper: the exporter restores the wrapper's mode on all submodules.
        wrapped = _WithSoftmax(model.cpu()).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(wrapped, (torch.zeros((2, prep.channels, prep.image_size,
                                                     prep.image_size)),), str(out),
                              dynamo=False, opset_version=opset, input_names=[input_name],
                              output_names=[output_name],
                              dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}})

        def reference(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return wrapped(torch.from_numpy(x)).numpy()
        return "NCHW", reference
