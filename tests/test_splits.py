"""Subject-independent splits, and finding a model's held-out part again by the subjects its spec
recorded (never by re-deriving the split from whatever data is given)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fer.errors import InputError
from fer.research import datasets as D
from fer.research import splits as SP
from tests import synthetic as S


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("splits") / "faces"
    S.write_folder(root, n_subjects=6, per_label=2, seed=3, size=24)
    return root


def _training(dataset: D.Dataset, **split_args: int) -> dict:
    """The ``training`` record `fer.research.train.train` writes, for the parts that matter here."""
    split = SP.split_dataset(dataset, **split_args)
    return {"dataset": dataset.name, "dataset_summary": dataset.describe(), "split": split.to_dict(),
            "data_parts": SP.part_fingerprints(dataset, split), "identity": {"data_labels": list(dataset.labels)}}


def test_another_folder_with_the_same_names_is_not_the_recorded_test_part(folder: Path, tmp_path: Path) -> None:
    """The issue's case: ``evaluate --split test`` on a folder whose file names follow the same
    pattern was scored as the held-out part. Its content fingerprint now tells them apart."""
    ds = D.load_folder(folder)
    training = _training(ds, folds=3, fold=0, seed=0)
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    part, _ = SP.recorded_part(D.load_folder(copy), training, "test")  # the same images elsewhere: fine
    assert len(part) == len(ds.subset(SP.split_dataset(ds, folds=3, fold=0, seed=0).test))
    test_file = Path(part.samples[0].key)
    other = next(p for p in copy.rglob("*.png") if p.read_bytes() != test_file.read_bytes())
    shutil.copyfile(other, test_file)  # same name, other pixels
    with pytest.raises(InputError, match="not the ones the model's run recorded"):
        SP.recorded_part(D.load_folder(copy), training, "test")
    SP.recorded_part(D.load_folder(copy), training, "train")  # the other parts are untouched
    # Training restricted to some classes: the other classes' images here do not count.
    happy_sad = D.restrict_labels(ds, ["happy", "sad"])
    restricted = _training(happy_sad, folds=3, fold=0, seed=0)
    part, _ = SP.recorded_part(D.load_folder(folder), restricted, "test")
    assert {s.label for s in part.samples} > {"happy", "sad"}


def test_split_is_by_subject_and_records_every_part(folder: Path) -> None:
    ds = D.load_folder(folder)
    split = SP.split_dataset(ds, folds=3, fold=1, seed=7)
    parts = [{ds.samples[i].subject for i in part} for part in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(split.train + split.val + split.test) == list(range(len(ds)))
    info = split.to_dict()
    assert [info["train_subjects"], info["val_subjects"], info["test_subjects"]] == [sorted(p) for p in parts]
    assert SP.split_dataset(ds, folds=3, fold=1, seed=7) == split
    assert len({tuple(SP.subject_folds(ds.samples, 3, seed)) for seed in range(6)}) > 1  # the seed matters
    with pytest.raises(InputError, match="subject"):
        SP.split_dataset(ds, folds=7)
    with pytest.raises(InputError, match="at least 3"):
        SP.split_dataset(ds, folds=2)


def test_names_without_a_subject_are_not_split_image_by_image(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "faces"
    shutil.copytree(folder, root)
    for path in (root / "happiness").glob("*.png"):
        path.rename(path.with_name(path.name.replace("_", "")))  # s01_0.png → s010.png: no separator
    ds = D.load_folder(root)
    assert {s.subject for s in ds.samples if s.label == "happy"} == {""}
    with pytest.raises(InputError, match=r"12 of 48 images name no subject \(e\.g\. s010\.png\).*--subject-pattern"):
        SP.split_dataset(ds, folds=3)
    # Saying on purpose that every image is its own person is allowed.
    each = D.load_folder(root, subject_pattern=r"^(.*)$")
    assert all(s.subject == Path(s.key).stem for s in each.samples)
    assert len(SP.split_dataset(each, folds=3).test) > 0


def test_recorded_test_subjects_are_used_not_a_new_split(folder: Path, tmp_path: Path) -> None:
    """The issue's case: with one subject removed from the folder, re-deriving the split would move
    a training subject into the test part; the recorded subjects never do."""
    ds = D.load_folder(folder)
    training = _training(ds, folds=3, fold=0, seed=0)
    test_subjects = training["split"]["test_subjects"]
    train_subjects = set(training["split"]["train_subjects"]) | set(training["split"]["val_subjects"])
    part, warnings = SP.recorded_part(ds, training, "test")
    assert {s.subject for s in part.samples} == set(test_subjects) and warnings == []

    gone = test_subjects[0]
    smaller = tmp_path / "smaller"
    shutil.copytree(folder, smaller)
    for path in smaller.rglob(f"{gone}_*.png"):
        path.unlink()
    reduced = D.load_folder(smaller)
    rederived = reduced.subset(SP.split_dataset(reduced, folds=3, fold=0, seed=0).test)
    assert {s.subject for s in rederived.samples} & train_subjects  # what the old code scored as "test"
    part, warnings = SP.recorded_part(reduced, training, "test")
    assert {s.subject for s in part.samples} == set(test_subjects) - {gone}
    assert len(warnings) == 1 and warnings[0].startswith("WARNING: 1 of the 2 recorded test subjects are missing")
    assert gone in warnings[0]


def test_recorded_part_refuses_what_it_cannot_trust(folder: Path) -> None:
    ds = D.load_folder(folder)
    training = _training(ds, folds=3)
    with pytest.raises(InputError, match="trained on folder, not cfee"):
        SP.recorded_part(D.load_cfee(folder), training, "test")
    other_rule = D.load_folder(folder, subject_pattern=r"^(s\d)")
    with pytest.raises(InputError, match="the same names would not be the same people"):
        SP.recorded_part(other_rule, training, "test")
    leaky = {**training, "split": {**training["split"],
                                   "test_subjects": training["split"]["test_subjects"] + training["split"]["train_subjects"][:1]}}
    with pytest.raises(InputError, match="images the model trained on"):
        SP.recorded_part(ds, leaky, "test")
    old = {**training, "split": {k: v for k, v in training["split"].items() if k != "train_subjects"}}
    with pytest.raises(InputError, match="retrain it, or use --split all"):
        SP.recorded_part(ds, old, "test")
    nobody = {**training, "split": {**training["split"], "test_subjects": ["s99"]}}
    with pytest.raises(InputError, match="none of the 1 test subjects"):
        SP.recorded_part(ds, nobody, "test")


def test_scoring_training_subjects_is_flagged(folder: Path) -> None:
    ds = D.load_folder(folder)
    training = _training(ds, folds=3)
    warning = SP.training_overlap(ds, training)
    assert warning is not None and "4 subject(s) the model was trained or validated on" in warning
    held_out, _ = SP.recorded_part(ds, training, "test")
    assert SP.training_overlap(held_out, training) is None
    assert SP.training_overlap(D.load_cfee(folder), training) is None  # other data: nothing to compare


def test_fer2013_parts_follow_its_usage_column(tmp_path: Path) -> None:
    ds = D.load_fer2013(S.write_fer2013_csv(tmp_path / "fer2013.csv", n_subjects=4, per_label=1))
    training = _training(ds)
    part, warnings = SP.recorded_part(ds, training, "test")
    assert {s.attributes["usage"] for s in part.samples} == {"PrivateTest"} and warnings == []
    assert "image(s) the model was trained or validated on" in (SP.training_overlap(ds, training) or "")
