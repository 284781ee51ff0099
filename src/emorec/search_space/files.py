"""Where search-space files are (``tuning/<model>.yaml``) and the named recipes (presets)."""

from __future__ import annotations

import os
from pathlib import Path

from emorec.errors import MissingFile, UserError
from emorec.inputs import read_text, read_yaml

PRESET_KEYS = ("model", "dataset")  # what a preset file's ``preset`` section names
# The repository's tuning/ folder, beside src/ (an editable install or a checkout).
_SOURCE_TUNING = Path(__file__).resolve().parents[3] / "tuning"


def default_path(model: str) -> Path:
    """``tuning/<model>.yaml`` (or a preset's ``tuning/<name>.yaml``): from
    $EMOREC_TUNING_DIR, ./tuning, or beside the source tree."""
    env = os.environ.get("EMOREC_TUNING_DIR")
    candidates = [Path(env)] if env else []
    candidates += [Path("tuning"), _SOURCE_TUNING]
    for folder in candidates:
        if (folder / f"{model}.yaml").is_file():
            return folder / f"{model}.yaml"
    raise MissingFile(
        f"no search space for model {model!r}: looked for {model}.yaml in "
        f"{', '.join(str(c) for c in candidates)}; pass --space FILE"
    )


def read_preset(name: str) -> tuple[Path, dict[str, str]]:
    """A named recipe: ``tuning/<name>.yaml`` and the model and dataset its ``preset``
    section is for (``emorec tune --preset NAME``)."""
    try:
        path = default_path(name)
    except FileNotFoundError:
        raise UserError(
            f"unknown preset {name!r}; valid presets: {', '.join(list_presets()) or 'none'}"
        ) from None
    raw = read_yaml(path, "preset") or {}
    preset = raw.get("preset") if isinstance(raw, dict) else None
    if not isinstance(preset, dict) or set(preset) != set(PRESET_KEYS):
        raise UserError(
            f"{path} is not a preset: it needs a 'preset' section with "
            f"{' and '.join(PRESET_KEYS)}; valid presets: "
            f"{', '.join(list_presets()) or 'none'}"
        )
    return path, {k: str(v) for k, v in preset.items()}


def list_presets() -> list[str]:
    """The names of the files in the tuning folder that hold a ``preset`` section."""
    folder = default_path("cnn_torch").parent
    return sorted(
        p.stem for p in folder.glob("*.yaml") if "\npreset:" in "\n" + read_text(p, "preset")
    )
