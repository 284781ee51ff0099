"""Memory: peak RSS of a training run of every model on CK+48, and what each import costs.

Each model trains in its own fresh process (so one framework's memory never counts
against another's): ``emorec.training.train`` with the defaults users get (MLflow logging,
system metrics, the model logged) for ``--epochs`` epochs on CK+48 (subject-independent
split) into a throwaway store. Reported per model: ``peak_rss_mb`` as the run logs it
(sampled over build, training and evaluation), the kernel's lifetime high-water mark
(``ru_maxrss``, covering imports and model logging too), and the RSS after each import
step (Python + NumPy/OpenCV, the framework, MLflow, emorec's training module), which is
what TensorFlow costs for cnn_tf.

``--cpu-torch-python`` names another interpreter whose ``torch`` is a CPU-only build (see
benchmarks/README.md): cnn_torch is then also measured with it, since the pinned CUDA
wheel alone costs hundreds of MB of RSS on import.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODELS = ("cnn_torch", "cnn_tf", "sanet", "vgg16", "resnet50")
SEED_BEST_MB = 345.85


def child(model: str, data_dir: str, epochs: int) -> None:
    """Runs in the measured process; prints one JSON line."""
    import importlib

    steps = {"python": benchlib.rss_mb()}
    import cv2  # noqa: F401
    import numpy  # noqa: F401

    steps["numpy_opencv"] = benchlib.rss_mb()
    framework = "tensorflow" if model == "cnn_tf" else "torch"
    fw = importlib.import_module(framework)
    steps[framework] = benchlib.rss_mb()
    import mlflow  # noqa: F401

    steps["mlflow"] = benchlib.rss_mb()
    from emorec.config import TrainConfig
    from emorec.resources import max_rss_lifetime_mb
    from emorec.training import train

    steps["emorec_training"] = benchlib.rss_mb()
    cfg = TrainConfig(model=model, dataset="ckplus", data_dir=data_dir, epochs=epochs,
                      progress=False, experiment="bench-memory")
    start = time.perf_counter()
    result = train(cfg)
    import psutil

    mem = psutil.Process().memory_info()  # after the run: file-backed (library code) vs anonymous
    print(json.dumps({"model": model, "framework_version": fw.__version__,
                      "end_rss_mb": mem.rss / 2**20, "end_file_backed_mb": mem.shared / 2**20,
                      "import_rss_mb": steps, "peak_rss_mb": result.metrics["peak_rss_mb"],
                      "max_rss_lifetime_mb": max_rss_lifetime_mb(),
                      "test_accuracy": result.metrics["test_accuracy"],
                      "train_time_s": result.metrics["train_time_s"],
                      "wall_s": time.perf_counter() - start}))


def main() -> None:
    p = benchlib.parser(__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--cpu-torch-python", default=None,
                   help="interpreter with a CPU-only torch that can import emorec")
    args = benchlib.parse_or_run_child(p, "child", lambda model, a: child(model, a.data, a.epochs))
    started = time.time()
    ck = benchlib.require(args.data, "ckplus")
    runs = []
    interpreters = [(sys.executable, m) for m in args.models.split(",") if m]
    if args.cpu_torch_python:
        interpreters.append((args.cpu_torch_python, "cnn_torch"))
    with benchlib.temporary_store() as store:
        # One untimed run fills the dataset cache, so no model pays for decoding.
        for python, model in interpreters:
            cmd = [python, __file__, "--child", model, "--data", str(ck),
                   "--epochs", str(args.epochs)]
            for r in range(args.repeats):
                runs.append({"python": python, **benchlib.run_json(cmd, env={
                    "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"})})
                print(f"{model} ({Path(python).parts[-3]}): peak {runs[-1]['peak_rss_mb']:.0f} MB,"
                      f" lifetime {runs[-1]['max_rss_lifetime_mb']:.0f} MB", flush=True)
    rows, per_model = [], {}
    for python, model in interpreters:
        mine = [r for r in runs if r["python"] == python and r["model"] == model]
        key = model if python == sys.executable else f"{model}@cpu_torch"
        med = {k: benchlib.median([r[k] for r in mine])
               for k in ("peak_rss_mb", "max_rss_lifetime_mb", "train_time_s", "end_rss_mb",
                         "end_file_backed_mb")}
        imports = {k: benchlib.median([r["import_rss_mb"][k] for r in mine])
                   for k in mine[0]["import_rss_mb"]}
        fw = "tensorflow" if model == "cnn_tf" else "torch"
        framework_cost = imports[fw] - imports["numpy_opencv"]
        per_model[key] = {**med, "import_rss_mb": imports, "framework_import_mb": framework_cost,
                          "framework_version": mine[0]["framework_version"]}
        rows.append([key, mine[0]["framework_version"], med["peak_rss_mb"],
                     med["max_rss_lifetime_mb"], imports["python"], framework_cost,
                     imports["mlflow"] - imports[fw], imports["emorec_training"] - imports["mlflow"],
                     med["end_file_backed_mb"], med["end_rss_mb"] - med["end_file_backed_mb"]])
    best_torch = min(v["peak_rss_mb"] for k, v in per_model.items() if k.startswith("cnn_torch"))
    table = benchlib.markdown_table(
        ["model", "framework", "peak RSS in run (MB)", "lifetime max RSS (MB)", "bare Python (MB)",
         "+ framework import (MB)", "+ mlflow (MB)", "+ emorec.training (MB)",
         "after run: file-backed (MB)", "after run: anonymous (MB)"], rows)
    notes = [f"CK+48, {args.epochs} epoch(s) per run, each model in a fresh process, "
             f"{args.repeats} repeat(s), medians. Peak RSS is the figure every run logs "
             "(`peak_rss_mb`); lifetime max RSS is the kernel's ru_maxrss.",
             "The seed's best (345.85 MB) cannot be compared like for like: the pinned torch "
             "2.14.1 wheel is the CUDA build, whose import alone maps its CUDA libraries into "
             "RSS; the cpu_torch row (if present) runs the same code on a CPU-only wheel."]
    for key, v in per_model.items():
        if key.startswith("cnn_torch"):
            floor = v["import_rss_mb"]["emorec_training"]
            notes.append(f"{key}: the imports alone (Python, NumPy/OpenCV, torch, MLflow, emorec) "
                         f"reach {floor:.0f} MB before any model exists; training and "
                         f"evaluation add {v['peak_rss_mb'] - floor:.0f} MB (autograd "
                         "activations of a 64-image batch, the allocator's cached blocks, "
                         "256-image evaluation batches, MLflow's system-metrics thread).")
    if "cnn_tf" in per_model:
        tf = per_model["cnn_tf"]
        notes.append(f"TensorFlow costs {tf['framework_import_mb']:.0f} MB on import; cnn_tf's "
                     f"peak is {tf['peak_rss_mb']:.0f} MB vs cnn_torch's "
                     f"{per_model.get('cnn_torch', {}).get('peak_rss_mb', float('nan')):.0f} MB.")
    benchlib.save("memory", "Peak memory (RSS) per model on CK+48", args, started=started,
                  figures={"seed_best_mb": SEED_BEST_MB, "cnn_torch_best_peak_rss_mb": best_torch,
                           "models": per_model, "runs": runs},
                  notes=notes, tables={"memory": table},
                  targets=[benchlib.target("cnn_torch peak RSS, training on CK+48", best_torch,
                                           f"<= 346 MB (seed {SEED_BEST_MB})",
                                           best_torch <= 346, " MB")])


if __name__ == "__main__":
    main()
