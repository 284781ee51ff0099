"""Reading and checking a search-space file: every section, field, distribution and value.

Errors name the file and the key (``_Where``); with a base config, every value must also
be one ``TrainConfig`` accepts.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from emorec.config import NOT_TUNABLE, TrainConfig
from emorec.errors import UserError
from emorec.inputs import read_yaml
from emorec.search_space.types import Alternative, SearchSpace

SECTIONS = ("grid", "space", "fixed", "start", "preset")
DIST_KEYS = ("choices", "low", "high", "log", "step", "if")
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def load(path: str | os.PathLike, base: TrainConfig | None = None) -> SearchSpace:
    """Read and validate a space file; with ``base``, every value must also make a valid config."""
    path = Path(path)
    raw = read_yaml(path, "search space") or {}
    where = _Where(str(path))
    if not isinstance(raw, dict):
        where.fail("", "must be a mapping with sections " + ", ".join(SECTIONS))
    for key in raw:
        if key not in SECTIONS:
            where.fail(key, f"unknown section; valid sections: {', '.join(SECTIONS)}")
    if not raw.get("grid") and not raw.get("space"):
        where.fail("", "needs a non-empty 'grid' or 'space' section")
    space = SearchSpace(
        str(path),
        grid={k: _grid_values(where, k, v) for k, v in _section(where, raw, "grid").items()},
        space={k: _alternatives(where, k, v) for k, v in _section(where, raw, "space").items()},
        fixed={
            k: _coerce(where, f"fixed.{_field(where, 'fixed', k)}", k, v)
            for k, v in _section(where, raw, "fixed").items()
        },
    )
    space = dataclasses.replace(space, start=_start_points(where, raw.get("start"), space))
    _check_conditions(where, space)
    if base is not None:
        _check_values(where, space, base)
    return space


class _Where:
    """Error messages that name the file and the key."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, message: str):
        raise UserError(f"{self.path}: {key + ': ' if key else ''}{message}")


