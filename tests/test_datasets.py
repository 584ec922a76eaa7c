"""Dataset loaders, subject-independent splits and the face crop cache, on synthetic drawn faces
(made here) and on the real astronaut photo for detection-based cropping."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer.errors import InputError
from fer.research import datasets as D
from tests import synthetic as S
from tests.conftest import ASTRONAUT, NO_FACE


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
    split = D.split_dataset(ds)
    assert (len(split.train), len(split.val), len(split.test)) == (4 * 4 * 2, 8, 8)
    assert {ds.samples[i].attributes["usage"] for i in split.test} == {"PrivateTest"}
    private = D.load_fer2013(data["fer2013"], usages=["PrivateTest"])
    assert len(private) == 8
    crops = D.prepare_crops(private.samples, crop_size=64, progress=False)
    assert crops.images.shape == (8, 64, 64, 3)
    # Grey in, grey out: the three channels are equal.
    assert np.array_equal(crops.images[..., 0], crops.images[..., 2])


def test_subject_independent_split(data: dict[str, Path]) -> None:
    ds = D.load_folder(data["folder"])
    split = D.split_dataset(ds, folds=3, fold=1, seed=7)
    parts = [{ds.samples[i].subject for i in part} for part in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(split.train + split.val + split.test) == list(range(len(ds)))
    assert split.to_dict()["test_subjects"] == sorted(parts[2])
    again = D.split_dataset(ds, folds=3, fold=1, seed=7)
    assert again == split
    assignments = {tuple(D.subject_folds(ds.samples, 3, seed)) for seed in range(6)}
    assert len(assignments) > 1  # the seed matters
    with pytest.raises(InputError, match="subject"):
        D.split_dataset(ds, folds=7)
    with pytest.raises(InputError, match="at least 3"):
        D.split_dataset(ds, folds=2)


def test_assumed_crops_and_unreadable_images(data: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "faces"
    shutil.copytree(data["folder"] / "happiness", root / "happy")
    (root / "happy" / "s99_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = D.load_folder(root, assume_cropped=True)
    crops = D.prepare_crops(ds.samples, crop_size=40, assume_cropped=True, progress=False)
    assert crops.images.shape == (len(ds) - 1, 40, 40, 3) and crops.images.dtype == np.uint8
    np.testing.assert_allclose(crops.keypoints[0], D.ASSUMED_CROP_KEYPOINTS * 40)
    assert [(Path(s.path).name, "corrupt" in s.reason or "not an image" in s.reason) for s in crops.skipped] == [
        ("s99_broken.png", True)
    ]


def test_detection_crops_are_cached(tmp_path: Path) -> None:
    """The real astronaut photo goes through MediaPipe once; a renamed copy hits the cache."""
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    shutil.copy(ASTRONAUT, root / "happy" / "a_astronaut.png")
    shutil.copy(NO_FACE, root / "happy" / "b_coffee.png")
    cache_dir = tmp_path / "cache"
    ds = D.load_folder(root)
    crops = D.prepare_crops(ds.samples, crop_size=96, cache_dir=cache_dir, progress=False)
    assert crops.images.shape == (1, 96, 96, 3)
    assert [(Path(s.path).name, s.reason) for s in crops.skipped] == [("b_coffee.png", "no face found")]
    kp = crops.keypoints[0]
    assert kp[0, 0] < kp[1, 0] and abs(kp[0, 1] - kp[1, 1]) < 1.0  # eyes level, subject's right eye on the left
    assert len(list(cache_dir.rglob("*.npz"))) == 2  # the face, and the "no face" verdict

    shutil.copy(ASTRONAUT, root / "happy" / "c_renamed.png")
    with D.FaceCache(cache_dir, crop_size=96) as cache:
        crop, keypoints = cache.get(root / "happy" / "c_renamed.png")
        with pytest.raises(InputError, match="no face"):
            cache.get(root / "happy" / "b_coffee.png")
        assert cache._detector is None  # both answers came from disk
    np.testing.assert_array_equal(crop, crops.images[0])
    np.testing.assert_array_equal(keypoints, crops.keypoints[0])
    # Other crop settings are other cache entries.
    with D.FaceCache(cache_dir, crop_size=64) as cache:
        assert cache.get(root / "happy" / "c_renamed.png")[0].shape == (64, 64, 3)


def test_load_dataset_registry(data: dict[str, Path]) -> None:
    assert set(D.DATASETS) == {"rafd", "cfee", "fer2013", "folder"}
    ds = D.load_dataset("rafd", data["rafd"], angles=[45], usages=["Training"])  # options it lacks are dropped
    assert {s.attributes["angle"] for s in ds.samples} == {"045"}
    with pytest.raises(InputError, match="unknown dataset"):
        D.load_dataset("ckplus", data["rafd"])
    with pytest.raises(InputError, match="not a folder"):
        D.load_rafd(data["root"] / "missing")
