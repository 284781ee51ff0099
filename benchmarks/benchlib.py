"""Shared helpers for the benchmark scripts: arguments, data lookup, machine facts,
temporary tracking stores, timing, and writing results (JSON + RESULTS.md).

Every script calls ``parser(__doc__)``, finds its data with ``dataset_dir`` (which
unpacks the shared archives on first use and returns None when they are absent),
and ends with ``save(name, title, targets, figures, notes, args)``: that writes
``<results-dir>/<name>.json`` and regenerates ``<results-dir>/../RESULTS.md`` (or
``<results-dir>/RESULTS.md`` for a results dir other than the default) from every
JSON found there, so RESULTS.md never holds a number no JSON backs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = (REPO / ".." / "shared" / "data").resolve()
DEFAULT_RESULTS = HERE / "results"
UNPACK_DIR = HERE / "data"  # gitignored

# archive -> folder it unpacks to (inside the archive)
ARCHIVES = {
    "ckplus": ("ckplus48.tar.gz", "CK+48"),
    "fer2013": ("fer2013-train-publictest.tar.gz", "fer2013"),
    "wild-faces": ("wild-faces.tar", "wild-faces"),
}


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=doc.strip().splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="folder with the shared archives or their unpacked folders (default: ../shared/data)",
    )
    p.add_argument(
        "--results-dir",
        default=str(DEFAULT_RESULTS),
        help="where <name>.json goes (RESULTS.md is regenerated beside it)",
    )
    p.add_argument("--repeats", type=int, default=3, help="repeats; medians are reported")
    return p


def dataset_dir(data: str | os.PathLike, name: str) -> Path | None:
    """The unpacked folder of dataset ``name`` under ``data`` (unpacking its archive into
    benchmarks/data/ when only the archive is there), or None when neither exists."""
    archive, folder = ARCHIVES[name]
    root = Path(data).expanduser()
    if (root / folder).is_dir():
        return (root / folder).resolve()
    if (root / archive).is_file() and (UNPACK_DIR / folder).is_dir():
        return (UNPACK_DIR / folder).resolve()  # unpacked by an earlier run
    if (root / archive).is_file():
        UNPACK_DIR.mkdir(parents=True, exist_ok=True)
        print(f"unpacking {root / archive} into {UNPACK_DIR} ...", flush=True)
        with tarfile.open(root / archive) as tar:
            tar.extractall(UNPACK_DIR, filter="data")
        return (UNPACK_DIR / folder).resolve()
    return None


def require(data: str, name: str) -> Path:
    """``dataset_dir`` or a clear message and exit 0 (a skipped benchmark is not a failure)."""
    path = dataset_dir(data, name)
    if path is None:
        archive, folder = ARCHIVES[name]
        print(
            f"SKIPPED: {name} not found: neither {Path(data) / archive} nor "
            f"{Path(data) / folder}/ exists (pass --data)"
        )
        sys.exit(0)
    return path


def fer_train_sample(fer_dir: Path, n: int, seed: int = 0) -> list[Path]:
    """``n`` random files of FER2013 ``train/`` (all of them if fewer), in path order."""
    import numpy as np

    files = sorted(p for p in (fer_dir / "train").glob("*/*") if p.is_file())
    pick = np.random.default_rng(seed).choice(len(files), min(n, len(files)), replace=False)
    return [files[i] for i in sorted(pick)]


def fer_subset(fer_dir: Path, train_images: int, seed: int = 0) -> Path:
    """A FER2013 tree with a random ``train_images`` of ``train/`` (symlinked, class folders
    kept) and the whole ``test/``, in a fresh temp folder."""
    root = Path(tempfile.mkdtemp(prefix="emorec-fer-"))
    for path in fer_train_sample(fer_dir, train_images, seed):
        (root / "train" / path.parent.name).mkdir(parents=True, exist_ok=True)
        os.symlink(path, root / "train" / path.parent.name / path.name)
    os.symlink(fer_dir / "test", root / "test")
    return root


def fer_test_images(fer_dir: Path, limit: int | None) -> list[tuple[str, str]]:
    """(path, canonical label) of PublicTest images, in a fixed shuffled order."""
    import numpy as np

    from emorec.labels import SYNONYMS

    files = sorted(p for p in (fer_dir / "test").glob("*/*") if p.is_file())
    order = np.random.default_rng(0).permutation(len(files))
    items = [(str(files[i]), SYNONYMS[files[i].parent.name]) for i in order]
    return items[:limit] if limit else items


def accuracy(predictor, images: list, labels: list[str]) -> float:
    """Share of ``images`` (face crops) that ``emorec`` ``predictor`` labels as ``labels``."""
    predicted = [p.label for p in predictor.predict(images, detect_faces=False)]
    return sum(a == b for a, b in zip(predicted, labels)) / len(labels)


def preset_values(name: str) -> dict:
    """A preset's model, dataset, fixed values and first grid point: one training config."""
    from emorec import search_space

    path, preset = search_space.read_preset(name)
    space = search_space.load(path)
    return {**preset, **space.fixed, **{k: v[0] for k, v in space.grid.items()}}


