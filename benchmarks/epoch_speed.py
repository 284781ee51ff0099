"""CPU epoch time per model, before and after: milliseconds per training image.

Every model trains one epoch of the same ``--train-images`` random FER2013 ``train/`` images
(48x48 grayscale, batch 64, augmentation on, as the FER2013 recipe trains) through
``emorec.training.train`` with no tracking, twice:

- ``before``: ``precision=fp32``, how every CPU run trained before ``precision=auto``;
- ``after``: ``precision=auto``, the default now: bfloat16 autocast where the CPU has native
  bfloat16 (``avx512_bf16`` / ``amx_bf16``), float32 elsewhere (Keras models: float32).

The two alternate per model (order swapped on every repeat) after one untimed warm-up epoch
of 128 images, so both see the same machine; ms per image is the epoch's training loop time
(``train_time_s``, which includes the per-epoch validation pass over 64 images) over the
images trained. The CPU's flags and the precision each run used are recorded: on a CPU
without native bfloat16, ``auto`` is float32 and the two columns measure the same thing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODELS = ("cnn_torch", "cnn_tf", "sanet", "vgg16", "resnet50")
FER2013_TRAIN_IMAGES = 23_600  # about what one epoch of the recipe trains on


def epoch(model: str, root: Path, precision: str, images: int | None = None) -> dict:
    """One untracked epoch of ``model`` on the folder ``root``; ms per training image."""
    import numpy as np

    from emorec.config import TrainConfig
    from emorec.data.splits import Split
    from emorec.engines import get_engine
    from emorec.tracking import NoTracker
    from emorec.training import load_data, train

    cfg = TrainConfig(
        model=model,
        dataset="folder",
        data_dir=str(root),
        epochs=1,
        batch_size=64,
        image_size=48,
        early_stopping=0,
        lr_schedule="none",
        augment=True,
        precision=precision,
        progress=False,
    )
    n = len(load_data(cfg).targets)
    rng = np.random.default_rng(0)
    held_out = rng.choice(n, size=min(64, n), replace=False)
    trained = np.arange(n) if images is None else rng.choice(n, size=min(images, n), replace=False)
    m = train(
        cfg, tracker=NoTracker(), split=Split(trained, held_out, held_out, strategy="stratified")
    ).metrics
    return {
        "ms_per_image": 1e3 / m["train_images_per_s"],
        "epoch_s": m["train_time_s"],
        "precision_used": get_engine(cfg.framework).run_tags(cfg)["precision_used"],
    }


def main() -> None:
    p = benchlib.parser(__doc__)
    p.set_defaults(repeats=1)
    p.add_argument("--train-images", type=int, default=1000)
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args()
    started = time.time()
    fer = benchlib.require(args.data, "fer2013")
    root = benchlib.fer_subset(fer, args.train_images) / "train"  # one folder per class
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    runs = {m: {"before": [], "after": []} for m in models}
    for m in models:
        epoch(m, root, "auto", images=128)  # warm-up: kernels, caches, the decoded folder
        for r in range(args.repeats):
            for label in ("before", "after") if r % 2 == 0 else ("after", "before"):
                runs[m][label].append(epoch(m, root, "fp32" if label == "before" else "auto"))
            print(
                f"{m}: "
                + ", ".join(
                    f"{k} {v[-1]['ms_per_image']:.2f} ms/img ({v[-1]['precision_used']})"
                    for k, v in runs[m].items()
                ),
                flush=True,
            )
    figures, rows = {}, []
    for m, by in runs.items():
        before = benchlib.median([x["ms_per_image"] for x in by["before"]])
        after = benchlib.median([x["ms_per_image"] for x in by["after"]])
        used = by["after"][0]["precision_used"]
        figures[m] = {
            "before_ms_per_image": before,
            "after_ms_per_image": after,
            "speedup": before / after,
            "after_precision": used,
            "runs": by,
        }
        rows.append(
            [
                m,
                f"{before:.2f}",
                f"{after:.2f} ({used})",
                f"{before / after:.2f}x",
                f"{before * FER2013_TRAIN_IMAGES / 1e3:.0f} -> "
                f"{after * FER2013_TRAIN_IMAGES / 1e3:.0f}",
            ]
        )
    slowest = min(figures, key=lambda m: figures[m]["speedup"])
    # auto must pick what is fastest here: never measurably slower than float32.
    targets = [
        benchlib.target(
            f"auto vs fp32 speed-up, slowest model ({slowest})",
            figures[slowest]["speedup"],
            ">= 0.95x (auto never slower)",
            figures[slowest]["speedup"] >= 0.95,
            "x",
        )
    ]
    notes = [
        f"One epoch of {args.train_images} FER2013 train/ images per run, 48x48, batch 64, "
        f"augmentation on, {args.repeats} repeat(s) after a 128-image warm-up; CPU flags "
        "in machine.cpu_flags.",
        "Last column: what that rate means for one epoch of FER2013's ~23.6k training "
        "images (seconds), the figure a time-boxed study spends its budget on.",
    ]
    benchlib.save(
        "epoch_speed",
        "CPU epoch time per model, before (fp32) and after (auto)",
        args,
        targets=targets,
        figures=figures,
        notes=notes,
        started=started,
        tables={
            "epoch_speed": benchlib.markdown_table(
                [
                    "model",
                    "before: fp32 (ms/img)",
                    "after: auto (ms/img)",
                    "speed-up",
                    "FER2013 epoch (s)",
                ],
                rows,
            )
        },
    )


if __name__ == "__main__":
    main()
