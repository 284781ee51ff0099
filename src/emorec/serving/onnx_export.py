"""ONNX export of the emotion models (PyTorch and Keras).

    from emorec.serving.onnx_export import export_onnx
    export_onnx("models:/emorec-cnn_torch-ckplus@champion", "cnn.onnx")
    predictor = emorec.load("cnn.onnx")  # same Predictor API, on ONNX Runtime

The graph takes the normalised float32 batch (values in [-1, 1], the batch axis
dynamic) in the framework's own layout: NCHW from PyTorch, NHWC from Keras (the
``layout`` metadata says which), and outputs probabilities (softmax included). The
class names and the eval preprocessing travel in the file's metadata
(``emorec.serving.onnx_model``). Each framework's engine writes the graph
(``Engine.export_onnx``); every export is checked against the original model on random
inputs and refused when the probabilities differ by ``PARITY_ATOL`` or more.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from emorec.errors import UserError
from emorec.serving.onnx_model import METADATA_KEY

log = logging.getLogger(__name__)

INPUT, OUTPUT = "input", "probabilities"
OPSET = 17
PARITY_ATOL = 1e-4
PARITY_SAMPLES = 16


class OnnxParityError(RuntimeError):
    """The exported graph does not reproduce the original model's probabilities."""


def export_onnx(
    model_uri: str,
    out_path: str | Path,
    *,
    log_to_run: bool = True,
    opset: int = OPSET,
    tta: bool = True,
) -> Path:
    """Export the ``emotion_model`` at ``model_uri`` (PyTorch or Keras) to ``out_path`` (ONNX,
    with softmax, dynamic batch), check parity, and log it to the source run under ``onnx/``.

    ``tta=False`` exports the bare network of a model trained with test-time augmentation:
    one view per face instead of two (flip) or ten (tencrop), that much faster, with
    probabilities that are no longer those the run's test metrics were computed from (the
    metadata's ``tta`` says which graph a file holds; ``passes`` what one face costs).
    Raises OnnxParityError when the check fails (the file is then removed).
    """
    import onnx
    import onnxruntime as ort

    from emorec import tracking
    from emorec.engines import FRAMEWORKS

    out = writable_output(out_path)
    emotion_model = tracking.load_emotion_model(model_uri)
    if emotion_model.framework not in FRAMEWORKS:
        raise UserError(
            f"ONNX export supports {', '.join(FRAMEWORKS)} models; {model_uri} is "
            f"a {emotion_model.framework} model"
        )
    prep = emotion_model.prep
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    engine, trained = emotion_model.engine, emotion_model.network
    bare = engine.without_tta(trained)
    network = trained if tta else bare
    layout, reference = engine.export_onnx(
        network, out, prep, opset=opset, input_name=INPUT, output_name=OUTPUT
    )
    export_s = time.perf_counter() - start

    # Parity on a batch size other than the traced one, so the dynamic axis is exercised too.
    size, channels = prep.image_size, prep.channels
    shape = (size, size, channels) if layout == "NHWC" else (channels, size, size)
    x = np.random.default_rng(0).uniform(-1, 1, (PARITY_SAMPLES, *shape)).astype(np.float32)
    expected = reference(x)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
    if not diff < PARITY_ATOL:
        out.unlink(missing_ok=True)
        raise OnnxParityError(
            f"ONNX export of {model_uri} does not match the "
            f"{emotion_model.framework} model: max probability difference "
            f"{diff:.3g} (allowed < {PARITY_ATOL}; shapes {got.shape} vs "
            f"{expected.shape})"
        )

    proto = onnx.load(str(out))
    meta = {
        "classes": list(emotion_model.classes),
        "prep": prep.to_dict(),
        "source_uri": model_uri,
        "framework": emotion_model.framework,
        "opset": opset,
        "parity_max_abs_diff": diff,
        "parity_samples": PARITY_SAMPLES,
        "layout": layout,
        # The test-time augmentation in the graph, and the one the run evaluated with.
        # A TTA wrapper names its mode; a bare network (torch or Keras) has none.
        "tta": getattr(network, "mode", "none"),
        "tta_trained": getattr(trained, "mode", "none"),
        # What serving the file costs: views times the members of a snapshot ensemble.
        "passes": engine.passes_per_image(network),
        "passes_without_tta": engine.passes_per_image(bare),
        "input": f"float32 {layout} in [-1, 1]",
        "output": "probabilities, one column per class",
    }
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.doc_string = f"emorec emotion model exported from {model_uri}"
    onnx.save(proto, str(out))
    log.info("exported %s to %s in %.2fs; parity max |dp| %.3g", model_uri, out, export_s, diff)

    if log_to_run:
        run_id = tracking.run_id_of(model_uri)
        tracking.log_artifact_to_run(run_id, out, "onnx")
        log.info("logged %s to run %s under onnx/", out.name, run_id)
    return out


def writable_output(path: str | Path) -> Path:
    """``path`` as a file to write, refused before any work when it is a folder."""
    out = Path(path)
    if out.is_dir():
        raise UserError(
            f"{out} is a folder: give the .onnx file to write, e.g. {out / 'model.onnx'}"
        )
    return out
