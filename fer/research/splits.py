"""Subject-independent splits: `split_dataset` deals subjects (never single images) into folds, and
`recorded_part` finds again, by subject, the part of a dataset a trained model's spec says it held
out, refusing when that cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fer.errors import InputError
from fer.research.datasets import FER2013_USAGE, Dataset, Sample

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Indices into a dataset's samples for training, validation (checkpoint choice) and testing."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]
    info: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (method, folds, seed, sizes, the subjects of each part), for the spec."""
        return {**self.info, "n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test)}


def _check_subjects(samples: Sequence[Sample], what: str = "data") -> None:
    unnamed = [s for s in samples if not s.subject]
    if unnamed:
        raise InputError(
            f"{what}: {len(unnamed)} of {len(samples)} images name no subject (e.g. {Path(unnamed[0].key).name}); "
            "splitting them one by one would put one person's pictures in both training and test. Set "
            "--subject-pattern to a regex whose first group is the subject ('^(.*)$' if every image really "
            "shows a different person)"
        )


def subject_folds(samples: Sequence[Sample], folds: int, seed: int = 0) -> np.ndarray:
    """Assign every sample a fold in ``0 .. folds-1`` so that each subject lies in exactly one fold.

    Subjects are shuffled with ``seed`` and dealt out largest first to the fold with the fewest
    images, which keeps folds near equal in size.

    Returns:
        ``(N,)`` int64 fold index per sample.
    Raises:
        InputError: a sample has no subject, or there are fewer subjects than folds.
    """
    _check_subjects(samples)
    subjects = [s.subject for s in samples]
    names = sorted(set(subjects))
    if len(names) < folds:
        raise InputError(
            f"{len(names)} subject(s) cannot fill {folds} subject-independent folds; use fewer folds, or set "
            "the subject pattern if file names do name subjects"
        )
    rng = np.random.default_rng(seed)
    order = [names[i] for i in rng.permutation(len(names))]
    counts = {name: 0 for name in names}
    for subject in subjects:
        counts[subject] += 1
    order.sort(key=lambda name: -counts[name])  # stable: ties keep the shuffled order
    sizes = np.zeros(folds, np.int64)
    fold_of = {}
    for name in order:
        fold = int(np.argmin(sizes))
        fold_of[name] = fold
        sizes[fold] += counts[name]
    return np.array([fold_of[s] for s in subjects], np.int64)


def split_dataset(dataset: Dataset, *, folds: int = 5, fold: int = 0, seed: int = 0) -> Split:
    """Subject-independent split: fold ``fold`` is the test set, fold ``fold + 1`` (mod ``folds``)
    the validation set that picks the best checkpoint, the other folds the training set. The
    subjects of each part are recorded (``train_subjects``, ``val_subjects``, ``test_subjects``).

    FER2013 keeps its own Usage split (Training / PublicTest / PrivateTest), since it names no subjects.
    """
    if dataset.name == "fer2013":
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, sample in enumerate(dataset.samples):
            parts[FER2013_USAGE[sample.attributes["usage"]]].append(i)
        return Split(tuple(parts["train"]), tuple(parts["val"]), tuple(parts["test"]),
                     {"method": "fer2013 Usage (Training / PublicTest / PrivateTest)"})
    if folds < 3:
        raise InputError(f"folds must be at least 3 (train, validation and test folds), got {folds}")
    if not 0 <= fold < folds:
        raise InputError(f"fold must be in 0..{folds - 1}, got {fold}")
    _check_subjects(dataset.samples, dataset.name)
    assigned = subject_folds(dataset.samples, folds, seed)
    val_fold = (fold + 1) % folds
    test = tuple(int(i) for i in np.flatnonzero(assigned == fold))
    val = tuple(int(i) for i in np.flatnonzero(assigned == val_fold))
    train = tuple(int(i) for i in np.flatnonzero((assigned != fold) & (assigned != val_fold)))
    info: dict[str, Any] = {"method": "subject k-fold", "folds": folds, "fold": fold, "val_fold": val_fold, "seed": seed}
    for name, rows in (("train", train), ("val", val), ("test", test)):
        info[f"{name}_subjects"] = sorted({dataset.samples[i].subject for i in rows})
    return Split(train, val, test, info)


def _recorded(dataset: Dataset, training: Mapping[str, Any] | None) -> tuple[Mapping[str, Any], dict[str, set[str]]]:
    """The spec's split record and its subject lists, after checking they describe this data."""
    training = training or {}
    if training.get("dataset") != dataset.name:
        raise InputError(f"the model was trained on {training.get('dataset') or 'unknown data'}, not {dataset.name}: "
                         "its train/val/test parts do not exist here; use --split all")
    split = training.get("split") or {}
    if str(split.get("method", "")).startswith("fer2013"):
        return split, {}
    if any(f"{part}_subjects" not in split for part in PARTS):
        raise InputError("the model's spec does not record the subjects of its train/val/test parts (trained "
                         "before they were recorded): retrain it, or use --split all")
    then = ((training.get("dataset_summary") or {}).get("options") or {}).get("subject_pattern")
    now = dataset.options.get("subject_pattern")
    if then != now:
        raise InputError(f"this data reads subjects with pattern {now!r}, training read them with {then!r}: the "
                         "same names would not be the same people; pass the training's --subject-pattern")
    return split, {part: set(split[f"{part}_subjects"]) for part in PARTS}


def recorded_part(dataset: Dataset, training: Mapping[str, Any] | None, part: str) -> tuple[Dataset, list[str]]:
    """The samples of ``dataset`` whose subjects the model's training put in ``part``.

    Args:
        training: the model spec's ``training`` record (its ``split`` lists each part's subjects).
        part: "train", "val" or "test".
    Returns:
        ``(the part, warnings)``; a warning says which recorded subjects this data lacks.
    Raises:
        InputError: another dataset or subject rule than training's; the record puts a subject in
            ``part`` and in another part (the score would not be held out); none of the part's
            subjects is here.
    """
    if part not in PARTS:
        raise InputError(f"part must be one of {', '.join(PARTS)}, not {part!r}")
    split, subjects = _recorded(dataset, training)
    if not subjects:  # FER2013: its own Usage column says which rows are which part
        usage = {v: k for k, v in FER2013_USAGE.items()}[part]
        selected = dataset.subset(i for i, s in enumerate(dataset.samples) if s.attributes.get("usage") == usage)
        check_recorded_content(selected, training, part)
        return selected, []
    wanted = subjects[part]
    others = set().union(*(subjects[p] for p in PARTS if p != part))
    if overlap := sorted(wanted & others):
        raise InputError(f"the spec puts subject(s) {', '.join(overlap[:5])} in {part} and in another part: its "
                         f"{part} score would include images the model trained on")
    rows = [i for i, s in enumerate(dataset.samples) if s.subject in wanted]
    if not rows:
        raise InputError(f"none of the {len(wanted)} {part} subjects recorded in the model's spec is in this data")
    present = {dataset.samples[i].subject for i in rows}
    warnings = []
    if missing := sorted(wanted - present):
        warnings.append(f"WARNING: {len(missing)} of the {len(wanted)} recorded {part} subjects are missing from "
                        f"this data ({', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}): the score "
                        f"covers the other {len(present)} only, whose images cannot be checked against the record")
        return dataset.subset(rows), warnings
    selected = dataset.subset(rows)
    check_recorded_content(selected, training, part)
    return selected, warnings


def part_fingerprints(dataset: Dataset, split: Split) -> dict[str, str]:
    """Content fingerprint (`Dataset.fingerprint`) of each part of ``split``, for the spec's
    ``training["data_parts"]``, so that evaluation can tell the recorded test images from others."""
    return {name: dataset.subset(getattr(split, name)).fingerprint() for name in PARTS}


def check_recorded_content(selected: Dataset, training: Mapping[str, Any] | None, part: str) -> None:
    """Refuse to call ``selected`` the model's recorded ``part`` when its content fingerprint is not the
    one training recorded (another folder with the same file names, other loader options, files
    edited since). Specs from before the record was kept are not checked.

    Raises:
        InputError: the fingerprints differ.
    """
    recorded = ((training or {}).get("data_parts") or {}).get(part)
    if not recorded:
        return
    labels = set(((training or {}).get("identity") or {}).get("data_labels") or selected.labels)
    # Training may have kept some classes only (--classes): compare the images of those.
    same_classes = selected.subset(i for i, s in enumerate(selected.samples) if s.label in labels)
    if same_classes.fingerprint() != recorded:
        raise InputError(f"these {part} images are not the ones the model's run recorded (their content "
                         "fingerprint differs: another folder, other loader options, or files changed since "
                         f"training), so the score would not be its held-out {part} score; use --split all to "
                         "score them anyway")


def training_overlap(dataset: Dataset, training: Mapping[str, Any] | None) -> str | None:
    """A loud warning when ``dataset`` holds subjects the model trained or validated on, else None."""
    try:
        _, subjects = _recorded(dataset, training)
    except InputError:
        return None  # other data, or no record to compare with
    if subjects:
        seen = len({s.subject for s in dataset.samples} & (subjects["train"] | subjects["val"]))
        what = "subject(s)"
    else:  # FER2013 rows of the Training and PublicTest parts
        seen = sum(s.attributes.get("usage") in ("Training", "PublicTest") for s in dataset.samples)
        what = "image(s)"
    if not seen:
        return None
    return (f"WARNING: this data holds {seen} {what} the model was trained or validated on: the score is not a "
            "held-out score (use --split test)")
