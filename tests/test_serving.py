"""The logged `emotion_model` behind a real `mlflow models serve` process on 127.0.0.1.

Request format (JSON, POST /invocations):
    {"dataframe_split": {"columns": ["image"], "data": [["<base64 PNG/JPEG file>"], ...]}}
Answer: {"predictions": [{"<emotion>": p, ..., "label": ..., "confidence": ...}, ...]}.
User-input errors are HTTP 400 with {"error_code": "INVALID_PARAMETER_VALUE", "message": ...}.
"""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from services import model_server, post_json


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    """`mlflow models serve` of the session's tiny run, on a free 127.0.0.1 port."""
    result, tracking_uri = tiny_run
    with model_server(
        f"runs:/{result.run_id}/emotion_model", tracking_uri, tmp_path_factory.mktemp("serve")
    ) as (proc, url):
        yield url + "/invocations", result.classes, proc


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _request(*cells) -> bytes:
    return json.dumps(
        {"dataframe_split": {"columns": ["image"], "data": [[c] for c in cells]}}
    ).encode()


def _face(seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    return _png(Image.fromarray(rng.integers(0, 255, (48, 40, 3), np.uint8)))


def test_valid_images_get_probabilities(server):
    url, classes, _ = server
    status, body = post_json(url, _request(_face(0), _face(1)))
    assert status == 200, body
    assert len(body["predictions"]) == 2
    for row in body["predictions"]:
        proba = [row[c] for c in classes]
        assert abs(sum(proba) - 1) < 1e-5
        assert row["label"] == classes[int(np.argmax(proba))]
        assert row["confidence"] == pytest.approx(max(proba))


BAD_INPUTS = {
    "not base64": (_request("%%% not base64 %%%"), "not valid base64"),
    "garbage bytes": (
        _request(base64.b64encode(b"\x00garbage" * 20).decode()),
        "not a readable image",
    ),
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
    status, answer = post_json(url, body)
    assert status == 400, answer
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert expected in answer["message"]
    assert proc.poll() is None
    status, answer = post_json(url, _request(_face()))
    assert status == 200 and len(answer["predictions"]) == 1


def test_malformed_json_is_a_400(server):
    url, _, _ = server
    status, answer = post_json(url, b"")
    assert 400 <= status < 500, answer
    assert answer.get("message")


def _server_rss_mb(proc) -> float:
    """The RSS of the server and its workers (one process tree), in MB."""
    import psutil

    root = psutil.Process(proc.pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def _peak_rss_during(proc, request) -> tuple[object, float]:
    """(the request's answer, the server tree's peak RSS in MB sampled while it ran)."""
    import threading

    peak, done = [_server_rss_mb(proc)], threading.Event()

    def sample():
        while not done.wait(0.02):
            peak.append(_server_rss_mb(proc))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answer = request()
    finally:
        done.set()
        sampler.join()
    return answer, max(peak)


def _big_png(side: int, seed: int) -> str:
    """A grayscale photo-like PNG of side x side (a smooth gradient with noise: compresses)."""
    rng = np.random.default_rng(seed)
    row = np.linspace(0, 255, side, dtype=np.float32)
    pixels = (row[None, :] * 0.5 + row[:, None] * 0.5).astype(np.uint8)
    pixels[::97, ::89] = rng.integers(0, 255, pixels[::97, ::89].shape, np.uint8)
    return _png(Image.fromarray(pixels))


def test_a_request_past_the_pixel_budget_is_refused_before_any_decode(server):
    """Many large images in one small request: refused whole, from their headers, with the
    limit named; the server's memory does not grow by their decoded size."""
    from emorec.serving.pyfunc import REQUEST_PIXELS

    url, _, proc = server
    big = _big_png(6000, 0)  # 36 megapixels, a few hundred kB as PNG
    body = _request(*[big] * 30)  # 1.08 gigapixels decoded: ~1 GB as 8-bit gray
    baseline = _server_rss_mb(proc)
    (status, answer), peak = _peak_rss_during(proc, lambda: post_json(url, body))
    assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert f"the limit is {REQUEST_PIXELS} pixels a request" in answer["message"]
    assert peak - baseline < 150, f"the server grew {peak - baseline:.0f} MB"


def test_a_request_within_the_budget_is_decoded_one_image_at_a_time(server):
    """Two 36-megapixel photos (72 MP in all, under the 100 MP budget): answered, the
    server holding one decoded photo at a time."""
    url, classes, proc = server
    body = _request(_big_png(6000, 1), _big_png(6000, 2))
    baseline = _server_rss_mb(proc)
    (status, answer), peak = _peak_rss_during(proc, lambda: post_json(url, body))
    assert status == 200 and len(answer["predictions"]) == 2, answer
    # One decoded 6000 x 6000 gray photo is 34 MB, twice that while Pillow hands it to
    # NumPy, and its crop a little more: under what two decoded photos at once would take.
    assert peak - baseline < 140, f"the server grew {peak - baseline:.0f} MB"
