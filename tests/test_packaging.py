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
    for name in ("src", "mlruns", "MLproject", "conda.yaml", "tuning", "tests", "docker",
                 "README.md", ".ci/run", "Makefile"):
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
    code = ("import sys, emorec, emorec.config, emorec.data, emorec.models, emorec.cli;"
            "heavy = {'torch', 'tensorflow', 'keras', 'mlflow'} & set(sys.modules);"
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
