"""Reading the files a user names (search spaces, presets, label files): regular files
only, never more than a limit that fits what such a file holds, YAML without duplicated
keys. A FIFO would block forever, ``/dev/zero`` would never end, and a folder is not a
file: each is refused in one line."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from emorec.errors import MissingFile, UserError

MAX_TEXT_BYTES = 1_000_000  # a search space or preset is a few kB


def regular_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a regular file (or a link to one); UserError naming what it is
    otherwise."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise MissingFile(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise UserError(f"{what} {path} is a folder; give a file")
    if not stat.S_ISREG(mode):
        raise UserError(f"{what} {path} is not a regular file (a pipe, socket or device)")
    return path


def read_text(path: str | os.PathLike, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of a regular file of at most ``limit`` bytes."""
    path = regular_file(path, what)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UserError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if len(data) > limit:
        raise UserError(f"{what} {path} is over {limit} bytes: not a file of this kind")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text ({exc.reason})") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the plain loader
    keeps the last one silently)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicated key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def read_yaml(path: str | os.PathLike, what: str) -> Any:
    """A YAML file, read as ``read_text`` reads it; a duplicated key is an error."""
    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:  # its own message spans lines: the problem and where
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).strip().splitlines()[0]
        raise UserError(f"{what} {path}: not valid YAML ({problem}{where})") from None
