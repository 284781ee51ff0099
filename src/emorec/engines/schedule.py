"""How far training is and what it does next: the learning-rate schedules, the wall-time
clock, early stopping, and the optimizer constants both frameworks build from."""

from __future__ import annotations

import math
import time

from emorec.config import TrainConfig

SGD_MOMENTUM = 0.9  # with Nesterov
ONECYCLE_WARMUP = 0.15  # share of training spent warming the learning rate up
ONECYCLE_START = 0.04  # the warm-up starts at lr / 25 (PyTorch's OneCycleLR default)
STEP_GAMMA = 0.1  # "step": this factor after each third of training
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.5, 2  # "plateau": halve after 2 epochs without progress
MIN_DELTA = 1e-6  # a validation loss lower by less than this is no improvement


def onecycle_factor(progress: float) -> float:
    """The one-cycle learning-rate multiplier at ``progress`` (0..1) of training: a linear
    warm-up to 1, then a cosine down to 0 (Smith & Topin, 2019)."""
    if progress < ONECYCLE_WARMUP:
        return ONECYCLE_START + (1 - ONECYCLE_START) * progress / ONECYCLE_WARMUP
    done = min(1.0, (progress - ONECYCLE_WARMUP) / (1 - ONECYCLE_WARMUP))
    return 0.5 * (1 + math.cos(math.pi * done))


class LearningRate:
    """The learning rate of every step, for every schedule and framework alike: a function
    of training's progress (``TrainingClock``), times the plateau's cuts. With
    ``snapshots`` the schedule runs once per cycle, each an equal share of training."""

    def __init__(self, cfg: TrainConfig):
        self.base, self.kind = cfg.lr, cfg.lr_schedule
        self.cycles = max(1, cfg.snapshots)
        self.cut, self.bad_epochs, self.best = 1.0, 0, float("inf")

    def cycle(self, progress: float) -> int:
        """The 0-based learning-rate cycle training is in at ``progress``."""
        return min(self.cycles - 1, int(max(progress, 0.0) * self.cycles))

    def at(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        progress = progress * self.cycles - self.cycle(progress)  # within the cycle
        if self.kind == "onecycle":
            return self.base * onecycle_factor(progress)
        if self.kind == "cosine":
            return self.base * 0.5 * (1 + math.cos(math.pi * progress))
        if self.kind == "step":
            return self.base * STEP_GAMMA ** min(2, int(progress * 3))
        return self.base * self.cut

    def epoch_end(self, val_loss: float) -> None:
        """ "plateau": cut the rate once the validation loss has not improved for
        ``PLATEAU_PATIENCE`` epochs."""
        if val_loss < self.best - MIN_DELTA:
            self.best, self.bad_epochs = val_loss, 0
            return
        self.bad_epochs += 1
        if self.kind == "plateau" and self.bad_epochs > PLATEAU_PATIENCE:
            self.cut, self.bad_epochs = self.cut * PLATEAU_FACTOR, 0


class TrainingClock:
    """How far training is along: the share of its steps done or, under a wall-time
    budget, the share of the budget spent, whichever is larger."""

    def __init__(self, total_steps: int, budget_minutes: float = 0.0):
        self.total_steps, self.budget_s = max(1, total_steps), 60.0 * budget_minutes
        self.started = time.perf_counter()

    def progress(self, steps_done: int) -> float:
        by_time = (time.perf_counter() - self.started) / self.budget_s if self.budget_s else 0.0
        return max(steps_done / self.total_steps, by_time)

    def out_of_time(self) -> bool:
        return bool(self.budget_s) and time.perf_counter() - self.started >= self.budget_s


class EarlyStopping:
    """Tracks the best validation loss; says when patience has run out."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = float("inf")
        self.best_epoch = 0

    def improved(self, val_loss: float, epoch: int) -> bool:
        if val_loss < self.best - MIN_DELTA:
            self.best, self.best_epoch = val_loss, epoch
            return True
        return False

    def should_stop(self, epoch: int) -> bool:
        return self.patience > 0 and epoch - self.best_epoch >= self.patience
