"""PyTorch and TensorFlow in one process: the one import rule emorec enforces.

Both frameworks bundle LLVM: TensorFlow for XLA, PyTorch through Triton, the
kernel compiler that ``torch._dynamo`` loads (torchvision imports it, and so
do ``torch.onnx`` and MLflow's PyTorch flavour). Loading Triton's native
library *after* TensorFlow's ends the process with a segfault (exit 139;
``python -c "import keras, torchvision"`` reproduces it); the other order is
fine. A command that meets both frameworks (``emorec benchmark-all`` over a
Keras and a PyTorch model, ``emorec compare --cross`` over their champions, a
test session) cannot know which will come first.

The rule: once TensorFlow starts loading, Triton counts as not installed in
that process (``sys.modules["triton"] = None``, so ``import triton`` fails
and ``importlib.util.find_spec("triton")`` is None). PyTorch already handles
a missing Triton (every CPU build lacks it): it only needs Triton to compile
kernels (``torch.compile``), which emorec's eager training and inference
never do. Importing torch or torchvision before Keras instead would cost every
Keras run about a second and 1 GB of memory (and its logged peak RSS), and
Triton alone about 80 MB; this rule costs a single-framework process nothing.

``import emorec`` installs the guard (an import hook that imports neither
framework), so it holds in every process that imports emorec before its
second framework: the CLI, workers, served models, the tests.
"""

from __future__ import annotations

import importlib.abc
import logging
import sys

log = logging.getLogger(__name__)

# The top-level modules of the two libraries that cannot load in that order.
TENSORFLOW, TRITON = "tensorflow", "triton"


def _disable_triton() -> None:
    if TRITON not in sys.modules:  # already loaded (torch came first): the safe order
        sys.modules[TRITON] = None  # type: ignore[assignment]  # the "not installed" marker
        log.debug(
            "TensorFlow is loading: Triton is disabled in this process (loaded after "
            "TensorFlow it segfaults); PyTorch runs eagerly without it"
        )


class _TritonNeverAfterTensorFlow(importlib.abc.MetaPathFinder):
    """Sees every import first; finds nothing itself, it only reacts to TensorFlow's."""

    def find_spec(self, name, path=None, target=None):
        if name == TENSORFLOW:
            _disable_triton()
        return None  # the regular finders locate the module


def install() -> None:
    """Put the guard in place (idempotent); ``import emorec`` calls it."""
    if TENSORFLOW in sys.modules:  # TensorFlow came before emorec: the rule applies now
        _disable_triton()
    if not any(isinstance(f, _TritonNeverAfterTensorFlow) for f in sys.meta_path):
        sys.meta_path.insert(0, _TritonNeverAfterTensorFlow())
