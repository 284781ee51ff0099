"""The pieces of the FER2013 recipe: one-cycle on a wall-time budget, random erasing,
dedupe, the precision ``auto`` picks, and ``emorec tune --preset``."""

import argparse
import shutil

import mlflow
import numpy as np
import pytest

import fixtures
from conftest import TINY
from emorec.cli import main
from emorec.config import TrainConfig
from emorec.data.preprocess import normalize
from emorec.data.splits import Split
from emorec.data.types import Dataset
from emorec.engines.schedule import ONECYCLE_START, LearningRate, TrainingClock, onecycle_factor


def test_onecycle_warms_up_then_anneals_to_zero():
    assert onecycle_factor(0.0) == pytest.approx(ONECYCLE_START)
    assert onecycle_factor(0.15) == pytest.approx(1.0)
    values = [onecycle_factor(p) for p in np.linspace(0.15, 1.0, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # falls all the way
    assert onecycle_factor(1.0) == pytest.approx(0.0, abs=1e-12)
    assert onecycle_factor(2.0) == pytest.approx(0.0, abs=1e-12)  # past the end: stays 0


class FakeTime:
    """A clock for ``emorec.engines.schedule``: each reading moves it ``tick`` seconds on."""

    def __init__(self, tick: float = 0.0):
        self.now, self.tick = 100.0, tick

    def perf_counter(self) -> float:
        self.now += self.tick
        return self.now


def test_the_clock_takes_whichever_of_steps_and_time_is_further_along(monkeypatch):
    import emorec.engines.schedule as schedule

    fake = FakeTime()
    monkeypatch.setattr(schedule, "time", fake)
    clock = TrainingClock(total_steps=100, budget_minutes=1.0)
    assert clock.progress(10) == pytest.approx(0.1)  # steps ahead of time
    fake.now += 30
    assert clock.progress(10) == pytest.approx(0.5) and not clock.out_of_time()
    fake.now += 30
    assert clock.out_of_time()
    assert not TrainingClock(total_steps=100).out_of_time()  # no budget: never


def test_a_time_budget_ends_training_on_time_and_annealed(monkeypatch):
    import emorec.engines.schedule as schedule
    from emorec.engines import get_engine

    monkeypatch.setattr(schedule, "time", FakeTime(tick=0.05))  # every batch reads it twice
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 16, 16, 1), np.uint8)
    y = np.arange(64) % 4
    cfg = TrainConfig(
        **{**TINY, "epochs": 1000, "batch_size": 8},
        lr_schedule="onecycle",
        time_budget_min=0.05,
        early_stopping=0,
    )
    engine = get_engine("torch")
    model = engine.build(cfg, num_classes=4)
    fit = engine.fit(model, (x, y), (x[:16], y[:16]), cfg, [])
    assert fit.stopped_early and fit.epochs_run < 1000
    # 3 s of budget at 0.1 s a batch: ~30 batches of a 1000-epoch run, the last at a
    # learning rate the schedule had annealed by time to almost nothing.
    assert 20 <= fit.images_seen / 8 <= 40
    assert fit.history["lr"][-1] < 0.01 * cfg.lr


@pytest.mark.parametrize("kind", ["cosine", "step", "onecycle"])
def test_every_schedule_follows_progress_and_ends_low(kind):
    lr = LearningRate(TrainConfig(lr=1.0, lr_schedule=kind))
    values = [lr.at(p) for p in np.linspace(0.0, 1.0, 100)]
    assert max(values) == pytest.approx(1.0, abs=0.05) and values[-1] <= 0.011


def test_plateau_halves_the_rate_after_patience_runs_out():
    lr = LearningRate(TrainConfig(lr=1.0, lr_schedule="plateau"))
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95):  # the third epoch without progress cuts it
        lr.epoch_end(loss)
    assert lr.at(0.5) == pytest.approx(0.5)


