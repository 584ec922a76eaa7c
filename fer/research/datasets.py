"""Expression datasets held by the user: RaFD, CFEE, FER2013 and a generic ``ROOT/<label>/*`` folder.

Each loader turns files on disk into a `Dataset` of `Sample` records (label, subject, source) without
decoding images; `fer.research.face_cache.prepare_crops` then turns samples into face crops and
`fer.research.splits.split_dataset` into subject-independent train/validation/test parts. The label
vocabulary (`fer.models.CANONICAL_LABELS`) is imported where it is used: fer.models imports torch,
which the command line's ``--help`` must not.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from fer.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"})

#: FER2013's label ids, in order 0..6.
FER2013_LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: FER2013's ``Usage`` values and the split each one is.
FER2013_USAGE: dict[str, str] = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}

#: CFEE (Du, Tao & Martinez 2014): the 15 compound categories, in the paper's order. With neutral
#: and the 6 basic expressions they make CFEE's 22 categories.
CFEE_COMPOUND: tuple[str, ...] = (
    "happily_surprised", "happily_disgusted", "sadly_fearful", "sadly_angry", "sadly_surprised",
    "sadly_disgusted", "fearfully_angry", "fearfully_surprised", "fearfully_disgusted",
    "angrily_surprised", "angrily_disgusted", "disgustedly_surprised", "appalled", "hatred", "awed",
)
CFEE_BASIC: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: RaFD file names: ``Rafd090_01_Caucasian_female_angry_frontal.jpg``.
RAFD_PATTERN = re.compile(
    r"^Rafd(?P<angle>\d{3})_(?P<subject>\d+)_(?P<ethnicity>[A-Za-z]+)_(?P<gender>male|female)_"
    r"(?P<expression>[a-z]+)_(?P<gaze>frontal|left|right)$",
    re.IGNORECASE,
)
RAFD_ANGLES: tuple[int, ...] = (0, 45, 90, 135, 180)
RAFD_GAZES: tuple[str, ...] = ("frontal", "left", "right")

#: Default subject rule for folder and CFEE datasets: the file name up to its first ``_``, ``-`` or
#: space (``s03_happy_1.png`` → ``s03``). A name it does not match gets no subject (""), which
#: `fer.research.splits.split_dataset` refuses rather than split such images one by one.
DEFAULT_SUBJECT_PATTERN = r"^([^_\-\s]+)[_\-\s]"

@dataclass(frozen=True)
class Sample:
    """One labelled image.

    Attributes:
        key: unique name: the file path, or ``CSV#row`` for a row of a CSV file.
        label: expression name (canonical, e.g. ``"happy"``, or a CFEE compound name).
        subject: who is pictured; samples sharing it never go to different splits ("": the file
            name did not say, so the sample cannot be split by subject).
        path: the image file, or None when the pixels live in a CSV (`pixels`) or in memory (`data`).
        pixels: ``(H, W)`` uint8 grey pixels for CSV datasets, else None.
        data: the encoded image file held in memory (an uploaded archive's member), else None.
        attributes: what the dataset records besides (RaFD angle/gaze/…, FER2013 usage).
    """

    key: str
    label: str
    subject: str
    path: Path | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)
    attributes: Mapping[str, str] = field(default_factory=dict)
    data: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def source(self) -> str | Path | bytes | np.ndarray:
        """What `fer.io.read_image` reads this sample from: its pixels, bytes or file."""
        if self.pixels is not None:
            return self.pixels
        if self.data is not None:
            return self.data
        if self.path is None:
            raise InputError(f"{self.key}: the sample has no image")
        return self.path


@dataclass(frozen=True)
class Skipped:
    """An input left out of a run, and why."""

    path: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """``{"path", "reason"}``."""
        return {"path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class Dataset:
    """Samples of one dataset (no pixels decoded yet, except CSV datasets).

    ``labels`` are the classes present, canonical ones first in `fer.models.CANONICAL_LABELS` order.
    ``label_set`` are the classes the dataset defines (RaFD's 8 even where a selection lacks some;
    a folder dataset's class folders); evaluation scores a model over the labels it shares with them.
    ``assume_cropped``: the images are face crops already (no detection).
    """

    name: str
    root: str
    samples: tuple[Sample, ...]
    labels: tuple[str, ...]
    assume_cropped: bool = False
    skipped: tuple[Skipped, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    label_set: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, indices: Iterable[int]) -> Dataset:
        """The same dataset restricted to ``samples[i] for i in indices`` (labels recomputed)."""
        samples = tuple(self.samples[i] for i in indices)
        return dataclasses.replace(self, samples=samples, labels=ordered_labels(s.label for s in samples))

    @property
    def defined_labels(self) -> tuple[str, ...]:
        """``label_set``, or the labels present when the loader defined none."""
        return self.label_set or self.labels

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary for specs and reports: name, root, options, counts per label."""
        counts = {label: 0 for label in self.labels}
        for s in self.samples:
            counts[s.label] += 1
        return {"name": self.name, "root": self.root, "options": dict(self.options), "n": len(self.samples),
                "subjects": len({s.subject for s in self.samples if s.subject}), "per_label": counts}

    def fingerprint(self) -> str:
        """SHA-256 over every sample's key (relative to the dataset's folder: a CSV's own folder for
        CSV datasets), label, subject and content (the SHA-256 of the image file, or of the pixels a
        CSV holds; `fer.research.fingerprint.file_sha256`): equal for the same images wherever the
        folder lives, different when any file's bytes change under the same name."""
        from fer.research.fingerprint import file_hashes

        root = Path(self.root)
        base = root.parent if root.suffix.lower() == ".csv" else root
        ordered = sorted(self.samples, key=lambda s: s.key)
        files = iter(file_hashes([s.path for s in ordered if s.pixels is None and s.path is not None]))
        digest = hashlib.sha256()
        for sample in ordered:
            key = Path(sample.key)
            relative = key.relative_to(base).as_posix() if key.is_relative_to(base) else sample.key
            if sample.pixels is not None:
                content = hashlib.sha256(np.ascontiguousarray(sample.pixels).tobytes()).hexdigest()
            else:
                content = next(files) if sample.path is not None else ""
            digest.update(f"{relative}\t{sample.label}\t{sample.subject}\t{content}\n".encode())
        return digest.hexdigest()


def restrict_labels(dataset: Dataset, classes: Sequence[str]) -> Dataset:
    """``dataset`` with only the samples of ``classes`` (canonical names), its defined labels cut to them.

    Raises:
        InputError: a class the dataset does not define, or none left.
    """
    wanted = {normalise_label(c) for c in classes}
    if unknown := sorted(wanted - set(dataset.defined_labels)):
        raise InputError(f"{dataset.name} defines no class {', '.join(unknown)}; it has "
                         f"{', '.join(dataset.defined_labels)}")
    kept = dataset.subset(i for i, s in enumerate(dataset.samples) if s.label in wanted)
    if not kept.samples:
        raise InputError(f"{dataset.name}: no image of {', '.join(sorted(wanted))}")
    return dataclasses.replace(kept, label_set=ordered_labels(wanted),
                               options={**dataset.options, "classes": list(ordered_labels(wanted))})


def ordered_labels(labels: Iterable[str]) -> tuple[str, ...]:
    """Unique labels, canonical ones in `fer.models.CANONICAL_LABELS` order, then CFEE compounds, then the
    rest sorted."""
    from fer.models import CANONICAL_LABELS

    present = set(labels)
    known = [name for name in (*CANONICAL_LABELS, *CFEE_COMPOUND) if name in present]
    return (*known, *sorted(present - set(known)))


def normalise_label(name: str) -> str:
    """Canonical label for a dataset's spelling; names outside the canonical set become
    ``lower_snake_case`` (``"HappilySurprised"``, ``"happily surprised"`` → ``"happily_surprised"``)."""
    from fer.models import canonical_label

    canonical = canonical_label(name)
    if canonical is not None:
        return canonical
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    return re.sub(r"[\s\-]+", "_", snake).lower()


def _subject_of(stem: str, pattern: re.Pattern[str]) -> str:
    match = pattern.search(stem)
    return match.group(1) if match else ""


def _image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _existing_dir(root: str | Path, what: str) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise InputError(f"{what}: {path} is not a folder")
    return path.resolve()  # specs record where the data was, not where the shell happened to be


def _finish(name: str, root: Path | PurePosixPath, samples: list[Sample], skipped: list[Skipped], assume_cropped: bool,
            options: Mapping[str, Any], label_set: Iterable[str] = ()) -> Dataset:
    if not samples:
        raise InputError(f"{name}: no usable labelled images under {root}" if str(root) != "." else
                         f"{name}: no usable labelled images")
    return Dataset(name, str(root), tuple(samples), ordered_labels(s.label for s in samples), assume_cropped,
                   tuple(skipped), dict(options), ordered_labels(label_set))


# --------------------------------------------------------------------------- loaders


RAFD_NAME_REFUSED = "file name is not RaFD's Rafd<angle>_<subject>_<ethnicity>_<gender>_<expression>_<gaze>"


def rafd_sample(key: str, stem: str, *, path: Path | None = None, data: bytes | None = None) -> Sample | None:
    """The `Sample` a RaFD file name (``stem``, no suffix) describes: label, subject, angle,
    ethnicity, gender and gaze; None when the name is not RaFD's or names no known expression."""
    from fer.models import canonical_label

    match = RAFD_PATTERN.match(stem)
    label = canonical_label(match["expression"]) if match else None
    if match is None or label is None:
        return None
    attributes = {"angle": f"{int(match['angle']):03d}", "ethnicity": match["ethnicity"],
                  "gender": match["gender"].lower(), "gaze": match["gaze"].lower()}
    return Sample(key, label, str(int(match["subject"])), path, attributes=attributes, data=data)


def dataset_from_files(files: Mapping[PurePosixPath, bytes], name: str = "uploaded", *,
                       root: PurePosixPath = PurePosixPath()) -> Dataset:
    """A labelled dataset from image files held in memory (an uploaded archive's members, paths
    relative to the data's folder ``root``, which the samples' keys start with; nothing is
    written): RaFD when most image names follow RaFD's
    pattern (every angle and gaze, as `load_rafd`), else one folder per label (as `load_folder`:
    ``<label>/…/<image>``, subjects by `DEFAULT_SUBJECT_PATTERN`).

    Raises:
        InputError: no image among the files, or none labelled.
    """
    from fer.models import CANONICAL_LABELS

    images = sorted(p for p in files if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError("the archive holds no images (expected <label>/<image> folders or RaFD file names)")
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    if sum(bool(RAFD_PATTERN.match(p.stem)) for p in images) > len(images) / 2:
        for path in images:
            sample = rafd_sample(str(root / path), path.stem, data=files[path])
            if sample is None:
                skipped.append(Skipped(str(root / path), RAFD_NAME_REFUSED))
            else:
                samples.append(sample)
        return _finish("rafd", PurePosixPath(), samples, skipped, False, {"in_memory": True}, CANONICAL_LABELS)
    pattern = _compile(None)
    label_set = []
    for path in images:
        if len(path.parts) < 2:
            skipped.append(Skipped(str(root / path), "image is not inside a <label>/ folder, so it has no label"))
            continue
        label = normalise_label(path.parts[0])
        label_set.append(label)
        samples.append(Sample(str(root / path), label, _subject_of(path.stem, pattern), data=files[path]))
    return _finish(name, PurePosixPath(), samples, skipped, False, {"in_memory": True}, label_set)


def load_rafd(
    root: str | Path,
    *,
    angles: Sequence[int] | None = (90,),
    gazes: Sequence[str] | None = None,
    assume_cropped: bool = False,
) -> Dataset:
    """RaFD: every image under ``root`` named ``Rafd<angle>_<subject>_<ethnicity>_<gender>_<expression>_<gaze>.*``.

    Args:
        root: folder holding the images (searched recursively).
        angles: camera angles to keep (0, 45, 90, 135, 180; 90 is the frontal camera); None keeps all.
        gazes: gaze directions to keep (frontal, left, right); None keeps all.
        assume_cropped: the images are face crops already.
    Returns:
        A `Dataset` named "rafd"; labels canonical (contemptuous → contempt, …), subject = model number.
        Image files whose name does not parse are in ``skipped``.
    """
    from fer.models import CANONICAL_LABELS

    root = _existing_dir(root, "rafd")
    if angles is not None and (bad_angles := [a for a in angles if int(a) not in RAFD_ANGLES]):
        raise InputError(f"rafd: unknown camera angle(s) {bad_angles}; RaFD has {', '.join(map(str, RAFD_ANGLES))}")
    if gazes is not None and (bad_gazes := [g for g in gazes if g not in RAFD_GAZES]):
        raise InputError(f"rafd: unknown gaze(s) {bad_gazes}; RaFD has {', '.join(RAFD_GAZES)}")
    samples, skipped = [], []
    for path in _image_files(root):
        sample = rafd_sample(str(path), path.stem, path=path)
        if sample is None:
            skipped.append(Skipped(str(path), RAFD_NAME_REFUSED))
            continue
        angle, gaze = int(sample.attributes["angle"]), sample.attributes["gaze"]
        if (angles is not None and angle not in angles) or (gazes is not None and gaze not in gazes):
            continue
        samples.append(sample)
    options = {"angles": list(angles) if angles is not None else None,
               "gazes": list(gazes) if gazes is not None else None, "assume_cropped": assume_cropped}
    # RaFD's eight expressions are exactly the canonical labels.
    return _finish("rafd", root, samples, skipped, assume_cropped, options, CANONICAL_LABELS)


def load_folder(
    root: str | Path,
    *,
    assume_cropped: bool = False,
    subject_pattern: str | None = None,
    name: str = "folder",
    keep: Callable[[str], bool] | None = None,
) -> Dataset:
    """A ``ROOT/<label>/*`` folder: each subfolder is a class, named by any spelling `normalise_label` knows.

    Args:
        root: the folder; images may sit deeper inside each class folder.
        assume_cropped: the images are face crops already.
        subject_pattern: regular expression whose first group, searched in the file name (no suffix),
            names the subject; default `DEFAULT_SUBJECT_PATTERN` (text before the first ``_``/``-``/space).
        name: dataset name recorded in the result.
        keep: optional filter on the normalised label (used by `load_cfee`); the images of folders
            it rejects are listed in ``skipped``, never dropped silently.
    Returns:
        A `Dataset`; a file name the subject pattern does not match gets subject "".
    """
    root = _existing_dir(root, name)
    pattern = _compile(subject_pattern)
    samples, skipped, label_set = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = normalise_label(folder.name)
        if keep is not None and not keep(label):
            skipped += [Skipped(str(path), f"folder {folder.name!r} is not a {name} category")
                        for path in _image_files(folder)]
            continue
        label_set.append(label)
        for path in _image_files(folder):
            samples.append(Sample(str(path), label, _subject_of(path.stem, pattern), path))
    for path in sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
        skipped.append(Skipped(str(path), "image is not inside a <label>/ folder, so it has no label"))
    options = {"assume_cropped": assume_cropped, "subject_pattern": pattern.pattern}
    return _finish(name, root, samples, skipped, assume_cropped, options, label_set)


def _compile(pattern: str | None) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern or DEFAULT_SUBJECT_PATTERN)
    except re.error as exc:
        raise InputError(f"subject pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.groups < 1:
        raise InputError(f"subject pattern {pattern!r} needs a group, e.g. '^(\\d+)_'")
    return compiled


def load_cfee(
    root: str | Path,
    *,
    subset: str = "basic",
    assume_cropped: bool = False,
    subject_pattern: str | None = None,
) -> Dataset:
    """CFEE: a ``ROOT/<category>/*`` folder, or a CSV file with columns ``path,label[,subject]``.

    Category spellings such as ``HappilySurprised`` or ``happily surprised`` are normalised; the six
    basic ones map to canonical names (``fearful`` → ``fear``). In a CSV, ``path`` is relative to the
    CSV's folder; a missing ``subject`` column means subjects come from file names as for folders.

    Args:
        root: the folder, or the CSV file.
        subset: ``"basic"`` (neutral + 6 basic expressions, 7 classes) or ``"all"`` (22 categories).
        assume_cropped: the images are face crops already.
        subject_pattern: as in `load_folder`.
    """
    if subset not in ("basic", "all"):
        raise InputError(f"cfee: subset must be 'basic' or 'all', not {subset!r}")
    allowed = set(CFEE_BASIC) | (set(CFEE_COMPOUND) if subset == "all" else set())
    path = Path(root).expanduser().resolve()
    if path.is_file() and path.suffix.lower() == ".csv":
        dataset = _load_label_csv(path, "cfee", assume_cropped, subject_pattern, allowed)
    else:
        # Every CFEE category is read, so that only folders that are none of them count as skipped;
        # compounds outside the chosen subset are then left out on purpose.
        dataset = load_folder(path, assume_cropped=assume_cropped, subject_pattern=subject_pattern, name="cfee",
                              keep={*CFEE_BASIC, *CFEE_COMPOUND}.__contains__)
        kept = [i for i, s in enumerate(dataset.samples) if s.label in allowed]
        if not kept:
            raise InputError(f"cfee: no image of the {subset} categories under {path}")
        dataset = dataset.subset(kept)
    return dataclasses.replace(dataset, options={**dataset.options, "subset": subset},
                               label_set=ordered_labels(allowed))


def _load_label_csv(csv_path: Path, name: str, assume_cropped: bool, subject_pattern: str | None,
                    allowed: set[str]) -> Dataset:
    pattern = _compile(subject_pattern)
    samples, skipped = [], []
    with _open_csv(csv_path) as fh:
        reader = csv.DictReader(fh)
        if not {"path", "label"} <= set(reader.fieldnames or ()):
            raise InputError(f"{csv_path}: needs columns 'path' and 'label' (and optionally 'subject')")
        for row in reader:
            label = normalise_label(row["label"] or "")
            path = (csv_path.parent / (row["path"] or "")).resolve()
            if label not in allowed:
                if label not in CFEE_COMPOUND:  # compounds outside the chosen subset are left out silently
                    skipped.append(Skipped(str(path), f"label {row['label']!r} is not a {name} category"))
                continue
            subject = (row.get("subject") or "").strip() or _subject_of(path.stem, pattern)
            samples.append(Sample(str(path), label, subject, path))
    return _finish(name, csv_path, samples, skipped, assume_cropped,
                   {"assume_cropped": assume_cropped, "subject_pattern": pattern.pattern})


def _open_csv(path: Path):  # noqa: ANN202 - a text file handle
    try:
        return path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_fer2013(root: str | Path, *, usages: Sequence[str] | None = None) -> Dataset:
    """FER2013: the ``emotion,pixels,Usage`` CSV (or a folder holding ``fer2013.csv``).

    Pixels are 48x48 grey face crops already, so no detection runs. FER2013 names no subjects, so
    its own ``Usage`` split (Training / PublicTest / PrivateTest) is used instead of subject folds.

    Args:
        root: the CSV file or its folder.
        usages: keep only these ``Usage`` values; None keeps all.
    Returns:
        A `Dataset` named "fer2013" with ``pixels`` set on every sample; malformed rows are skipped.
    """
    path = Path(root).expanduser().resolve()
    if path.is_dir():
        path = path / "fer2013.csv"
    if not path.is_file():
        raise InputError(f"fer2013: {path} not found (expected the emotion,pixels,Usage CSV)")
    if usages is not None and (bad := [u for u in usages if u not in FER2013_USAGE]):
        raise InputError(f"fer2013: unknown Usage value(s) {bad}; FER2013 has {', '.join(FER2013_USAGE)}")
    samples, skipped = [], []
    with _open_csv(path) as fh:
        reader = csv.DictReader(fh)
        if not {"emotion", "pixels"} <= set(reader.fieldnames or ()):
            raise InputError(f"{path}: needs columns 'emotion' and 'pixels' (and usually 'Usage')")
        for row_number, row in enumerate(reader, start=2):  # row 1 is the header
            key = f"{path}#{row_number}"
            usage = (row.get("Usage") or "Training").strip()
            if usages is not None and usage not in usages:
                continue
            try:
                label = FER2013_LABELS[int(row["emotion"])]
                values = np.array((row["pixels"] or "").split(), dtype=np.int64)
                side = int(round(len(values) ** 0.5))
                if side * side != len(values) or side == 0 or values.min() < 0 or values.max() > 255:
                    raise ValueError("pixels are not a square grey image with values 0..255")
                if usage not in FER2013_USAGE:
                    raise ValueError(f"unknown Usage {usage!r}")
            except (ValueError, IndexError, TypeError) as exc:
                skipped.append(Skipped(key, f"malformed row: {exc}"))
                continue
            pixels = values.astype(np.uint8).reshape(side, side)
            # FER2013 names no one: each row is its own subject, named relative to the CSV so that
            # fingerprints do not depend on where the file lives.
            samples.append(Sample(key, label, f"{path.name}#{row_number}", None, pixels, {"usage": usage}))
    return _finish("fer2013", path, samples, skipped, True, {"usages": list(usages) if usages else None},
                   FER2013_LABELS)


#: Dataset loaders by name (``fer train --dataset NAME``).
DATASETS: dict[str, Callable[..., Dataset]] = {
    "rafd": load_rafd, "cfee": load_cfee, "fer2013": load_fer2013, "folder": load_folder,
}


def load_dataset(name: str, root: str | Path, **options: Any) -> Dataset:
    """Load dataset ``name`` (a key of `DATASETS`) from ``root``; ``options`` go to its loader
    (options the loader does not take are dropped, so one CLI can pass one set to any loader)."""
    import inspect

    try:
        loader = DATASETS[name]
    except KeyError:
        raise InputError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
    accepted = inspect.signature(loader).parameters
    return loader(root, **{k: v for k, v in options.items() if k in accepted and v is not None})


# --------------------------------------------------------------------------- command-line options


def add_dataset_arguments(parser: Any, *, required: bool = True, margin: bool = True) -> None:
    """The dataset options ``train`` and ``evaluate`` share (``--dataset``, ``--root``, …); ``margin``
    False leaves ``--margin`` to the pipeline's options (`fer.cli.add_pipeline_arguments`)."""
    parser.add_argument("--dataset", choices=sorted(DATASETS), required=required,
                        help="layout of the data: rafd (RaFD file names), cfee (category folders or CSV), "
                        "fer2013 (emotion,pixels,Usage CSV), folder (ROOT/<label>/*)")
    parser.add_argument("--root", type=Path, required=required, metavar="DIR",
                        help="dataset folder (fer2013: the CSV or its folder; cfee: folder or path,label CSV)")
    parser.add_argument("--crops", action="store_true",
                        help="images are face crops already: no detection; keypoints are estimated from the "
                        "crop geometry (fer2013 always)")
    parser.add_argument("--angles", default="90", metavar="LIST",
                        help="rafd: camera angles to keep, comma-separated, or 'all' (default: %(default)s, frontal)")
    parser.add_argument("--gazes", default="all", metavar="LIST",
                        help="rafd: gazes to keep (frontal,left,right) or 'all' (default: %(default)s)")
    parser.add_argument("--cfee-subset", choices=["basic", "all"], default="basic",
                        help="cfee: 7 basic classes or all 22 categories (default: %(default)s)")
    parser.add_argument("--subject-pattern", metavar="REGEX",
                        help="folder/cfee: regex whose first group in the file name is the subject "
                        f"(default: {DEFAULT_SUBJECT_PATTERN!r})")
    parser.add_argument("--usage", default="all", metavar="LIST",
                        help="fer2013: Usage values to keep (Training,PublicTest,PrivateTest) or 'all'")
    if margin:
        parser.add_argument("--margin", type=float, default=None,
                            help="face crop margin per side, as a fraction of the face box (default: the detector's)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="face crop cache folder (default: $FER_CACHE_DIR/crops, else ~/.cache/fer/crops; "
                        "FER_CACHE_DIR=off caches nothing)")


def list_option(value: str | None, name: str, cast: Callable[[str], Any] = str) -> list | None:
    """A comma-separated option as a list (``cast`` applied to each item); None for absent or "all"."""
    if value is None or value.strip().lower() == "all":
        return None
    try:
        return [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--{name}: cannot read {value!r} (expected a comma-separated list or 'all')") from None


def dataset_options(args: Any) -> dict[str, Any]:
    """Loader options from parsed `add_dataset_arguments` options (for `load_dataset`)."""
    return {
        "assume_cropped": bool(getattr(args, "crops", False)),
        "angles": list_option(getattr(args, "angles", None), "angles", int),
        "gazes": list_option(getattr(args, "gazes", None), "gazes"),
        "subset": getattr(args, "cfee_subset", None),
        "subject_pattern": getattr(args, "subject_pattern", None),
        "usages": list_option(getattr(args, "usage", None), "usage"),
    }


def dataset_from_args(args: Any) -> Dataset:
    """Load the dataset that parsed `add_dataset_arguments` options describe."""
    options = dataset_options(args)
    if args.dataset == "rafd" and options["angles"] is None:
        options["angles"] = list(RAFD_ANGLES)  # "all": load_dataset drops None, which would mean 90 only
    return load_dataset(args.dataset, args.root, **options)
