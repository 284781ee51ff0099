"""The data pipeline end to end: load, decode, preprocess, cache, split, augment, explore.

Every test builds its own tiny dataset in tmp_path (``fixtures``) and gets its
own cache folder (``conftest.isolated_store``), so the file runs offline, in
any order, in a few seconds.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import fixtures
from emorec.data import FORMATS, DatasetError, cache, images, load_dataset
from emorec.data.augment import augment_batch
from emorec.data.images import ImageError, decode_image
from emorec.data.preprocess import Preprocessing, normalize, prepare_batch, prepare_image
from emorec.data.splits import STRATEGIES, make_split
from emorec.labels import BASIC_EMOTIONS, EMOTION_ID, EMOTIONS

# (dataset name, fixture writer, options, expected counts per canonical class)
LAYOUTS = {
    "folder": (
        "folder",
        fixtures.write_folder_set,
        {},
        {"anger": 3, "happiness": 3, "sadness": 3},
    ),  # + broken.png, skipped
    "fer_csv": (
        "fer2013",
        fixtures.write_fer2013_csv,
        {},
        {c: 6 for c in BASIC_EMOTIONS},
    ),  # 2 per class and Usage; 1 bad row
    "fer_folders": (
        "fer2013",
        fixtures.write_fer2013_folders,
        {},
        {c: 5 for c in BASIC_EMOTIONS},
    ),  # 3 train + 2 test per class
    "ck48": (
        "ckplus",
        fixtures.write_ckplus48,
        {},
        {**{c: 6 for c in fixtures.CK48_FOLDERS if c != "happy"}, "happiness": 7},
    ),  # 2 subjects x 3 frames, + odd_frame.png
    "ck_original": (
        "ckplus",
        fixtures.write_ckplus_original,
        {"include_neutral": True},
        {"disgust": 3, "happiness": 3, "surprise": 3, "contempt": 3, "neutral": 3},
    ),  # contempt's sequence is too short for a neutral frame
    "kdef": (
        "kdef",
        fixtures.write_kdef,
        {},
        {**{c: 4 for c in BASIC_EMOTIONS}, "happiness": 5},
    ),  # 2x2 sittings, + loose HAS
    "nhf": ("nhf", fixtures.write_nhf, {}, {c: 2 for c in EMOTIONS}),
}


def counts(ds) -> dict[str, int]:
    return dict(Counter(EMOTIONS[i] for i in ds.labels))


def load(name, root, size=32, channels=1, **kwargs):
    return load_dataset(
        name, root, Preprocessing(image_size=size, channels=channels), progress=False, **kwargs
    )


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid 8x8 PNG whose header claims ``width`` x ``height``: a few bytes on disk."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))  # CRC of type + data
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def cache_entries() -> list[Path]:
    return sorted(cache.cache_dir().glob("*.npz"))


# ---------------------------------------------------------------- loading ---


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_load_every_layout(tmp_path, layout, channels):
    name, write, options, expected = LAYOUTS[layout]
    root = write(tmp_path / layout)
    ds = load(name, root, size=24, channels=channels, options=options)
    assert counts(ds) == expected
    assert ds.classes == tuple(c for c in EMOTIONS if c in expected)  # canonical order
    assert ds.images.dtype == np.uint8 and ds.images.shape == (len(ds), 24, 24, channels)
    assert ds.labels.dtype == np.int64 and len(ds.labels) == len(ds)
    assert ds.targets.min() == 0 and ds.targets.max() == len(ds.classes) - 1
    assert ds.stats["images"] == len(ds) and ds.stats["from_cache"] is False
    if channels == 3 and layout != "kdef":  # gray sources: three equal channels
        assert np.array_equal(ds.images[..., 0], ds.images[..., 2])


def test_groups_and_usage_are_carried_through(tmp_path):
    fer = load("fer2013", fixtures.write_fer2013_csv(tmp_path / "csv"))
    assert fer.groups is None
    assert Counter(fer.usage.tolist()) == {"train": 14, "val": 14, "test": 14}
    assert fer.stats["bad_rows"] == 1
    kaggle = load("fer2013", fixtures.write_fer2013_folders(tmp_path / "kaggle"))
    assert Counter(kaggle.usage.tolist()) == {"train": 21, "test": 14}
    ck = load("ckplus", fixtures.write_ckplus48(tmp_path / "ck"))
    assert Counter(ck.groups.tolist()) == {"S010": 21, "S011": 21, "odd_frame": 1}
    assert ck.usage is None
    kdef = load("kdef", fixtures.write_kdef(tmp_path / "kdef"))
    assert set(kdef.groups.tolist()) == {"F01", "M02"}
    syn = load("synthetic", None, options={"count": 70})
    assert len(syn) == 70 and syn.groups is not None and syn.usage is None


def test_corrupt_file_is_skipped_and_counted(tmp_path, caplog):
    root = fixtures.write_folder_set(tmp_path / "set")
    ds = load("folder", root)
    assert len(ds) == 9 and ds.stats["skipped"] == 1
    assert "broken.png" in ds.stats["skipped_examples"][0]
    assert "skipped 1 unreadable image" in caplog.text


def test_strict_mode_raises_naming_the_file(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set")
    with pytest.raises(DatasetError, match=r"broken\.png.*strict"):
        load("folder", root, strict=True)
    assert cache_entries() == []  # nothing half-written
    # strict also reaches the FER2013 CSV parser: a malformed row is an error.
    csv_root = fixtures.write_fer2013_csv(tmp_path / "csv")
    with pytest.raises(DatasetError, match=r"fer2013\.csv: row 15 .*malformed"):
        load("fer2013", csv_root, strict=True)


def test_no_readable_image_is_an_error(tmp_path):
    fixtures.write_corrupt(tmp_path / "set" / "happy" / "a.png")
    with pytest.raises(DatasetError, match="no readable images"):
        load("folder", tmp_path / "set")


@pytest.mark.parametrize("side", [7000, 20000])  # over our limit; over Pillow's own too
def test_decompression_bomb_is_rejected_from_the_header(tmp_path, side):
    path = bomb_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 100
    with pytest.raises(ImageError, match="decompression bomb") as err:
        decode_image(path)
    assert "bomb.png" in str(err.value)


def test_pixel_limit_applies_through_the_loader(tmp_path, monkeypatch):
    root = fixtures.write_nhf(tmp_path / "nhf")
    bomb_png(root / "fear" / "huge.png", 10000, 10000)
    ds = load("nhf", root)
    assert ds.stats["skipped"] == 1 and "decompression bomb" in ds.stats["skipped_examples"][0]
    monkeypatch.setattr(images, "MAX_PIXELS", 100)  # the 24x24 fixtures exceed it now
    with pytest.raises(DatasetError, match=r"_face\.png.*decompression bomb"):
        load("nhf", root, strict=True, use_cache=False)


def test_16bit_images_are_scaled_not_clipped(tmp_path):
    """A 16-bit PNG (and PGM) of a photo decodes to that photo's 8-bit pixels, when read
    alone and when a dataset is loaded for training."""
    gray = np.random.default_rng(3).integers(0, 256, (24, 24), dtype=np.uint8)
    wide = gray.astype(np.uint16) * 257  # the standard 8 -> 16 bit widening
    root = tmp_path / "set"
    for folder in ("happy", "sad"):
        (root / folder).mkdir(parents=True)
    Image.fromarray(gray).save(root / "happy" / "a8.png")
    Image.fromarray(wide).save(root / "sad" / "a16.png")
    pgm = root / "sad" / "b16.pgm"
    pgm.write_bytes(b"P5\n24 24\n65535\n" + wide.astype(">u2").tobytes())
    assert Image.open(root / "sad" / "a16.png").mode == "I;16"
    for path in (root / "sad" / "a16.png", pgm):
        assert np.array_equal(decode_image(path), gray), path.name
    ds = load("folder", root, size=24)
    assert ds.stats["skipped"] == 0 and len(ds) == 3
    assert all(np.array_equal(im[..., 0], gray) for im in ds.images)


def test_32bit_and_float_image_files_are_refused(tmp_path):
    for name, arr in (
        ("i32.tif", np.full((16, 16), 70000, np.int32)),
        ("f32.tif", np.full((16, 16), 0.5, np.float32)),
    ):
        Image.fromarray(arr).save(tmp_path / name)
        with pytest.raises(ImageError, match=f"{name}.*8 or 16 bits"):
            decode_image(tmp_path / name)


def test_broken_links_are_skipped_and_counted(tmp_path, caplog):
    """A dangling or self-looping link is one more unreadable image, with the cache on."""
    root = fixtures.write_folder_set(tmp_path / "set", corrupt=False, extras=False)
    os.symlink(tmp_path / "gone.png", root / "happy" / "gone.png")
    os.symlink("loop.png", root / "happy" / "loop.png")
    os.symlink("loop", root / "loop")  # beside the class folders: not a class
    for _ in range(2):  # decoded, then from the cache
        ds = load("folder", root)
        assert len(ds) == 9 and ds.stats["skipped"] == 2
    assert ds.stats["from_cache"] is True
    assert "gone.png: cannot open" in caplog.text and "loop.png: cannot open" in caplog.text


# ------------------------------------------------------------------ cache ---


def test_cache_hit_returns_identical_arrays(tmp_path):
    root = fixtures.write_ckplus48(tmp_path / "ck")
    first = load("ckplus", root)
    assert len(cache_entries()) == 1 and not list(cache.cache_dir().glob("*.tmp"))
    second = load("ckplus", root)
    assert second.stats["from_cache"] is True and first.stats["from_cache"] is False
    assert second.stats["decode_seconds"] == first.stats["decode_seconds"]
    for field in ("images", "labels", "groups"):
        a, b = getattr(first, field), getattr(second, field)
        assert a.dtype.kind == b.dtype.kind and np.array_equal(a, b), field
    assert second.classes == first.classes and second.usage is None
    fer = fixtures.write_fer2013_folders(tmp_path / "fer")
    load("fer2013", fer)
    assert np.array_equal(load("fer2013", fer).usage, load("fer2013", fer, use_cache=False).usage)


def test_cache_is_not_used_for_decoding_twice(tmp_path, monkeypatch):
    root = fixtures.write_nhf(tmp_path / "nhf")
    load("nhf", root)

    def refuse(*args, **kwargs):
        raise AssertionError("a cached dataset was decoded again")

    monkeypatch.setattr("emorec.data.decode_image", refuse)
    assert load("nhf", root).stats["from_cache"] is True


def _reload(root, **kwargs):
    return load("folder", root, **kwargs)


def test_cache_invalidation(tmp_path):
    root = fixtures.write_folder_set(tmp_path / "set", corrupt=False, extras=False)
    assert len(_reload(root)) == 9
    assert _reload(root).stats["from_cache"] is True

    touched = root / "happy" / "img000.png"  # same bytes, new mtime
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert _reload(root).stats["from_cache"] is False
    assert _reload(root).stats["from_cache"] is True

    fixtures.write_image(root / "sad" / "new.png", np.random.default_rng(1))  # added
    added = _reload(root)
    assert added.stats["from_cache"] is False and len(added) == 10

    (root / "angry" / "img001.jpg").unlink()  # removed
    removed = _reload(root)
    assert removed.stats["from_cache"] is False and len(removed) == 9

    resized = _reload(root, size=40)  # preprocessing changed
    assert resized.stats["from_cache"] is False and resized.images.shape[1:] == (40, 40, 1)
    assert _reload(root, size=40).stats["from_cache"] is True
    assert _reload(root).stats["from_cache"] is True  # the 32 px entry is still valid
    color = _reload(root, channels=3)
    assert color.stats["from_cache"] is False and color.images.shape[-1] == 3


def test_unreadable_cache_entry_is_a_miss(tmp_path):
    root = fixtures.write_nhf(tmp_path / "nhf")
    load("nhf", root)
    for garbage in (b"", b"PK\x03\x04 not a zip", b"random bytes"):
        (entry,) = cache_entries()
        entry.write_bytes(garbage)
        again = load("nhf", root)
        assert again.stats["from_cache"] is False and len(again) == 16
    assert load("nhf", root).stats["from_cache"] is True  # rewritten


# ----------------------------------------------------------------- errors ---


def test_unknown_names_list_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match="unknown dataset 'nope'; valid datasets: " + ", ".join(FORMATS)
    ):
        load_dataset("nope", tmp_path)
    root = fixtures.write_kdef(tmp_path / "kdef", extras=False)
    with pytest.raises(ValueError, match="unknown option.*bogus.*valid: angles"):
        load("kdef", root, options={"bogus": 1})
    ds = load("synthetic", None, options={"count": 42})
    with pytest.raises(
        ValueError, match="unknown split strategy 'random'; valid: " + ", ".join(STRATEGIES)
    ):
        make_split(ds, strategy="random")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load("folder", tmp_path / "missing")
    with pytest.raises(DatasetError, match="needs a data directory"):
        load("ckplus", None)


# ----------------------------------------------------------------- splits ---


def _assert_partition(split, n):
    parts = np.concatenate([split.train, split.val, split.test])
    assert len(parts) == n and len(np.unique(parts)) == n


def test_grouped_split_keeps_subjects_on_one_side(tmp_path):
    ds = load("ckplus", fixtures.write_ckplus48(tmp_path / "ck", subjects=10, odd_name=False))
    split = make_split(ds, seed=3)  # auto: grouped, CK+ has subjects
    assert split.strategy == "grouped"
    _assert_partition(split, len(ds))
    sides = [set(ds.groups[idx]) for idx in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    for idx in (split.train, split.val, split.test):
        assert set(ds.labels[idx]) == {EMOTION_ID[c] for c in ds.classes}


def test_split_is_deterministic_by_seed():
    ds = load("synthetic", None, options={"count": 140})
    a, b = make_split(ds, seed=7), make_split(ds, seed=7)
    assert a.strategy == "grouped" and a.digest == b.digest
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    c = make_split(ds, seed=8)
    assert c.digest != a.digest and not np.array_equal(c.test, a.test)
    s1, s2 = (make_split(ds, strategy="stratified", seed=s) for s in (1, 2))
    _assert_partition(s1, len(ds))
    assert s1.digest == make_split(ds, strategy="stratified", seed=1).digest != s2.digest


def test_official_split_honours_usage(tmp_path):
    fer = load("fer2013", fixtures.write_fer2013_csv(tmp_path / "csv", n_per_class=3))
    split = make_split(fer)
    assert split.strategy == "official"
    assert set(fer.usage[split.train]) == {"train"}
    assert set(fer.usage[split.val]) == {"val"}  # PublicTest
    assert set(fer.usage[split.test]) == {"test"}  # PrivateTest
    assert split.sizes() == {"train": 21, "val": 21, "test": 21}

    kaggle = load("fer2013", fixtures.write_fer2013_folders(tmp_path / "kaggle", n_train=10))
    split = make_split(kaggle)
    assert split.strategy == "official"
    assert set(kaggle.usage[split.test]) == {"test"}  # test/ kept whole
    assert len(split.test) == 14
    assert set(kaggle.usage[split.val]) == {"train"} and len(split.val) > 0  # carved from train
    assert set(kaggle.usage[split.train]) == {"train"}
    _assert_partition(split, len(kaggle))


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")
def test_class_too_small_to_split_is_named(tmp_path):
    root = fixtures.write_folder_set(
        tmp_path / "set", classes=("angry", "happy"), n_per_class=10, corrupt=False, extras=False
    )
    fixtures.write_image(root / "afraid" / "only.png", np.random.default_rng(0))
    ds = load("folder", root)
    with pytest.raises(DatasetError, match=r"fear \(1\)"):
        make_split(ds, strategy="stratified")
    # A grouped split that leaves a class out of a part names it too.
    ck = load("ckplus", fixtures.write_ckplus48(tmp_path / "ck", subjects=8, odd_name=False))
    keep = np.flatnonzero((ck.labels != EMOTION_ID["fear"]) | (ck.groups == "S010"))
    with pytest.raises(DatasetError, match=r"class\(es\) fear empty in (train|val|test)"):
        make_split(ck.subset(keep), strategy="grouped")


# ----------------------------------------------------- augment, preprocess ---


@pytest.mark.parametrize("channels", [1, 3])
def test_augment_batch(channels):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (16, 32, 32, channels), dtype=np.uint8)
    original = batch.copy()
    out = augment_batch(batch, np.random.default_rng(5))
    assert out.shape == batch.shape and out.dtype == np.uint8
    assert np.array_equal(out, augment_batch(batch, np.random.default_rng(5)))
    assert not np.array_equal(out, augment_batch(batch, np.random.default_rng(6)))
    changed = (out != batch).reshape(len(batch), -1).mean(axis=1)
    assert (changed > 0.1).all()  # every image moved, not only a few pixels
    assert np.array_equal(batch, original)  # the input batch is left alone


def test_prepare_image_channels_and_sizes():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (20, 37), dtype=np.uint8)
    rgb = rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)
    to3 = Preprocessing(image_size=48, channels=3)
    to1 = Preprocessing(image_size=48, channels=1)
    out, box = prepare_image(gray, to3)
    assert out.shape == (48, 48, 3) and out.dtype == np.uint8 and box is None
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    out, _ = prepare_image(rgb, to1)
    assert out.shape == (48, 48, 1)
    expected = cv2.resize(
        cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA
    )
    assert np.array_equal(out[..., 0], expected)
    for shape in ((48, 48), (48, 48, 1), (10, 90, 3), (64, 64, 4)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        for prep in (to1, to3):
            assert prepare_image(img, prep)[0].shape == (48, 48, prep.channels)
    same, _ = prepare_image(gray[:16, :16], Preprocessing(image_size=16))
    assert np.array_equal(same[..., 0], gray[:16, :16])  # right size already: untouched


def test_face_detect_without_a_face_keeps_the_image(tmp_path):
    prep = Preprocessing(image_size=32, face_detect=True)
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 1), dtype=np.uint8)
    out, box = prepare_image(noise, prep)
    assert box is None
    assert np.array_equal(out, prepare_image(noise, Preprocessing(image_size=32))[0])
    ds = load_dataset("nhf", fixtures.write_nhf(tmp_path / "nhf"), prep, progress=False)
    assert ds.stats["faces_not_found"] == len(ds) == 16


def test_serving_prepares_images_as_the_training_arrays(tmp_path):
    prep = Preprocessing(image_size=32, channels=3)
    root = fixtures.write_nhf(tmp_path / "nhf")
    ds = load_dataset("nhf", root, prep, progress=False)
    raw = [decode_image(p) for p in sorted(root.glob("*/*.png"))]
    x = prepare_batch(raw, prep)
    assert x.dtype == np.uint8 and x.shape == (16, 32, 32, 3)
    assert np.array_equal(x, ds.images)  # one eval preprocessing for all
    assert normalize(np.array([[0, 255]], np.uint8)).tolist() == [[-1.0, 1.0]]
    mixed = prepare_batch([np.zeros((10, 13), np.uint8), np.full((50, 40, 3), 255, np.uint8)], prep)
    assert mixed.shape == (2, 32, 32, 3) and mixed[0].max() == 0 and mixed[1].min() == 255
    assert prepare_batch([], prep).shape == (0, 32, 32, 3)


# ------------------------------------------------------- imports, explore ---


def test_light_imports_do_not_load_frameworks():
    code = (
        "import sys, emorec; import emorec.data, emorec.config, emorec.cli\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_explore_writes_three_files(tmp_path):
    from emorec.explore import explore

    out = tmp_path / "explore"
    root = fixtures.write_ckplus48(tmp_path / "ck", subjects=8, odd_name=False)
    for name in ("contempt", "disgust", "fear", "sadness"):  # 3 classes: a faster grid
        shutil.rmtree(root / name)
    summary = explore("ckplus", str(root), out, image_size=32, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "class_distribution.png",
        "samples.png",
        "summary.json",
    ]
    for png in ("class_distribution.png", "samples.png"):
        with Image.open(out / png) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 300
    saved = json.loads((out / "summary.json").read_text())
    assert saved["images"] == summary["images"] == 72
    assert saved["subjects"] == 8 and saved["split_strategy"] == "grouped"
    assert sum(saved["subjects_per_split"].values()) == 8  # no subject on two sides
    assert saved["image_shape"] == [32, 32, 1]
    assert saved["counts"] == {c: 24 for c in saved["classes"]}
    assert sum(sum(v.values()) for v in saved["counts_per_split"].values()) == 72
    assert saved["quality"]["duplicate_groups"] == 0
    assert set(saved["quality"]["median_sharpness_per_split"]) == {"train", "val", "test"}


def test_cli_explore_synthetic(tmp_path, capsys):
    from emorec.cli import main

    out = tmp_path / "X"
    assert main(["explore", "--dataset", "synthetic", "--samples", "140", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "synthetic: 140 images" in printed and "wrote" in printed
    assert {p.name for p in out.iterdir()} == {
        "class_distribution.png",
        "samples.png",
        "summary.json",
    }
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == 140 and len(summary["classes"]) == 7


@pytest.mark.parametrize("blur_train", [False, True])
def test_cli_explore_warns_when_splits_differ_in_sharpness(tmp_path, capsys, blur_train):
    """FER2013's shared train/ is ~300x blurrier than PublicTest; explore must say so."""
    import cv2

    from emorec.cli import main

    root = fixtures.write_fer2013_folders(tmp_path / "fer", n_train=6, n_test=4)
    if blur_train:
        for path in (root / "train").glob("*/*.jpg"):
            cv2.imwrite(str(path), cv2.GaussianBlur(cv2.imread(str(path), 0), (0, 0), 3))
    assert (
        main(
            [
                "explore",
                "--dataset",
                "fer2013",
                "--data-dir",
                str(root),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert ("WARNING: the splits' median sharpness differs" in err) == blur_train


@pytest.mark.parametrize(
    "argv",
    [
        ["--dataset", "ckplus", "--data-dir", "{missing}"],
        ["--dataset", "ckplus"],
        ["--dataset", "nope"],
    ],
)
def test_cli_explore_bad_input_exits_2_with_one_line(tmp_path, capsys, argv):
    from emorec.cli import main

    argv = [a.format(missing=tmp_path / "missing") for a in argv]
    assert main(["explore", *argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emorec: error: ") and "\n" not in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("where", ["out", "out/sub"])
def test_cli_explore_out_on_a_file_exits_2_with_one_line(tmp_path, capsys, where):
    from emorec.cli import main

    (tmp_path / "out").write_text("a file the user keeps")
    assert (
        main(
            ["explore", "--dataset", "synthetic", "--samples", "70", "--out", str(tmp_path / where)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("emorec: error: --out ") and "not a folder" in err and "\n" not in err
    assert (tmp_path / "out").read_text() == "a file the user keeps"
