"""A run's evaluation figures, drawn in a helper process while the run logs its model.

Drawing and encoding the three figures every run logs (confusion matrix, ROC curves,
learning curves) takes ~0.28 s of Python at the end of each run and study trial, and
logging the model about as long. Both hold the GIL, so drawing on a thread gained nothing
(measured: 0.73 s against 0.69 in turns). One helper process, started when a run opens
(``prepare``) and kept for the life of this one, draws them on another core instead:
``start`` hands it the figures' data and returns at once, ``PendingFigures.log`` takes the
PNGs (drawn by then, while the model was logged) and logs them.

The helper is a Python process running ``_serve``, reading pickled requests on its stdin
and answering on its stdout. It imports matplotlib and this module only (~70 MB), not
MLflow or a framework, which is why it lives outside ``emorec.tracking``. Not
``multiprocessing``, whose spawned children import the parent's main script again, which
re-runs any user script without a ``__main__`` guard. It is a convenience, never a
dependency: when it cannot start, is busy or fails, the figures are drawn here, as
before, so a run never loses one. A request whose answer is not read (a timeout, Ctrl-C)
ends the helper, so that no answer ever reaches another run. It is in a session of its
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

DRAW_TIMEOUT_S = 30  # far above the ~0.3 s a drawing takes (~1 s with the first imports)

# The helper's command: -P keeps the working directory off its path (a matplotlib.py there
# must not shadow the real one), and the folder emorec was imported from goes at the end
# of its path, where it finds this emorec without shadowing anything installed.
_COMMAND = ("import sys; sys.path.append(sys.argv[1]); "
            "from emorec.figure_helper import _serve; _serve()")


class _Helper:
    """The drawing process and its pipes; one request at a time, answered before the next
    (a request whose answer is not read, for whatever reason, ends the process)."""

    def __init__(self):
        package_root = str(Path(__file__).resolve().parents[1])
        self.process = subprocess.Popen(
            [sys.executable, "-P", "-c", _COMMAND, package_root], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
        self.busy = threading.Lock()

    def send(self, args: tuple) -> None:
        pickle.dump(args, self.process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        self.process.stdin.flush()

    def receive(self, timeout: float) -> dict[str, bytes] | None:
        """The answer to the request sent, or None if it is not there within ``timeout``."""
        import selectors

        with selectors.DefaultSelector() as selector:  # select() fails on fds >= 1024
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return None
        try:
            status, value = pickle.load(self.process.stdout)
        except EOFError:
            raise RuntimeError(f"the helper exited (code {self.process.wait(5)})") from None
        if status != "ok":
            raise RuntimeError(value)
        return value

    def discard(self) -> None:
        """End the process now and release its pipes (its answer, if any, is dropped)."""
        self.process.kill()
        self.process.wait()
        self.process.stdin.close()
        self.process.stdout.close()
        atexit.unregister(self.close)

    def close(self) -> None:
        """End the process the gentle way: EOF on its stdin (at this process's exit)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def _running_helper() -> _Helper | None:
    """The helper, started if it is not running; None where there is none to have
    (selectors on pipes are POSIX-only; a frozen application's ``sys.executable`` is the
    application itself): there figures are drawn in-process."""
    global _helper
    if os.name != "posix" or getattr(sys, "frozen", False):
        return None
    with _helper_lock:
        if _helper is not None and _helper.process.poll() is not None:
            _helper.discard()  # died between runs: its pipes go with it
            _helper = None
        if _helper is None:
            _helper = _Helper()
            atexit.register(_helper.close)
        return _helper


class PendingFigures:
    """The evaluation figures of one run, being drawn; ``log()`` logs them to the active
    run, drawing them here if the helper did not."""

    def __init__(self, confusion: np.ndarray | Sequence, classes: Sequence[str],
                 roc_curves: Mapping, history: Mapping[str, Sequence[float]]):
        self._args = (np.asarray(confusion), list(classes), dict(roc_curves),
                      {k: list(v) for k, v in history.items()})
        self._helper: _Helper | None = None
        try:
            helper = _running_helper()
            # Busy with another run's figures (runs on threads): drawn here instead.
            if helper is not None and helper.busy.acquire(blocking=False):
                self._helper = helper
                helper.send(self._args)
        except BaseException as exc:
            self._give_up_helper()
            if not isinstance(exc, Exception):
                raise
            log.warning("figures drawn in this process: no helper process (%s)", exc)

    @property
    def drawn_elsewhere(self) -> bool:
        """Whether the helper is drawing them (on another core) right now."""
        return self._helper is not None

    def log(self, *, wait: bool = True) -> None:
        """Log the figures to the active run. ``wait=False`` (the run was interrupted):
        only if they are drawn already; nothing is waited for or drawn here."""
        from emorec.tracking.runs import log_pngs

        pngs = None
        if self._helper is not None:
            try:
                pngs = self._helper.receive(DRAW_TIMEOUT_S if wait else 0)
                if pngs is None and wait:
                    raise TimeoutError(f"no figures after {DRAW_TIMEOUT_S} s")
            except Exception as exc:
                log.warning("figures drawn in this process: the helper failed (%s: %s)",
                            type(exc).__name__, exc)
            finally:
                if pngs is None:  # its answer, if it ever comes, must not reach another run
                    self._give_up_helper()
                else:
                    self._helper.busy.release()
                    self._helper = None
        if pngs is None:
            if not wait:
                return
            from emorec.plots import evaluation_pngs  # only now is matplotlib loaded here

            pngs = evaluation_pngs(*self._args)
        log_pngs(pngs)

    def _give_up_helper(self) -> None:
        global _helper
        helper, self._helper = self._helper, None
        if helper is None:
            return
        with _helper_lock:
            helper.discard()
            if _helper is helper:
                _helper = None  # the next run starts a new one
        helper.busy.release()


def prepare() -> None:
    """Start the helper now, when a run opens, rather than when its figures are due: a new
    helper imports matplotlib first (~1 s, measured), which it then does while the model
    trains instead of at the end of a process's first run."""
    try:
        _running_helper()
    except Exception as exc:  # the figures will be drawn here then, as without a helper
        log.debug("no figure helper: %s", exc)


def start(report: dict, history: Mapping[str, Sequence[float]], y_true: np.ndarray,
          proba: np.ndarray, classes: Sequence[str]) -> PendingFigures:
    """Start drawing the run's evaluation figures from its test report and history."""
    from emorec.metrics import roc_curves

    return PendingFigures(report["confusion_matrix"], classes, roc_curves(y_true, proba),
                          history)


def _serve() -> None:
    """The helper's loop: a request is ``evaluation_pngs``' arguments, the answer
    ("ok", PNGs by artifact path) or ("error", what went wrong)."""
    # Below the training it starts beside (its imports run while the first run trains);
    # at the run's end it draws on a core the run's process leaves free.
    os.nice(10)
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
