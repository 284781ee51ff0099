"""The training configuration: one frozen dataclass, validated on creation.

The CLI, the MLproject entry points and the tuning grids fill it, nothing
else. Every invalid value is rejected here, before any data is read, with a
message naming the valid range or choices.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from emorec.errors import UserError

OPTIMIZERS = ("adam", "adamw", "sgd")
MAX_SAMPLES = 1_000_000  # synthetic faces: a million 48-px images is ~2.3 GB in memory
LR_SCHEDULES = ("none", "cosine", "step", "plateau", "onecycle")
PRECISIONS = ("auto", "fp32", "bf16")
TTA_MODES = ("none", "flip", "tencrop")
CYCLIC_SCHEDULES = ("onecycle", "cosine")  # the schedules a snapshot ensemble can restart
MAX_SNAPSHOTS = 10  # members of an ensemble: each costs a forward pass at serving


def option(
    default: Any,
    help: str,
    *,
    choices: tuple | Callable[[], Any] | None = None,
    tunable: bool = True,
    compared: bool = True,
    reported: int = 0,
    needs: str | None = None,
    needs_values: tuple | None = None,
):
    """A config field with what it is: ``help`` (one sentence), ``choices`` (a tuple, or a
    function returning the names of a registry, read when needed), ``tunable`` (a study may
    vary it), ``compared`` (a resumed study checks it is unchanged), ``reported`` (its
    place among the hyperparameters the comparison report shows; 0 = not shown), ``needs``
    (the optional engine feature, from ``emorec.models.FEATURES``, that ``needs_values``
    need; by default any value but the default does)."""
    return field(
        default=default,
        metadata={
            "help": help,
            "choices": choices,
            "tunable": tunable,
            "compared": compared,
            "reported": reported,
            "needs": needs,
            "needs_values": needs_values,
        },
    )


def _models():
    from emorec.models import list_models

    return list_models()


def _datasets():
    from emorec.data import FORMATS

    return tuple(FORMATS)


def _detectors():
    from emorec.data.faces import DETECTORS

    return DETECTORS


def _splits():
    from emorec.data.splits import STRATEGIES

    return STRATEGIES


@dataclass(frozen=True)
class TrainConfig:
    # What to train on what (named on the command line, never tuned).
    model: str = option(
        "cnn_torch",
        "The model to train (emorec models lists them).",
        choices=_models,
        tunable=False,
    )
    dataset: str = option(
        "synthetic",
        "The dataset format; synthetic needs no download (emorec datasets lists them).",
        choices=_datasets,
        tunable=False,
    )
    data_dir: str | None = option(
        None,
        "The dataset's root folder (the CSV file for "
        "FER2013); every dataset but synthetic needs it.",
        tunable=False,
        compared=False,
    )
    # Optimisation.
    # The defaults are the first run's (`make run`): enough small steps for the proposed CNN
    # to learn the synthetic faces in a few minutes on 2 cores (fewer, larger steps do not).
    epochs: int = option(
        12, "Upper bound on the training epochs; early stopping may end sooner.", reported=4
    )
    batch_size: int = option(32, "Images per training step, 1 to 4096.", reported=2)
    lr: float = option(1e-3, "Initial learning rate, in (0, 10].", reported=1)
    optimizer: str = option(
        "adam",
        "The optimizer; sgd uses momentum 0.9 with Nesterov.",
        choices=OPTIMIZERS,
        reported=3,
    )
    weight_decay: float = option(1e-4, "Weight decay, in [0, 1).", reported=6)
    lr_schedule: str = option(
        "cosine",
        "The learning-rate schedule: none (constant), cosine to ~0, step (x0.1 "
        "after each third of the epochs), plateau (x0.5 after 2 epochs without a lower "
        "validation loss), or onecycle (a linear warm-up over the first 15 % to lr, then "
        "cosine to ~0, stepped per batch).",
        choices=LR_SCHEDULES,
    )
    time_budget_min: float = option(
        0.0,
        "Wall-time budget of the training loop in minutes, 0 for none; the schedule "
        "follows whichever of epochs or elapsed time is further along and training stops "
        "when either is spent, so a run ends on time however busy the machine is.",
    )
    # 0 by default: on small data, dropout after every stage slowed learning more than it
    # regularised (the augmentation already does); long real-data recipes set their own.
    dropout: float = option(
        0.0,
        "Dropout rate, in [0, 1): in the classifier head, and after "
        "every conv stage of the proposed CNN and SANet.",
        reported=5,
    )
    label_smoothing: float = option(0.0, "Label smoothing of the cross-entropy loss, in [0, 1).")
    class_weighting: bool = option(False, "Weight the loss by inverse class frequency.")
    early_stopping: int = option(
        5,
        "Patience in epochs without a lower validation loss "
        "before training stops; 0 turns early stopping off.",
    )
    precision: str = option(
        "auto",
        "Compute precision: auto (float16 autocast on CUDA, bfloat16 on a CPU with "
        "native bfloat16, else float32), fp32 everywhere, or bf16 autocast (faster on CPUs "
        "with AVX512-BF16 or AMX).",
        choices=PRECISIONS,
        needs="bf16",
        needs_values=("bf16",),
    )
    augment: bool = option(
        True, "Augment training images: flips, small rotations, shifts and zoom, brightness."
    )
    random_erasing: float = option(
        0.0, "Share of training images with a random rectangle erased, in [0, 1]."
    )
    mixup: float = option(
        0.0,
        "Mixup: blend each training image with another by a share "
        "drawn from Beta(alpha, alpha); this is alpha, 0 for off.",
    )
    cutmix: float = option(
        0.0,
        "CutMix: paste a rectangle of another training image, its "
        "area drawn from Beta(alpha, alpha); this is alpha, 0 for off (with "
        "mixup too, each batch gets one of the two).",
    )
    ema: float = option(
        0.0,
        "Exponential moving average of the weights, its decay per step "
        "in [0, 1) (e.g. 0.999), 0 for off: validation, the kept epoch and "
        "the logged model use the averaged weights.",
        needs="ema",
    )
    snapshots: int = option(
        0,
        "Snapshot ensemble: train in this many learning-rate cycles, each restarting "
        "the schedule, and keep the weights at the end of every cycle; evaluation and "
        "serving average their probabilities (costing this many passes). 0 for off.",
        needs="snapshots",
    )
    tta: str = option(
        "none",
        "Test-time augmentation, used by evaluation and every serving "
        "path alike: none, flip (the mean of the probabilities of the image "
        "and its mirror image), or tencrop (five crops of 92 % of the side and their "
        "mirror images: ten passes).",
        choices=TTA_MODES,
        needs="tta",
    )
    pretrained: bool = option(
        False, "Start from ImageNet weights in the local torch cache (vgg16, resnet50)."
    )
    init_from: str = option(
        "",
        "Start from the weights of a logged or registered emorec model of the same "
        "architecture (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model), "
        "carrying over the classifier rows of the classes both share; empty to train from "
        "scratch.",
    )
    freeze_epochs: int = option(
        0,
        "With init_from: train only the classifier head for this many epochs first.",
        needs="freeze",
    )
    # Input and preprocessing.
    image_size: int = option(
        0, "Side of the square input image in pixels; 0 for the model's default.", reported=7
    )
    channels: int = option(1, "Input channels: 1 for grayscale, 3 for RGB.")
    face_detect: bool = option(
        False,
        "Photos (not crops): cut out the largest face, its eyes levelled, framed as "
        "FER2013 frames faces, before resizing; serving does the same to every face.",
    )
    detector: str = option(
        "yunet",
        "What finds faces, in training and in serving: yunet (OpenCV's YuNet, "
        "with eyes to level a face by) or haar (OpenCV's frontal cascade, no eyes).",
        choices=_detectors,
        tunable=False,
    )
    # Data selection and split.
    split: str = option(
        "auto",
        "How to split train, validation and test: auto takes the "
        "dataset's official split, else groups by subject, else "
        "stratifies by class.",
        choices=_splits,
    )
    folds: int = option(
        0,
        "K-fold cross-validation: every image tested once, in K runs nested under one "
        "(subject-independent where the dataset has subject ids, stratified otherwise), "
        "and a final fit on all images; K >= 2, or 0 for one train/val/test split.",
        tunable=False,
    )
    val_fraction: float = option(0.15, "Share of the images held out for validation, in (0, 0.5).")
    test_fraction: float = option(0.15, "Share of the images held out for testing, in (0, 0.5).")
    samples: int = option(1400, "Size of the synthetic dataset, at least 14.")
    angles: str = option("S", "KDEF camera angles, comma-separated (FL, HL, S, HR, FR), or all.")
    include_neutral: bool = option(
        False, "Original CK+: add each sequence's first frame as a neutral image."
    )
    strict: bool = option(False, "Fail on unreadable images instead of skipping them.")
    dedupe: bool = option(
        False,
        "Drop from training the images whose pixels duplicate a "
        "validation or test image, and every copy of an image the dataset "
        "labels two ways (counts logged with the run).",
    )
    seed: int = option(42, "Random seed of the split, the initial weights and the augmentation.")
    # Tracking (how a run is recorded, never tuned nor compared).
    experiment: str = option(
        "", "MLflow experiment; empty for emorec-<dataset>.", tunable=False, compared=False
    )
    run_name: str = option(
        "", "MLflow run name; empty for <model>-<dataset>.", tunable=False, compared=False
    )
    log_model: bool = option(
        True,
        "Log the trained model with the run (its native flavour "
        "and a pyfunc that takes raw images).",
        tunable=False,
        compared=False,
    )
    system_metrics: bool = option(
        True,
        "Sample CPU, memory and GPU use into the run (MLflow system metrics).",
        tunable=False,
        compared=False,
    )
    progress: bool = option(True, "Show progress bars.", tunable=False, compared=False)

    def __post_init__(self) -> None:
        from emorec.models import get_spec

        spec = get_spec(self.model)  # raises, listing valid models
        for f in fields(self):
            valid = choices(f.name)
            value = getattr(self, f.name)
            _check(
                valid is None or value in valid,
                f"unknown {f.name} {value!r}; valid: {', '.join(map(str, valid or ()))}",
            )
            feature = f.metadata["needs"]
            _check(
                not feature or not _needs(f, value) or spec.supports(feature),
                f"{f.name} {value} needs a {spec.supporting(feature)} model; {self.model} "
                f"is {spec.framework} (valid for it: {_without_feature(f)})",
            )
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(
            1 <= self.batch_size <= 4096, f"batch_size must be in [1, 4096], got {self.batch_size}"
        )
        _check(0 < self.lr <= 10, f"lr must be in (0, 10], got {self.lr}")
        _check(
            0 <= self.weight_decay < 1, f"weight_decay must be in [0, 1), got {self.weight_decay}"
        )
        _check(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        _check(
            0 <= self.label_smoothing < 1,
            f"label_smoothing must be in [0, 1), got {self.label_smoothing}",
        )
        _check(self.early_stopping >= 0, f"early_stopping must be >= 0, got {self.early_stopping}")
        _check(
            self.time_budget_min >= 0,
            f"time_budget_min must be >= 0 (0 = no budget), got {self.time_budget_min}",
        )
        _check(
            0 <= self.random_erasing <= 1,
            f"random_erasing must be in [0, 1], got {self.random_erasing}",
        )
        _check(
            self.mixup >= 0 and self.cutmix >= 0,
            f"mixup and cutmix must be >= 0 (0 = off), got {self.mixup}, {self.cutmix}",
        )
        _check(0 <= self.ema < 1, f"ema must be in [0, 1) (0 = off), got {self.ema}")
        _check(
            self.snapshots == 0 or 2 <= self.snapshots <= MAX_SNAPSHOTS,
            f"snapshots must be 0 (off) or in [2, {MAX_SNAPSHOTS}], got {self.snapshots}",
        )
        _check(
            not self.snapshots or self.lr_schedule in CYCLIC_SCHEDULES,
            f"snapshots restarts the learning-rate schedule every cycle: lr_schedule must be "
            f"{' or '.join(CYCLIC_SCHEDULES)}, got {self.lr_schedule}",
        )
        _check(
            not self.snapshots or not self.early_stopping,
            "snapshots keeps the last weights of every cycle, not the best epoch's: "
            f"early_stopping must be 0, got {self.early_stopping}",
        )
        _check(
            self.folds == 0 or self.folds >= 2,
            f"folds must be >= 2 (or 0 for one train/val/test split), got {self.folds}",
        )
        _check(self.freeze_epochs >= 0, f"freeze_epochs must be >= 0, got {self.freeze_epochs}")
        _check(
            not self.freeze_epochs or bool(self.init_from),
            "freeze_epochs needs init_from (the model whose backbone to keep)",
        )
        _check(
            not (self.init_from and self.pretrained),
            "init_from and pretrained both choose the starting weights; give one",
        )
        _check(
            self.image_size == 0 or spec.min_image_size <= self.image_size <= 512,
            f"image_size must be 0 (model default) or in [{spec.min_image_size}, 512] "
            f"for {self.model}, got {self.image_size}",
        )
        _check(self.channels in (1, 3), f"channels must be 1 or 3, got {self.channels}")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0 < value < 0.5, f"{name} must be in (0, 0.5), got {value}")
        _check(
            14 <= self.samples <= MAX_SAMPLES,
            f"samples must be in [14, {MAX_SAMPLES}] (two per emotion at least; the synthetic "
            f"set is generated in memory), got {self.samples}",
        )
        _check(
            self.dataset == "synthetic" or bool(self.data_dir),
            f"dataset {self.dataset!r} needs data_dir (its root folder)",
        )

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
    def preprocessing(self):
        """The ``Preprocessing`` of this config: how raw images become the model's input,
        in training and, stored with the model, in serving."""
        from emorec.data.preprocess import Preprocessing

        return Preprocessing(self.input_size, self.channels, self.face_detect, self.detector)

    @property
    def experiment_name(self) -> str:
        return self.experiment or f"emorec-{self.dataset}"

    def dataset_options(self) -> dict[str, Any]:
        """The scanner options that apply to this config's dataset."""
        return {
            "synthetic": {"count": self.samples, "seed": self.seed},
            "kdef": {"angles": self.angles},
            "ckplus": {"include_neutral": self.include_neutral},
        }.get(self.dataset, {})

    def to_params(self) -> dict[str, Any]:
        """Every field, as logged to MLflow."""
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from strings or typed values (CLI, MLproject, tuning grids)."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(known)}")
        return cls(**{k: _coerce(k, v, known[k].default) for k, v in values.items()})

    @classmethod
    def from_logged(cls, params: dict[str, str]) -> TrainConfig:
        """The config a run logged (its parameters hold more: split sizes, digests ...)."""
        known = {f.name for f in fields(cls)}
        return cls.from_mapping({k: v for k, v in params.items() if k in known})


