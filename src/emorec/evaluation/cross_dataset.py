"""Cross-dataset performance: each dataset's champion tested on every other dataset.

For every dataset with a registered champion (the best one by test accuracy
when several models have one), its ``emotion_model`` pyfunc is loaded and fed
the test split of every dataset, restricted to the classes both share. The
split is rebuilt from the target champion's own logged parameters (same
strategy, fractions and seed: its ``split_digest`` is checked), and images
are sent as the serving format (base64 PNG), so this measures what a user of
``models:/...@champion`` would see.

Accuracy over the shared classes: predictions are the argmax over the shared
classes only, so a class the target dataset lacks (e.g. CK+'s contempt on
FER2013) cannot absorb predictions. The diagonal is the in-domain accuracy
over all classes, a check against the logged test accuracy.
"""

from __future__ import annotations

import base64
import csv
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from emorec import tracking
from emorec.errors import UserError
from emorec.evaluation import figures

log = logging.getLogger(__name__)
MIN_SHARED = 2  # with one shared class every prediction is trivially right


def evaluate(rows: list[dict]) -> dict:
    """``{"datasets", "models", "accuracy" (rows: trained on, cols: tested on), "shared", "n"}``."""
    sources = _champion_per_dataset(rows)
    names = [r["dataset"] for r in sources]
    acc = np.full((len(sources), len(sources)), np.nan)
    counts = np.zeros_like(acc, dtype=int)
    shared: dict[str, list[str]] = {}
    for i, src in enumerate(sources):
        model = tracking.load_pyfunc(src["model_uri"])
        for j, tgt in enumerate(sources):
            classes = [c for c in _classes(src) if c in _classes(tgt)]
            shared[f"{src['dataset']}->{tgt['dataset']}"] = classes
            if len(classes) < MIN_SHARED:
                log.warning(
                    "%s -> %s: %d shared class(es); skipped",
                    src["dataset"],
                    tgt["dataset"],
                    len(classes),
                )
                continue
            try:
                images, labels = test_split(tgt["params"], src["params"])
            except (OSError, ValueError) as exc:  # the target's data is not on this machine
                log.warning("%s -> %s skipped: %s", src["dataset"], tgt["dataset"], exc)
                continue
            acc[i, j], counts[i, j] = shared_accuracy(model, images, labels, classes)
    return {
        "datasets": names,
        "models": [r["model"] for r in sources],
        "accuracy": acc,
        "n": counts,
        "shared": shared,
    }


def _champion_per_dataset(rows: list[dict]) -> list[dict]:
    best: dict[str, dict] = {}
    for r in rows:
        if r["source"].startswith("champion") and (
            r["dataset"] not in best
            or (r["test_accuracy"] or 0) > (best[r["dataset"]]["test_accuracy"] or 0)
        ):
            best[r["dataset"]] = r
    if len(best) < 2:
        raise UserError(
            "--cross needs registered champions on at least two datasets; found "
            f"{', '.join(best) or 'none'}"
        )
    return [best[d] for d in sorted(best)]


def _classes(row: dict) -> list[str]:
    return [c for c in row["params"].get("classes", "").split(",") if c]


def test_split(target: dict, source: dict) -> tuple[np.ndarray, np.ndarray]:
    """The target run's test images (at the source model's input size) and class names."""
    from emorec.config import TrainConfig
    from emorec.training import load_data, split_data

    cfg, src = TrainConfig.from_logged(target), TrainConfig.from_logged(source)
    ds = load_data(cfg.replace(progress=False), src.preprocessing)
    split, _ = split_data(ds, cfg)
    if split.digest != target.get("split_digest"):
        log.warning(
            "%s: rebuilt test split %s differs from the logged %s (data changed?)",
            cfg.dataset,
            split.digest,
            target.get("split_digest"),
        )
    names = np.asarray(ds.classes)[ds.targets[split.test]]
    return ds.images[split.test], names


def shared_accuracy(
    model, images: np.ndarray, labels: np.ndarray, classes: list[str]
) -> tuple[float, int]:
    """Accuracy of an ``emotion_model`` pyfunc over the images of ``classes`` (argmax over
    those classes only), fed as base64 PNG like a served request; and how many it saw."""
    import cv2

    keep = np.isin(labels, classes)
    if not keep.any():
        return np.nan, 0
    pngs = [cv2.imencode(".png", img)[1].tobytes() for img in images[keep]]
    payload = pd.DataFrame({"image": [base64.b64encode(png).decode() for png in pngs]})
    proba = model.predict(payload)[classes].to_numpy()
    predicted = np.asarray(classes)[proba.argmax(1)]
    return float(np.mean(predicted == labels[keep])), int(keep.sum())


def write(result: dict, folder: Path) -> list[Path]:
    """``cross_dataset.md``, ``cross_dataset.csv`` and the heatmap ``cross_dataset.png``."""
    names, acc = result["datasets"], result["accuracy"]
    labels = [f"{d} ({m})" for d, m in zip(names, result["models"])]
    md, table = folder / "cross_dataset.md", folder / "cross_dataset.csv"

    def cell(i: int, j: int) -> str:
        return "-" if np.isnan(acc[i, j]) else f"{acc[i, j]:.3f} (n={result['n'][i, j]})"

    lines = [
        "# Cross-dataset accuracy over shared classes\n",
        "Rows: the dataset the champion was trained on; columns: the test split it was "
        "evaluated on.\n",
        "| trained on \\ tested on | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [
        f"| {labels[i]} | " + " | ".join(cell(i, j) for j in range(len(names))) + " |"
        for i in range(len(names))
    ]
    md.write_text("\n".join(lines) + "\n")
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["trained_on", "model", *names])
        for i, name in enumerate(names):
            writer.writerow([name, result["models"][i], *[f"{v:.6f}" for v in acc[i]]])
    heatmap = figures.heatmap_figure(
        acc, labels, names, "Cross-dataset accuracy", "Accuracy over shared classes"
    )
    heatmap.axes[0].set(xlabel="Tested on", ylabel="Trained on")
    return [md, table, figures.save(heatmap, folder / "cross_dataset.png")]
