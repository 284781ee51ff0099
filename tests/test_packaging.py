"""The project's promises about itself: pins agree, the fixed layout exists, imports stay light."""

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_conda_yaml_pins_match_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((REPO / "conda.yaml").read_text())
    pip_section = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert sorted(p for p in pip_section if not p.startswith("-e")) == sorted(pyproject)
    assert "python=3.11" in conda["dependencies"]
    assert all("==" in dep for dep in pyproject), "every dependency is pinned exactly"


def test_fixed_top_level_exists():
    for name in (
        "src",
        "mlruns",
        "MLproject",
        "conda.yaml",
        "tuning",
        "tests",
        "docker",
        "README.md",
        ".ci/run",
        "Makefile",
    ):
        assert (REPO / name).exists(), name


def test_mlproject_main_maps_every_config_field():
    import dataclasses

    from emorec.config import TrainConfig

    main = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]["main"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(main["parameters"]) == fields
    for name in fields:
        assert f"--{name.replace('_', '-')} {{{name}}}" in main["command"], name
    defaults = TrainConfig()
    for name, spec in main["parameters"].items():
        expected = getattr(defaults, name)
        given = spec["default"]
        if isinstance(expected, bool):
            assert str(given).lower() == str(expected).lower(), name
        elif expected is None:
            assert given == "", name
        else:
            assert type(expected)(given) == expected, name


def test_import_emorec_loads_no_framework():
    code = (
        "import sys, emorec, emorec.config, emorec.data, emorec.models, emorec.cli;"
        "heavy = {'torch', 'tensorflow', 'keras', 'mlflow'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())


def test_compose_file_references_what_exists():
    compose = _compose()
    assert {"postgres", "mlflow", "worker"} <= set(compose["services"])
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (REPO / "docker" / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):  # a file of ours mounted into the container
                assert (REPO / "docker" / source).exists(), f"{name}: {source}"
        for dependency in service.get("depends_on", {}):
            assert dependency in compose["services"], f"{name} depends on {dependency}"
    # The named volumes keep the databases and artifacts across restarts; the tracking
    # server stores the artifacts in its volume by default.
    assert {"pgdata", "mlartifacts"} <= set(compose["volumes"])
    server = compose["services"]["mlflow"]
    assert "mlartifacts:/mlartifacts" in server["volumes"]
    assert "--artifacts-destination /mlartifacts" in " ".join(server["command"])
    for name in ("postgres", "mlflow"):
        assert "healthcheck" in compose["services"][name], name
    # Every ${VAR} the compose files read is in the example env file (with a placeholder).
    import re

    example = (REPO / "docker" / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    for path in (REPO / "docker").glob("compose*.yaml"):
        used = set(re.findall(r"\$\{([A-Z_]+)", path.read_text()))
        assert used <= defined, (path.name, used - defined)
    s3 = yaml.safe_load((REPO / "docker" / "compose.s3.yaml").read_text())
    assert {"minio", "minio-init", "mlflow"} <= set(s3["services"]) and "miniodata" in s3["volumes"]


def test_compose_and_env_example_hold_no_secret_and_publish_only_on_loopback():
    compose = _compose()
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET")):
                assert str(value).startswith("${"), f"{name}.{key} is written in the file"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    for line in (REPO / "docker" / ".env.example").read_text().splitlines():
        if "PASSWORD=" in line:
            assert "change-me" in line, line
    assert "docker/.env" in (REPO / ".gitignore").read_text().splitlines()
    assert ".venv/" in (REPO / ".dockerignore").read_text().splitlines()


def test_compose_tracking_server_answers_without_nagle_delays_or_idle_job_runners():
    # More than one uvicorn worker: ~40 ms more per request (benchmarks/README.md, item 2).
    server = _compose()["services"]["mlflow"]
    command = " ".join(server["command"]).split()
    assert command[command.index("--workers") + 1] == "1"
    assert server["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_dockerfile_pins_torch_like_pyproject():
    import re

    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    pins = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in ("torch", "torchvision"):
        pin = next(p for p in pins if p.startswith(f"{package}=="))
        assert re.search(rf"\b{re.escape(pin)}\b", dockerfile), pin
    assert "ARG BASE=python:3.11-slim" in dockerfile and "USER emorec" in dockerfile
    # PyPI (or wheels in the build context) only: no other index.
    assert "--index-url" not in dockerfile and "--extra-index-url" not in dockerfile
