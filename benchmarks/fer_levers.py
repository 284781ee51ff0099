"""Recipe levers on FER2013, side by side in one run: what test-time augmentation (none,
flip, ten-crop), an average of the weights (EMA), mixup, CutMix and a snapshot ensemble
each buy on PublicTest.

Two ways in:

- ``--model-uri``: one trained model, scored with every ``tta`` mode. Its network is the
  model's own with its TTA wrapper taken off and each mode's put on (the product's
  ``emorec.models.tta``), so the modes differ in nothing but the views averaged;
- ``--levers recipe,ema,mixup,cutmix,snapshots``: the proposed CNN's FER2013 recipe (``--preset
  fer2013``) trained at ``--budget-min`` minutes as it is and with each lever, one after
  the other in this process, each then scored with every ``tta`` mode.

The time per face is of the whole PublicTest in batches of 256 on this machine's CPU.

    python benchmarks/fer_levers.py --store /work/seedstore \\
        --model-uri models:/emorec-cnn_torch-fer2013@champion
    python benchmarks/fer_levers.py --levers recipe,mixup,cutmix --budget-min 10
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402

BATCH = 256
# Each lever's values over the recipe's: the decay and the Beta(A, A) of common practice;
# three cycles: about 40 minutes each in the recipe's 2 hours.
LEVERS = {
    "recipe": {},
    "ema": {"ema": 0.999},
    "mixup": {"mixup": 0.2},
    "cutmix": {"cutmix": 1.0},
    "snapshots": {"snapshots": 3},
}


def score(emotion_model, crops, targets) -> dict:
    """Accuracy, macro F1, AUC and time per face of ``emotion_model`` on ``crops``."""
    import numpy as np

    from emorec.evaluation.metrics import classification_metrics

    start = time.perf_counter()
    proba = np.concatenate(
        [emotion_model.probabilities(crops[s : s + BATCH]) for s in range(0, len(crops), BATCH)]
    )
    seconds = time.perf_counter() - start
    report = classification_metrics(targets, proba, list(emotion_model.classes))
    return {
        "accuracy": report["accuracy"],
        "f1_macro": report["f1_macro"],
        "auc_roc_macro": report["auc_roc_macro"],
        "ms_per_face": 1000 * seconds / len(crops),
    }


@functools.cache
def public_test(fer_dir: Path, prep) -> tuple:
    """PublicTest's crops as ``prep`` prepares them and their emotion names, read once for
    every model scored in this process."""
    import numpy as np

    from emorec.data import load_dataset
    from emorec.labels import EMOTIONS

    ds = load_dataset("fer2013", fer_dir, prep, progress=False)
    test = ds.usage == "test"
    return ds.images[test], np.asarray(EMOTIONS)[ds.labels[test]]


def every_tta(model_uri: str, fer_dir: Path) -> dict:
    """{tta mode: score} of the model at ``model_uri`` on the whole PublicTest."""
    import numpy as np

    from emorec import tracking
    from emorec.models.tta import WRAPPERS

    emotion_model = tracking.load_emotion_model(model_uri)
    bare = emotion_model.engine.without_tta(emotion_model.network)
    crops, names = public_test(fer_dir, emotion_model.prep)
    index = {name: i for i, name in enumerate(emotion_model.classes)}
    targets = np.array([index[name] for name in names])
    modes = {}
    for mode in ("none", *WRAPPERS):
        emotion_model.network = WRAPPERS[mode](bare) if mode in WRAPPERS else bare
        modes[mode] = score(emotion_model, crops, targets)
        print(f"  {mode}: {modes[mode]}", flush=True)
    return modes


def train_lever(lever: str, fer_dir: Path, budget_min: float, sitting: str) -> dict:
    """The FER2013 recipe with ``lever`` at ``budget_min`` minutes, tracked in the current
    store: its run's id, epochs and the test accuracy it logged, and the ``sitting`` (this
    process's start) that trained it."""
    from emorec.config import TrainConfig
    from emorec.training import train

    cfg = TrainConfig.from_mapping(
        {
            **benchlib.preset_values("fer2013"),
            **LEVERS[lever],
            "data_dir": str(fer_dir),
            "time_budget_min": budget_min,
            "progress": False,
            "experiment": "bench-fer-levers",
        }
    )
    result = train(cfg)
    print(f"{lever}: logged test accuracy {result.metrics['test_accuracy']:.4f}", flush=True)
    return {
        "lever": lever,
        "values": LEVERS[lever],
        "budget_min": budget_min,
        "sitting": sitting,
        "run_id": result.run_id,
        "epochs_run": result.metrics.get("epochs_run"),
        "logged_test_accuracy": result.metrics["test_accuracy"],
    }


