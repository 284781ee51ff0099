"""The training configuration: one frozen dataclass, validated on creation.

The CLI, the MLproject entry points and the tuning grids fill it, nothing
else. Every invalid value is rejected here, before any data is read, with a
message naming the valid range or choices.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("none", "cosine", "step", "plateau", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16")
TTA_MODES = ("none", "flip")


@dataclass(frozen=True)
class TrainConfig:
    # What to train on what.
    model: str = "cnn_torch"  # a name from emorec.models.list_models()
    dataset: str = "synthetic"  # a name from emorec.data.FORMATS
    data_dir: str | None = None  # the dataset's root folder (or FER2013 CSV file)
    # Optimisation.
    epochs: int = 5  # upper bound; early stopping may end sooner
    batch_size: int = 64
    lr: float = 1e-3  # initial learning rate
    optimizer: str = "adam"  # adam | adamw | sgd (momentum 0.9, Nesterov)
    weight_decay: float = 1e-4
    # none | cosine | step (x0.1 every third) | plateau | onecycle (linear warm-up over the
    # first 15 % to lr, then cosine to ~0; stepped per batch, PyTorch)
    lr_schedule: str = "cosine"
    # Wall-time budget of the training loop in minutes, 0 = none (PyTorch). The schedule then
    # runs on whichever of epochs or elapsed time is further along, and training stops when
    # either is spent, so a run ends on time however busy the machine is.
    time_budget_min: float = 0.0
    dropout: float = 0.25
    label_smoothing: float = 0.0
    class_weighting: bool = False  # weight the loss by inverse class frequency
    early_stopping: int = 5  # patience in epochs on validation loss; 0 = off
    # auto: float16 autocast on CUDA, float32 on the CPU; fp32: float32 everywhere;
    # bf16: bfloat16 autocast (PyTorch), ~1.7x faster on CPUs with AVX512-BF16 or AMX.
    precision: str = "auto"
    augment: bool = True  # flips, small rotations/shifts/zoom, brightness
    random_erasing: float = 0.0  # share of training images with a random rectangle erased
    # Test-time augmentation, used by evaluation and every serving path alike (PyTorch):
    # none, or flip (the mean of the probabilities of the image and its mirror image).
    tta: str = "none"
    pretrained: bool = False  # ImageNet weights from the local torch cache (vgg16, resnet50)
    # Start from the weights of a logged or registered emorec model of the same architecture
    # (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model); "" = from scratch.
    # The classifier's rows of the classes both share are carried over (PyTorch).
    init_from: str = ""
    freeze_epochs: int = 0  # with init_from: train only the classifier head this many epochs
    # Input and preprocessing.
    image_size: int = 0  # square side; 0 = the model's default
    channels: int = 1  # 1 grayscale, 3 RGB
    face_detect: bool = False  # Haar-cascade face crop before resizing
    # Data selection and split.
    split: str = "auto"  # auto | official | grouped | stratified
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    samples: int = 1400  # size of the synthetic dataset
    angles: str = "S"  # KDEF camera angles, comma-separated or "all"
    include_neutral: bool = False  # original CK+: add first frames as neutral
    strict: bool = False  # fail on unreadable images instead of skipping them
    # Drop from training the images whose pixels duplicate a validation or test image, and
    # every copy of an image that the dataset labels two ways (counts logged with the run).
    dedupe: bool = False
    seed: int = 42
    # Tracking.
    experiment: str = ""  # MLflow experiment; "" = "emorec-<dataset>"
    run_name: str = ""  # "" = "<model>-<dataset>"
    log_model: bool = True  # log the model (native flavour + raw-image pyfunc)
    system_metrics: bool = True  # MLflow's CPU/memory/GPU sampling
    progress: bool = True  # progress bars

    def __post_init__(self) -> None:
        from emorec.data import FORMATS
        from emorec.data.splits import STRATEGIES
        from emorec.models import get_spec

        spec = get_spec(self.model)  # raises, listing valid models
        if self.dataset not in FORMATS:
            raise ValueError(f"unknown dataset {self.dataset!r}; valid datasets: "
                             f"{', '.join(FORMATS)}")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(1 <= self.batch_size <= 4096, f"batch_size must be in [1, 4096], got {self.batch_size}")
        _check(0 < self.lr <= 10, f"lr must be in (0, 10], got {self.lr}")
        _check(self.optimizer in OPTIMIZERS,
               f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        _check(self.lr_schedule in LR_SCHEDULES,
               f"unknown lr_schedule {self.lr_schedule!r}; valid: {', '.join(LR_SCHEDULES)}")
        _check(0 <= self.weight_decay < 1, f"weight_decay must be in [0, 1), got {self.weight_decay}")
        _check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        _check(0 <= self.label_smoothing < 1,
               f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        _check(self.early_stopping >= 0, f"early_stopping must be >= 0, got {self.early_stopping}")
        _check(self.precision in PRECISIONS,
               f"unknown precision {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        _check(self.precision != "bf16" or spec.framework == "torch",
               f"precision bf16 needs a PyTorch model; {self.model} is {spec.framework} "
               "(valid for it: auto, fp32)")
        _check(self.time_budget_min >= 0,
               f"time_budget_min must be >= 0 (0 = no budget), got {self.time_budget_min}")
        _check(0 <= self.random_erasing <= 1,
               f"random_erasing must be in [0, 1], got {self.random_erasing}")
        _check(self.tta in TTA_MODES, f"unknown tta {self.tta!r}; valid: {', '.join(TTA_MODES)}")
        torch_only = {"lr_schedule": (self.lr_schedule == "onecycle", "cosine, step, plateau"),
                      "tta": (self.tta != "none", "none"),
                      "time_budget_min": (self.time_budget_min > 0, "0"),
                      "init_from": (bool(self.init_from), '""')}
        for name, (used, valid) in torch_only.items():
            _check(not used or spec.framework == "torch",
                   f"{name} {getattr(self, name)} needs a PyTorch model; {self.model} is "
                   f"{spec.framework} (valid for it: {valid})")
        _check(self.freeze_epochs >= 0, f"freeze_epochs must be >= 0, got {self.freeze_epochs}")
        _check(not self.freeze_epochs or bool(self.init_from),
               "freeze_epochs needs init_from (the model whose backbone to keep)")
        _check(not (self.init_from and self.pretrained),
               "init_from and pretrained both choose the starting weights; give one")
        _check(self.image_size == 0 or spec.min_image_size <= self.image_size <= 512,
               f"image_size must be 0 (model default) or in [{spec.min_image_size}, 512] "
               f"for {self.model}, got {self.image_size}")
        _check(self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}")
        _check(self.split in STRATEGIES,
               f"unknown split {self.split!r}; valid: {', '.join(STRATEGIES)}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0 < value < 0.5, f"{name} must be in (0, 0.5), got {value}")
        _check(self.samples >= 14, f"samples must be >= 14 (two per emotion), got {self.samples}")
        _check(self.dataset == "synthetic" or bool(self.data_dir),
               f"dataset {self.dataset!r} needs data_dir (its root folder)")

    # Derived values, kept here so every caller agrees on them.
    @property
    def framework(self) -> str:
        from emorec.models import get_spec
        return get_spec(self.model).framework

    @property
    def input_size(self) -> int:
        from emorec.models import get_spec
        return self.image_size or get_spec(self.model).default_image_size

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"emorec-{self.dataset}"

    def dataset_options(self) -> dict[str, Any]:
        """The scanner options that apply to this config's dataset."""
        return {"synthetic": {"count": self.samples, "seed": self.seed},
                "kdef": {"angles": self.angles},
                "ckplus": {"include_neutral": self.include_neutral}}.get(self.dataset, {})

    def to_params(self) -> dict[str, Any]:
        """Every field, as logged to MLflow."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from strings or typed values (CLI, MLproject, tuning grids)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; valid: "
                             f"{', '.join(known)}")
        return cls(**{k: _coerce(v, known[k].default) for k, v in values.items()})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _coerce(value: Any, default: Any) -> Any:
    """Convert a string to the type of the field's default (bools accept true/false/1/0)."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value if value != "" or default is not None else None
    if isinstance(default, bool):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    try:
        return type(default)(value)
    except ValueError:
        raise ValueError(f"expected a {type(default).__name__}, got {value!r}") from None
