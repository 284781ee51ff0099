"""PyTorch engine: CUDA with mixed precision when present, the CPU otherwise.

Precision (``TrainConfig.precision``): float16 autocast on CUDA by default, float32 on
the CPU; bfloat16 autocast on request, which needs no loss scaling and runs a CPU step
faster where the CPU has bfloat16 instructions.

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

from emorec.config import TrainConfig
from emorec.data.preprocess import network_input
from emorec.engines.base import Engine, FitSession
from emorec.engines.batches import class_weights
from emorec.engines.torch_setup import (
    autocast_dtype,
    freeze_backbone,
    make_optimizer,
    num_outputs,
    select_device,
    to_tensor,
)
from emorec.models.ensemble import SnapshotEnsemble
from emorec.models.tta import WRAPPERS, ViewAveraged
from emorec.resources import cpu_flags


class _WithSoftmax(nn.Module):
    """The model with its softmax, for an ONNX graph that outputs probabilities."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.softmax(self.inner(x).float(), dim=1)


class _TorchFit(FitSession):
    """One model's training on the best device: mixed precision where it is sound, the
    optimizer of ``cfg``, channels-last memory."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, train_targets: np.ndarray):
        self.model, self.num_classes = model, num_outputs(model)
        self.device = select_device()
        torch.manual_seed(cfg.seed)
        model.to(self.device, memory_format=torch.channels_last)
        weight = (
            torch.from_numpy(class_weights(train_targets, self.num_classes)).to(self.device)
            if cfg.class_weighting
            else None
        )
        self.loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
        self.opt = make_optimizer(model, cfg)
        self.amp = autocast_dtype(cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp is torch.float16)
        # The averaged copy is what validation sees and what is kept.
        self.ema_decay, self.ema_steps = cfg.ema, 0
        self.evaluated = copy.deepcopy(model) if cfg.ema else model

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, batch: np.ndarray, targets: np.ndarray) -> tuple[float, int]:
        self.model.train()
        xb = to_tensor(batch, self.device)
        yb = torch.from_numpy(targets).to(self.device)  # class probabilities
        self.opt.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.model(xb)
            loss = self.loss_fn(logits.float(), yb)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        if self.ema_decay:
            self._average()
        return loss.item(), int((logits.argmax(1) == yb.argmax(1)).sum().item())

    @torch.no_grad()
    def _average(self) -> None:
        """One step of the exponential moving average, its decay warmed up (as timm's
        ModelEma does) so that the first steps' average is not the random start."""
        self.ema_steps += 1
        decay = min(self.ema_decay, (1 + self.ema_steps) / (10 + self.ema_steps))
        averaged = self.evaluated.state_dict()
        for key, value in self.model.state_dict().items():
            if value.dtype.is_floating_point:
                averaged[key].lerp_(value, 1 - decay)
            else:  # BN's batch counter
                averaged[key].copy_(value)

    @torch.inference_mode()
    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        self.evaluated.eval()
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            logits = self.evaluated(to_tensor(batch, self.device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def snapshot(self):
        return copy.deepcopy(self.evaluated.state_dict())

    def restore(self, snapshot) -> None:
        self.model.load_state_dict(snapshot)

    def freeze_backbone(self, frozen: bool) -> None:
        freeze_backbone(self.model, frozen)


class TorchEngine(Engine):
    framework = "torch"
    requirements = ("torch", "torchvision")

    def load_framework(self) -> None:
        # An optimizer imports torch's compiler stack (torch._dynamo) when it takes its
        # first parameters, whether or not anything is compiled.
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.0)

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def fit_session(
        self, model: nn.Module, cfg: TrainConfig, train_targets: np.ndarray
    ) -> FitSession:
        return _TorchFit(model, cfg, train_targets)

    def run_tags(self, cfg: TrainConfig) -> dict[str, str]:
        device = select_device()
        dtype = autocast_dtype(cfg, device)
        return {
            "device": device.type,
            "cpu_flags": " ".join(cpu_flags()),
            "precision_used": "fp32" if dtype is None else str(dtype).removeprefix("torch."),
        }

    def start_from(
        self, model: nn.Module, source_model: nn.Module, rows: list[tuple[int, int]]
    ) -> None:
        source_model = self.without_tta(source_model)  # the weights are the wrapped model's
        if isinstance(source_model, SnapshotEnsemble):
            source_model = source_model.members[-1]  # the last cycle's weights
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

    def for_inference(self, model: nn.Module, cfg: TrainConfig, snapshots: list = ()) -> nn.Module:
        if snapshots:
            members = [copy.deepcopy(model) for _ in snapshots]
            for member, weights in zip(members, snapshots):
                member.load_state_dict(weights)
            model = SnapshotEnsemble(members)
        wrapper = WRAPPERS.get(cfg.tta)
        return wrapper(model) if wrapper else model

    def passes_per_image(self, model: nn.Module) -> int:
        views = model.passes if isinstance(model, ViewAveraged) else 1
        inner = self.without_tta(model)
        return views * (len(inner.members) if isinstance(inner, SnapshotEnsemble) else 1)

    def without_tta(self, model: nn.Module) -> nn.Module:
        return model.model if isinstance(model, ViewAveraged) else model

    @torch.inference_mode()
    def probabilities(self, model: nn.Module, batch: np.ndarray) -> np.ndarray:
        model.eval()
        logits = model(to_tensor(batch, next(model.parameters()).device))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()

    def count_parameters(self, model: nn.Module) -> int:
        return int(sum(p.numel() for p in model.parameters()))

    def flops_per_image(self, model: nn.Module, shape: tuple[int, int, int]) -> float:
        from torch.utils.flop_counter import FlopCounterMode

        h, w, c = shape
        device = next(model.parameters()).device
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            model.eval()(torch.zeros((1, c, h, w), device=device))
        return float(counter.get_total_flops())

    def weights_mb(self, model: nn.Module) -> float:
        tensors = [*model.parameters(), *model.buffers()]
        return sum(t.numel() * t.element_size() for t in tensors) / 2**20

    def log_flavor(
        self,
        model: nn.Module,
        name: str,
        example: np.ndarray,
        *,
        pip_requirements: list[str],
        code_paths: list[str],
    ) -> None:
        import mlflow.pytorch
        from mlflow.models import infer_signature

        model = model.cpu().eval()
        x = network_input(example, "NCHW")
        with torch.inference_mode():
            y = model(torch.from_numpy(x)).numpy()
        # Pickle (with our code beside it) rather than MLflow's default torch.export
        # graph, which fixes the batch size traced from the example.
        mlflow.pytorch.log_model(
            model,
            name=name,
            signature=infer_signature(x, y),
            code_paths=code_paths,
            pip_requirements=pip_requirements,
            serialization_format="pickle",
        )

    def save_network(self, model: nn.Module, folder: Path) -> Path:
        # cloudpickle, as MLflow's flavour pickles: a hook or a lambda on the model
        # pickles too. The pyfunc has emorec's code on its path for the classes.
        import cloudpickle

        path = Path(folder) / "network.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.cpu().eval(), path, pickle_module=cloudpickle)
        return path

    def load_network(self, path: str) -> nn.Module:
        # A pickle of the model object, like the flavour's: loading any MLflow model
        # trusts its pickles as much.
        return torch.load(path, map_location="cpu", weights_only=False)

    def export_onnx(
        self, model: nn.Module, out, prep, *, opset: int, input_name: str, output_name: str
    ):
        # The legacy TorchScript exporter (dynamo=False): the dynamo one needs onnxscript.
        # eval() on the wrapper: the exporter restores the wrapper's mode on all submodules.
        wrapped = _WithSoftmax(model.cpu()).eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(
                wrapped,
                (torch.zeros((2, prep.channels, prep.image_size, prep.image_size)),),
                str(out),
                dynamo=False,
                opset_version=opset,
                input_names=[input_name],
                output_names=[output_name],
                dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
            )

        def reference(x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return wrapped(torch.from_numpy(x)).numpy()

        return "NCHW", reference
