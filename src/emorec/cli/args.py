"""Small argument parsers shared by the command modules, and the exit codes."""

from __future__ import annotations

import argparse

from emorec.errors import UserError

EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """``--set epochs=1 samples=140`` -> {"epochs": "1", ...}; the config coerces and validates."""
    values = {}
    for item in items or []:
        for token in item.split():  # MLproject passes all pairs as one quoted argument
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise UserError(f"--set expects key=value pairs, got {token!r}")
            values[key.replace("-", "_")] = value
    return values


def optional(kind):
    """An argparse type where 0 or "" means "not set" (MLproject parameters cannot be absent)."""

    def parse(text: str):
        value = kind(float(text)) if kind is not str else text
        return value or None

    parse.__name__ = kind.__name__
    return parse


def as_bool(text) -> bool:
    """``--cross`` alone, or ``--cross true|false`` (how MLproject passes it): the config's
    one boolean parser, its error in argparse's words."""
    from emorec.config import parse_bool

    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def split_list(text: str) -> list[str]:
    return [t for t in (x.strip() for x in text.split(",")) if t]
