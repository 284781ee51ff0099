"""A run's evaluation figures, drawn in a helper process while the run logs its model.

Drawing and encoding the three figures every run logs (confusion matrix, ROC curves,
learning curves) takes ~0.28 s of Python at the end of each run and study trial, and
logging the model about as long. Both hold the GIL, so drawing on a thread gained nothing
(measured: 0.73 s against 0.69 in turns). One helper process, started on first use and
kept for the life of this one, draws them on another core instead: ``start`` hands it
the figures' data and returns at once, ``PendingFigures.log`` takes the PNGs (drawn by
then, while the model was logged) and logs them.

The helper is ``python -m emorec.figure_helper``, reading pickled requests on its stdin
and answering on its stdout. It imports matplotlib and this module only (~70 MB), not
MLflow or a framework, which is why it lives outside ``emorec.tracking``. Not
``multiprocessing``, whose spawned children import the
parent's main script again, which re-runs any user script without a ``__main__`` guard.
It is a convenience, never a dependency: when it cannot start, is busy or fails, the
figures are drawn here, as before, so a run never loses one. It is in a session of its
own (Ctrl-C is for the run it serves) and exits when this process closes its stdin,
whether this process ends or is killed.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DRAW_TIMEOUT_S = 120  # far above the ~0.3 s a drawing takes; a stuck helper is given up


class _Helper:
    """The drawing process and its pipes; one request at a time."""

    def __init__(self):
        package_root = str(Path(__file__).resolve().parents[1])  # where emorec is imported from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "emorec.figure_helper"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
            start_new_session=True)
        self.busy = threading.Lock()

    def send(self, args: tuple) -> None:
        pickle.dump(args, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def receive(self) -> dict[str, bytes]:
        import select

        ready, _, _ = select.select([self.process.stdout], [], [], DRAW_TIMEOUT_S)
        if not ready:
            raise TimeoutError(f"no figures after {DRAW_TIMEOUT_S} s")
        try:
            status, value = pickle.load(self.process.stdout)
        except EOFError:
            raise RuntimeError(f"the helper exited (code {self.process.wait(5)})") from None
        if status != "ok":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def _running_helper() -> _Helper | None:
    """The helper, started if it is not running; None where there is none to have
    (``select()`` on pipes is POSIX-only: elsewhere figures are drawn in-process)."""
    global _helper
    if os.name != "posix":
        return None
    with _helper_lock:
        if _helper is None or _helper.process.poll() is not None:
            _helper = _Helper()
            atexit.register(_helper.close)
        return _helper


class PendingFigures:
    """The evaluation figures of one run, being drawn; ``log()`` logs them to the active
    run, drawing them here if the helper did not."""

    def __init__(self, confusion: np.ndarray, classes: Sequence[str],
                 roc_curves: Mapping, history: Mapping[str, Sequence[float]]):
        self._args = (np.asarray(confusion), list(classes), dict(roc_curves),
                      {k: list(v) for k, v in history.items()})
        self._helper: _Helper | None = None
        try:
            helper = _running_helper()
            # Busy with another run's figures (runs on threads): drawn here instead.
            if helper is not None and helper.busy.acquire(blocking=False):
                try:
                    helper.send(self._args)
                except BaseException:
                    helper.busy.release()
                    raise
                self._helper = helper
        except Exception as exc:  # no process for us here (a sandbox, a broken pipe)
            log.warning("figures drawn in this process: no helper process (%s)", exc)

    def log(self) -> None:
        from emorec.tracking.runs import log_pngs

        pngs = None
        if self._helper is not None:
            try:
                pngs = self._helper.receive()
            except Exception as exc:
                log.warning("figures drawn in this process: the helper failed (%s: %s)",
                            type(exc).__name__, exc)
                self._helper.process.kill()  # a new one starts with the next run
            finally:
                self._helper.busy.release()
                self._helper = None
        if pngs is None:  # only then is matplotlib loaded in the run's process
            from emorec.plots import evaluation_pngs

            pngs = evaluation_pngs(*self._args)
        log_pngs(pngs)


def start(report: dict, history: Mapping[str, Sequence[float]], y_true: np.ndarray,
          proba: np.ndarray, classes: Sequence[str]) -> PendingFigures:
    """Start drawing the run's evaluation figures from its test report and history."""
    from emorec.metrics import roc_curves

    return PendingFigures(np.asarray(report["confusion_matrix"]), classes,
                          roc_curves(y_true, proba), history)


def _serve() -> None:
    """The helper's loop: a request is ``evaluation_pngs``' arguments, the answer
    ("ok", PNGs by artifact path) or ("error", what went wrong)."""
    from emorec.plots import evaluation_pngs

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            args = pickle.load(requests)
        except EOFError:  # the run's process closed the pipe, or died
            return
        try:
            answer = ("ok", evaluation_pngs(*args))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    _serve()
