"""The container stack started and checked for real (issue 26); run through docker/e2e.sh.

    docker/e2e.sh [--cold] [--keep]        # installs what it needs, then runs this

Builds the images (compose.yaml + compose.local.yaml: PostgreSQL from Debian's packages on
the local base), starts PostgreSQL and the MLflow server (artifacts in its `mlartifacts`
volume), then 3 workers on one grid study of 6 tiny trials (synthetic faces, 16 px,
2 epochs), SIGKILLs one worker in the middle of a trial, and checks what the issue asks:
every grid point COMPLETE exactly once, no MLflow run left RUNNING, a champion registered,
loadable and served (`mlflow models serve`) from a fresh container through the tracking
server, the artifacts in the volume, the data surviving `docker compose down` + `up`.
Then tears the stack down (volumes too; the images stay for a warm rerun) and writes
benchmarks/results/docker_e2e.json. Needs only Python's standard library on the host:
every query runs in a container of the stack.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "docker_e2e.json"
PROJECT = "emorec-e2e"
STUDY = "cnn_torch-synthetic-grid-accuracy"
MODEL_NAME = "emorec-cnn_torch-synthetic"
WORKERS = 3
# The study's grid: 3 x 2 = 6 tiny trials. `epochs` comes from SET (the worker's --set).
GRID = """\
fixed:
  image_size: 16
  samples: 280
  early_stopping: 0
grid:
  lr: [1.0e-3, 3.0e-4, 1.0e-4]
  batch_size: [16, 32]
"""
GRID_POINTS = 6
# Heartbeats every 2 s, dead after 10 s: the killed worker's trial is retried within the run.
TUNE_ARGS = "--space /data/e2e-grid.yaml --heartbeat-interval 2 --grace-period 10"

# Run in a fresh worker container (python -): the study's and the tracking server's state.
STATE_SNIPPET = r"""
import json, os, sys
import optuna, mlflow
from emorec.study.storage import with_driver
study, model = sys.argv[1], sys.argv[2]
st = optuna.load_study(study_name=study, storage=with_driver(os.environ["EMOREC_OPTUNA_STORAGE"]))
trials = [
    {"number": t.number, "state": t.state.name, "grid_id": t.system_attrs.get("grid_id"),
     "worker": t.user_attrs.get("worker"), "run_id": t.user_attrs.get("mlflow_run_id"),
     "reason": (t.user_attrs.get("state_reason") or "")[:200]}
    for t in st.get_trials(deepcopy=False)
]
client = mlflow.MlflowClient()
runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.study = '{study}'",
                          output_format="list")
out = {"trials": trials,
       "runs": [{"id": r.info.run_id, "status": r.info.status, "kind": r.data.tags.get("kind"),
                 "host": r.data.tags.get("host"), "trial": r.data.tags.get("trial_number"),
                 "artifact_uri": r.info.artifact_uri} for r in runs]}
try:
    v = client.get_model_version_by_alias(model, "champion")
    out["champion"] = {"version": v.version, "run_id": v.run_id, "source": v.source,
                       "model_id": getattr(v, "model_id", None)}
except Exception as exc:
    out["champion"] = None
    out["champion_error"] = f"{type(exc).__name__}: {exc}"[:300]
if out["champion"] and "--load" in sys.argv:
    import numpy as np
    import emorec
    predictor = emorec.load(f"models:/{model}@champion")
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    p = predictor.predict([image], detect_faces=False)[0]
    out["loaded_prediction"] = {"label": p.label, "confidence": round(p.confidence, 4)}
if out["champion"] and "--download" in sys.argv:
    import tempfile
    path = mlflow.artifacts.download_artifacts(f"models:/{model}@champion",
                                               dst_path=tempfile.mkdtemp())
    out["downloaded"] = sorted(os.listdir(path))
