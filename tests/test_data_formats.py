"""Scanners of every native dataset layout, on tiny fixtures built in tmp_path.

Checks what each scanner lists (counts, canonical labels, subject groups,
official splits, notes), that layouts are auto-detected, that files are only
listed and never opened, and that every wrong input raises a ``DatasetError``
saying what was expected and what was found.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fixtures
from emorec.data import ckplus, fer2013, folder, kdef, nhf
from emorec.data.errors import DatasetError, describe_contents, require_dir
from emorec.labels import EMOTION_ID, EMOTIONS


def names_of(listing) -> Counter:
    """How many items each canonical emotion has."""
    return Counter(EMOTIONS[i] for i in listing.labels)


def assert_sorted_paths(listing) -> None:
    assert all(isinstance(p, Path) for p in listing.items)
    assert list(listing.items) == sorted(listing.items)
    assert listing.labels.dtype == np.int64


@pytest.fixture
def no_image_opening(monkeypatch):
    """Fail any attempt to decode an image: scanners must only list files."""

    def refuse(*args, **kwargs):
        raise AssertionError("a scanner opened an image file")

    monkeypatch.setattr(Image, "open", refuse)


# ------------------------------------------------------------------ errors ---


def test_dataset_error_is_value_error():
    assert issubclass(DatasetError, ValueError)
    assert DatasetError.__doc__


def test_require_dir(tmp_path):
    assert require_dir(str(tmp_path), "a dataset") == tmp_path
    with pytest.raises(DatasetError, match="expected a dataset at .*does not exist"):
        require_dir(tmp_path / "missing", "a dataset")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        require_dir(tmp_path / "file.txt", "a dataset")


def test_describe_contents(tmp_path):
    assert "empty" in describe_contents(tmp_path)
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "a").mkdir()
    assert describe_contents(tmp_path) == "a/, b.txt"
    for i in range(20):
        (tmp_path / f"f{i:02d}").write_text("x")
    assert describe_contents(tmp_path, limit=3).endswith("(19 more)")


# ------------------------------------------------------------------ folder ---


def test_folder_scan_maps_synonyms_and_lists_corrupt_files(tmp_path, no_image_opening):
    root = fixtures.write_folder_set(tmp_path / "set")
    listing = folder.scan(root)
    assert_sorted_paths(listing)
    # 3 images per class, plus broken.png listed under angry: decoding is not our job.
    assert names_of(listing) == {"anger": 4, "happiness": 3, "sadness": 3}
    assert root / "angry" / "broken.png" in listing.items
    assert listing.groups is None and listing.usage is None
    assert listing.notes["non_image_files"] == 2  # labels.txt, .DS_Store
    assert listing.notes["ignored_folders"] == 1  # __MACOSX
    assert listing.notes["merged_folders"] == 0


def test_folder_scan_is_deterministic(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set")
    first, second = folder.scan(root), folder.scan(root)
    assert first.items == second.items
    assert np.array_equal(first.labels, second.labels)


def test_folder_merges_folders_naming_one_emotion(tmp_path):
    root = fixtures.write_folder_set(
        tmp_path / "set", ("happy", "Happiness", "sad"), corrupt=False, extras=False
    )
    listing = folder.scan(root)
    assert names_of(listing) == {"happiness": 6, "sadness": 3}
    assert listing.notes["merged_folders"] == 1


def test_scan_class_folders_returns_paths_and_labels(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set", corrupt=False, extras=False)
    notes: dict = {}
    paths, labels = folder.scan_class_folders(root, notes=notes)
    assert len(paths) == len(labels) == 9
    assert labels[0] == EMOTION_ID["anger"] and paths[0].parent.name == "angry"
    assert notes["merged_folders"] == 0


def test_folder_unknown_class_lists_accepted_names(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set", ("angry", "bored"))
    with pytest.raises(DatasetError) as err:
        folder.scan(root)
    message = str(err.value)
    assert str(root / "bored") in message
    assert "accepted names" in message and "happiness" in message and "angry" in message


def test_folder_allowed_restricts_folder_names(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set", ("angry", "happy"))
    assert len(folder.scan(root, allowed=("Angry", "happy")).items) == 7
    with pytest.raises(
        DatasetError,
        match=r"unknown class folder .*angry: expected one of "
        r"anger, happy",
    ):
        folder.scan(root, allowed=("anger", "happy"))


def test_folder_empty_class_folder(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set", corrupt=False, extras=False)
    (root / "fear").mkdir()
    (root / "fear" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"class folder .*fear holds no images.*readme\.txt"):
        folder.scan(root)


def test_folder_without_class_folders(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(
        DatasetError,
        match=r"expected one subfolder per emotion class .*"
        r"found: a\.png",
    ):
        folder.scan(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        folder.scan(tmp_path / "missing")


# ----------------------------------------------------------------- FER2013 ---


def test_fer2013_csv(tmp_path):
    root = fixtures.write_fer2013_csv(tmp_path / "fer", n_per_class=2)
    listing = fer2013.scan(root)
    assert len(listing.items) == 7 * 2 * 3
    assert listing.notes == {"rows": 43, "bad_rows": 1}
    assert Counter(listing.usage) == {"train": 14, "val": 14, "test": 14}
    assert names_of(listing) == {e: 6 for e in EMOTIONS if e != "contempt"}
    assert listing.groups is None
    first = listing.items[0]
    assert isinstance(first, np.ndarray) and first.dtype == np.uint8 and first.shape == (48, 48)
    # The pixels are the row's values, row-major.
    row = (root / "fer2013.csv").read_text().splitlines()[1].split(",")
    assert listing.labels[0] == EMOTION_ID["anger"] and row[0] == "0"
    assert np.array_equal(first.ravel(), np.array(row[1].split(), dtype=np.uint8))
    assert not np.array_equal(listing.items[0], listing.items[1])


def test_fer2013_csv_file_path_and_no_usage(tmp_path):
    root = fixtures.write_fer2013_csv(tmp_path / "fer", n_per_class=1, usage=False)
    listing = fer2013.scan(root / "fer2013.csv")
    assert len(listing.items) == 7 and listing.usage is None
    assert listing.notes["bad_rows"] == 0


def test_fer2013_csv_strict_names_the_bad_row(tmp_path):
    root = fixtures.write_fer2013_csv(tmp_path / "fer", n_per_class=2)
    with pytest.raises(
        DatasetError,
        match=r"row 15 \(line 16\) is malformed: pixels holds 3 "
        r"values, expected 2304",
    ):
        fer2013.scan(root, strict=True)


@pytest.mark.parametrize(
    "row, reason",
    [
        ("9,{px},Training", "emotion '9'"),
        ("x,{px},Training", "emotion 'x'"),
        ("1,{px},Holdout", "Usage 'Holdout'"),
        ("1,1 2 x,Training", "other than space-separated integers"),
        ("1,{big},Training", "outside 0-255"),
    ],
)
def test_fer2013_csv_bad_rows(tmp_path, row, reason):
    px = " ".join(["7"] * 2304)
    big = " ".join(["300"] * 2304)
    path = tmp_path / "mine.csv"
    path.write_text(
        "emotion,pixels,Usage\n" + f"3,{px},Training\n" + row.format(px=px, big=big) + "\n"
    )
    listing = fer2013.scan(path)
    assert len(listing.items) == 1 and listing.notes["bad_rows"] == 1
    with pytest.raises(DatasetError, match=f"row 2 .*{reason}"):
        fer2013.scan(path, strict=True)


def test_fer2013_csv_dialect_variants(tmp_path):
    # CRLF endings, a BOM, quoted cells, a blank line and another column order.
    px = " ".join(str(i % 256) for i in range(2304))
    path = tmp_path / "fer2013.csv"
    path.write_bytes(
        (f'\ufeffUsage,emotion,pixels\r\nPrivateTest,5,"{px}"\r\n\r\nTraining,0,{px}\r\n').encode()
    )
    listing = fer2013.scan(tmp_path)
    assert list(listing.usage) == ["test", "train"]
    assert [EMOTIONS[i] for i in listing.labels] == ["surprise", "anger"]
    assert listing.items[0][0, :3].tolist() == [0, 1, 2] and listing.items[1][47, 47] == 255
    assert listing.notes == {"rows": 2, "bad_rows": 0}


def test_fer2013_csv_wrong_columns_and_no_rows(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("label,image\n1,2\n")
    with pytest.raises(
        DatasetError,
        match="expected FER2013 CSV columns emotion,pixels.*found columns: label, image",
    ):
        fer2013.scan(tmp_path)
    path.write_text("emotion,pixels,Usage\n3,1 2,Training\n")
    with pytest.raises(DatasetError, match="no usable row"):
        fer2013.scan(path)


def test_fer2013_folders(tmp_path, no_image_opening):
    root = fixtures.write_fer2013_folders(tmp_path / "fer", n_train=3, n_test=2)
    listing = fer2013.scan(root)
    assert_sorted_paths(listing)
    assert len(listing.items) == 7 * 5
    assert Counter(listing.usage) == {"train": 21, "test": 14}
    assert names_of(listing) == {e: 5 for e in EMOTIONS if e != "contempt"}
    assert all(p.parts[-3] == u for p, u in zip(listing.items, listing.usage))
    assert listing.groups is None
    assert listing.notes["train_images"] == 21 and listing.notes["test_images"] == 14


def test_fer2013_prefers_csv_when_both_layouts_exist(tmp_path):
    root = fixtures.write_fer2013_folders(tmp_path / "fer", n_train=1, n_test=1)
    fixtures.write_fer2013_csv(root, n_per_class=1)
    assert isinstance(fer2013.scan(root).items[0], np.ndarray)


def test_fer2013_wrong_layouts(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(
        DatasetError,
        match=r"expected fer2013\.csv or train/ and test/ folders "
        r".*found: data\.txt, train/",
    ):
        fer2013.scan(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        fer2013.scan(tmp_path / "missing")
    with pytest.raises(DatasetError, match=r"expected a FER2013 \.csv file"):
        fer2013.scan(tmp_path / "data.txt")


def test_fer2013_folders_unknown_class(tmp_path):
    root = fixtures.write_fer2013_folders(tmp_path / "fer", n_train=1, n_test=1)
    fixtures.write_image(root / "test" / "bored" / "x.jpg", np.random.default_rng(0))
    with pytest.raises(DatasetError, match=r"unknown class folder .*test/bored"):
        fer2013.scan(root)


# --------------------------------------------------------------------- CK+ ---


def test_ckplus48(tmp_path, no_image_opening):
    root = fixtures.write_ckplus48(tmp_path / "CK+48", subjects=2)
    listing = ckplus.scan(root)
    assert_sorted_paths(listing)
    assert len(listing.items) == 7 * 2 * 3 + 1
    counts = names_of(listing)
    assert counts["contempt"] == 6 and counts["happiness"] == 7 and "neutral" not in counts
    assert Counter(listing.groups) == {"S010": 21, "S011": 21, "odd_frame": 1}
    assert listing.notes["unparsed_names"] == 1
    assert listing.usage is None


def test_ckplus_original(tmp_path, no_image_opening):
    root = fixtures.write_ckplus_original(tmp_path / "CK+")
    listing = ckplus.scan(root)
    assert_sorted_paths(listing)
    # Four labelled sequences, their last three frames each.
    assert len(listing.items) == 12
    assert names_of(listing) == {"disgust": 3, "happiness": 3, "surprise": 3, "contempt": 3}
    assert Counter(listing.groups) == {"S005": 3, "S010": 9}
    assert [p.name for p in listing.items[:3]] == [f"S005_001_{f:08d}.png" for f in (4, 5, 6)]
    assert listing.notes == {
        "sequences": 5,
        "labelled_sequences": 4,
        "bad_label_files": 0,
        "labelled_sequences_without_images": 0,
    }
    assert listing.usage is None


def test_ckplus_original_neutral_and_last_frames(tmp_path):
    root = fixtures.write_ckplus_original(tmp_path / "CK+")
    listing = ckplus.scan(root, include_neutral=True)
    # The 3-frame sequence has no frame left over for neutral.
    assert names_of(listing)["neutral"] == 3 and len(listing.items) == 15
    neutral = [p for p, y in zip(listing.items, listing.labels) if y == EMOTION_ID["neutral"]]
    assert all(p.stem.endswith("_00000001") for p in neutral)
    single = ckplus.scan(root, last_frames=1, include_neutral=True)
    assert len(single.items) == 4 + 4
    assert [p.name for p in single.items[:2]] == ["S005_001_00000001.png", "S005_001_00000006.png"]
    with pytest.raises(DatasetError, match="last_frames must be at least 1"):
        ckplus.scan(root, last_frames=0)


def test_ckplus_original_bad_label_file_is_skipped(tmp_path):
    root = fixtures.write_ckplus_original(tmp_path / "CK+")
    label = next((root / "Emotion" / "S010" / "004").glob("*_emotion.txt"))
    label.write_text("surprise\n")
    listing = ckplus.scan(root)
    assert listing.notes["bad_label_files"] == 1 and len(listing.items) == 9


def test_ckplus_original_needs_emotion_folder(tmp_path):
    root = fixtures.write_ckplus_original(tmp_path / "CK+")
    (root / "Emotion").rename(root / "labels")
    with pytest.raises(DatasetError) as err:
        ckplus.scan(root)
    message = str(err.value)
    assert "CK+48" in message and "Emotion/ missing" in message
    assert "found: cohn-kanade-images/, labels/" in message


def test_ckplus_wrong_layouts(tmp_path):
    with pytest.raises(DatasetError, match="CK\\+48 .* or original CK\\+ .*does not exist"):
        ckplus.scan(tmp_path / "missing")
    (tmp_path / "images").mkdir()
    with pytest.raises(
        DatasetError,
        match=r"expected CK\+48 .*or original CK\+ .*"
        r"unknown class folder",
    ):
        ckplus.scan(tmp_path)


# -------------------------------------------------------------------- KDEF ---


def test_kdef_front_facing(tmp_path, no_image_opening):
    root = fixtures.write_kdef(tmp_path / "KDEF")
    listing = kdef.scan(root)
    assert_sorted_paths(listing)
    # 2 identities x 2 sessions x 7 expressions at S, plus the loose BM02HAS.jpg.
    assert len(listing.items) == 29
    assert root / "BM02HAS.jpg" in listing.items
    assert Counter(listing.groups) == {"F01": 14, "M02": 15}
    assert names_of(listing) == {e: 4 for e in EMOTIONS if e != "contempt"} | {"happiness": 5}
    assert listing.notes == {
        "unmatched_names": 1,
        "unknown_expressions": 1,
        "other_angles": 2 * 2 * 7 * 4 + 1,
        "non_image_files": 1,
        "ignored_subfolders": 0,
    }
    assert listing.usage is None


def test_kdef_angles(tmp_path):
    root = fixtures.write_kdef(tmp_path / "KDEF")
    assert len(kdef.scan(root, angles="all").items) == 2 * 2 * 7 * 5 + 2
    both = kdef.scan(root, angles=" hr, FR ")  # any case, spaces tolerated
    assert len(both.items) == 2 * 2 * 7 * 2 + 1  # AF01SUHRX counts as HR
    assert root / "AF01" / "AF01SUHRX.JPG" in both.items


def test_kdef_unknown_angle_lists_valid_ones(tmp_path):
    root = fixtures.write_kdef(tmp_path / "KDEF", extras=False)
    with pytest.raises(DatasetError, match="unknown KDEF angle.*XX; valid: FL, HL, S, HR, FR"):
        kdef.scan(root, angles="S,XX")
    with pytest.raises(DatasetError, match="valid"):
        kdef.scan(root, angles="")


def test_kdef_without_matching_images(tmp_path):
    root = fixtures.write_kdef(tmp_path / "KDEF", angles=("FL",), extras=False)
    with pytest.raises(
        DatasetError,
        match=r"expected KDEF images named like AF01ANS\.JPG "
        r"with angle S .*found none among: AF01/",
    ):
        kdef.scan(root)
    with pytest.raises(DatasetError, match="does not exist"):
        kdef.scan(tmp_path / "missing")


# --------------------------------------------------------------------- NHF ---


def test_nhf(tmp_path, no_image_opening):
    root = fixtures.write_nhf(tmp_path / "nhf", n_per_class=2)
    listing = nhf.scan(root)
    assert_sorted_paths(listing)
    assert names_of(listing) == {e: 2 for e in EMOTIONS}
    assert listing.groups is None and listing.usage is None


def test_nhf_reads_its_real_file_names_with_spaces_and_timestamps(tmp_path):
    """``anger/images - 2020-11-06T001050.259_face.png``, 224x224: loaded, trained on."""
    from emorec.data import load_dataset
    from emorec.data.preprocess import Preprocessing

    root = fixtures.write_nhf(tmp_path / "nhf", n_per_class=2)
    names = sorted(p.name for p in (root / "anger").iterdir())
    assert names[0].startswith("images - 2020-11-06T00") and names[0].endswith("_face.png")
    ds = load_dataset("nhf", root, Preprocessing(48, 1), progress=False, use_cache=False)
    assert len(ds) == 16 and ds.stats["skipped"] == 0


def test_explore_takes_kdefs_angles_as_train_does(tmp_path, capsys):
    from emorec.cli import main

    people = tuple(f"{'FM'[i % 2]}{i + 1:02d}" for i in range(8))  # a grouped split's minimum
    root = fixtures.write_kdef(tmp_path / "KDEF", people, extras=False)
    counts = {}
    for angles in ("S", "all"):
        out = tmp_path / f"explore-{angles}"
        assert (
            main(
                [
                    "explore",
                    "--dataset",
                    "kdef",
                    "--data-dir",
                    str(root),
                    "--angles",
                    angles,
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        counts[angles] = int(capsys.readouterr().out.split(": ")[1].split()[0])
    assert counts == {"S": 112, "all": 560}  # 2 sessions x 8 people x 7 expressions x angles


def test_nhf_accepts_happy_and_rejects_other_names(tmp_path):
    root = fixtures.write_nhf(tmp_path / "nhf", n_per_class=1)
    (root / "happiness").rename(root / "happy")
    assert names_of(nhf.scan(root))["happiness"] == 1
    (root / "neutrality").rename(root / "neutral")
    with pytest.raises(
        DatasetError,
        match=r"unknown class folder .*neutral: expected one of "
        r"anger, contempt.*neutrality",
    ):
        nhf.scan(root)


# ------------------------------------------------------------------ fixtures ---


def test_fixture_images_differ_and_corrupt_file_does_not_decode(tmp_path):
    from emorec.data.images import ImageError, decode_image

    root = fixtures.write_folder_set(tmp_path / "set")
    a, b = decode_image(root / "angry" / "img000.png"), decode_image(root / "happy" / "img000.png")
    assert a.shape == b.shape and not np.array_equal(a, b)
    with pytest.raises(ImageError):
        decode_image(root / "angry" / "broken.png")
