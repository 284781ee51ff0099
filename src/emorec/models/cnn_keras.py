"""The proposed CNN in Keras 3 (TensorFlow backend); the twin of ``cnn_torch``.

Same architecture, channels-last input ``(image_size, image_size, in_channels)``:
four stages of ``[Conv2D 3x3 same, no bias -> BatchNormalization -> ReLU] x 2
-> MaxPooling2D 2x2 -> Dropout`` with 32/64/128/256 filters, then
GlobalAveragePooling2D, Dense(256, relu), Dropout, Dense(classes, softmax).

Differences from the PyTorch model, on purpose:

* the output is softmax PROBABILITIES (the Keras convention, so
  ``model.fit`` with ``sparse_categorical_crossentropy`` works as is), where
  ``cnn_torch`` returns logits;
* BatchNormalization uses momentum 0.9 and epsilon 1e-5, which is exactly
  PyTorch's default (torch ``momentum=0.1`` weights the new batch, Keras
  ``momentum`` weights the old average), not Keras's 0.99 / 1e-3.

Parameter count: both models have the same TRAINABLE parameters (conv
kernels, BN gamma/beta, dense weights and biases). Keras also counts BN's
moving mean/variance in ``count_params()`` as non-trainable weights, while
PyTorch keeps them as buffers outside ``parameters()``; compare trainable
parameters only.

Keras is imported inside ``build`` so that importing this module (and
``emorec``) never pulls in TensorFlow.
"""

from __future__ import annotations

import os

from emorec.errors import UserError

# Kept equal to cnn_torch.FILTERS by hand rather than imported: importing
# cnn_torch would load PyTorch into a TensorFlow run (tests compare the counts).
FILTERS = (32, 64, 128, 256)
HIDDEN_UNITS = 256
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def build(
    *,
    num_classes: int,
    in_channels: int,
    image_size: int,
    dropout: float = 0.25,
    pretrained: bool = False,
):
    """Build the proposed CNN as an uncompiled ``keras.Model`` ending in softmax."""
    if pretrained:
        raise UserError(
            "cnn_tf is trained from scratch: it has no pretrained weights (use pretrained=False)"
        )
    # This model is trained by the TensorFlow engine; a keras.json naming
    # another backend must not silently change that. No effect if keras is
    # already imported.
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    from keras import layers

    inputs = keras.Input(shape=(image_size, image_size, in_channels), name="image")
    x = inputs
    for i, ch in enumerate(FILTERS, start=1):
        for j in (1, 2):
            x = layers.Conv2D(ch, 3, padding="same", use_bias=False, name=f"stage{i}_conv{j}")(x)
            x = layers.BatchNormalization(
                momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"stage{i}_bn{j}"
            )(x)
            x = layers.ReLU(name=f"stage{i}_relu{j}")(x)
        x = layers.MaxPooling2D(2, name=f"stage{i}_pool")(x)
        x = layers.Dropout(dropout, name=f"stage{i}_dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(HIDDEN_UNITS, activation="relu", name="fc1")(x)
    x = layers.Dropout(dropout, name="fc1_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="cnn_tf")
