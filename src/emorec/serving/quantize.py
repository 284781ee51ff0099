"""Static int8 quantization of an ONNX export: ``emorec export --quantize int8``.

    from emorec.serving.quantize import export_int8
    out, facts = export_int8("models:/emorec-cnn_torch-fer2013@champion", "champion-int8.onnx")
    emorec.load("champion-int8.onnx")  # same Predictor API, same class order

The parity-checked float32 export (``onnx_export.export_onnx``) goes through ONNX
Runtime's ``quant_pre_process`` (shape inference and graph optimisation: it folds the
exporter's Conv biases into initializers, which ``quantize_static`` needs) and
``quantize_static``: QDQ format (ONNX Runtime's recommended CPU format), uint8
activations and int8 weights, MinMax ranges calibrated on ``CALIBRATION_IMAGES``
images drawn from the model's own training split. That split is rebuilt from what the
run logged (dataset, folder, options, split settings), through the eval preprocessing
every serving path uses, and refused when its data or split digest differs from the
run's (the folder changed since training). The file keeps the float32 export's metadata (classes,
preprocessing, layout) plus what was done and how the int8 graph agrees with the
float32 one on ``CHECK_IMAGES`` validation images. Logged to the run, it is also a
pyfunc (``emotion_model_int8``, see ``emorec.serving.onnx_model``) for ``mlflow models serve``.

Only PyTorch models are quantized (int8 accuracy has been checked on them); Keras models
stay float32, see ``check_request``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from emorec.errors import UserError

log = logging.getLogger(__name__)

SCHEMES = ("int8",)
QUANTIZABLE = ("torch",)  # frameworks; Keras: see check_request
CALIBRATION_IMAGES = 256  # MinMax needs the extremes a sample shows, not the whole set
CHECK_IMAGES = 512
PYFUNC_NAME = "emotion_model_int8"
# Per-tensor: ONNX Runtime's advice for CPU speed. reduce_range (7-bit weights) avoids
# int16 saturation in the uint8 x int8 kernels of CPUs without VNNI, where an exported
# file may well be served (the variants measured alike: benchmarks/RESULTS.md, inference).
PER_CHANNEL = False
REDUCE_RANGE = True


def check_request(scheme: str, framework: str | None = None, model: str = "") -> None:
    """ValueError (one line, naming what is supported) for an unknown scheme or a model
    family that is not quantized."""
    if scheme not in SCHEMES:
        raise UserError(f"unknown --quantize {scheme!r}; supported: {', '.join(SCHEMES)}")
    if framework is not None and framework not in QUANTIZABLE:
        from emorec.models import get_spec, list_models

        names = [m for m in list_models() if get_spec(m).framework in QUANTIZABLE]
        # Keras graphs (tf2onnx, NHWC) have not been measured quantized: until a benchmark
        # shows int8 keeps their accuracy, they stay float32.
        raise UserError(
            f"--quantize {scheme} supports PyTorch models ({', '.join(names)}); "
            f"{model or 'this model'} is a {framework} model: export it as "
            "float32 (without --quantize)"
        )


def training_sample(
    run_id: str,
    prep,
    calibration: int = CALIBRATION_IMAGES,
    check: int = CHECK_IMAGES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration images from the run's train part, check images from its validation
    part): uint8 (N, S, S, C) after ``prep``, the run's own split rebuilt from what it
    logged; refused when the data is not what the run trained on."""
    from emorec import tracking
    from emorec.config import TrainConfig
    from emorec.data import DatasetError
    from emorec.training import load_data, split_data

    facts = tracking.training_facts(run_id)
    cfg = TrainConfig.from_logged(facts["params"]).replace(progress=False)
    try:
        ds = load_data(cfg, prep)
    except DatasetError as exc:
        raise UserError(
            f"int8 calibration reads the model's training images ({cfg.dataset} "
            f"in {cfg.data_dir or 'built-in'}): {exc}"
        ) from None
    split, _ = split_data(ds, cfg)
    now = {"dataset_digest": tracking.dataset_digest(ds), "split_digest": split.digest}
    changed = [f"{key} {facts[key]} then, {now[key]} now" for key in now if facts[key] != now[key]]
    if changed:  # ``prep`` is the model's, so the images are prepared as in training
        raise UserError(
            f"int8 calibration must use run {run_id}'s training images, but "
            f"{cfg.data_dir or cfg.dataset} has changed since it trained "
            f"({'; '.join(changed)}): restore the data it trained on"
        )
    rng = np.random.default_rng(seed)

    def pick(part: np.ndarray, n: int) -> np.ndarray:
        return ds.images[np.sort(rng.choice(part, min(n, len(part)), replace=False))]

    return pick(split.train, calibration), pick(split.val, check)