def parse_or_run_child(p: argparse.ArgumentParser, option: str, run) -> argparse.Namespace:
    """Parse the arguments; if the hidden ``--<option> VALUE`` (a script's child-process
    mode) is given, call ``run(VALUE, args)`` and exit instead of returning."""
    p.add_argument(f"--{option}", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    value = getattr(args, option.replace("-", "_"))
    if value:
        run(value, args)
        sys.exit(0)
    return args


# --- measurement helpers -----------------------------------------------------------------------


def median(values) -> float:
    return float(statistics.median(values))


def spread(values) -> float:
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0


def percentile(values, q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo))


@contextlib.contextmanager
def temporary_store(root: str | None = None):
    """A throwaway MLflow + Optuna store (SQLite, artifacts beside it), never ./mlruns;
    removed afterwards unless ``root`` names a folder to keep."""
    import shutil

    folder = Path(root) if root else Path(tempfile.mkdtemp(prefix="emorec-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with environment(
            MLFLOW_TRACKING_URI=f"sqlite:///{folder / 'mlflow.db'}",
            EMOREC_OPTUNA_STORAGE=f"sqlite:///{folder / 'optuna.db'}",
        ):
            yield folder
    finally:
        if not root:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def environment(**values: str):
    """Environment variables set to ``values`` inside the block, as they were after it."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_json(cmd: list[str], *, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a child process whose last stdout line is a JSON object; return that object."""
    out = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} ... failed ({out.returncode}):\n{out.stderr[-3000:]}"
        )
    return json.loads(lines[-1])


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def matmul_peak_gflops(size: int = 1024, seconds: float = 2.0) -> float:
    """This CPU's float32 matrix-multiply rate through PyTorch (median of timed bursts)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 3:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        rates.append(4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return max(rates)


# --- machine facts -----------------------------------------------------------------------------


def machine() -> dict:
    import platform

    from emorec.resources import system_info

    info = system_info()
    info["load_average_1m"] = round(os.getloadavg()[0], 2)
    info["python"] = platform.python_version()
    for module in ("torch", "tensorflow", "onnxruntime", "mlflow", "optuna"):
        if module in sys.modules:
            info[f"{module}_version"] = getattr(sys.modules[module], "__version__", None)
    if "torch" in sys.modules:
        info["torch_threads"] = sys.modules["torch"].get_num_threads()
    return info


def git_commit() -> str:
    """The commit of the emorec code measured: an earlier checkout's when a before/after
    runs this script with that checkout's src/ on PYTHONPATH, else this checkout's."""
    emorec = sys.modules.get("emorec")
    where = Path(emorec.__file__).parent if emorec is not None else REPO
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=where
    )
    return out.stdout.strip() or "unknown"


def target(name: str, measured: float, goal: str, met: bool | None, unit: str = "") -> dict:
    """One target line: what was measured, the goal, and whether it was met (None: no
    verdict, because the run was not the target's or its noise exceeds the goal)."""
    return {"name": name, "measured": measured, "unit": unit, "goal": goal, "met": met}


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # NumPy scalars
        return _finite(obj.item())
    return obj


def previous(name: str, args: argparse.Namespace) -> dict:
    """The last results of ``name`` in the results folder ({} if none), for a run that
    measures only part of what the script covers and keeps the rest."""
    path = Path(args.results_dir) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def save(
    name: str,
    title: str,
    args: argparse.Namespace,
    *,
    targets: list[dict],
    figures: dict,
    notes: list[str] = (),
    tables: dict[str, str] | None = None,
    started: float | None = None,
) -> Path:
    """Write ``<results-dir>/<name>.json``, print the figures, regenerate RESULTS.md."""
    results = Path(args.results_dir)
    results.mkdir(parents=True, exist_ok=True)
    # The script that ran, which a mode of a script writing a file of its own
    # (tracking_overhead.py --server-workers) does not name.
    payload = {
        "name": name,
        "title": title,
        "script": f"benchmarks/{Path(sys.argv[0]).name}",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "wall_time_s": round(time.time() - started, 1) if started else None,
        "args": {k: v for k, v in vars(args).items()},
        "machine": machine(),
        "targets": targets,
        "figures": figures,
        "tables": tables or {},
        "notes": list(notes),
    }
    path = results / f"{name}.json"
    path.write_text(json.dumps(_finite(payload), indent=2, default=str) + "\n")
    print(f"\n== {title} ==")
    for t in targets:
        print(
            f"  {t['name']}: {_fmt(t['measured'])}{t['unit']}  (goal {t['goal']}) -> "
            f"{_verdict(t['met'])}"
        )
    for k, v in figures.items():
        if not isinstance(v, (dict, list)):
            print(f"  {k}: {_fmt(v)}")
    for table in (tables or {}).values():
        print(table)
    print(f"wrote {path}")
    render(results)
    return path


# --- RESULTS.md --------------------------------------------------------------------------------


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
    return str(v)


def _verdict(met) -> str:
    return {True: "met", False: "MISSED", None: "no verdict"}[met]


def render(results: Path) -> Path:
    """RESULTS.md from every JSON in ``results`` (beside it for the default folder)."""
    results = Path(results)
    out = (
        (HERE / "RESULTS.md")
        if results.resolve() == DEFAULT_RESULTS.resolve()
        else results / "RESULTS.md"
    )
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    lines = [
        "# Benchmark results",
        "",
        "Generated by `benchmarks/benchlib.py` from the JSON files in `benchmarks/results/`; "
        "do not edit by hand. Rerun any script to refresh its section "
        "(see `benchmarks/README.md`).",
        "",
    ]
    if runs:
        m = runs[-1]["machine"]
        lines += [
            "## Machine",
            "",
            f"- CPU: {m.get('cpu_model')} ({m.get('cpu_cores_physical')} physical / "
            f"{m.get('cpu_cores_logical')} logical cores), RAM {m.get('ram_total_gb')} GB, "
            f"GPU: {m.get('gpu_name') or 'none'}",
            f"- {m.get('platform')}, Python {m.get('python')}",
            "- The 2 cores were shared with another engineer running tests during these "
            "runs (load average at each script's end is in its JSON), so absolute "
            "timings are noisy; ratios were measured side by side, interleaved, as "
            "medians of repeats.",
            "",
        ]
        lines += [
            "## Targets",
            "",
            "| script | target | measured | goal | verdict |",
            "|---|---|---|---|---|",
        ]
        for r in runs:
            for t in r["targets"]:
                lines.append(
                    f"| `{r['name']}` | {t['name']} | {_fmt(t['measured'])}{t['unit']} "
                    f"| {t['goal']} | {_verdict(t['met'])} |"
                )
        lines.append("")
    for r in runs:
        lines += [
            f"## {r['title']} (`{r['script']}`)",
            "",
            f"Run {r['date']} at commit {r['git_commit']}, {r.get('wall_time_s')} s wall, "
            f"load average {r['machine'].get('load_average_1m')}; arguments: "
            + ", ".join(
                f"`{k}={v}`" for k, v in r["args"].items() if k not in ("data", "results_dir")
            ),
            "",
        ]
        scalars = {k: v for k, v in r["figures"].items() if not isinstance(v, (dict, list))}
        if scalars:
            lines += ["| figure | value |", "|---|---|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
            lines.append("")
        for table in r.get("tables", {}).values():
            lines += [table, ""]
        for note in r["notes"]:
            lines.append(f"- {note}")
        lines.append("")
    out.write_text("\n".join(lines))
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
