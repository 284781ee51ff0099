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

The package has one room per step: ``types`` (what a loaded space is),
``files`` (where the YAML files and presets are) and ``parse`` (reading and
checking a file); callers import the names below from ``emorec.search_space``.
"""

from emorec.search_space.files import PRESET_KEYS, default_path, list_presets, read_preset
from emorec.search_space.parse import DIST_KEYS, SECTIONS, load
from emorec.search_space.types import Alternative, SearchSpace

__all__ = [
    "DIST_KEYS",
    "PRESET_KEYS",
    "SECTIONS",
    "Alternative",
    "SearchSpace",
    "default_path",
    "list_presets",
    "load",
    "read_preset",
]