def _section(where: _Where, raw: dict, name: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        where.fail(name, "must be a mapping of parameter names")
    return value


def _field(where: _Where, section: str, name: str) -> str:
    if name not in _FIELDS:
        where.fail(
            f"{section}.{name}",
            "unknown parameter (not a TrainConfig field); valid: "
            + ", ".join(n for n in _FIELDS if n not in NOT_TUNABLE),
        )
    if name in NOT_TUNABLE:
        where.fail(
            f"{section}.{name}",
            "cannot be tuned (it names what is trained or how "
            "it is tracked); set it on the command line",
        )
    return name


def _coerce(where: _Where, key: str, name: str, value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as text: convert to the field's type."""
    default = _FIELDS[name].default
    kind = type(default)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        where.fail(key, f"{value!r} is not true or false")
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            where.fail(key, f"{value!r} is not a number")
        if kind is int and number != int(number):
            where.fail(key, f"{value!r} is not an integer")
        return int(number) if kind is int else number
    if isinstance(default, str) and isinstance(value, str):
        return value
    where.fail(key, f"{value!r} is not a {kind.__name__}")


def _grid_values(where: _Where, name: str, values: Any) -> list:
    key = f"grid.{_field(where, 'grid', name)}"
    if not isinstance(values, list):
        where.fail(key, "must be a list of values")
    if not values:
        where.fail(key, "empty list; give at least one value")
    values = [_coerce(where, key, name, v) for v in values]
    if len(set(values)) != len(values):
        where.fail(key, f"duplicate values in {values}")
    return values


def _alternatives(where: _Where, name: str, spec: Any) -> tuple[Alternative, ...]:
    key = f"space.{_field(where, 'space', name)}"
    specs = spec if isinstance(spec, list) else [spec]
    if not specs:
        where.fail(key, "empty list; give a distribution")
    return tuple(
        _alternative(where, f"{key}[{i}]" if len(specs) > 1 else key, name, s)
        for i, s in enumerate(specs)
    )


def _alternative(where: _Where, key: str, name: str, spec: Any) -> Alternative:
    if not isinstance(spec, dict):
        where.fail(key, "must be {choices: [...]} or {low: ..., high: ...}")
    for k in spec:
        if k not in DIST_KEYS:
            where.fail(f"{key}.{k}", f"unknown key; valid: {', '.join(DIST_KEYS)}")
    when = _condition(where, key, spec.get("if"))
    if "choices" in spec:
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            where.fail(f"{key}.choices", "empty list; give at least one value")
        if set(spec) - {"choices", "if"}:
            where.fail(key, "choices cannot be combined with low/high/log/step")
        return Alternative(choices=tuple(_coerce(where, key, name, c) for c in choices), when=when)
    if "low" not in spec or "high" not in spec:
        where.fail(key, "needs 'choices' or both 'low' and 'high'")
    if isinstance(_FIELDS[name].default, (bool, str)):
        where.fail(key, f"{name} is not numeric; use choices")
    low, high = (_coerce(where, f"{key}.{b}", name, spec[b]) for b in ("low", "high"))
    log_scale = bool(spec.get("log", False))
    if not low < high:
        where.fail(key, f"low ({low}) must be below high ({high})")
    if log_scale and low <= 0:
        where.fail(key, f"log scale needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None and (log_scale or float(step) <= 0):
        where.fail(f"{key}.step", "must be positive and cannot be combined with log")
    return Alternative(
        low=low,
        high=high,
        log=log_scale,
        step=step,
        when=when,
        is_int=type(_FIELDS[name].default) is int,
    )


def _condition(where: _Where, key: str, cond: Any) -> tuple:
    if cond is None:
        return ()
    if not isinstance(cond, dict) or not cond:
        where.fail(f"{key}.if", "must map a parameter to a value or a list of values")
    out = []
    for other, allowed in cond.items():
        _field(where, f"{key}.if", other)
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if not allowed:
            where.fail(f"{key}.if.{other}", "empty list; give at least one value")
        out.append((other, tuple(_coerce(where, f"{key}.if.{other}", other, a) for a in allowed)))
    return tuple(out)


def _check_conditions(where: _Where, space: SearchSpace) -> None:
    """A condition may only look at a field sampled before it (define-by-run order)."""
    seen: list[str] = []
    for name, alternatives in space.space.items():
        for alt in alternatives:
            for other, _ in alt.when:
                if other not in seen and other not in space.fixed:
                    where.fail(
                        f"space.{name}.if.{other}",
                        "must name a parameter listed earlier "
                        f"in 'space' or in 'fixed'; earlier: {', '.join(seen) or 'none'}",
                    )
        seen.append(name)


def _start_points(where: _Where, points: Any, space: SearchSpace) -> tuple[dict, ...]:
    if points is None:
        return ()
    if not isinstance(points, list) or not points:
        where.fail("start", "must be a non-empty list of {parameter: value} points")
    out = []
    for i, point in enumerate(points):
        if not isinstance(point, dict):
            where.fail(f"start[{i}]", "must map parameters to values")
        for name in point:
            if name not in space.space:
                where.fail(
                    f"start[{i}].{name}",
                    "not a 'space' parameter; valid: " + ", ".join(space.space),
                )
        out.append({k: _coerce(where, f"start[{i}].{k}", k, v) for k, v in point.items()})
    return tuple(out)


def _check_values(where: _Where, space: SearchSpace, base: TrainConfig) -> None:
    """Every single value must be one ``TrainConfig`` accepts (combinations are not enumerated)."""

    def check(key: str, name: str, value: Any) -> None:
        try:
            base.replace(**{name: value})
        except (TypeError, ValueError) as exc:
            where.fail(key, f"{value!r} rejected: {exc}")

    for name, values in space.grid.items():
        for v in values:
            check(f"grid.{name}", name, v)
    for name, alternatives in space.space.items():
        for alt in alternatives:
            for v in alt.choices if alt.choices is not None else (alt.low, alt.high):
                check(f"space.{name}", name, v)
    for name, value in space.fixed.items():
        check(f"fixed.{name}", name, value)
    for i, point in enumerate(space.start):
        for name, value in point.items():
            check(f"start[{i}].{name}", name, value)
