"""Files and folders for ``emorec predict``: finding the images, predicting them in batches,
and writing annotated copies beside (never over) the user's inputs.

The predictions themselves come from ``emorec.serving.predictor.Predictor``; this module only
decides which files, in which order, and where each annotated copy may safely go.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from emorec.data.images import ImageError, decode_image
from emorec.errors import MissingFile, UserError
from emorec.serving.predictor import Prediction, Predictor


def collect_inputs(inputs) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """(images, videos): (file, name to write its outputs under) for every image or video
    given or found in a folder, sorted per folder. A file given by name is an image unless
    its suffix says video (an odd image suffix is kept); a path that does not exist raises
    MissingFile."""
    from emorec.data.images import is_image_file
    from emorec.serving.video import is_video

    images, videos = [], []
    for item in map(Path, inputs):
        if item.is_dir():
            for f in sorted(item.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    if is_video(f):
                        videos.append((f, f.relative_to(item)))
                    elif is_image_file(f):
                        images.append((f, f.relative_to(item)))
        elif item.exists():
            (videos if is_video(item) else images).append((item, Path(item.name)))
        else:
            raise MissingFile(f"no such file or folder: {item}")
    return images, videos


def predict_files(
    predictor: Predictor,
    files: list[Path],
    *,
    batch_size: int = 64,
    detect_faces: bool = True,
    progress: bool | None = None,
):
    """Yield (file, pixels, predictions, error) per file, ``batch_size`` files at a time;
    an unreadable file gives its ImageError message and no predictions."""
    from tqdm import tqdm

    bar = tqdm(
        total=len(files),
        unit="img",
        file=sys.stderr,
        disable=not (len(files) > 50 if progress is None else progress),
    )
    with bar:
        for start in range(0, len(files), batch_size):
            decoded = {}
            for f in files[start : start + batch_size]:
                try:
                    decoded[f] = decode_image(f)
                except ImageError as exc:
                    decoded[f] = exc
            ok = [(str(f), px) for f, px in decoded.items() if not isinstance(px, ImageError)]
            by_source: dict[str, list[Prediction]] = {}
            for p in predictor.predict_pixels(ok, detect_faces, batch_size):
                by_source.setdefault(p.source, []).append(p)
            for f, px in decoded.items():
                failed = isinstance(px, ImageError)
                yield (
                    f,
                    (None if failed else px),
                    by_source.get(str(f), []),
                    (str(px) if failed else None),
                )
            bar.update(len(decoded))


WRITABLE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _writable(path: Path) -> Path:
    return path if path.suffix.lower() in WRITABLE_SUFFIXES else path.with_suffix(".png")


def annotation_paths(files: list[tuple[Path, Path]], out_dir) -> dict[Path, Path]:
    """Where each (file, name) of ``collect_inputs`` gets its annotated copy in ``out_dir``
    (``output_paths``): the file's name, ``.png`` when OpenCV cannot write its format."""
    return output_paths(files, out_dir, "--annotate", _writable)


def output_paths(
    files: list[tuple[Path, Path]], out_dir, flag: str, rename=lambda path: path
) -> dict[Path, Path]:
    """Where each (file, name) of ``collect_inputs`` gets its output in ``out_dir``: its
    name, changed by ``rename`` (a suffix, say); when two inputs would share a name
    (``face.gif`` and ``face.png``, or one name in two folders), later ones get ``-2``,
    ``-3`` ... before the suffix, a file keeping its own name first. Names are compared
    ignoring case, as macOS and Windows do. Raises UserError, before anything is written,
    when an output would replace an input, or would be written through a symbolic link or
    where a file stands in for a folder inside ``out_dir``; ``flag`` names the option.
    """
    from emorec.data.errors import require_output_dir

    out_dir = require_output_dir(out_dir, flag)
    files = list(dict(files).items())  # a file given twice gets one copy
    # Both the link and what it points to: neither may be replaced by a copy.
    inputs = {}
    for f, _ in files:
        for st in (f.stat(), f.lstat()):
            inputs[(st.st_dev, st.st_ino)] = f
    natural = {f: rename(out_dir / name) for f, name in files}
    claimed = {str(t).casefold() for t in natural.values()}
    taken: set[str] = set()
    paths: dict[Path, Path] = {}
    own_name_first = sorted(files, key=lambda item: natural[item[0]].suffix != item[1].suffix)
    for f, _ in own_name_first:
        target, n = natural[f], 1
        # A "-N" name that is another input's own name stays free for that input.
        while str(target).casefold() in taken or (n > 1 and str(target).casefold() in claimed):
            n += 1
            target = natural[f].with_name(f"{natural[f].stem}-{n}{natural[f].suffix}")
        taken.add(str(target).casefold())
        paths[f] = target
        _check_target(out_dir, target, f, inputs, flag)
    return {f: paths[f] for f, _ in files}


def _check_target(out_dir: Path, target: Path, source: Path, inputs: dict, flag: str) -> None:
    """ValueError when writing ``target`` would follow a link inside ``out_dir``, meet a
    file where a folder is needed, or replace an input."""
    below = target.relative_to(out_dir)
    for part in [out_dir.joinpath(*below.parts[:i]) for i in range(1, len(below.parts) + 1)]:
        if part.is_symlink():
            raise UserError(
                f"{flag} {out_dir}: {part} is a symbolic link; emorec does "
                "not write through links, remove it or choose another folder"
            )
        if part != target and part.exists() and not part.is_dir():
            raise UserError(
                f"{flag} {out_dir}: cannot write {target}, {part} is a file, not a folder"
            )
    if target.is_dir():
        raise UserError(f"{flag} {out_dir}: cannot write {target}, it is a folder")
    if target.exists():
        st = target.stat()
        clash = inputs.get((st.st_dev, st.st_ino))
        if clash is not None:
            raise UserError(
                f"{flag} {out_dir}: the output for {source} would replace the "
                f"input {clash}; choose an output folder apart from the inputs"
            )


def draw(pixels: np.ndarray, predictions: list[Prediction]) -> np.ndarray:
    """A BGR copy of ``pixels`` (gray or RGB) with each face's box, label and confidence
    (and its track, in a video) drawn: green for faces, orange for whole images."""
    import cv2

    img = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR if pixels.ndim == 2 else cv2.COLOR_RGB2BGR)
    scale = max(img.shape[:2]) / 500
    for p in predictions:
        x, y, w, h = p.box
        colour = (0, 200, 0) if p.face_found else (0, 165, 255)
        track = "" if p.track is None else f"#{p.track} "
        cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), colour, max(1, round(2 * scale)))
        cv2.putText(
            img,
            f"{track}{p.label} {p.confidence:.2f}",
            (x + 2, max(y - 4, 12)),
            cv2.FONT_HERSHEY_SIMPLEX,
            max(0.3, 0.5 * scale),
            colour,
            max(1, round(scale)),
            cv2.LINE_AA,
        )
    return img


def annotate(pixels: np.ndarray, predictions: list[Prediction], out: Path) -> Path:
    """Write a copy of the image with each face box and its label drawn; returns the path
    (``.png`` when OpenCV cannot write the original format). ``annotation_paths`` says
    where, safely; the file is written fresh and renamed onto ``out``, so a link or a
    hard link already there is replaced, never written through."""
    import os
    import secrets

    import cv2

    img = draw(pixels, predictions)
    out = _writable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(out.suffix, img)
    if not ok:
        raise OSError(f"cannot encode {out}")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: a new file of our own, created with the user's umask (unlike mkstemp's 0600).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.tobytes())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out