# The field lists other modules act on, derived from the metadata above.
NOT_TUNABLE = tuple(f.name for f in fields(TrainConfig) if not f.metadata["tunable"])
NOT_COMPARED = tuple(f.name for f in fields(TrainConfig) if not f.metadata["compared"])
REPORTED = tuple(
    f.name
    for f in sorted(
        (f for f in fields(TrainConfig) if f.metadata["reported"]),
        key=lambda f: f.metadata["reported"],
    )
)


def choices(name: str) -> tuple | None:
    """The valid values of field ``name``, or None when any value of its type may do."""
    valid = TrainConfig.__dataclass_fields__[name].metadata["choices"]
    return tuple(valid()) if callable(valid) else valid


def describe(name: str, default: bool = True) -> str:
    """What field ``name`` is, its choices and (with ``default``) its default: the help of
    the command-line flags that set it."""
    f = TrainConfig.__dataclass_fields__[name]
    valid = choices(name)
    listed = f" Choices: {', '.join(map(str, valid))}." if valid else ""
    return f"{f.metadata['help']}{listed}" + (f" Default: {_show(f.default)}." if default else "")


def parse_bool(text: Any) -> bool:
    """The one reading of a yes/no value given as text: true/false, 1/0, yes/no, on/off."""
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise UserError(f"expected true or false, got {text!r}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def _needs(f: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` of field ``f`` asks for the optional feature the field names."""
    values = f.metadata["needs_values"]
    return value in values if values is not None else value != f.default


def _without_feature(f: dataclasses.Field) -> str:
    """The values of ``f`` that every model supports, for the error that refuses one."""
    valid = choices(f.name)
    if valid is None:
        return _show(f.default)
    return ", ".join(str(v) for v in valid if not _needs(f, v))


def _show(value: Any) -> str:
    """A default as a user types it."""
    if value is None or value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """Convert a string to the type of the field's default (bools through ``parse_bool``);
    a whole-number float is an integer field's integer (MLproject parameters are floats)."""
    whole_number_field = isinstance(default, int) and not isinstance(default, bool)
    if whole_number_field and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value if value != "" or default is not None else None
    try:
        if isinstance(default, bool):
            return parse_bool(value)
        return _whole(value) if whole_number_field else type(default)(value)
    except ValueError as exc:
        kind = "whole number" if whole_number_field else type(default).__name__
        reason = str(exc) if isinstance(exc, UserError) else f"expected a {kind}, got {value!r}"
        raise UserError(f"{name}: {reason}") from None


def _whole(text: str) -> int:
    """ "3" or "3.0" -> 3; "3.5" raises ValueError."""
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)
