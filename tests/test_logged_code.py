"""A logged model carries the emorec code it needs, and only that (``SERVED_CODE``).

Each kind of model a run or an export logs (the raw-image pyfunc of a PyTorch and of a
Keras run, the PyTorch network in its own flavour, the int8 ONNX pyfunc) is loaded and
used in a fresh process, from a downloaded copy: MLflow puts the model's ``code/`` first
on the path, so emorec is imported from there, and every emorec module the model uses
must be the model's own (one missing from ``SERVED_CODE`` would come from the installed
package, or fail to import where there is none). The rest of emorec stays importable
after a model is loaded.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY

LOAD_AND_USE = r"""
import base64, json, sys
import cv2, numpy as np, pandas as pd, mlflow.pyfunc

path, kind = sys.argv[1], sys.argv[2]
if kind == "pytorch":
    import mlflow.pytorch
    net = mlflow.pytorch.load_model(path)
    used = sorted({type(m).__name__ for m in net.modules()
                   if type(m).__module__.startswith("emorec")})
else:
    png = cv2.imencode(".png", np.full((20, 24), 128, np.uint8))[1].tobytes()
    rows = mlflow.pyfunc.load_model(path).predict(
        pd.DataFrame({"image": [base64.b64encode(png).decode()]}))
    used = len(rows)
print(json.dumps({"used": used, "files": {name: getattr(module, "__file__", None)
                  for name, module in sys.modules.items() if name.split(".")[0] == "emorec"}}))
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """{kind: local copy of a logged model}: tiny cnn_torch, cnn_tf and SANet runs and the
    cnn_torch run's int8 export, in a store of their own."""
    import mlflow

    from emorec.cli import main
    from emorec.config import TrainConfig
    from emorec.training import train

    root = tmp_path_factory.mktemp("logged_code")
    uri = f"sqlite:///{root}/mlflow.db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.set_tracking_uri(uri)
        torch_run = train(TrainConfig(**TINY)).run_id
        keras_run = train(TrainConfig(model="cnn_tf", **TINY)).run_id
        # SANet's network has classes of emorec's own (cnn_torch's is all torch.nn).
        sanet_run = train(TrainConfig(model="sanet", **TINY)).run_id
        printed = io.StringIO()  # the CLI, as users export: it prints the logged model's URI
        with contextlib.redirect_stdout(printed):
            assert (
                main(
                    [
                        "export",
                        "--model-uri",
                        f"runs:/{torch_run}/emotion_model",
                        "--quantize",
                        "int8",
                        str(root / "int8.onnx"),
                    ]
                )
                == 0
            )
        int8_uri = re.search(r"mlflow models serve -m (runs:/\S+)", printed.getvalue()).group(1)
        uris = {
            "torch pyfunc": f"runs:/{torch_run}/emotion_model",
            "pytorch": f"runs:/{sanet_run}/model",
            "keras pyfunc": f"runs:/{keras_run}/emotion_model",
            "int8 pyfunc": int8_uri,
        }
        return {
            kind: mlflow.artifacts.download_artifacts(u, dst_path=str(root / f"copy{k}"))
            for k, (kind, u) in enumerate(uris.items())
        }


@pytest.mark.parametrize("kind", ["torch pyfunc", "pytorch", "keras pyfunc", "int8 pyfunc"])
def test_a_logged_model_runs_on_the_code_it_carries(logged, kind, tmp_path):
    path = Path(logged[kind])
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_USE,
            str(path),
            "pytorch" if kind == "pytorch" else "pyfunc",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["used"] == (["ShuffleAttention"] if kind == "pytorch" else 1)
    assert answer["files"], "the model imported no emorec code"
    outside = {
        name: f
        for name, f in answer["files"].items()
        if f is None or not Path(f).is_relative_to(path)
    }
    assert not outside, f"emorec modules not from the model's own code: {outside}"


def test_a_logged_model_carries_the_served_code_only(logged):
    from emorec.tracking.logged_models import PACKAGE_DIR, SERVED_CODE

    code = Path(logged["torch pyfunc"]) / "code" / "emorec"
    carried = {p.relative_to(code).as_posix() for p in code.rglob("*.py")}
    served = {
        p.relative_to(PACKAGE_DIR).as_posix()
        for entry in SERVED_CODE
        for p in (
            [PACKAGE_DIR / entry] if entry.endswith(".py") else (PACKAGE_DIR / entry).rglob("*.py")
        )
    }
    assert carried == served
    assert {"serving/pyfunc.py", "models/sanet.py", "engines/torch_engine.py"} <= carried
    assert not {"training.py", "cli/__init__.py", "study/run.py", "data/fer2013.py"} & carried


def test_the_rest_of_emorec_stays_importable_after_a_model_is_loaded(logged, tmp_path):
    # A notebook that loads a model first, then trains: the model's partial emorec must
    # not hide the installed one.
    path = Path(logged["torch pyfunc"])
    script = (
        "import sys, mlflow.pyfunc; mlflow.pyfunc.load_model(sys.argv[1]); "
        "import emorec, emorec.training; from emorec.config import TrainConfig; "
        "TrainConfig(); print(emorec.serving.pyfunc.__file__); "
        "print(emorec.training.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    served, installed = done.stdout.strip().splitlines()[-2:]
    assert Path(served).is_relative_to(path)
    assert not Path(installed).is_relative_to(path)


def test_the_served_code_copy_is_made_again_when_a_file_went_missing():
    # A /tmp cleaner under a study worker that runs for days: no model may log a partial copy.
    from emorec.tracking.logged_models import served_code

    first = Path(served_code())
    (first / "serving/pyfunc.py").unlink()
    again = Path(served_code())
    assert (again / "serving/pyfunc.py").is_file() and (again / "models" / "sanet.py").is_file()
    assert served_code() == str(again)  # kept while complete
