"""Saliency metrics (the MIT/Tübingen saliency benchmark definitions, Bylinskii et al., "What do
different evaluation metrics tell us about saliency models?", IEEE TPAMI 2019) and the
``evaluate-saliency`` command.

Every metric compares one predicted saliency map with one ground truth of the same ``(H, W)``
shape: a fixation *density* map (CC, KLD, SIM) or a binary *fixation* map (NSS, AUC-Judd).
Resize the prediction to the ground truth's size first, as the benchmark does. Edge cases follow
the benchmark's MATLAB code (github.com/cvzoya/saliency, ``code_forMetrics``): AUC-Judd jitters the
map by default, an all-zero prediction keeps zero mass (KLD about 36 − H(Q) nats, SIM 0), and a
constant prediction has no CC, NSS or SIM (NaN).

CLI::

    python -m fer evaluate-saliency --predictor face-prior --images DIR --maps DIR [--fixations DIR] [--json]

By default (``--mode faces``) each face found by `fer.face.FaceDetector` is one sample: the
predictor sees the face crop, and the ground truth (density and fixations) is carried into the same
crop with the crop's affine transform, so every predictor is scored on the same pixels.
``--mode image`` scores image-only predictors (spectral residual, ML-Net) on whole images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from fer.errors import FerError, InputError
from fer.research.saliency_auc import auc_borji, auc_shuffled

#: MATLAB's ``eps``, which the benchmark's reference code adds inside KLD.
EPS = float(np.finfo(np.float64).eps)
#: Size of the benchmark's AUC-Judd jitter: ``rand(size(map)) / 10000000`` added to the map, which
#: breaks ties (e.g. the flat zero region of a ReLU output) in random order instead of all at once.
AUC_JITTER = 1e-7


def _map(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"{what} must be a non-empty (H, W) map, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{what} contains NaN or infinite values")
    return arr


def _pair(saliency: np.ndarray, truth: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    s, t = _map(saliency, "saliency map"), _map(truth, what)
    if s.shape != t.shape:
        raise InputError(f"saliency map {s.shape} and {what} {t.shape} differ in shape; resize the prediction first")
    return s, t


def _fixations(saliency: np.ndarray, fixations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, f = _pair(saliency, fixations, "fixation map")
    mask = f > 0
    if not mask.any():
        raise InputError("fixation map has no fixations (no non-zero pixel)")
    return s, mask


def _standardise(x: np.ndarray) -> np.ndarray | None:
    """``(x - mean) / std`` with MATLAB's ``std`` (``ddof=1``); None for a constant map, where the
    reference code divides by zero and its metric is NaN."""
    std = x.std(ddof=1) if x.size > 1 else 0.0
    return (x - x.mean()) / std if std > 0 else None


def cc(saliency: np.ndarray, density: np.ndarray) -> float:
    """Pearson's linear correlation coefficient between a saliency map and a fixation density map.

    ``CC = Σ (P - mean P)(Q - mean Q) / sqrt(Σ (P - mean P)² · Σ (Q - mean Q)²)`` over all pixels.

    Args:
        saliency: ``(H, W)`` prediction P (any scale).
        density: ``(H, W)`` ground-truth fixation density Q (any scale).
    Returns:
        In [-1, 1]; 1 when the maps are equal up to a positive affine change. NaN when either map
        is constant (undefined; the benchmark's code gives NaN too).
    """
    zp, zq = (_standardise(m) for m in _pair(saliency, density, "density map"))
    if zp is None or zq is None:
        return math.nan
    return float((zp * zq).sum() / math.sqrt((zp * zp).sum() * (zq * zq).sum()))


def kld(saliency: np.ndarray, density: np.ndarray) -> float:
    """Kullback-Leibler divergence of the prediction from the ground truth (benchmark form).

    Each map with any mass is divided by its sum (P prediction, Q ground truth); an all-zero map
    stays all zero, as in the reference code, so an empty prediction is heavily penalised:
    ``KLD = Σ Q · log(eps + Q / (P + eps))`` with ``eps`` = 2.2e-16 (MATLAB ``eps``).

    Args:
        saliency: ``(H, W)`` non-negative prediction.
        density: ``(H, W)`` non-negative ground-truth density.
    Returns:
        ``>= 0`` up to the eps terms; lower is better, 0 for identical distributions, about
        ``36 - H(Q)`` nats (H the entropy of Q) for an all-zero prediction.
    """
    p, q = _pair(saliency, density, "density map")
    if (p < 0).any() or (q < 0).any():
        raise InputError("kld needs non-negative maps")
    p = p / p.sum() if p.any() else p
    q = q / q.sum() if q.any() else q
    return float((q * np.log(EPS + q / (p + EPS))).sum())


def nss(saliency: np.ndarray, fixations: np.ndarray) -> float:
    """Normalized Scanpath Saliency: the mean of the standardised prediction at fixated pixels.

    ``NSS = mean over fixations of (P - mean P) / std P``, with the sample standard deviation
    (``ddof=1``, MATLAB ``std``, as in the reference code).

    Args:
        saliency: ``(H, W)`` prediction P.
        fixations: ``(H, W)`` fixation map; non-zero pixels are fixations.
    Returns:
        Unbounded; 0 is chance, higher is better. NaN for a constant prediction (as the benchmark).
    """
    p, mask = _fixations(saliency, fixations)
    z = _standardise(p)
    return math.nan if z is None else float(z[mask].mean())


def sim(saliency: np.ndarray, density: np.ndarray) -> float:
    """Similarity (histogram intersection) of the prediction and the ground-truth density.

    As the reference code: a map with any non-zero pixel is rescaled to [0, 1] (min-max) and
    divided by its sum, then ``SIM = Σ min(P, Q)``; an all-zero map stays zero (SIM 0), and a
    constant non-zero map cannot be rescaled (0 / 0), so its SIM is NaN.

    Args:
        saliency: ``(H, W)`` prediction.
        density: ``(H, W)`` ground-truth density.
    Returns:
        In [0, 1]; 1 for identical distributions; NaN for a constant non-zero map.
    """
    p, q = _pair(saliency, density, "density map")

    def rescale(x: np.ndarray) -> np.ndarray | None:
        if not x.any():
            return x
        span = x.max() - x.min()
        return None if span == 0 else _distribution((x - x.min()) / span)

    p_, q_ = rescale(p), rescale(q)
    return math.nan if p_ is None or q_ is None else float(np.minimum(p_, q_).sum())


def _distribution(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def auc_judd(saliency: np.ndarray, fixations: np.ndarray, *, jitter: bool = True,
             seed: int | np.random.Generator | None = 0) -> float:
    """Area under the ROC curve, Judd variant (Judd et al. 2009; benchmark ``AUC_Judd``).

    As the reference code, the map first gets a tiny random jitter (uniform in [0, `AUC_JITTER`),
    drawn from ``seed``) so that tied values, such as the flat zero region of a ReLU output, are
    ranked in random order rather than all counted above every threshold. Thresholds are then
    the map's values at the fixated pixels, in decreasing order; for the i-th threshold ``t`` the
    true-positive rate is ``i / n_fix`` and the false-positive rate
    ``(#pixels with P >= t - i) / (n_pixels - n_fix)``; the curve runs from (0, 0) to (1, 1) and its
    area is taken with the trapezoid rule.

    Args:
        saliency: ``(H, W)`` prediction.
        fixations: ``(H, W)`` fixation map; non-zero pixels are fixations.
        jitter: add the benchmark's jitter (default). Without it, ties count as above threshold and
            a constant map is NaN (its min-max rescaling divides by zero, as in the reference code).
        seed: seed or generator of the jitter, so scores are reproducible.
    Returns:
        In [0, 1]; 0.5 is chance, higher is better.
    """
    p, mask = _fixations(saliency, fixations)
    if jitter:
        p = p + np.random.default_rng(seed).random(p.shape) * AUC_JITTER
    elif p.max() == p.min():
        return math.nan
    values = p.ravel()
    n_pixels, n_fix = values.size, int(mask.sum())
    if n_fix == n_pixels:
        raise InputError("auc_judd needs at least one pixel without a fixation")
    thresholds = np.sort(p[mask])[::-1]
    ordered = np.sort(values)
    above = n_pixels - np.searchsorted(ordered, thresholds, side="left")
    ranks = np.arange(1, n_fix + 1)
    tp = np.concatenate([[0.0], ranks / n_fix, [1.0]])
    fp = np.concatenate([[0.0], (above - ranks) / (n_pixels - n_fix), [1.0]])
    return float(np.trapezoid(tp, fp))


#: Metrics on density maps and on fixation maps, in the order tables show them.
DENSITY_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"cc": cc, "kld": kld, "sim": sim}
FIXATION_METRICS: dict[str, Callable[..., float]] = {"nss": nss, "auc_judd": auc_judd, "auc_borji": auc_borji,
                                                     "sauc": auc_shuffled}
#: Other samples whose fixations are the shuffled AUC's negatives (Borji et al. use 10 other images).
SAUC_OTHERS = 10


def score_map(saliency: np.ndarray, density: np.ndarray | None, fixations: np.ndarray | None, *,
              jitter: bool = True, seed: int | np.random.Generator | None = 0) -> dict[str, float]:
    """All metrics that the given ground truths allow, for one prediction of the same shape
    (``jitter`` and ``seed`` as in `auc_judd`). Undefined values are NaN, as in the benchmark."""
    out: dict[str, float] = {}
    if density is not None:
        out.update({name: fn(saliency, density) for name, fn in DENSITY_METRICS.items()})
    if fixations is not None and np.any(fixations > 0):
        out["nss"] = nss(saliency, fixations)
        out["auc_judd"] = auc_judd(saliency, fixations, jitter=jitter, seed=seed)
        out["auc_borji"] = auc_borji(saliency, fixations, seed=seed)
    return out


def _union(others: Sequence[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """The fixations of ``others`` on one ``shape`` map (points scaled when their sizes differ)."""
    union = np.zeros(shape[:2], np.uint8)
    for fix in others:
        ys, xs = np.nonzero(fix)
        ys = np.minimum((ys * shape[0]) // fix.shape[0], shape[0] - 1)
        xs = np.minimum((xs * shape[1]) // fix.shape[1], shape[1] - 1)
        union[ys, xs] = 1
    return union


# --------------------------------------------------------------------------- dataset files

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# MIT1003 names its ground truth <stem>_fixMap.jpg (density) and <stem>_fixPts.jpg (fixations).
MAP_SUFFIXES = ("", "_fixMap")
FIXATION_SUFFIXES = ("", "_fixPts")


def _index(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def match_files(
    images_dir: str | Path, maps_dir: str | Path, fixations_dir: str | Path | None = None
) -> tuple[list[tuple[str, Path, Path, Path | None]], list[str]]:
    """Pair images with ground-truth maps (and fixation maps) by file stem.

    ``images/<stem>.jpg|png`` goes with ``maps/<stem>.png|jpg`` (or ``<stem>_fixMap.*``, MIT1003)
    and, if given, ``fixations/<stem>.png`` (or ``<stem>_fixPts.*``).

    Returns:
        ``([(stem, image, map, fixations or None), ...] sorted by stem, [skip messages])``.
    Raises:
        InputError: a folder does not exist.
    """
    folders = {"images": images_dir, "maps": maps_dir} | ({"fixations": fixations_dir} if fixations_dir else {})
    for what, folder in folders.items():
        if not Path(folder).is_dir():
            raise InputError(f"--{what} {folder}: not a folder")
    images, maps = _index(Path(images_dir)), _index(Path(maps_dir))
    fixations = _index(Path(fixations_dir)) if fixations_dir else None
    pairs, skipped = [], []
    for stem, image in images.items():
        gt = next((maps[stem + s] for s in MAP_SUFFIXES if stem + s in maps), None)
        if gt is None:
            skipped.append(f"{image}: no ground-truth map named {stem}.* in {maps_dir}")
            continue
        fix = None
        if fixations is not None:
            fix = next((fixations[stem + s] for s in FIXATION_SUFFIXES if stem + s in fixations), None)
            if fix is None:
                skipped.append(f"{image}: no fixation map named {stem}.* in {fixations_dir}")
                continue
        pairs.append((stem, image, gt, fix))
    return pairs, skipped


def read_grey(path: str | Path) -> np.ndarray:
    """Read a ground-truth map as ``(H, W)`` float32 (grey levels 0..255 for 8-bit files).

    Raises:
        InputError: unreadable or not an image.
    """
    from fer.io import read_image

    rgb = read_image(Path(path))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def binarise_fixations(grey: np.ndarray) -> np.ndarray:
    """``(H, W)`` fixation image → ``(H, W)`` uint8 0/1. Pixels above half the maximum count as
    fixations, so 0/1 and 0/255 files both work and JPEG noise (MIT1003's ``_fixPts.jpg``) does not."""
    peak = float(grey.max()) if grey.size else 0.0
    return (grey > peak / 2).astype(np.uint8) if peak > 0 else np.zeros(grey.shape, np.uint8)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``python -m fer evaluate-saliency``."""
    parser.add_argument("--predictor", default="face-prior", help="saliency predictor name (default: face-prior)")
    parser.add_argument("--images", required=True, help="folder of images (jpg/png)")
    parser.add_argument("--maps", required=True, help="folder of ground-truth density maps, same file stems")
    parser.add_argument("--fixations", help="folder of binary fixation maps, same stems (enables NSS, AUC-Judd, "
                        "AUC-Borji and shuffled AUC)")
    parser.add_argument("--weights", help="checkpoint for predictors that need one (mlnet)")
    parser.add_argument(
        "--mode", choices=("faces", "image"), default="faces",
        help="faces: score each detected face crop (default); image: score whole images (not face-prior)",
    )
    parser.add_argument("--crop-size", type=int, default=224, help="face crop side in pixels (faces mode)")
    parser.add_argument("--device", default="cpu", help="torch device for predictors that use one")
    parser.add_argument("--no-jitter", dest="jitter", action="store_false",
                        help="AUC-Judd without the benchmark's tie-breaking jitter (ties count as above threshold)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the AUC-Judd jitter (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _score_faces(predictor, image, density, fixations, detector, **auc) -> list[tuple[dict, np.ndarray, np.ndarray | None]]:
    faces = detector(image)
    if not faces:
        return []
    crops = np.stack([f.crop for f in faces])
    maps = predictor(crops, np.stack([f.crop_keypoints for f in faces]))
    size = crops.shape[1]
    results = []
    for face, pred in zip(faces, maps, strict=True):
        gt = cv2.warpAffine(density, face.to_crop, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
        fix = None
        if fixations is not None:
            # Fixations are carried as points, not warped as an image: shrinking a binary map with
            # interpolation would drop isolated fixated pixels.
            ys, xs = np.nonzero(fixations)
            pts = np.stack([xs, ys], 1).astype(np.float32) @ face.to_crop[:, :2].T + face.to_crop[:, 2]
            pts = np.rint(pts).astype(int)
            inside = (pts >= 0).all(1) & (pts < size).all(1)
            fix = np.zeros((size, size), np.uint8)
            fix[pts[inside, 1], pts[inside, 0]] = 1
        results.append((score_map(pred, gt if gt.sum() > 0 else None, fix, **auc), pred, fix))
    return [r for r in results if r[0]]


def _score_image(predictor, image, density, fixations, **auc) -> list[tuple[dict, np.ndarray, np.ndarray | None]]:
    # Image-only predictors accept any (N, H, W, 3) input and return maps of the same size.
    pred = predictor(image[None], None)[0]
    return [(score_map(pred, density if density.sum() > 0 else None, fixations, **auc), pred, fixations)]


def run(args: argparse.Namespace) -> int:
    """Evaluate a saliency predictor on a folder of images with ground truth; prints mean metrics.

    Exit status: 0 all images scored, 1 some skipped (listed on stderr) or none scored, 2 usage error.
    """
    from fer.io import read_image
    from fer.saliency import load_saliency

    try:
        if args.mode == "image" and args.predictor == "face-prior":
            raise InputError("face-prior needs face keypoints: use --mode faces")
        pairs, skipped = match_files(args.images, args.maps, args.fixations)
        predictor = load_saliency(args.predictor, device=args.device, weights=args.weights)
    except FerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detector = None
    if args.mode == "faces":
        from fer.face import FaceDetector

        detector = FaceDetector(crop_size=args.crop_size)
    rows: list[dict[str, float]] = []
    recent: list[np.ndarray] = []  # fixation maps of the last samples, for the shuffled AUC
    # One generator for the whole run: every image gets its own jitter, the run is reproducible.
    auc = {"jitter": args.jitter, "seed": np.random.default_rng(args.seed)}
    try:
        for _stem, image_path, map_path, fix_path in pairs:
            try:
                image = read_image(image_path)
                density = read_grey(map_path)
                fixations = binarise_fixations(read_grey(fix_path)) if fix_path else None
                for gt, what in ((density, "map"), (fixations, "fixation map")):
                    if gt is not None and gt.shape != image.shape[:2]:
                        raise InputError(f"{what} is {gt.shape[1]}×{gt.shape[0]}, image is {image.shape[1]}×{image.shape[0]}")
                if detector is not None:
                    scored = _score_faces(predictor, image, density, fixations, detector, **auc)
                    if not scored:
                        raise InputError("no face found")
                else:
                    scored = _score_image(predictor, image, density, fixations, **auc)
                for row, pred, fix in scored:
                    if fix is not None and fix.any():
                        # Shuffled AUC: negatives from the fixations of the samples scored just
                        # before (the first sample has none: undefined).
                        row["sauc"] = (auc_shuffled(pred, fix, _union(recent, fix.shape), seed=auc["seed"])
                                       if recent else math.nan)
                        recent = [*recent, fix][-SAUC_OTHERS:]
                    rows.append(row)
            except FerError as exc:
                skipped.append(f"{image_path}: {exc}")
    finally:
        if detector is not None:
            detector.close()
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    summary = summarise(rows)
    report = {"predictor": args.predictor, "mode": args.mode, "n": len(rows), "skipped": len(skipped), "metrics": summary,
              "undefined": undefined(rows), "auc_jitter": args.jitter, "seed": args.seed}
    if args.json:
        print(json.dumps(report))
    else:
        print(format_table(report))
    if not rows:
        return 1
    return 1 if skipped else 0


def summarise(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the samples where it is defined (NaN where it never is); see
    `undefined` for how many samples each mean left out."""
    names = [n for n in (*DENSITY_METRICS, *FIXATION_METRICS) if any(n in r for r in rows)]
    out = {}
    for n in names:
        values = [r[n] for r in rows if n in r and not math.isnan(r[n])]
        out[n] = float(np.mean(values)) if values else math.nan
    return out


def undefined(rows: Sequence[dict[str, float]]) -> dict[str, int]:
    """Metric → samples where it was NaN (constant prediction), for metrics where any was."""
    counts = {n: sum(1 for r in rows if n in r and math.isnan(r[n])) for n in (*DENSITY_METRICS, *FIXATION_METRICS)}
    return {n: c for n, c in counts.items() if c}


def format_table(report: dict) -> str:
    """A plain-text table of the mean metrics (values on the last line)."""
    unit = "faces" if report["mode"] == "faces" else "images"
    head = f"{report['predictor']}: {report['n']} {unit} scored, {report['skipped']} skipped"
    if report.get("undefined"):
        head += "; undefined (constant map; sauc: no earlier sample) for " + ", ".join(f"{k} {v}" for k, v in report["undefined"].items())
    if "auc_judd" in report["metrics"]:
        head += f"; AUC-Judd {'with the benchmark jitter, seed ' + str(report['seed']) if report['auc_jitter'] else 'without jitter'}"
    metrics = report["metrics"]
    if not metrics:
        return head
    names = {"cc": "CC↑", "kld": "KLD↓", "sim": "SIM↑", "nss": "NSS↑", "auc_judd": "AUC-Judd↑",
             "auc_borji": "AUC-Borji↑", "sauc": "sAUC↑"}
    header = "  ".join(f"{names[k]:>10}" for k in metrics)
    values = "  ".join(f"{v:>10.4f}" for v in metrics.values())
    return f"{head}\n{header}\n{values}"
