"""`emorec predict`: table and JSON output, annotated copies, bad files and URIs."""

import json

import numpy as np
import pytest
from PIL import Image

from emorec.cli import main


@pytest.fixture
def model(tiny_store):
    """The session's tiny run: (emotion_model URI, classes)."""
    return f"runs:/{tiny_store.run_id}/emotion_model", tiny_store.classes


@pytest.fixture
def photos(tmp_path):
    """A folder of three photos (one in a subfolder, one colour) and one corrupt file."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (40, 30), np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 255, (50, 60, 3), np.uint8)).save(folder / "b.jpg")
    Image.fromarray(rng.integers(0, 255, (32, 32), np.uint8)).save(folder / "sub" / "c.bmp")
    (folder / "notes.txt").write_text("not an image, not an image suffix: ignored")
    return folder


def test_table_output(model, photos, capsys):
    uri, classes = model
    assert main(["predict", "--model-uri", uri, str(photos / "a.png"), str(photos / "b.jpg")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["file", "face", "label", "confidence"]
    assert len(lines) == 3  # noise has no face: one whole-image row per file
    for line, name in zip(lines[1:], ["a.png", "b.jpg"]):
        file, face, label, confidence = line.split()
        assert file.endswith(name) and face == "-" and label in classes
        assert 0 < float(confidence) <= 1


def test_json_lines_over_a_folder(model, photos, capsys):
    uri, classes = model
    assert main(["predict", "--model-uri", uri, "--json", "--batch-size", "2", str(photos)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["file"].removeprefix(str(photos) + "/") for r in rows] == [
        "a.png",
        "b.jpg",
        "sub/c.bmp",
    ]
    for r in rows:
        assert set(r["probabilities"]) == set(classes) and r["face_found"] is False
        assert abs(sum(r["probabilities"].values()) - 1) < 1e-4
        assert r["label"] == max(r["probabilities"], key=r["probabilities"].get)


def test_annotate_writes_copies(model, photos, tmp_path, capsys):
    uri, _ = model
    out = tmp_path / "annotated"
    assert (
        main(["predict", "--model-uri", uri, "--annotate", str(out), "--no-detect", str(photos)])
        == 0
    )
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a.png", "b.jpg", "sub/c.bmp"]
    copy = np.asarray(Image.open(out / "a.png"))
    assert copy.shape == (40, 30, 3)  # drawn in colour on a copy of the gray photo
    # The whole-image box (no face looked for) is drawn in orange along the top edge.
    assert (copy[0, :, 0] == 255).all() and (copy[0, :, 1] == 165).all()


def test_corrupt_file_is_reported_and_skipped(model, photos, capsys):
    uri, _ = model
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    assert main(["predict", "--model-uri", uri, "--json", str(photos)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert "broken.jpg" in captured.err and "not a readable image" in captured.err
    assert "1 of 4 file(s) skipped" in captured.err
    assert "Traceback" not in captured.err


def test_many_files_show_a_progress_bar(model, tmp_path, capsys):
    uri, _ = model
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(55):
        Image.new("L", (16, 16), i * 4).save(folder / f"{i:03d}.png")
    assert main(["predict", "--model-uri", uri, "--json", "--batch-size", "16", str(folder)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 55
    assert "55/55" in captured.err


def test_unknown_uri_exits_2(model, photos, capsys):
    assert main(["predict", "--model-uri", "models:/emorec-nothing@champion", str(photos)]) == 2
    err = capsys.readouterr().err
    assert "cannot load 'models:/emorec-nothing@champion'" in err and "registered models" in err
    assert "Traceback" not in err


def test_missing_path_exits_2(model, tmp_path, capsys):
    uri, _ = model
    assert main(["predict", "--model-uri", uri, str(tmp_path / "nowhere.png")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_expect_classes_refuses_another_class_set(model, photos, capsys):
    uri, classes = model
    assert (
        main(
            [
                "predict",
                "--model-uri",
                uri,
                "--expect-classes",
                "happiness,sadness,pain",
                str(photos / "a.png"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "pain" in err and "emorec: error:" in err
    # The same set in any order is accepted.
    assert (
        main(
            [
                "predict",
                "--model-uri",
                uri,
                "--expect-classes",
                ",".join(reversed(classes)),
                str(photos / "a.png"),
            ]
        )
        == 0
    )


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("out, given", [("photos", "photos"), ("photos/sub", "photos/sub/c.bmp")])
def test_annotate_never_writes_over_an_input(model, photos, tmp_path, capsys, out, given):
    uri, _ = model
    before = _tree(photos)
    assert (
        main(
            [
                "predict",
                "--model-uri",
                uri,
                "--annotate",
                str(tmp_path / out),
                str(tmp_path / given),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert "would replace the input" in err and "\n" not in err and "Traceback" not in err
    assert _tree(photos) == before  # nothing written, nothing replaced


def test_annotate_gives_inputs_of_one_name_their_own_copies(model, tmp_path, capsys):
    uri, _ = model
    folder, other, out = tmp_path / "in", tmp_path / "other", tmp_path / "out"
    for d in (folder / "x", other):
        d.mkdir(parents=True)
    Image.new("L", (20, 20), 10).save(folder / "face.gif")
    Image.new("L", (20, 20), 200).save(folder / "face.png")
    Image.new("L", (20, 20), 50).save(folder / "x" / "face.png")
    Image.new("L", (20, 20), 90).save(other / "face.png")
    assert (
        main(
            [
                "predict",
                "--model-uri",
                uri,
                "--annotate",
                str(out),
                "--no-detect",
                str(folder),
                str(other / "face.png"),
            ]
        )
        == 0
    )
    assert sorted(_tree(out)) == ["face-2.png", "face-3.png", "face.png", "x/face.png"]
    # The PNG keeps its own name; the GIF (whose copy becomes a PNG) and the same name
    # given again from another folder get the next free ones, and the user is told.
    fill = {
        name: np.median(np.asarray(Image.open(out / name))[..., 0])
        for name in ("face.png", "face-2.png", "face-3.png")
    }
    assert fill == {"face.png": 200, "face-2.png": 90, "face-3.png": 10}
    err = capsys.readouterr().err
    assert f"its annotated copy is {out / 'face-3.png'}" in err


@pytest.mark.parametrize("link", ["a.png", "sub"])
def test_annotate_does_not_follow_a_link_in_the_output_folder(
    model, photos, tmp_path, capsys, link
):
    uri, _ = model
    out, victim = tmp_path / "out", tmp_path / "victim"
    victim.mkdir()
    (victim / "a.png").write_bytes(b"precious")
    out.mkdir()
    (out / link).symlink_to(victim / link if link == "a.png" else victim)
    assert main(["predict", "--model-uri", uri, "--annotate", str(out), str(photos)]) == 2
    err = capsys.readouterr().err.strip()
    assert "symbolic link" in err and "\n" not in err
    assert _tree(victim) == {"a.png": b"precious"}


def test_annotate_on_a_file_exits_2_with_one_line(model, photos, tmp_path, capsys):
    uri, _ = model
    (tmp_path / "out").write_text("mine")
    assert (
        main(["predict", "--model-uri", uri, "--annotate", str(tmp_path / "out"), str(photos)]) == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("emorec: error: --annotate ") and "not a folder" in err
    assert "\n" not in err and (tmp_path / "out").read_text() == "mine"


def test_expect_classes_takes_the_loaders_aliases(model, photos, capsys):
    uri, classes = model
    alias = {"happiness": "happy", "sadness": "sad", "anger": "angry", "surprise": "surprised"}
    given = ",".join(alias.get(c, c) for c in classes)
    assert "happy" in given
    assert (
        main(["predict", "--model-uri", uri, "--expect-classes", given, str(photos / "a.png")]) == 0
    )