def quantize_file(
    float_path: Path, out_path: Path, calibration: np.ndarray, batch_size: int = 32
) -> None:
    """Static int8 quantization of ``float_path`` into ``out_path``, calibrated on
    ``calibration`` (float32, already the graph's input)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    from emorec.serving.onnx_export import INPUT

    class Batches(CalibrationDataReader):
        def __init__(self):
            self._it = iter(
                [
                    {INPUT: calibration[s : s + batch_size]}
                    for s in range(0, len(calibration), batch_size)
                ]
            )

        def get_next(self):
            return next(self._it, None)

    with tempfile.TemporaryDirectory(prefix="emorec-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        quantize_static(
            str(prepared),
            str(out_path),
            Batches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=PER_CHANNEL,
            reduce_range=REDUCE_RANGE,
            calibrate_method=CalibrationMethod.MinMax,
        )


def agreement(float_model, int8_model, x: np.ndarray) -> dict:
    """How the int8 graph's probabilities compare with the float32 graph's on ``x``."""
    p32, p8 = float_model.run(x), int8_model.run(x)
    return {
        "images": len(x),
        "top1_agreement": float(np.mean(p32.argmax(1) == p8.argmax(1))),
        "max_abs_diff": float(np.abs(p32 - p8).max()),
        "mean_abs_diff": float(np.abs(p32 - p8).mean()),
    }


def _write_metadata(path: Path, meta: dict) -> None:
    """Replace the file's emorec metadata (whatever the quantizer kept) with ``meta``."""
    import onnx

    from emorec.serving.onnx_model import METADATA_KEY

    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save(proto, str(path))


def export_int8(
    model_uri: str,
    out_path: str | Path,
    *,
    log_to_run: bool = True,
    calibration_images: int = CALIBRATION_IMAGES,
    tta: bool = True,
) -> tuple[Path, dict]:
    """Write the int8 ONNX model of ``model_uri`` to ``out_path``; returns (path, the
    ``quantization`` facts stored in its metadata). With ``log_to_run`` the file goes to
    the source run under ``onnx/`` and as the pyfunc ``emotion_model_int8`` (or
    ``emotion_model_int8_no_tta`` for ``tta=False``, see ``export_onnx``)."""
    from emorec import tracking
    from emorec.data.preprocess import network_input
    from emorec.models import get_spec
    from emorec.serving.onnx_export import export_onnx, writable_output
    from emorec.serving.onnx_model import OnnxModel

    out = writable_output(out_path)
    run_id = tracking.run_id_of(model_uri)
    model = tracking.training_facts(run_id)["params"].get("model", "")
    check_request("int8", get_spec(model).framework, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="emorec-int8-") as tmp:
        float_path = export_onnx(model_uri, Path(tmp) / "float32.onnx", log_to_run=False, tta=tta)
        float_model = OnnxModel(float_path)
        calib, check = training_sample(run_id, float_model.prep, calibration_images)
        quantize_file(float_path, out, network_input(calib, float_model.layout))
        facts = {
            "scheme": "int8",
            "method": "static",
            "format": "QDQ",
            "activations": "uint8",
            "weights": "int8",
            "per_channel": PER_CHANNEL,
            "reduce_range": REDUCE_RANGE,
            "calibration": "MinMax",
            "calibration_images": len(calib),
            "calibration_source": calib_source(run_id),
            "float32_bytes": float_path.stat().st_size,
        }
        meta = {**float_model.metadata, "quantization": facts}
        _write_metadata(out, meta)
        facts["check"] = agreement(
            float_model, OnnxModel(out), network_input(check, float_model.layout)
        )
        facts["int8_bytes"] = out.stat().st_size
    _write_metadata(out, meta)  # now with the check
    log.info("quantized %s to %s: %s", model_uri, out, facts)
    if log_to_run:
        from emorec.serving.onnx_model import log_to_run as log_pyfunc

        tracking.log_artifact_to_run(run_id, out, "onnx")
        name = f"{PYFUNC_NAME}_no_tta" if float_model.tta_left_out else PYFUNC_NAME
        facts["pyfunc_uri"] = log_pyfunc(run_id, out, name)
    return out, facts


def calib_source(run_id: str) -> str:
    """What the calibration images were, as the file records it: the run's training split,
    identified by the digests ``training_sample`` checked the data against."""
    from emorec import tracking

    facts = tracking.training_facts(run_id)
    return (
        f"train split of run {run_id} ({facts['params'].get('dataset')}; dataset digest "
        f"{facts['dataset_digest']}, split digest {facts['split_digest']})"
    )
