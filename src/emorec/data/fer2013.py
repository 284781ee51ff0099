"""FER2013 in either of its two native layouts, detected automatically.

(a) The original CSV (``fer2013.csv``, or any ``.csv`` path given directly):
    columns ``emotion`` (code, see ``labels.FER2013_CODES``), ``pixels``
    (2304 space-separated 0-255 values, 48x48 row-major) and optionally
    ``Usage`` (``Training``/``PublicTest``/``PrivateTest`` -> train/val/test).
    Pixels are stored inline, so items are decoded uint8 48x48 arrays.
(b) Kaggle's folder export: ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``
    -> usage ``train``/``test``; there is no val folder, so the splitter
    carves validation data out of train.

FER2013 has no subject ids: groups are always ``None``.
"""

from __future__ import annotations

import csv
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from emorec.data.errors import DatasetError, describe_contents
from emorec.data.folder import add_note, scan_class_folders
from emorec.data.types import Listing
from emorec.labels import EMOTION_ID, FER2013_CODES

log = logging.getLogger(__name__)

CSV_NAME = "fer2013.csv"
SIDE = 48
N_PIXELS = SIDE * SIDE
USAGE_MAP = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
FOLDER_SPLITS = ("train", "test")
# The id each CSV emotion code stands for, looked up once instead of per row.
CODE_IDS = {str(code): EMOTION_ID[name] for code, name in FER2013_CODES.items()}


class BadRow(ValueError):
    """One CSV row that cannot be used; the message says why."""


def scan(root: str | os.PathLike, *, strict: bool = False) -> Listing:
    """List FER2013 from its CSV or its Kaggle train/test folders.

    ``strict`` applies to the CSV: a malformed row raises ``DatasetError``
    naming it instead of being skipped and counted in ``notes["bad_rows"]``.
    """
    root = Path(root)
    csv_path = find_csv(root)
    if csv_path is not None:
        return scan_csv(csv_path, strict=strict)
    if all((root / split).is_dir() for split in FOLDER_SPLITS):
        return scan_folders(root)
    raise DatasetError(
        f"expected {CSV_NAME} or train/ and test/ folders under {root}; "
        f"found: {describe_contents(root)}"
    )


def find_csv(root: Path) -> Path | None:
    """The CSV to read if ``root`` is in the CSV layout, else ``None``."""
    if not root.exists():
        raise DatasetError(
            f"expected a FER2013 CSV file or a folder holding {CSV_NAME} "
            f"or train/ and test/ at {root}, but it does not exist"
        )
    if root.is_file():
        if root.suffix.lower() != ".csv":
            raise DatasetError(
                f"expected a FER2013 .csv file or a folder at {root}, "
                f"but it is a {root.suffix or 'suffix-less'} file"
            )
        return root
    candidate = root / CSV_NAME
    return candidate if candidate.is_file() else None


# --------------------------------------------------------------------- CSV ---


def scan_csv(path: Path, *, strict: bool = False) -> Listing:
    """Parse the FER2013 CSV; its 35,887 rows take a few seconds.

    Lines are split by hand rather than with ``csv.DictReader``, which spends
    as long tokenising the 8 kB pixel cells as NumPy spends parsing them.
    """
    items: list[np.ndarray] = []
    labels: list[int] = []
    usage: list[str | None] = []
    bad_rows = rows = 0
    with open(path, newline="", encoding="utf-8-sig") as fh:
        columns = read_header(path, fh.readline())
        # NumPy < 2.3 only warns on unparsable pixel text; make that an error too.
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            for line_no, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                rows += 1
                try:
                    label, pixels, split = parse_row(split_fields(line), columns)
                except BadRow as exc:
                    if strict:
                        raise DatasetError(
                            f"{path}: row {rows} (line {line_no}) is malformed: {exc}"
                        ) from None
                    if bad_rows == 0:
                        log.warning(
                            "%s: skipping malformed row %d (line %d): %s", path, rows, line_no, exc
                        )
                    bad_rows += 1
                    continue
                items.append(pixels)
                labels.append(label)
                usage.append(split)
    if not items:
        raise DatasetError(
            f"{path}: expected FER2013 rows (emotion,pixels,Usage), "
            f"found no usable row ({bad_rows} malformed)"
        )
    has_usage = columns[2] is not None
    return Listing(
        items=items,
        labels=labels,
        usage=np.asarray(usage, dtype=str) if has_usage else None,
        notes={"rows": rows, "bad_rows": bad_rows},
    )


def split_fields(line: str) -> list[str]:
    """The cells of one CSV line; the csv module only for the rare quoted line."""
    line = line.rstrip("\r\n")
    if '"' in line:
        return next(csv.reader([line]))
    return line.split(",")


def read_header(path: Path, line: str) -> tuple[int, int, int | None]:
    """Column indices of emotion, pixels and Usage (``None`` when absent).

    Raises ``DatasetError`` naming the columns found unless the first two exist.
    """
    found = [name.strip() for name in split_fields(line)] if line.strip() else []
    if "emotion" not in found or "pixels" not in found:
        raise DatasetError(
            f"{path}: expected FER2013 CSV columns emotion,pixels[,Usage]; "
            f"found columns: {', '.join(found) or 'none (empty file)'}"
        )
    usage = found.index("Usage") if "Usage" in found else None
    return found.index("emotion"), found.index("pixels"), usage


def parse_row(
    cells: list[str], columns: tuple[int, int, int | None]
) -> tuple[int, np.ndarray, str | None]:
    """(canonical id, 48x48 uint8 pixels, split) of one row; ``BadRow`` if unusable."""
    emotion_col, pixels_col, usage_col = columns
    if len(cells) <= max(c for c in columns if c is not None):
        raise BadRow(f"{len(cells)} cells, fewer than the header's columns")
    code = cells[emotion_col].strip()
    if code not in CODE_IDS:
        raise BadRow(f"emotion {code!r} is not one of {', '.join(CODE_IDS)}")
    split = None
    if usage_col is not None:
        raw = cells[usage_col].strip()
        if raw not in USAGE_MAP:
            raise BadRow(f"Usage {raw!r} is not one of {', '.join(USAGE_MAP)}")
        split = USAGE_MAP[raw]
    return CODE_IDS[code], parse_pixels(cells[pixels_col]), split


def parse_pixels(text: str) -> np.ndarray:
    """2304 space-separated 0-255 values -> (48, 48) uint8; ``BadRow`` otherwise."""
    try:
        # fromstring's text mode parses in C, faster than split() + array().
        values = np.fromstring(text, dtype=np.int32, sep=" ")
    except (ValueError, DeprecationWarning):
        raise BadRow("pixels holds something other than space-separated integers") from None
    if values.size != N_PIXELS:
        raise BadRow(f"pixels holds {values.size} values, expected {N_PIXELS}")
    if (values >> 8).any():  # one pass catches both < 0 and > 255
        raise BadRow("pixels holds values outside 0-255")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


# ----------------------------------------------------------------- folders ---


def scan_folders(root: Path) -> Listing:
    """Kaggle's ``train/<class>/`` and ``test/<class>/`` export."""
    notes: dict = {}
    items: list[Path] = []
    labels: list[int] = []
    usage: list[str] = []
    for split in sorted(FOLDER_SPLITS):  # test/ before train/: items stay path-sorted
        paths, ids = scan_class_folders(root / split, notes=notes)
        items.extend(paths)
        labels.extend(ids)
        usage.extend([split] * len(paths))
        add_note(notes, f"{split}_images", len(paths))
    return Listing(items=items, labels=labels, usage=np.asarray(usage, dtype=str), notes=notes)
