"""On-disk cache of decoded, preprocessed datasets.

The key covers everything the arrays depend on: the format and its options,
the preprocessing settings, and every source file's relative path, size and
modification time, so an edit, addition or removal anywhere under the data
folder invalidates it. Writes go to a temporary file renamed into place, so a
crash never leaves a half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

CACHE_VERSION = 1  # bump when decoding or preprocessing changes meaning


def cache_dir() -> Path:
    """``$EMOREC_CACHE_DIR``, else ``~/.cache/emorec/datasets``."""
    env = os.environ.get("EMOREC_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "emorec" / "datasets"


def tree_fingerprint(root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of every file under ``root`` (or of ``root`` itself)."""
    root = Path(root)
    if root.is_file():
        st = root.stat()
        return [(root.name, st.st_size, st.st_mtime_ns)]
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # a dangling or looping link: its own entry (decoding skips it)
                st = os.lstat(full)
            entries.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
    return entries


def cache_key(**parts) -> str:
    """A stable digest of JSON-serialisable parts."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def load(key: str) -> dict[str, np.ndarray] | None:
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    # An unreadable entry (truncated, empty, not a zip) is a miss; it will be rewritten.
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save(key: str, arrays: dict[str, np.ndarray]) -> Path:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{key}.npz"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final
