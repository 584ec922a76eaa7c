"""The two sampled-negative AUCs of the MIT/Tübingen saliency benchmark (github.com/cvzoya/saliency,
``code_forMetrics/AUC_Borji.m`` and ``AUC_shuffled.m``, after Borji et al.): the saliency map is
rescaled to [0, 1], thresholds sweep ``0, step, 2·step, …`` up to the largest value involved, the
true-positive rate is the share of fixated pixels at or above a threshold, and the false-positive
rate the share of *negative* samples at or above it; the area (trapezoids, from (0, 0) to (1, 1))
is averaged over ``splits`` draws of negatives.

- AUC-Borji: negatives are as many pixels as fixations, drawn uniformly (with replacement) from
  the whole map: a centre-biased map is rewarded for the centre bias of human fixations.
- shuffled AUC: negatives are fixated pixels of *other* images, so a map that only predicts the
  centre bias scores about 0.5.

As in the reference code, a constant map rescales to NaN everywhere, no value passes any
threshold, and the score is 0.5.
"""

from __future__ import annotations

import numpy as np

from fer.errors import InputError

#: The reference code's defaults.
SPLITS = 100
STEP = 0.1


def _rescaled(saliency: np.ndarray, fixations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, f = np.asarray(saliency, np.float64), np.asarray(fixations)
    if s.ndim != 2 or s.shape != f.shape:
        raise InputError(f"saliency map {s.shape} and fixation map {f.shape} must be (H, W) of one shape")
    if not np.any(f > 0):
        raise InputError("the fixation map has no fixation")
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant map: NaN, as in MATLAB
        s = (s - s.min()) / (s.max() - s.min())
    return s.ravel(), f.ravel() > 0


def _area(positives: np.ndarray, negatives: np.ndarray, step: float) -> float:
    """One split's ROC area: thresholds ``0 … max`` by ``step``, highest first."""
    values = np.concatenate([positives, negatives])
    top = np.nanmax(values) if np.any(~np.isnan(values)) else np.nan
    count = 0 if np.isnan(top) else int(np.floor(top / step + 1e-9)) + 1  # MATLAB's 0:step:top
    thresholds = (np.arange(count) * step)[::-1]
    pos, neg = np.sort(positives[~np.isnan(positives)]), np.sort(negatives[~np.isnan(negatives)])
    tp = (len(pos) - np.searchsorted(pos, thresholds, side="left")) / len(positives)
    fp = (len(neg) - np.searchsorted(neg, thresholds, side="left")) / len(negatives)
    return float(np.trapezoid(np.concatenate([[0.0], tp, [1.0]]), np.concatenate([[0.0], fp, [1.0]])))


def auc_borji(saliency: np.ndarray, fixations: np.ndarray, *, splits: int = SPLITS, step: float = STEP,
              seed: int | np.random.Generator | None = 0) -> float:
    """AUC-Borji of an ``(H, W)`` map against an ``(H, W)`` fixation map (non-zero: fixated).

    Returns:
        In [0, 1], 0.5 chance; the mean over ``splits`` draws of uniform negatives from ``seed``.
    """
    s, fixated = _rescaled(saliency, fixations)
    positives = s[fixated]
    draws = np.random.default_rng(seed).integers(0, s.size, (positives.size, splits))
    return float(np.mean([_area(positives, s[draws[:, k]], step) for k in range(splits)]))


def auc_shuffled(saliency: np.ndarray, fixations: np.ndarray, other: np.ndarray, *, splits: int = SPLITS,
                 step: float = STEP, seed: int | np.random.Generator | None = 0) -> float:
    """Shuffled AUC: as `auc_borji`, negatives drawn (without replacement, as many as fixations at
    most) from the pixels fixated in ``other``, an ``(H, W)`` map of other images' fixations.

    Raises:
        InputError: ``other`` has no fixation, or shapes differ.
    """
    s, fixated = _rescaled(saliency, fixations)
    candidates = np.flatnonzero(np.asarray(other).ravel() > 0)
    if np.asarray(other).shape != np.asarray(fixations).shape or candidates.size == 0:
        raise InputError("shuffled AUC needs other images' fixations on a map of the same shape")
    positives = s[fixated]
    rng = np.random.default_rng(seed)
    n = min(positives.size, candidates.size)
    return float(np.mean([_area(positives, s[rng.permutation(candidates)[:n]], step) for _ in range(splits)]))