def targets(models: dict) -> list[dict]:
    """Keep what helps: ten-crop against flip on each model, each lever against the recipe
    trained in the same sitting (both with flip, the recipe's mode), in points of PublicTest
    accuracy: a lever from another sitting ran on another load, maybe another machine."""
    out = []
    for name, m in models.items():
        gain = 100 * (m["tta"]["tencrop"]["accuracy"] - m["tta"]["flip"]["accuracy"])
        out.append(benchlib.target(f"tencrop vs flip, {name}", gain, "> 0 points", gain > 0))
    recipes = {m["sitting"]: m for m in models.values() if m.get("lever") == "recipe"}
    for name, m in models.items():
        recipe = recipes.get(m.get("sitting"))
        if recipe and m.get("lever") not in ("recipe", None):
            gain = 100 * (m["tta"]["flip"]["accuracy"] - recipe["tta"]["flip"]["accuracy"])
            out.append(benchlib.target(f"{name} vs the recipe", gain, "> 0 points", gain > 0))
    return out


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--store", default="", help="the MLflow store (default: a throwaway one)")
    p.add_argument("--model-uri", default="", help="score this model with every tta mode")
    p.add_argument("--levers", default="", help=f"train these: {', '.join(LEVERS)}")
    p.add_argument("--budget-min", type=float, default=10.0, help="minutes each lever trains")
    args = p.parse_args()
    started = time.time()
    sitting = time.strftime("%Y-%m-%d %H:%M", time.gmtime(started))
    fer_dir = benchlib.require(args.data, "fer2013")
    levers = [x for x in args.levers.split(",") if x]
    unknown = sorted(set(levers) - set(LEVERS))
    if unknown:
        p.error(f"unknown lever {', '.join(unknown)}; choose from {', '.join(LEVERS)}")
    if not (levers or args.model_uri):
        p.error(f"give --model-uri, --levers (from {', '.join(LEVERS)}) or both")

    # Models scored in an earlier run stay in the file beside this run's.
    models = benchlib.previous("fer_levers", args).get("figures", {}).get("models", {})
    with benchlib.temporary_store(args.store or None):
        if args.model_uri:
            models[args.model_uri] = {"sitting": sitting, "tta": every_tta(args.model_uri, fer_dir)}
        for lever in levers:
            run = train_lever(lever, fer_dir, args.budget_min, sitting)
            run["tta"] = every_tta(f"runs:/{run['run_id']}/emotion_model", fer_dir)
            models[f"{lever} {sitting}"] = run

    rows = [
        [
            name,
            m.get("sitting", "-"),
            m.get("epochs_run", "-"),
            mode,
            f"{100 * s['accuracy']:.2f} %",
            s["f1_macro"],
            s["auc_roc_macro"],
            s["ms_per_face"],
        ]
        for name, m in models.items()
        for mode, s in m["tta"].items()
    ]
    benchlib.save(
        "fer_levers",
        "Recipe levers on FER2013 PublicTest: test-time augmentation, EMA, mixup, CutMix, "
        "snapshot ensembles",
        args,
        started=started,
        targets=targets(models),
        figures={"models": models},
        notes=[
            f"PublicTest (3,589 faces) in batches of {BATCH}. Levers ({', '.join(LEVERS)}) "
            "are the fer2013 preset trained one after the other in one process (a sitting, "
            "named by its start) at the budget each row's run logged, and judged against "
            "the recipe of their own sitting; a models:/ row is a model trained elsewhere"
        ],
        tables={
            "levers": benchlib.markdown_table(
                [
                    "model",
                    "sitting (UTC)",
                    "epochs",
                    "tta",
                    "accuracy",
                    "F1 macro",
                    "AUC",
                    "ms/face",
                ],
                rows,
            )
        },
    )


if __name__ == "__main__":
    main()
