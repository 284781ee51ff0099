"""What ``dedupe`` changes: the FER2013 recipe trained twice, with and without it.

Both runs train the preset's recipe (``tuning/<preset>.yaml``: its fixed values and the
first value of each grid entry) on all of FER2013 ``train/`` with the same seed, for the
same wall-time budget (``--minutes``, shorter than the preset's so both fit in one sitting),
through ``emorec.training.train`` with no tracking; the only difference is ``dedupe``.
They run one after the other, alternating which goes first when ``--repeats`` > 1.

Reported for each: PublicTest accuracy and macro F1, and for the validation part (which
picks the best epoch and the study's champion) and for PublicTest the accuracy on the
images that have a pixel-identical twin in the training part (``leaked``) against the rest.
A model trained on those twins can recall their labels instead of reading the face, so a gap
on the leaked images without dedupe is accuracy that would not carry to new faces.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def recipe(preset: str, fer_dir: Path, minutes: float):
    """The preset's training config, on ``fer_dir``, with a ``minutes`` time budget."""
    from emorec.config import TrainConfig
    from emorec.search_space import load, read_preset

    path, names = read_preset(preset)
    space = load(path)
    first = {name: values[0] for name, values in space.grid.items()}
    return TrainConfig.from_mapping(
        {
            **names,
            **space.fixed,
            **first,
            "data_dir": str(fer_dir),
            "time_budget_min": minutes,
            "progress": False,
            "log_model": False,
        }
    )


def leaked_images(ds, split) -> dict[str, np.ndarray]:
    """For the validation and test parts (in split order): which images have a pixel twin
    in the training part (before dedupe, which never changes those two parts)."""
    from emorec.data.dedupe import duplicate_groups

    group, _ = duplicate_groups(ds.images)
    return {
        part: np.isin(group[getattr(split, part)], group[split.train]) for part in ("val", "test")
    }


def one_run(cfg, ds, split, leaked: dict[str, np.ndarray]) -> dict:
    """Train ``cfg`` untracked on ``train``'s own split of ``ds`` (``split``, before dedupe);
    its figures, and its accuracy on the leaked and clean validation and test images."""
    from emorec.engines import get_engine
    from emorec.tracking import NoTracker
    from emorec.training import train

    start = time.perf_counter()
    result = train(cfg, tracker=NoTracker())
    seconds = time.perf_counter() - start
    m = result.metrics
    out = {
        "dedupe": cfg.dedupe,
        "seconds": seconds,
        "epochs_run": m["epochs_run"],
        "accuracy": m["test_accuracy"],
        "f1_macro": m["test_f1_macro"],
        "val_accuracy": m["val_final_accuracy"],
        "train_images": m.get("dedupe_train_images", len(split.train)),
    }
    for part, mask in leaked.items():
        idx = getattr(split, part)
        proba = get_engine(cfg.framework).predict_proba(result.model, ds.images[idx])
        correct = proba.argmax(axis=1) == ds.targets[idx]
        out[f"{part}_leaked_accuracy"] = float(correct[mask].mean()) if mask.any() else None
        out[f"{part}_clean_accuracy"] = float(correct[~mask].mean())
    return out


def main() -> None:
    p = benchlib.parser(__doc__)
    p.set_defaults(repeats=1)
    p.add_argument("--preset", default="fer2013")
    p.add_argument(
        "--minutes",
        type=float,
        default=12.0,
        help="each run's training time budget (the preset's schedule follows it)",
    )
    args = p.parse_args()
    started = time.time()
    fer_dir = benchlib.require(args.data, "fer2013")
    from emorec.training import load_data, split_data

    base = recipe(args.preset, fer_dir, args.minutes)
    ds = load_data(base)
    # What train() splits before dedupe thins its training part.
    split, _ = split_data(ds, base.replace(dedupe=False))
    leaked = leaked_images(ds, split)
    runs = []
    for r in range(args.repeats):
        for dedupe in (True, False) if r % 2 == 0 else (False, True):
            runs.append(one_run(base.replace(dedupe=dedupe), ds, split, leaked))
            print(
                f"repeat {r + 1}, dedupe {dedupe}: "
                + ", ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in runs[-1].items()
                ),
                flush=True,
            )
    by = {flag: [x for x in runs if x["dedupe"] is flag] for flag in (True, False)}
    med = {
        flag: {
            k: benchlib.median([x[k] for x in xs])
            for k in (
                "accuracy",
                "f1_macro",
                "val_accuracy",
                "val_leaked_accuracy",
                "val_clean_accuracy",
                "test_leaked_accuracy",
                "test_clean_accuracy",
                "epochs_run",
            )
            if xs[0][k] is not None
        }
        for flag, xs in by.items()
    }
    figures = {
        "minutes": args.minutes,
        "runs": runs,
        **{f"leaked_{part}_images": int(mask.sum()) for part, mask in leaked.items()},
        **{f"{part}_images": int(mask.size) for part, mask in leaked.items()},
        "with_dedupe": med[True],
        "without_dedupe": med[False],
        "test_accuracy_change": med[True]["accuracy"] - med[False]["accuracy"],
        "val_accuracy_change": med[True]["val_accuracy"] - med[False]["val_accuracy"],
    }
    notes = [
        f"{args.preset} recipe, {args.minutes:g}-minute training budget per run, "
        f"{args.repeats} run(s) of each, same seed; of the images the run does not train "
        f"on, {int(leaked['val'].sum())} of {leaked['val'].size} validation and "
        f"{int(leaked['test'].sum())} of {leaked['test'].size} PublicTest images have a "
        "pixel twin in the training part.",
        "A difference of a few tenths of a point between two single runs is within "
        "run-to-run noise; the leaked/clean split shows where any difference comes from.",
    ]
    change = 100 * figures["test_accuracy_change"]
    targets = [
        benchlib.target(
            "PublicTest accuracy with dedupe minus without",
            change,
            ">= -0.5 pt (dropping duplicates costs no accuracy)",
            change >= -0.5,
            " pt",
        )
    ]
    benchlib.save(
        "dedupe_effect",
        "What --dedupe changes on FER2013",
        args,
        targets=targets,
        figures=figures,
        notes=notes,
        started=started,
    )


if __name__ == "__main__":
    main()
