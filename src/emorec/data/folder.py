"""Generic folder-per-class layout: ``root/<class>/<image>``.

Each immediate subfolder of ``root`` is one class, named by any name
``emorec.labels.canonical`` knows (``angry``, ``Happiness``, ``sad`` ...).
Files are only listed, never opened: a shared loader decodes them later and
skips the unreadable ones.

``scan_class_folders`` is the building block the FER2013 folder layout, CK+48
and Natural Human Faces reuse.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from emorec.data.errors import DatasetError, describe_contents, require_dir
from emorec.data.images import IMAGE_SUFFIXES
from emorec.data.types import Listing
from emorec.labels import EMOTION_ID, canonical

# Folders that archivers and notebooks leave behind (``__MACOSX``,
# ``.ipynb_checkpoints``): never a class, so skipped instead of rejected.
IGNORED_PREFIXES = (".", "_")
# A set, since this is checked once per file of datasets with ~30k files.
_SUFFIXES = frozenset(IMAGE_SUFFIXES)

log = logging.getLogger(__name__)


def is_image_name(name: str) -> bool:
    """Whether a file name looks like an image emorec can decode.

    Name-only twin of ``images.is_image_file``: scanners get the file type from
    ``os.scandir`` for free, so they skip the extra ``stat`` per file. Hidden
    files (``.DS_Store``, macOS ``._x.jpg`` resource forks) are not images.
    """
    _, dot, ext = name.rpartition(".")
    return bool(dot) and not name.startswith(".") and "." + ext.lower() in _SUFFIXES


def _is_dir(entry: os.DirEntry) -> bool:
    """``entry.is_dir()``, but False for a link that loops back on itself, where it raises
    (a dangling link is simply not a folder)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def add_note(notes: dict, key: str, count: int) -> None:
    """Add ``count`` to ``notes[key]`` so several scans can share one notes dict."""
    notes[key] = notes.get(key, 0) + count


def list_images(directory: Path, notes: dict | None = None) -> list[Path]:
    """The image files directly inside ``directory``, sorted by name.

    Other files are counted in ``notes["non_image_files"]`` and subfolders in
    ``notes["ignored_subfolders"]`` when ``notes`` is given. A broken link under an
    image name (dangling, or looping) is listed: decoding skips and counts it like any
    unreadable image, where the user sees it. A folder that cannot be read (no
    permission) is skipped and counted in ``notes["unreadable_folders"]``, like an
    unreadable image (strict mode refuses the dataset, see ``load_dataset``).
    """
    names: list[str] = []
    other_files = subfolders = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if _is_dir(entry):
                    subfolders += 1
                elif is_image_name(entry.name) and (entry.is_symlink() or entry.is_file()):
                    names.append(entry.name)
                else:
                    other_files += 1
    except OSError as exc:
        log.warning("skipping folder %s: %s", directory, exc.strerror)
        if notes is not None:
            add_note(notes, "unreadable_folders", 1)
        return []
    if notes is not None:
        add_note(notes, "non_image_files", other_files)
        add_note(notes, "ignored_subfolders", subfolders)
    names.sort()
    return [directory / name for name in names]


def class_folders(root: Path, notes: dict | None = None) -> list[Path]:
    """The candidate class folders of ``root``, sorted by name.

    Archive debris folders (see ``IGNORED_PREFIXES``) are counted in
    ``notes["ignored_folders"]``; files lying next to the class folders in
    ``notes["loose_files"]``.
    """
    folders: list[Path] = []
    ignored = loose = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if not _is_dir(entry):
                loose += 1
            elif entry.name.startswith(IGNORED_PREFIXES):
                ignored += 1
            else:
                folders.append(Path(entry.path))
    if notes is not None:
        add_note(notes, "ignored_folders", ignored)
        add_note(notes, "loose_files", loose)
    return sorted(folders, key=lambda p: p.name)


def folder_emotion(folder: Path, allowed: tuple[str, ...] | None = None) -> str:
    """The canonical emotion a class folder stands for; ``DatasetError`` if none.

    With ``allowed``, only those folder names (any case) are accepted, e.g. a
    dataset's own class names.
    """
    if allowed is not None and folder.name.lower() not in {a.lower() for a in allowed}:
        raise DatasetError(f"unknown class folder {folder}: expected one of {', '.join(allowed)}")
    try:
        return canonical(folder.name)
    except ValueError as exc:  # rewrap: the user needs the path, not just the name
        raise DatasetError(f"unknown class folder {folder}: {exc}") from exc


def scan_class_folders(
    root: str | os.PathLike, *, allowed: tuple[str, ...] | None = None, notes: dict | None = None
) -> tuple[list[Path], list[int]]:
    """Image paths and canonical ids of a folder-per-class tree, class by class.

    Several folders naming one emotion (``happy/`` and ``happiness/``) are
    merged and counted in ``notes["merged_folders"]``. Raises ``DatasetError``
    when ``root`` has no class folder, a folder names no (allowed) emotion, or
    a class folder holds no image.
    """
    root = require_dir(root, "a folder with one subfolder per emotion class")
    notes = {} if notes is None else notes
    folders = class_folders(root, notes)
    if not folders:
        raise DatasetError(
            f"expected one subfolder per emotion class under {root}; "
            f"found: {describe_contents(root)}"
        )
    paths: list[Path] = []
    labels: list[int] = []
    emotions: set[str] = set()
    for folder in folders:
        emotion = folder_emotion(folder, allowed)
        unreadable = notes.get("unreadable_folders", 0)
        images = list_images(folder, notes)
        if not images and notes.get("unreadable_folders", 0) > unreadable:
            continue  # skipped and counted, like an unreadable image
        if not images:
            raise DatasetError(
                f"class folder {folder} holds no images (expected files "
                f"ending in {', '.join(IMAGE_SUFFIXES)}); found: "
                f"{describe_contents(folder)}"
            )
        emotions.add(emotion)
        paths.extend(images)
        labels.extend([EMOTION_ID[emotion]] * len(images))
    add_note(notes, "merged_folders", len(folders) - len(emotions))
    return paths, labels


def scan(root: str | os.PathLike, *, allowed: tuple[str, ...] | None = None) -> Listing:
    """List a folder-per-class dataset: no subjects, no official split."""
    notes: dict = {}
    paths, labels = scan_class_folders(root, allowed=allowed, notes=notes)
    return Listing(items=paths, labels=labels, notes=notes)
