"""Every registered model: builds, forwards, backpropagates; plus registry contracts.

"Parameter count" means TRAINABLE parameters throughout: PyTorch keeps
BatchNorm running statistics as buffers (outside ``parameters()``), Keras
keeps them as non-trainable weights (inside ``count_params()``), so only the
trainable counts are comparable.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import emorec.models as models

NUM_CLASSES, SIZE, BATCH = 7, 48, 2
torch.set_num_threads(2)


def torch_param_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def keras_param_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def check_torch(model, in_channels: int) -> None:
    torch.manual_seed(0)
    model.train()
    x = torch.rand(BATCH, in_channels, SIZE, SIZE) * 2 - 1  # our inputs live in [-1, 1]
    logits = model(x)
    assert logits.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 6])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def check_keras(model, in_channels: int) -> None:
    import keras
    import tensorflow as tf

    x = tf.random.uniform((BATCH, SIZE, SIZE, in_channels), -1.0, 1.0, seed=0)
    with tf.GradientTape() as tape:
        probs = model(x, training=True)
        labels = tf.constant([0, 6])
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
    assert tuple(probs.shape) == (BATCH, NUM_CLASSES)
    assert np.isfinite(probs.numpy()).all()
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-5)  # softmax output
    grads = tape.gradient(loss, model.trainable_weights)
    for w, g in zip(model.trainable_weights, grads):
        assert g is not None, f"no gradient for {w.path}"
        assert np.isfinite(np.asarray(g)).all(), f"non-finite gradient for {w.path}"


CASES = [(name, 1) for name in models.list_models()] + [("cnn_torch", 3)]


@pytest.mark.parametrize("name,in_channels", CASES)
def test_forward_backward(name, in_channels):
    model = models.build_model(
        name, num_classes=NUM_CLASSES, in_channels=in_channels, image_size=SIZE
    )
    if models.get_spec(name).framework == "torch":
        assert isinstance(model, torch.nn.Module)
        check_torch(model, in_channels)
    else:
        check_keras(model, in_channels)


def test_torch_and_keras_cnn_have_the_same_parameter_count():
    cfg = dict(num_classes=NUM_CLASSES, in_channels=1, image_size=SIZE)
    torch_count = torch_param_count(models.build_model("cnn_torch", **cfg))
    keras_count = keras_param_count(models.build_model("cnn_tf", **cfg))
    assert torch_count == keras_count


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid models") as err:
        models.build_model("nope", num_classes=NUM_CLASSES)
    for name in models.list_models():
        assert name in str(err.value)


def test_image_size_below_minimum_raises():
    with pytest.raises(ValueError, match="too small"):
        models.build_model("vgg16", num_classes=NUM_CLASSES, image_size=16)


@pytest.mark.parametrize("name", ["cnn_torch", "sanet", "cnn_tf"])
def test_from_scratch_models_refuse_pretrained(name):
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.build_model(name, num_classes=NUM_CLASSES, pretrained=True)


def test_missing_pretrained_weights_fail_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(FileNotFoundError) as err:
        models.build_model("vgg16", num_classes=NUM_CLASSES, pretrained=True)
    expected = tmp_path / "hub" / "checkpoints" / "vgg16_bn-6c64b313.pth"
    assert str(expected) in str(err.value)


def test_building_a_torch_model_does_not_import_tensorflow():
    code = (
        "import emorec.models as m, sys; m.build_model('cnn_torch', num_classes=7); "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
