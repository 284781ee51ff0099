"""What a loaded search space is: its grid, its distributions (``Alternative``) and its
fixed values and start points (``SearchSpace``), with the digest a resumed study checks."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


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

    def without(self, names) -> SearchSpace:
        """This space with ``names`` removed everywhere (they are fixed from outside)."""
        names = set(names)
        dropped = sorted(names & (set(self.grid) | set(self.space) | set(self.fixed)))
        if dropped:
            log.info("%s: %s fixed by the caller; not tuned", self.path, ", ".join(dropped))
        keep = lambda d: {k: v for k, v in d.items() if k not in names}  # noqa: E731
        return dataclasses.replace(
            self,
            grid=keep(self.grid),
            space=keep(self.space),
            fixed=keep(self.fixed),
            start=tuple(keep(p) for p in self.start),
        )

    def digest(self, part: str | None = None) -> str:
        """Identifies the grid (``part="grid"``), the space (``"tpe"``) or both; a study
        checks on resume that what its sampler searches has not changed."""
        data = {
            "grid": self.grid,
            "space": {k: [dataclasses.asdict(a) for a in v] for k, v in self.space.items()},
        }
        if part is not None:
            data = data["grid" if part == "grid" else "space"]
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]
