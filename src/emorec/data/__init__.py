"""Datasets: one scanner per native layout, one loader that decodes and caches.

``load_dataset(name, data_dir, prep)`` is the single entry point: it finds
the format's scanner, returns the cached arrays when nothing changed, and
otherwise decodes every image once (corrupt files skipped and counted, or an
error with ``strict``), preprocesses it and caches the result.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import time
from pathlib import Path

import numpy as np

# A logged model carries part of this package only: the rest comes from any other emorec
# on the path, as for ``emorec`` itself (see its ``__path__``).
__path__ = pkgutil.extend_path(__path__, __name__)

from emorec.data import cache  # noqa: E402
from emorec.data.errors import DatasetError  # noqa: E402
from emorec.data.images import ImageError, decode_image  # noqa: E402
from emorec.data.preprocess import Preprocessing, prepare_image  # noqa: E402
from emorec.data.types import Dataset, Listing  # noqa: E402
from emorec.errors import UserError
from emorec.labels import sorted_classes  # noqa: E402

log = logging.getLogger(__name__)

# name -> "module:function" of the scanner, imported when used.
FORMATS: dict[str, str] = {
    "synthetic": "emorec.data.synthetic:scan",
    "fer2013": "emorec.data.fer2013:scan",
    "ckplus": "emorec.data.ckplus:scan",
    "kdef": "emorec.data.kdef:scan",
    "nhf": "emorec.data.nhf:scan",
    "folder": "emorec.data.folder:scan",
}
# Cap on decode failures listed by name in the stats (the count is always exact).
_EXAMPLES = 5

__all__ = [
    "FORMATS",
    "Dataset",
    "DatasetError",
    "Listing",
    "Preprocessing",
    "load_dataset",
    "scanner",
]


def scanner(name: str):
    if name not in FORMATS:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(FORMATS)}")
    module, func = FORMATS[name].split(":")
    return getattr(importlib.import_module(module), func)


def _scanner_options(scan, options: dict) -> dict:
    """The options this scanner takes; an option it does not know is an error."""
    accepted = {
        p.name
        for p in inspect.signature(scan).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise UserError(
            f"unknown option(s) {', '.join(unknown)} for this dataset; valid: "
            f"{', '.join(sorted(accepted)) or 'none'}"
        )
    return options


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    prep: Preprocessing | None = None,
    *,
    options: dict | None = None,
    strict: bool = False,
    use_cache: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load dataset ``name`` from ``data_dir`` as preprocessed uint8 arrays."""
    prep = prep or Preprocessing()
    scan = scanner(name)
    opts = _scanner_options(scan, dict(options or {}))
    if strict and "strict" in inspect.signature(scan).parameters:
        opts.setdefault("strict", True)  # e.g. FER2013 CSV: malformed rows raise too
    if name == "synthetic":  # generated in memory, faster than a cache read
        opts.setdefault("image_size", prep.image_size)
        return _materialize(name, scan(None, **opts), prep, strict, progress)
    if data_dir is None:
        raise DatasetError(f"dataset {name!r} needs a data directory (--data-dir)")
    root = Path(data_dir).expanduser()
    if not root.exists():
        raise DatasetError(f"data directory {root} does not exist")
    key = (
        cache.cache_key(
            format=name,
            root=str(root.resolve()),
            options=opts,
            prep=prep.to_dict(),
            strict=strict,
            files=cache.tree_fingerprint(root),
        )
        if use_cache
        else None
    )
    if key and (hit := cache.load(key)) is not None:
        return _from_arrays(name, hit)
    try:
        listing = scan(root, **opts)
    except PermissionError as exc:  # a folder the scanner cannot do without
        raise DatasetError(f"cannot read {exc.filename or root}: {exc.strerror}") from None
    if strict and listing.notes.get("unreadable_folders"):
        raise DatasetError(
            f"{listing.notes['unreadable_folders']} folder(s) of {root} cannot "
            "be read (strict mode: fix their permissions)"
        )
    ds = _materialize(name, listing, prep, strict, progress)
    if key:
        cache.save(key, _to_arrays(ds))
    return ds


def _materialize(
    name: str, listing: Listing, prep: Preprocessing, strict: bool, progress: bool
) -> Dataset:
    """Decode and preprocess every listed image (the slow, cached step)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    keep, images, failures, no_face = [], [], [], 0
    items = tqdm(
        listing.items,
        desc=f"decoding {name}",
        unit="img",
        leave=False,
        disable=not progress or len(listing.items) < 500,
    )
    for i, item in enumerate(items):
        try:
            pixels = item if isinstance(item, np.ndarray) else decode_image(item)
        except ImageError as exc:
            if strict:
                raise DatasetError(f"{exc} (strict mode: fix or remove the file)") from exc
            failures.append(str(exc))
            continue
        img, face = prepare_image(pixels, prep)
        no_face += prep.face_detect and face is None
        images.append(img)
        keep.append(i)
    if failures:
        log.warning(
            "skipped %d unreadable image(s) in %s, e.g. %s",
            len(failures),
            name,
            "; ".join(failures[:_EXAMPLES]),
        )
    if not images:
        raise DatasetError(f"no readable images in dataset {name!r}")
    keep = np.asarray(keep)
    pick = lambda a: None if a is None else np.asarray(a)[keep]  # noqa: E731
    labels = listing.labels[keep]
    stats = {
        "images": len(keep),
        "skipped": len(failures),
        "skipped_examples": failures[:_EXAMPLES],
        "faces_not_found": int(no_face),
        "decode_seconds": round(time.perf_counter() - start, 3),
        "from_cache": False,
        **listing.notes,
    }
    return Dataset(
        name,
        np.stack(images),
        labels,
        sorted_classes(labels),
        pick(listing.groups),
        pick(listing.usage),
        stats,
    )


def _to_arrays(ds: Dataset) -> dict[str, np.ndarray]:
    import json

    arrays = {
        "images": ds.images,
        "labels": ds.labels,
        "classes": np.array(ds.classes),
        "stats": np.array(json.dumps(ds.stats, default=str)),
    }
    if ds.groups is not None:
        arrays["groups"] = np.asarray(ds.groups).astype(str)
    if ds.usage is not None:
        arrays["usage"] = np.asarray(ds.usage).astype(str)
    return arrays


def _from_arrays(name: str, a: dict[str, np.ndarray]) -> Dataset:
    import json

    stats = {**json.loads(str(a["stats"])), "from_cache": True}
    return Dataset(
        name,
        a["images"],
        a["labels"],
        tuple(str(c) for c in a["classes"]),
        a.get("groups"),
        a.get("usage"),
        stats,
    )
