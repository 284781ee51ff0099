"""Tiny datasets in each native on-disk layout, for tests of scanning and loading.

Every writer takes a destination folder, builds the dataset inside it and
returns the root to hand to the matching scanner. Images are seeded random
noise, so every file has different pixels (a loader that mixes files up, or a
duplicate check, is visible) and every run writes the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from emorec.labels import CKPLUS_CODES, FER2013_CODES, KDEF_CODES

# Kaggle FER2013 folder names, in FER2013 code order.
FER_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
CK48_FOLDERS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")
NHF_FOLDERS = (
    "anger",
    "contempt",
    "disgust",
    "fear",
    "happiness",
    "neutrality",
    "sadness",
    "surprise",
)
KDEF_ANGLES = ("FL", "HL", "S", "HR", "FR")
FER_USAGES = ("Training", "PublicTest", "PrivateTest")
# Bytes that no image decoder accepts, written under an image name.
CORRUPT_BYTES = b"this is not an image, only text with an image suffix\n"


def write_image(path: Path, rng: np.random.Generator, size: int = 16, color: bool = False) -> Path:
    """A size x size noise image at ``path``; the suffix picks the format."""
    shape = (size, size, 3) if color else (size, size)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with an image name whose bytes are not an image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(CORRUPT_BYTES)
    return path


def fer_pixels(rng: np.random.Generator) -> str:
    """One FER2013 ``pixels`` cell: 2304 space-separated values."""
    return " ".join(map(str, rng.integers(0, 256, 48 * 48)))


def write_fer2013_csv(
    directory: Path,
    n_per_class: int = 2,
    *,
    usage: bool = True,
    bad_row: bool = True,
    seed: int = 0,
) -> Path:
    """``directory/fer2013.csv``: ``n_per_class`` rows per class and Usage, in that order.

    With ``bad_row`` (and ``usage``) a malformed row (three pixels) is inserted
    as data row ``n_per_class * 7 + 1``, just before the PublicTest rows.
    Without ``usage`` all rows are Training rows. Returns ``directory``.
    """
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["emotion,pixels,Usage" if usage else "emotion,pixels"]
    for split in FER_USAGES if usage else FER_USAGES[:1]:
        if bad_row and split == "PublicTest":
            lines.append(f"3,1 2 3,{split}")
        for code in FER2013_CODES:
            for _ in range(n_per_class):
                lines.append(f"{code},{fer_pixels(rng)}" + (f",{split}" if usage else ""))
    (directory / "fer2013.csv").write_text("\n".join(lines) + "\n")
    return directory


def write_fer2013_folders(
    directory: Path, n_train: int = 3, n_test: int = 2, *, seed: int = 0
) -> Path:
    """Kaggle layout ``train/<class>/Training_*.jpg`` and ``test/<class>/PublicTest_*.jpg``."""
    rng = np.random.default_rng(seed)
    for split, prefix, n in (("train", "Training", n_train), ("test", "PublicTest", n_test)):
        for name in FER_FOLDERS:
            for i in range(n):
                write_image(directory / split / name / f"{prefix}_{name}{i:03d}.jpg", rng, 48)
    return directory


def write_ckplus48(
    directory: Path, subjects: int = 2, *, odd_name: bool = True, seed: int = 0
) -> Path:
    """CK+48: per class, ``subjects`` subjects x one sequence x its last 3 frames.

    Subjects are ``S010``, ``S011`` ...; class ``k`` uses sequence ``k+1``. With
    ``odd_name`` one extra ``happy/odd_frame.png`` breaks the name pattern.
    """
    rng = np.random.default_rng(seed)
    for k, name in enumerate(CK48_FOLDERS):
        for s in range(subjects):
            for frame in (8, 9, 10):
                stem = f"S{10 + s:03d}_{k + 1:03d}_{frame:08d}"
                write_image(directory / name / f"{stem}.png", rng, 48)
    if odd_name:
        write_image(directory / "happy" / "odd_frame.png", rng, 48)
    return directory


# (subject, sequence, number of frames, CK+ code or None for no label)
CKPLUS_SEQUENCES = (
    ("S005", "001", 6, 3),  # disgust
    ("S005", "002", 5, None),  # unlabelled
    ("S010", "001", 7, 5),  # happiness
    ("S010", "004", 4, 7),  # surprise
    ("S010", "006", 3, 2),  # contempt, too short for a separate neutral frame
)


def write_ckplus_original(directory: Path, sequences=CKPLUS_SEQUENCES, *, seed: int = 0) -> Path:
    """Original CK+: ``cohn-kanade-images/`` frames plus ``Emotion/`` label files.

    Each sequence in ``sequences`` gets its frames; labelled ones get an
    ``Emotion`` file in the release's float format on their last frame.
    """
    rng = np.random.default_rng(seed)
    for subject, sequence, n_frames, code in sequences:
        assert code is None or code in CKPLUS_CODES
        stem = ""
        for frame in range(1, n_frames + 1):
            stem = f"{subject}_{sequence}_{frame:08d}"
            write_image(
                directory / "cohn-kanade-images" / subject / sequence / f"{stem}.png", rng, 32
            )
        label_dir = directory / "Emotion" / subject / sequence
        label_dir.mkdir(parents=True, exist_ok=True)  # the release has empty folders too
        if code is not None:
            (label_dir / f"{stem}_emotion.txt").write_text(f"   {code:.7e}\n")
    return directory


def write_kdef(
    directory: Path,
    identities: tuple[str, ...] = ("F01", "M02"),
    *,
    sessions: str = "AB",
    angles: tuple[str, ...] = KDEF_ANGLES,
    extras: bool = True,
    seed: int = 0,
) -> Path:
    """KDEF sitting folders (``AF01/AF01ANS.JPG``) for every expression and angle.

    With ``extras``: one ``HRX``-style name, a loose image directly under the
    root, a name off the pattern, an unknown expression code and a text file.
    """
    rng = np.random.default_rng(seed)
    for session in sessions:
        for identity in identities:
            sitting = directory / f"{session}{identity}"
            for code in KDEF_CODES:
                for angle in angles:
                    write_image(
                        sitting / f"{session}{identity}{code}{angle}.JPG", rng, 24, color=True
                    )
    if extras:
        write_image(directory / "AF01" / "AF01SUHRX.JPG", rng, 24, color=True)  # HR angle
        write_image(directory / "BM02HAS.jpg", rng, 24, color=True)  # loose, lower-case suffix
        write_image(directory / "AF01" / "portrait.JPG", rng, 24, color=True)  # off pattern
        write_image(directory / "AF01" / "AF01XXS.JPG", rng, 24, color=True)  # unknown code
        (directory / "AF01" / "notes.txt").write_text("not an image\n")
    return directory


def write_nhf(directory: Path, n_per_class: int = 2, *, seed: int = 0) -> Path:
    """Natural Human Faces: the eight class folders with ``n_per_class`` images each, named
    as the real set names them (spaces, a timestamp, ``_face``), 224x224 PNG."""
    rng = np.random.default_rng(seed)
    for name in NHF_FOLDERS:
        for i in range(n_per_class):
            stamp = f"2020-11-06T00{i:02d}50.{259 + i}"
            write_image(directory / name / f"images - {stamp}_face.png", rng, 224)
    return directory


def write_folder_set(
    directory: Path,
    classes: tuple[str, ...] = ("angry", "happy", "sad"),
    n_per_class: int = 3,
    *,
    corrupt: bool = True,
    extras: bool = True,
    seed: int = 0,
) -> Path:
    """Generic folder-per-class set with synonym folder names.

    With ``corrupt`` the first class gets one more file, ``broken.png``, that is
    not an image; with ``extras`` a text file, a ``.DS_Store`` and a
    ``__MACOSX`` folder join in (all ignored by scanners).
    """
    rng = np.random.default_rng(seed)
    for name in classes:
        for i in range(n_per_class):
            suffix = ".jpg" if i % 2 else ".png"
            write_image(directory / name / f"img{i:03d}{suffix}", rng, 16)
    if corrupt:
        write_corrupt(directory / classes[0] / "broken.png")
    if extras:
        (directory / classes[0] / "labels.txt").write_text("not an image\n")
        (directory / classes[-1] / ".DS_Store").write_bytes(b"\0")
        write_image(directory / "__MACOSX" / classes[0] / "._img000.png", rng, 16)
    return directory
