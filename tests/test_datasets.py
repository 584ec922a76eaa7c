"""Dataset loaders on synthetic drawn faces made here: file-name parsing, label synonyms, CFEE's
categories, FER2013's CSV, class restriction and the data fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer.errors import InputError
from fer.research import datasets as D
from fer.research import face_cache as C
from fer.research import splits as SP
from tests import synthetic as S


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    S.write_rafd(root / "rafd", n_subjects=6, angles=(90, 45), gazes=("frontal", "left"))
    (root / "rafd" / "IMG_0001.jpg").write_bytes(b"not a RaFD name")
    S.write_folder(root / "folder", n_subjects=6, per_label=2)
    S.write_fer2013_csv(root / "fer2013.csv", n_subjects=6, per_label=2)
    return {"root": root, "rafd": root / "rafd", "folder": root / "folder", "fer2013": root / "fer2013.csv"}


def test_rafd_file_names_parse(data: dict[str, Path]) -> None:
    ds = D.load_rafd(data["rafd"])
    assert ds.name == "rafd"
    # Default: frontal camera only (angle 090): 6 subjects × 4 expressions × 2 gazes.
    assert len(ds) == 6 * 4 * 2
    assert {s.attributes["angle"] for s in ds.samples} == {"090"}
    assert ds.labels == ("angry", "happy", "sad", "surprise")  # "surprised" → canonical "surprise"
    first = next(s for s in ds.samples if Path(s.key).name == "Rafd090_01_Caucasian_female_angry_frontal.png")
    assert (first.subject, first.label) == ("1", "angry")
    assert first.attributes == {"angle": "090", "ethnicity": "Caucasian", "gender": "female", "gaze": "frontal"}
    assert [Path(s.path).name for s in ds.skipped] == ["IMG_0001.jpg"]


def test_rafd_angle_and_gaze_selection(data: dict[str, Path]) -> None:
    both = D.load_rafd(data["rafd"], angles=None)
    assert len(both) == 6 * 4 * 2 * 2
    left45 = D.load_rafd(data["rafd"], angles=[45], gazes=["left"])
    assert len(left45) == 6 * 4
    assert {(s.attributes["angle"], s.attributes["gaze"]) for s in left45.samples} == {("045", "left")}
    with pytest.raises(InputError, match="angle"):
        D.load_rafd(data["rafd"], angles=[30])
    with pytest.raises(InputError, match="gaze"):
        D.load_rafd(data["rafd"], gazes=["up"])


def test_folder_maps_label_synonyms_and_subjects(data: dict[str, Path]) -> None:
    (data["folder"] / "stray.png").write_bytes((data["folder"] / "anger" / "s01_0.png").read_bytes())
    ds = D.load_folder(data["folder"])
    # anger → angry, happiness → happy, sadness → sad, Surprised → surprise
    assert ds.labels == ("angry", "happy", "sad", "surprise")
    assert {s.subject for s in ds.samples} == {f"s{i:02d}" for i in range(1, 7)}
    assert len(ds) == 6 * 4 * 2
    assert [Path(s.path).name for s in ds.skipped] == ["stray.png"]
    custom = D.load_folder(data["folder"], subject_pattern=r"_(\d)$")  # the image index as "subject"
    assert {s.subject for s in custom.samples} == {"0", "1"}


def test_normalise_label() -> None:
    assert D.normalise_label("Happiness") == "happy"
    assert D.normalise_label("fearful") == "fear"
    assert D.normalise_label("HappilySurprised") == "happily_surprised"
    assert D.normalise_label("sadly angry") == "sadly_angry"
    assert D.normalise_label("Fearfully-Disgusted") == "fearfully_disgusted"


def test_cfee_basic_and_all_categories(data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "cfee"
    shutil.copytree(data["folder"], root)
    shutil.copytree(root / "happiness", root / "HappilySurprised")
    shutil.copytree(root / "sadness", root / "sadly angry")
    basic = D.load_cfee(root)
    assert basic.labels == ("angry", "happy", "sad", "surprise")
    every = D.load_cfee(root, subset="all")
    assert every.labels == ("angry", "happy", "sad", "surprise", "happily_surprised", "sadly_angry")
    assert set(D.CFEE_BASIC) | set(D.CFEE_COMPOUND) >= set(every.labels)
    assert len(D.CFEE_BASIC) + len(D.CFEE_COMPOUND) == 22

    table = tmp_path / "cfee.csv"
    rows = ["path,label,subject"] + [
        f"{Path(s.path).relative_to(tmp_path)},{label},{s.subject}"
        for s, label in zip(every.samples, [s.label.replace("_", " ") for s in every.samples], strict=True)
    ] + ["cfee/nowhere.png,bored,s99"]
    table.write_text("\n".join(rows) + "\n")
    from_csv = D.load_cfee(table, subset="all")
    assert from_csv.labels == every.labels
    assert [(s.label, s.subject) for s in from_csv.samples] == [(s.label, s.subject) for s in every.samples]
    assert [sk.reason for sk in from_csv.skipped] == ["label 'bored' is not a cfee category"]
    with pytest.raises(InputError, match="subset"):
        D.load_cfee(root, subset="compound")


def test_fer2013_csv(data: dict[str, Path]) -> None:
    ds = D.load_fer2013(data["fer2013"])
    assert ds.assume_cropped and ds.labels == ("angry", "happy", "sad", "surprise")
    assert len(ds) == 6 * 4 * 2
    assert all(s.pixels.shape == (48, 48) and s.pixels.dtype == np.uint8 for s in ds.samples)
    assert len(ds.skipped) == 1 and "malformed row" in ds.skipped[0].reason
    split = SP.split_dataset(ds)
    assert (len(split.train), len(split.val), len(split.test)) == (4 * 4 * 2, 8, 8)
    assert {ds.samples[i].attributes["usage"] for i in split.test} == {"PrivateTest"}
    private = D.load_fer2013(data["fer2013"], usages=["PrivateTest"])
    assert len(private) == 8
    crops = C.prepare_crops(private.samples, crop_size=64, progress=False)
    assert crops.images.shape == (8, 64, 64, 3)
    # Grey in, grey out: the three channels are equal.
    assert np.array_equal(crops.images[..., 0], crops.images[..., 2])


def test_load_dataset_registry(data: dict[str, Path]) -> None:
    assert set(D.DATASETS) == {"rafd", "cfee", "fer2013", "folder"}
    ds = D.load_dataset("rafd", data["rafd"], angles=[45], usages=["Training"])  # options it lacks are dropped
    assert {s.attributes["angle"] for s in ds.samples} == {"045"}
    with pytest.raises(InputError, match="unknown dataset"):
        D.load_dataset("ckplus", data["rafd"])
    with pytest.raises(InputError, match="not a folder"):
        D.load_rafd(data["root"] / "missing")


def test_cfee_lists_unknown_folders_and_leaves_out_other_subsets(data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "cfee"
    shutil.copytree(data["folder"], root)
    shutil.copytree(root / "happiness", root / "HappilySurprised")
    shutil.copytree(root / "sadness", root / "bored")
    (root / "stray.png").unlink(missing_ok=True)  # left by the folder test: another kind of skip
    basic = D.load_cfee(root)
    # "bored" is no CFEE category: every image in it is listed, not silently dropped; the compound
    # category is left out of the basic subset on purpose, so it is not "skipped".
    assert {(Path(s.path).parent.name, s.reason) for s in basic.skipped} == {("bored", "folder 'bored' is not a cfee category")}
    assert len(basic.skipped) == 12 and "happily_surprised" not in basic.labels
    assert "happily_surprised" in D.load_cfee(root, subset="all").labels


def test_relative_roots_are_recorded_absolute(data: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(data["root"])
    for ds in (D.load_rafd("rafd"), D.load_folder("folder"), D.load_cfee("folder"), D.load_fer2013("fer2013.csv")):
        assert Path(ds.root).is_absolute() and Path(ds.root).exists(), ds.name
        assert all(Path(s.key.split("#")[0]).is_absolute() for s in ds.samples)


def test_restrict_labels_keeps_those_classes_only(data: dict[str, Path]) -> None:
    ds = D.load_rafd(data["rafd"])
    two = D.restrict_labels(ds, ["happy", "Surprised"])
    assert two.labels == two.label_set == ("happy", "surprise")
    assert len(two) == 6 * 2 * 2 and two.options["classes"] == ["happy", "surprise"]
    with pytest.raises(InputError, match="defines no class bored"):
        D.restrict_labels(ds, ["happy", "bored"])
    with pytest.raises(InputError, match="no image of contempt"):
        D.restrict_labels(ds, ["contempt"])  # defined by RaFD, but not drawn here


def test_fingerprint_follows_the_samples_not_the_folder(data: dict[str, Path], tmp_path: Path) -> None:
    ds = D.load_folder(data["folder"])
    moved = tmp_path / "elsewhere"
    shutil.copytree(data["folder"], moved)
    assert D.load_folder(moved).fingerprint() == ds.fingerprint()
    assert D.load_folder(moved, subject_pattern=r"^(.*)$").fingerprint() != ds.fingerprint()
    assert ds.subset(range(len(ds) - 1)).fingerprint() != ds.fingerprint()


def test_fingerprint_follows_the_pixels(data: dict[str, Path], tmp_path: Path) -> None:
    """The issue's case: another image copied over one file under the same name changed nothing."""
    from fer.research import fingerprint as F

    copy = tmp_path / "copy"
    shutil.copytree(data["folder"], copy)
    before = D.load_folder(copy).fingerprint()
    target, source = sorted(copy.rglob("*.png"))[:2]
    shutil.copyfile(source, target)
    changed = D.load_folder(copy).fingerprint()
    assert changed != before
    # The same bytes written back: the same fingerprint, whatever the file's mtime says.
    shutil.copyfile(data["folder"] / target.relative_to(copy), target)
    assert D.load_folder(copy).fingerprint() == before
    # The on-disk index holds what the process knew: a new process finds the same.
    F.forget()
    assert D.load_folder(copy).fingerprint() == before


def test_csv_fingerprints_are_relative_to_the_csv(data: dict[str, Path], tmp_path: Path) -> None:
    """A CFEE CSV's fingerprint did not survive moving its folder (keys were absolute)."""
    for where in ("a", "b"):
        shutil.copytree(data["folder"], tmp_path / where / "images")
        rows = ["path,label,subject"] + [f"images/{p.relative_to(tmp_path / where / 'images').as_posix()},happy,"
                                         f"{p.stem.split('_')[0]}"
                                         for p in sorted((tmp_path / where / "images").rglob("*.png"))]
        (tmp_path / where / "labels.csv").write_text("\n".join(rows) + "\n")
    a, b = (D.load_cfee(tmp_path / w / "labels.csv") for w in ("a", "b"))
    assert len(a) == len(b) > 0 and a.fingerprint() == b.fingerprint()
    fer_a = D.load_fer2013(data["fer2013"])
    shutil.copyfile(data["fer2013"], tmp_path / "fer2013.csv")
    assert D.load_fer2013(tmp_path / "fer2013.csv").fingerprint() == fer_a.fingerprint()