print("E2E-JSON " + json.dumps(out))
"""

# Run inside the serving container: a face-sized PNG to the REST endpoint.
INVOKE_SNIPPET = r"""
import base64, io, json, sys, urllib.request
import numpy as np
from PIL import Image
buf = io.BytesIO()
pixels = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
Image.fromarray(pixels).save(buf, "PNG")
image = base64.b64encode(buf.getvalue()).decode()
body = {"dataframe_split": {"columns": ["image"], "data": [[image]]}}
req = urllib.request.Request("http://127.0.0.1:5001/invocations", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
print(urllib.request.urlopen(req, timeout=30).read().decode())
"""


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(*cmd: str, check: bool = True, capture: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), text=True, capture_output=capture, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)[:300]} -> {proc.returncode}\n{(proc.stdout or '')[-2000:]}"
            f"\n{(proc.stderr or '')[-3000:]}"
        )
    return proc


class Stack:
    def __init__(self, env_file: Path):
        self.base = [
            "docker",
            "compose",
            "-p",
            PROJECT,
            "-f",
            str(REPO / "docker" / "compose.yaml"),
            "-f",
            str(REPO / "docker" / "compose.local.yaml"),
            "--env-file",
            str(env_file),
        ]

    def __call__(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return sh(*self.base, *args, **kw)

    def psql(self, sql: str) -> list[list[str]]:
        out = self(
            "exec", "-T", "postgres", "sh", "-c",
            f'psql -U "$POSTGRES_USER" -d optuna -At -F "|" -c "{sql}"',
            check=False,
        )  # fmt: skip
        return [line.split("|") for line in out.stdout.splitlines() if line]

    def snippet(self, code: str, *args: str) -> dict:
        out = self(
            "run", "--rm", "--no-deps", "-T", "--entrypoint", "python", "worker", "-", *args,
            input=code,
        )  # fmt: skip
        line = next(x for x in out.stdout.splitlines() if x.startswith("E2E-JSON "))
        return json.loads(line.removeprefix("E2E-JSON "))

    def containers(self, service: str) -> list[dict]:
        ids = self("ps", "-a", "-q", service).stdout.split()
        if not ids:
            return []
        fmt = "|".join(
            "{{" + f + "}}"
            for f in (".Id", ".Name", ".Config.Hostname", ".State.Status", ".State.ExitCode")
        )
        fmt += "|{{.RestartCount}}"
        rows = sh("docker", "inspect", "-f", fmt, *ids).stdout.splitlines()
        keys = ("id", "name", "hostname", "status", "exit_code", "restarts")
        return [dict(zip(keys, r.split("|"))) for r in rows]


def trial_states(stack: Stack) -> list[dict]:
    """The study's trials from PostgreSQL directly (fast enough to poll every second)."""
    rows = stack.psql(
        "SELECT t.number, t.state, "
        "COALESCE(EXTRACT(EPOCH FROM (now() AT TIME ZONE 'UTC' - t.datetime_start)), 0), "
        "COALESCE((SELECT value_json FROM trial_user_attributes a "
        "WHERE a.trial_id = t.trial_id AND a.key = 'worker'), '') "
        "FROM trials t ORDER BY t.number"
    )
    return [
        {"number": int(n), "state": s, "age_s": float(a), "worker": w.strip('"')}
        for n, s, a, w in rows
    ]


def volume_mb(name: str) -> float | None:
    path = Path(f"/var/lib/docker/volumes/{PROJECT}_{name}/_data")
    if not path.exists():
        return None
    out = sh("du", "-sm", str(path), check=False).stdout.split()
    return float(out[0]) if out else None


def image_mb(tag: str) -> float | None:
    out = sh("docker", "image", "inspect", "-f", "{{.Size}}", tag, check=False)
    return round(int(out.stdout.strip()) / 2**20, 1) if out.returncode == 0 else None


def machine() -> dict:
    """benchlib's machine facts (emorec's system_info where it imports), else the same
    keys from /proc: this script needs only Python's standard library."""
    try:
        sys.path[:0] = [str(REPO / "src"), str(REPO / "benchmarks")]
        import benchlib

        return benchlib.machine()
    except ImportError:
        import platform

        cpuinfo = Path("/proc/cpuinfo").read_text()
        model = next((x.split(":", 1)[1].strip() for x in cpuinfo.splitlines()
                      if x.startswith("model name")), None)  # fmt: skip
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        return {
            "cpu_model": model,
            "cpu_cores_logical": os.cpu_count(),
            "ram_total_gb": round(mem_kb / 2**20, 2),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }


def summary_target(checks: dict) -> dict:
    """One line in RESULTS.md's targets: how many of the checks passed (each in the JSON)."""
    met = sum(bool(v) for v in checks.values())
    return {"name": "end-to-end checks met", "measured": f"{met}/{len(checks)}", "unit": "",
            "goal": "all", "met": bool(checks) and met == len(checks)}  # fmt: skip


def checks_note(checks: dict) -> str:
    failed = [name for name, ok in checks.items() if not ok]
    return (
        "Checks: "
        + "; ".join(checks)
        + (f". FAILED: {'; '.join(failed)}." if failed else ". All passed.")
    )


def as_benchlib(result: dict, args, started: float) -> dict:
    """The result in benchlib's schema (RESULTS.md is rendered from it): each check a
    target, the times and disk figures as figures; the details kept as they are."""
    commit = sh("git", "rev-parse", "--short", "HEAD", check=False, cwd=REPO).stdout.strip()
    figures = {f"{k}_s": v for k, v in result["times_s"].items()}
    figures.update({f"{k} (MB)": v for k, v in (result.get("disk_mb") or {}).items()})
    if result.get("base_build_s") is not None:
        figures["base_image_mmdebstrap_s"] = result["base_build_s"]
    figures["checks"] = result["summary"]
    notes = [
        "3 workers (compose --scale) on one grid study of 6 tiny trials (synthetic faces, "
        "16 px, 2 epochs) in PostgreSQL 15 (Debian's, compose.local.yaml), the MLflow "
        "server storing artifacts in its volume; one worker SIGKILLed mid-trial; images "
        f"FROM {result['base_image']} (mmdebstrap bookworm), torch from the placed wheels.",
        f"Build: {result['build_kind']}. Not run here: python:3.11-slim/postgres:16 bases "
        "(no registry), compose.s3.yaml (no S3 server), docker/k8s (no cluster), GPU workers.",
    ]
    notes.append(checks_note(result["checks"]))
    if result.get("error"):
        notes.append(f"Error: {result['error'][:500]}")
    return {
        "name": "docker_e2e",
        "title": "The container stack end to end: build, 3 workers, a killed worker, checks",
        "script": "docker/e2e.sh -> benchmarks/docker_e2e.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "git_commit": commit or "unknown",
        "wall_time_s": round(time.time() - started, 1),
        "args": {
            "base": args.base,
            "workers": WORKERS,
            "grid_points": GRID_POINTS,
            "tune_args": TUNE_ARGS,
        },  # fmt: skip
        "machine": machine(),
        "targets": [summary_target(result["checks"])],
        "figures": figures,
        "tables": {},
        "notes": notes,
        **{k: result[k] for k in ("summary", "passed", "checks", "times_s", "details")},
        "disk_mb": result.get("disk_mb"),
        "docker_system_df": result.get("docker_system_df"),
        "base_build_s": result.get("base_build_s"),
        "error": result.get("error"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default=os.environ.get("E2E_BASE", "emorec-base:bookworm"))
    p.add_argument("--port", type=int, default=5057, help="MLflow UI on 127.0.0.1:PORT")
    p.add_argument("--keep", action="store_true", help="leave the stack and volumes up")
    p.add_argument("--out", default=str(RESULT))
    args = p.parse_args(argv)
    started = time.time()

    work = Path(tempfile.mkdtemp(prefix="emorec-e2e-"))
    data = work / "data"
    data.mkdir()
    (data / "e2e-grid.yaml").write_text(GRID)
    for path in (work, data):
        path.chmod(0o755)  # the workers run as uid 1000 and read the grid from /data
    (data / "e2e-grid.yaml").chmod(0o644)
    env_file = work / "e2e.env"
    env_file.write_text(
        "\n".join(
            [
                "POSTGRES_USER=emorec",
                f"POSTGRES_PASSWORD={secrets.token_urlsafe(18)}",
                "MODEL=cnn_torch",
                "DATASET=synthetic",
                f"DATA_DIR={data}",
                "SAMPLER=grid",
                "SET=epochs=2",
                f"TUNE_ARGS={TUNE_ARGS}",
                f"MLFLOW_PORT={args.port}",
                f"WORKERS={WORKERS}",
                f"BASE={args.base}",
                "TAG=e2e",
            ]
        )
        + "\n"
    )
    env_file.chmod(0o600)
    stack = Stack(env_file)
    result: dict = {
        "what": "docker/e2e.sh: compose.yaml + compose.local.yaml, 3 workers, a 6-point grid "
        "of tiny trials, one worker SIGKILLed mid-trial",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{os.cpu_count()} cores",
        "base_image": args.base,
        "base_build_s": float(os.environ["E2E_BASE_S"]) if os.environ.get("E2E_BASE_S") else None,
        "times_s": {},
        "checks": {},
        "details": {},
    }
    times, checks, details = result["times_s"], result["checks"], result["details"]
    cold = not (image_mb("emorec:e2e") and image_mb("emorec-postgres:e2e"))
    result["build_kind"] = "cold (no image, no build cache)" if cold else "cached images"
    try:
        stack("down", "-v", "--remove-orphans", check=False)
        log("building the images (nice -n 10) ...")
        t0 = time.perf_counter()
        sh("nice", "-n", "10", *stack.base, "build", capture=False)
        times["build"] = round(time.perf_counter() - t0, 1)
        checks["images built"] = True
        t1 = time.perf_counter()
        stack("up", "-d", "--wait", "postgres", "mlflow", capture=False)
        times["up_postgres_mlflow_healthy"] = round(time.perf_counter() - t1, 1)
        times["cold_total" if cold else "build_and_up"] = round(time.perf_counter() - t0, 1)
        checks["PostgreSQL and MLflow healthy"] = True

        log(f"starting {WORKERS} workers on {STUDY} ...")
        t0 = time.perf_counter()
        stack("up", "-d", "--scale", f"worker={WORKERS}", "worker", capture=False)
        killed = None
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline:
            workers = stack.containers("worker")
            if killed is None:
                trials = trial_states(stack)
                done = sum(t["state"] == "COMPLETE" for t in trials)
                victim = next(
                    (t for t in trials if t["state"] == "RUNNING" and t["age_s"] >= 3), None
                )
                if done >= 1 and victim:
                    host = victim["worker"].split(":")[0]
                    box = next((c for c in workers if c["hostname"] == host), None)
                    if box and box["status"] == "running":
                        sh("docker", "kill", "-s", "KILL", box["id"])
                        killed = {
                            **victim,
                            "container": box["name"],
                            "at_s": round(time.perf_counter() - t0, 1),
                        }
                        log(
                            f"SIGKILLed {box['name']} in trial {victim['number']} "
                            f"({victim['age_s']:.0f} s into it)"
                        )
            if workers and all(c["status"] in ("exited", "dead") for c in workers):
                break
            time.sleep(1)
        times["study"] = round(time.perf_counter() - t0, 1)
        workers = stack.containers("worker")
        details["workers"] = workers
        details["killed"] = killed
        checks["a worker SIGKILLed mid-trial"] = killed is not None
        survivors = [c for c in workers if killed is None or c["name"] != killed["container"]]
        checks["surviving workers exited 0"] = bool(survivors) and all(
            c["status"] == "exited" and c["exit_code"] == "0" for c in survivors
        )
        if not checks["surviving workers exited 0"]:
            details["worker_logs_tail"] = stack(
                "logs", "--tail", "40", "worker", check=False
            ).stdout[-6000:]

        log("checking the study and the tracking server from a fresh container ...")
        state = stack.snippet(STATE_SNIPPET, STUDY, MODEL_NAME, "--load")
        trials = state["trials"]
        details["trials"] = trials
        complete = {}
        for t in trials:
            if t["state"] == "COMPLETE":
                complete.setdefault(t["grid_id"], []).append(t["number"])
        checks["every grid point COMPLETE exactly once"] = sorted(complete) == list(
            range(GRID_POINTS)
        ) and all(len(v) == 1 for v in complete.values())
        failed = [t for t in trials if t["state"] == "FAIL"]
        checks["the killed trial failed and its point was run again"] = bool(
            killed
            and any(t["number"] == killed["number"] for t in failed)
            and any(
                t["grid_id"]
                == next(x["grid_id"] for x in trials if x["number"] == killed["number"])
                for t in trials
                if t["state"] == "COMPLETE"
            )
        )
        runs = state["runs"]
        running = [r for r in runs if r["status"] == "RUNNING"]
        details["runs_by_kind_status"] = {
            f"{k}/{s}": sum(r["kind"] == k and r["status"] == s for r in runs)
            for k in sorted({r["kind"] or "-" for r in runs})
            for s in sorted({r["status"] for r in runs})
            if any(r["kind"] == k and r["status"] == s for r in runs)
        }
        details["runs_left_running"] = running
        checks["no trial run left RUNNING"] = not [r for r in running if r["kind"] != "study"]
        checks["no study-session run left RUNNING"] = not [
            r for r in running if r["kind"] == "study"
        ]
        champion = state.get("champion")
        details["champion"] = champion or state.get("champion_error")
        checks["champion registered"] = bool(champion)
        details["loaded_prediction"] = state.get("loaded_prediction")
        checks["champion loadable in a fresh container (emorec.load)"] = bool(
            state.get("loaded_prediction", {}).get("label")
        )

        # Served: `mlflow models serve` in a fresh container pulls the model through the
        # tracking server (models:/ -> mlflow-artifacts:/ -> the mlartifacts volume).
        log("serving the champion from a fresh container ...")
        serve = f"{PROJECT}-serve"
        sh("docker", "rm", "-f", serve, check=False)
        t1 = time.perf_counter()
        stack(
            "run", "-d", "--no-deps", "--name", serve, "--entrypoint", "mlflow", "worker",
            "models", "serve", "-m", f"models:/{MODEL_NAME}@champion", "--env-manager", "local",
            "-h", "127.0.0.1", "-p", "5001",
        )  # fmt: skip
        answer = None
        while time.perf_counter() - t1 < 240 and answer is None:
            time.sleep(3)
            out = sh(
                "docker", "exec", "-i", serve, "python", "-", input=INVOKE_SNIPPET, check=False
            )
            if out.returncode == 0 and "predictions" in out.stdout:
                answer = json.loads(out.stdout)
            elif (
                sh("docker", "inspect", "-f", "{{.State.Running}}", serve).stdout.strip() != "true"
            ):
                details["serve_logs"] = sh("docker", "logs", serve, check=False).stderr[-3000:]
                break
        times["serve_first_answer"] = round(time.perf_counter() - t1, 1)
        details["served_prediction"] = answer
        checks["champion served from a fresh container (mlflow models serve)"] = bool(
            answer and answer["predictions"] and "label" in answer["predictions"][0]
        )
        sh("docker", "rm", "-f", serve, check=False)

        # Artifacts: where compose.yaml says, in the server's volume.
        found = stack(
            "exec", "-T", "mlflow", "sh", "-c",
            "find /mlartifacts -name MLmodel | wc -l; du -sm /mlartifacts | cut -f1",
        ).stdout.split()  # fmt: skip
        # The version's source is its logged model (models:/m-<id>), stored under that id.
        source = (champion or {}).get("source") or ""
        needle = source.rsplit("/", 1)[-1] if source.startswith("models:/") else "?"
        hit = stack("exec", "-T", "mlflow", "sh", "-c",
                    f"find /mlartifacts -path '*{needle}*' -name MLmodel | head -1",
                    check=False).stdout.strip()  # fmt: skip
        details["artifacts"] = {"MLmodel_files": int(found[0]), "volume_mb": float(found[1]),
                                "champion_MLmodel": hit,
                                "trial_artifact_uris": sorted({r["artifact_uri"].split("/")[0]
                                                               for r in runs})}  # fmt: skip
        checks["artifacts in the mlartifacts volume"] = bool(hit) and all(
            r["artifact_uri"].startswith("mlflow-artifacts:") for r in runs
        )

        # Persistence: down (containers and network gone, volumes kept), up again.
        before = {"trials": len(trials), "runs": len(runs), "champion": champion}
        log("docker compose down, then up (warm) ...")
        stack("down", capture=False)
        t1 = time.perf_counter()
        stack("up", "-d", "--wait", "postgres", "mlflow", capture=False)
        times["warm_up_postgres_mlflow_healthy"] = round(time.perf_counter() - t1, 1)
        again = stack.snippet(STATE_SNIPPET, STUDY, MODEL_NAME, "--download")
        after = {"trials": len(again["trials"]), "runs": len(again["runs"]),
                 "champion": again.get("champion")}  # fmt: skip
        details["persistence"] = {"before": before, "after": after,
                                  "downloaded": again.get("downloaded")}  # fmt: skip
        checks["data survive docker compose down + up"] = before == after and "MLmodel" in (
            again.get("downloaded") or []
        )

        result["disk_mb"] = {
            "image emorec:e2e": image_mb("emorec:e2e"),
            "image emorec-postgres:e2e": image_mb("emorec-postgres:e2e"),
            f"image {args.base}": image_mb(args.base),
            "volume pgdata": volume_mb("pgdata"),
            "volume mlartifacts": volume_mb("mlartifacts"),
            "volume cache": volume_mb("cache"),
        }
        df = sh("docker", "system", "df", "--format", "{{.Type}}|{{.Size}}", check=False)
        result["docker_system_df"] = dict(
            line.split("|") for line in df.stdout.splitlines() if "|" in line
        )
    except Exception as exc:  # recorded, then the stack still comes down
        result["error"] = f"{type(exc).__name__}: {exc}"[-4000:]
        log(result["error"])
    finally:
        if not args.keep:
            log("tearing down (containers, network, volumes) ...")
            stack("down", "-v", "--remove-orphans", check=False)
            shutil.rmtree(work, ignore_errors=True)

    met = sum(bool(v) for v in checks.values())
    result["summary"] = f"{met}/{len(checks)} checks met"
    result["passed"] = met == len(checks) and "error" not in result
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(as_benchlib(result, args, started), indent=2, default=str) + "\n")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(json.dumps(times), result["summary"])
    print(f"wrote {out}")
    if out.resolve() == RESULT.resolve():
        sys.path.insert(0, str(REPO / "benchmarks"))
        import benchlib

        print(f"regenerated {benchlib.render(out.parent)}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
