"""The logged `emotion_model` behind a real `mlflow models serve` process on 127.0.0.1.

Request format (JSON, POST /invocations):
    {"dataframe_split": {"columns": ["image"], "data": [["<base64 PNG/JPEG file>"], ...]}}
Answer: {"predictions": [{"<emotion>": p, ..., "label": ..., "confidence": ...}, ...]}.
User-input errors are HTTP 400 with {"error_code": "INVALID_PARAMETER_VALUE", "message": ...}.
"""

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


READY_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _wait_ready(proc, url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/ping", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {READY_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def _stop(proc) -> None:
    """Stop the server and its workers: they share its process group (start_new_session)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """`mlflow models serve` of the session's tiny run, on a free 127.0.0.1 port."""
    result, tracking_uri = tiny_run
    store = tmp_path_factory.mktemp("serve")
    port = _free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    log = store / "server.log"
    # The server runs `uvicorn` from PATH (as with an activated virtualenv).
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(mlflow_cli), "models", "serve", "-m", f"runs:/{result.run_id}/emotion_model",
             "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=store, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(proc, url, log)
        yield url + "/invocations", result.classes, proc
    finally:
        _stop(proc)


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _request(*cells) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["image"],
                                           "data": [[c] for c in cells]}}).encode()


def _face(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return _png(Image.fromarray(rng.integers(0, 255, (48, 40, 3), np.uint8)))


def test_valid_images_get_probabilities(server):
    url, classes, _ = server
    status, body = _post(url, _request(_face(0), _face(1)))
    assert status == 200, body
    assert len(body["predictions"]) == 2
    for row in body["predictions"]:
        proba = [row[c] for c in classes]
        assert abs(sum(proba) - 1) < 1e-5
        assert row["label"] == classes[int(np.argmax(proba))]
        assert row["confidence"] == pytest.approx(max(proba))


BAD_INPUTS = {
    "not base64": (_request("%%% not base64 %%%"), "not valid base64"),
    "garbage bytes": (_request(base64.b64encode(b"\x00garbage" * 20).decode()),
                      "not a readable image"),
    "empty image": (_request(""), "non-empty"),
    "no rows": (_request(), "no images"),
    "1x1 image": (_request(_png(Image.new("L", (1, 1)))), "too small"),
    # 48 megapixels over the 40M limit, yet an 8 kB PNG: rejected from the header.
    "oversized image": (_request(_png(Image.new("1", (8000, 6000)))), "exceeds the limit"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_a_400_with_a_message_and_the_server_keeps_serving(server, case):
    url, _, proc = server
    body, expected = BAD_INPUTS[case]
    status, answer = _post(url, body)
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert expected in answer["message"]
    assert proc.poll() is None
    status, answer = _post(url, _request(_face()))
    assert status == 200 and len(answer["predictions"]) == 1


def test_malformed_json_is_a_400(server):
    url, _, _ = server
    status, answer = _post(url, b"")
    assert 400 <= status < 500, answer
    assert answer.get("message")
