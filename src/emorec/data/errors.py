"""The one error type dataset scanners raise, and helpers to word it.

A ``DatasetError`` always says which on-disk layout was expected and what was
actually found, so a user pointing emorec at the wrong folder can fix the path
without reading the source. ``require_output_dir`` is the matching check for
the folders commands write to.
"""

from __future__ import annotations

import os
from pathlib import Path

from emorec.errors import UserError

# How many directory entries an error message lists before summarising the rest.
MAX_LISTED = 12


class DatasetError(UserError):
    """A dataset that is missing, malformed or not in the expected layout.

    Subclasses ``ValueError`` so callers that already catch bad-input errors
    keep working; the message names the expected layout and what was found.
    """


def describe_contents(root: Path, limit: int = MAX_LISTED) -> str:
    """The sorted entries of ``root`` for an error message, folders ending in ``/``.

    Returns ``"nothing (empty folder)"`` for an empty folder and never raises:
    it is only ever called while an error is being built.
    """
    try:
        with os.scandir(root) as entries:
            names = sorted(e.name + ("/" if e.is_dir() else "") for e in entries)
    except OSError as exc:
        return f"nothing readable ({exc.strerror})"
    if not names:
        return "nothing (empty folder)"
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return shown + (f", ... ({more} more)" if more > 0 else "")


def require_dir(root: str | os.PathLike, what: str) -> Path:
    """``root`` as a ``Path``; ``DatasetError`` if it is missing or not a folder.

    ``what`` names the expected content, e.g. ``"a KDEF folder"``.
    """
    path = Path(root)
    if not path.exists():
        raise DatasetError(f"expected {what} at {path}, but it does not exist")
    if not path.is_dir():
        raise DatasetError(f"expected {what} at {path}, but it is a file, not a folder")
    return path


def require_output_dir(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a ``Path``; ``ValueError`` if it, or a folder above it, exists but is
    not a folder (a file, a dangling link), so the later ``mkdir`` cannot fail.

    Only looks, creating nothing: a command refused later leaves nothing behind.
    ``what`` names the flag or role, e.g. ``"--out"``.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.is_dir():
            break
        if p.exists() or p.is_symlink():
            where = "it" if p == path else str(p)
            raise UserError(f"{what} {path}: cannot write there, {where} is a file, not a folder")
    return path