@pytest.mark.parametrize("model", ["cnn_torch", "cnn_tf"])
def test_both_frameworks_follow_one_schedule_in_one_loop(model):
    from emorec.engines import get_engine

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 16, 16, 1), np.uint8), np.arange(32) % 4
    cfg = TrainConfig(
        **{**TINY, "model": model, "image_size": 16, "epochs": 3, "batch_size": 8},
        lr_schedule="onecycle",
        early_stopping=0,
    )
    engine = get_engine(get_spec_framework(model))
    fit = engine.fit(engine.build(cfg, num_classes=4), (x, y), (x[:8], y[:8]), cfg, [])
    lrs = LearningRate(cfg)
    # the rate of each epoch's last step: 4 steps an epoch, 12 in all
    assert fit.history["lr"] == pytest.approx([lrs.at(s / 12) for s in (3, 7, 11)])
    assert fit.epochs_run == 3 and fit.images_seen == 96


def get_spec_framework(model: str) -> str:
    from emorec.models import get_spec

    return get_spec(model).framework


def test_random_erasing_covers_one_rectangle_of_each_chosen_image():
    from emorec.data.augment import erase_rectangles

    batch = np.zeros((20, 48, 48, 1), np.uint8)
    out = erase_rectangles(batch.copy(), np.random.default_rng(0), share=1.0)
    for img in out[..., 0]:
        ys, xs = np.nonzero(img)
        assert len(ys)  # something was erased (noise of 0 everywhere is vanishingly rare)
        box = img[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert 0.01 * 48 * 48 <= box.size <= 0.3 * 48 * 48
    assert not erase_rectangles(batch.copy(), np.random.default_rng(0), share=0.0).any()


def _dataset() -> tuple[Dataset, Split]:
    images = np.zeros((8, 4, 4, 1), np.uint8)
    for i in range(8):
        images[i] = i  # all distinct ...
    images[1] = images[6]  # ... but train 1 is the test image 6's twin,
    images[3] = images[2]  # train 2 and 3 are one face labelled two ways,
    images[5] = images[4]  # and train 4 and 5 one face labelled alike (kept).
    labels = np.array([0, 1, 2, 3, 1, 1, 1, 0])
    ds = Dataset("folder", images, labels, ("anger", "disgust", "fear", "happiness"))
    return ds, Split(np.arange(6), np.array([7]), np.array([6]), "stratified")


def test_dedupe_drops_test_twins_and_faces_labelled_two_ways_from_training_only():
    from emorec.data.dedupe import drop_duplicates

    ds, split = _dataset()
    kept, counts = drop_duplicates(ds, split)
    assert kept.train.tolist() == [0, 4, 5]
    assert kept.val.tolist() == [7] and kept.test.tolist() == [6]
    assert counts == {
        "dedupe_dropped_held_out_twins": 1,
        "dedupe_dropped_conflicting": 2,
        "dedupe_train_images": 3,
    }


def test_a_dedupe_run_logs_what_it_dropped(tmp_path):
    from emorec.training import train

    root = fixtures.write_fer2013_folders(tmp_path / "fer", n_train=10, n_test=2)
    # Every test image gets a twin in train/ (same bytes, same pixels); validation is
    # carved from train/, so some twins land there rather than in training.
    for i, image in enumerate(sorted((root / "test").rglob("*.jpg"))):
        shutil.copy(image, root / "train" / image.parent.name / f"twin{i}.jpg")
    result = train(TrainConfig(**TINY, dataset="fer2013", data_dir=str(root), dedupe=True))
    assert result.metrics["dedupe_dropped_held_out_twins"] >= 1
    params = mlflow.get_run(result.run_id).data.params
    assert params["dedupe"] == "True"


def test_auto_precision_is_bf16_only_where_the_cpu_computes_it(monkeypatch):
    import torch

    import emorec.engines.torch_engine as te
    import emorec.engines.torch_setup as ts

    cpu = torch.device("cpu")
    monkeypatch.setattr(ts, "native_bf16", lambda: False)
    assert ts.autocast_dtype(TrainConfig(), cpu) is None
    monkeypatch.setattr(ts, "native_bf16", lambda: True)
    assert ts.autocast_dtype(TrainConfig(), cpu) is torch.bfloat16
    assert ts.autocast_dtype(TrainConfig(precision="fp32"), cpu) is None
    tags = te.TorchEngine().run_tags(TrainConfig())
    assert tags["precision_used"] == "bfloat16" and "cpu_flags" in tags


def test_a_run_is_tagged_with_what_it_computed_in():
    from emorec.resources import cpu_flags
    from emorec.training import train

    run = mlflow.get_run(train(TrainConfig(**{**TINY, "log_model": False})).run_id)
    assert run.data.tags["cpu_flags"] == " ".join(cpu_flags())
    assert run.data.tags["precision_used"] in ("fp32", "bfloat16")
    assert run.data.tags["device"] == "cpu"


def test_a_preset_names_its_model_dataset_and_space():
    from emorec.cli.study import _apply_preset

    args = argparse.Namespace(preset="fer2013", model=None, dataset=None, space=None)
    _apply_preset(args)
    assert (args.model, args.dataset) == ("cnn_torch", "fer2013")
    assert args.space.endswith("fer2013.yaml")


@pytest.mark.parametrize(
    "flags, expected",
    [
        (
            ["--preset", "nosuch"],
            "unknown preset 'nosuch'; valid presets: ckplus, ckplus-cnn_tf, ckplus-resnet50",
        ),
        (["--preset", "fer2013", "--model", "vgg16"], "is for --model cnn_torch, not vgg16"),
        ([], "needs --model (or --preset NAME)"),
    ],
)
def test_preset_mistakes_are_one_line(flags, expected, capsys):
    assert main(["tune", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err


def test_mixup_and_cutmix_blend_images_and_labels_by_one_share():
    from emorec.data.augment import mix_batch

    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (16, 8, 8, 1)).astype(np.float32)
    y = np.arange(16) % 4
    same, onehot = mix_batch(batch, y, 4, rng)
    assert same is batch and np.array_equal(onehot, np.eye(4)[y])
    for kind in ("mixup", "cutmix"):
        mixed, soft = mix_batch(batch, y, 4, rng, **{kind: 1.0})
        assert mixed.shape == batch.shape and np.allclose(soft.sum(axis=1), 1.0)
        # One share for the whole batch: every label weight is lam, 1 - lam, or 1 (a pair
        # of the same class).
        assert len(np.unique(np.round(soft[soft > 0], 6))) <= 3
        assert ((soft > 0).sum(axis=1) <= 2).all()
    # CutMix pastes whole pixels: every pixel comes from one image or the other.
    mixed, _ = mix_batch(batch, y, 4, np.random.default_rng(1), cutmix=1.0)
    assert np.isin(mixed[0], batch).all()


def test_ema_keeps_the_averaged_weights():
    """The averaged weights lag behind the trained ones; they are what is evaluated and
    what the fit keeps."""
    import torch

    from emorec.engines import get_engine

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 16, 16, 1), np.uint8), np.arange(64) % 4
    cfg = TrainConfig(**{**TINY, "batch_size": 8}, lr=0.01, ema=0.99, early_stopping=0)
    engine = get_engine("torch")
    model = engine.build(cfg, num_classes=4)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    session = engine.fit_session(model, cfg, y)
    soft = np.eye(4, dtype=np.float32)[y]
    for i in range(0, 64, 8):
        session.step(normalize(x[i : i + 8]), soft[i : i + 8])
    averaged = session.snapshot()

    def distance(state):
        return sum(
            float(torch.abs(state[k] - start[k]).sum())
            for k in start
            if start[k].dtype.is_floating_point
        )

    assert 0 < distance(averaged) < distance(model.state_dict())
    fitted = engine.build(cfg, num_classes=4)
    engine.fit(fitted, (x, y), (x[:8], y[:8]), cfg, [])
    assert not torch.equal(next(fitted.parameters()), next(engine.build(cfg, 4).parameters()))
