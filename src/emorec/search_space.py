"""Parameter grids and search spaces as data: ``tuning/<model>.yaml``, loaded and validated.

A file has up to four sections, every key a ``TrainConfig`` field:

- ``grid``: field -> list of values; every combination is one trial of the
  grid sampler.
- ``space``: field -> distribution for samplers that are not grid-based
  (TPE): ``{choices: [...]}``, or ``{low, high[, log][, step]}`` (int for int
  fields, float otherwise). A field may instead hold a list of alternatives,
  each with an ``if: {other_field: value-or-list}`` condition on a field
  sampled earlier; the first alternative whose condition holds is used, and
  when none holds the field keeps its fixed value (conditional parameters,
  e.g. a larger learning-rate range for SGD than for Adam).
- ``fixed``: values every trial uses (e.g. the epochs budget).
- ``start``: points a TPE study evaluates first (a known-good baseline).

Everything is checked on load: an unknown section, field or distribution key,
an empty list, a bad range or a value ``TrainConfig`` rejects is a
``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emorec.config import NOT_TUNABLE, TrainConfig

log = logging.getLogger(__name__)

SECTIONS = ("grid", "space", "fixed", "start", "preset")
PRESET_KEYS = ("model", "dataset")  # what a preset file's ``preset`` section names
DIST_KEYS = ("choices", "low", "high", "log", "step", "if")
_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True)
class Alternative:
    """One distribution of a space field, used when ``when`` holds (always if empty)."""

    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    is_int: bool = False
    when: tuple[tuple[str, tuple], ...] = ()  # ((field, allowed values), ...)

    def holds(self, values: dict[str, Any]) -> bool:
        return all(values.get(name) in allowed for name, allowed in self.when)

    def label(self, name: str) -> str:
        """The Optuna parameter name: one per alternative, so each keeps one distribution."""
        if not self.when:
            return name
        cond = ",".join(f"{k}={'|'.join(map(str, v))}" for k, v in self.when)
        return f"{name}[{cond}]"


@dataclass(frozen=True)
class SearchSpace:
    path: str
    grid: dict[str, list] = field(default_factory=dict)
    space: dict[str, tuple[Alternative, ...]] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)
    start: tuple[dict[str, Any], ...] = ()

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.grid else 0

    def without(self, names) -> "SearchSpace":
        """This space with ``names`` removed everywhere (they are fixed from outside)."""
        names = set(names)
        dropped = sorted(names & (set(self.grid) | set(self.space) | set(self.fixed)))
        if dropped:
            log.info("%s: %s fixed by the caller; not tuned", self.path, ", ".join(dropped))
        keep = lambda d: {k: v for k, v in d.items() if k not in names}  # noqa: E731
        return dataclasses.replace(self, grid=keep(self.grid), space=keep(self.space),
                                   fixed=keep(self.fixed),
                                   start=tuple(keep(p) for p in self.start))

    def digest(self, part: str | None = None) -> str:
        """Identifies the grid (``part="grid"``), the space (``"tpe"``) or both; a study
        checks on resume that what its sampler searches has not changed."""
        data = {"grid": self.grid, "space": {k: [dataclasses.asdict(a) for a in v]
                                             for k, v in self.space.items()}}
        if part is not None:
            data = data["grid" if part == "grid" else "space"]
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_path(model: str) -> Path:
    """``tuning/<model>.yaml`` (or a preset's ``tuning/<name>.yaml``): from
    $EMOREC_TUNING_DIR, ./tuning, or beside the source tree."""
    env = os.environ.get("EMOREC_TUNING_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path("tuning"), Path(__file__).resolve().parents[2] / "tuning"]
    for folder in candidates:
        if (folder / f"{model}.yaml").is_file():
            return folder / f"{model}.yaml"
    raise FileNotFoundError(f"no search space for model {model!r}: looked for {model}.yaml in "
                            f"{', '.join(str(c) for c in candidates)}; pass --space FILE")


def read_preset(name: str) -> tuple[Path, dict[str, str]]:
    """A named recipe: ``tuning/<name>.yaml`` and the model and dataset its ``preset``
    section is for (``emorec tune --preset NAME``)."""
    try:
        path = default_path(name)
    except FileNotFoundError:
        raise ValueError(f"unknown preset {name!r}; valid presets: "
                         f"{', '.join(list_presets()) or 'none'}") from None
    raw = yaml.safe_load(path.read_text()) or {}
    preset = raw.get("preset") if isinstance(raw, dict) else None
    if not isinstance(preset, dict) or set(preset) != set(PRESET_KEYS):
        raise ValueError(f"{path} is not a preset: it needs a 'preset' section with "
                         f"{' and '.join(PRESET_KEYS)}; valid presets: "
                         f"{', '.join(list_presets()) or 'none'}")
    return path, {k: str(v) for k, v in preset.items()}


def list_presets() -> list[str]:
    """The names of the files in the tuning folder that hold a ``preset`` section."""
    folder = default_path("cnn_torch").parent
    return sorted(p.stem for p in folder.glob("*.yaml")
                  if "\npreset:" in "\n" + p.read_text())


def load(path: str | os.PathLike, base: TrainConfig | None = None) -> SearchSpace:
    """Read and validate a space file; with ``base``, every value must also make a valid config."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({exc})") from None
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
        fixed={k: _coerce(where, f"fixed.{_field(where, 'fixed', k)}", k, v)
               for k, v in _section(where, raw, "fixed").items()})
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
        raise ValueError(f"{self.path}: {key + ': ' if key else ''}{message}")


def _section(where: _Where, raw: dict, name: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, dict):
        where.fail(name, "must be a mapping of parameter names")
    return value


def _field(where: _Where, section: str, name: str) -> str:
    if name not in _FIELDS:
        where.fail(f"{section}.{name}", "unknown parameter (not a TrainConfig field); valid: "
                   + ", ".join(n for n in _FIELDS if n not in NOT_TUNABLE))
    if name in NOT_TUNABLE:
        where.fail(f"{section}.{name}", "cannot be tuned (it names what is trained or how "
                   "it is tracked); set it on the command line")
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
    return tuple(_alternative(where, f"{key}[{i}]" if len(specs) > 1 else key, name, s)
                 for i, s in enumerate(specs))


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
    return Alternative(low=low, high=high, log=log_scale, step=step, when=when,
                       is_int=type(_FIELDS[name].default) is int)


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
                    where.fail(f"space.{name}.if.{other}", "must name a parameter listed earlier "
                               f"in 'space' or in 'fixed'; earlier: {', '.join(seen) or 'none'}")
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
                where.fail(f"start[{i}].{name}", "not a 'space' parameter; valid: "
                           + ", ".join(space.space))
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
