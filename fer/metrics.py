"""Classification metrics on a confusion matrix: the one place they are computed.

Every function takes a ``(K, K)`` integer matrix whose rows are true labels and columns predicted
ones (entry ``[t, p]`` counts samples of label t predicted as p), so evaluation, the protocol,
model cards and the live session all score the same way. NumPy only: the inference core can use
it without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fer.errors import InputError


def _matrix(confusion: np.ndarray) -> np.ndarray:
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError(f"a confusion matrix must be square (K, K), got shape {cm.shape}")
    if cm.size and (not np.issubdtype(cm.dtype, np.integer) or cm.min() < 0):
        raise InputError("a confusion matrix holds non-negative integer counts")
    return cm.astype(np.int64, copy=False)


def confusion_matrix(true: Sequence[int] | np.ndarray, predicted: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs.

    Args:
        true, predicted: ``(N,)`` int class indices in ``0 .. num_classes-1``.
    Returns:
        ``(num_classes, num_classes)`` int64; entry ``[t, p]`` counts samples of class t predicted as p.
    Raises:
        InputError: lengths differ or an index is out of range.
    """
    t = np.asarray(true, np.int64).ravel()
    p = np.asarray(predicted, np.int64).ravel()
    if t.shape != p.shape:
        raise InputError(f"true and predicted labels differ in length ({t.size} vs {p.size})")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise InputError(f"class indices must lie in 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(confusion: np.ndarray) -> float:
    """Fraction of samples on the diagonal, in [0, 1]; 0.0 for an empty matrix."""
    cm = _matrix(confusion)
    n = cm.sum()
    return float(np.trace(cm) / n) if n else 0.0


def support(confusion: np.ndarray) -> np.ndarray:
    """``(K,)`` int64 samples per true label (row sums)."""
    return _matrix(confusion).sum(axis=1)


def precision(confusion: np.ndarray) -> np.ndarray:
    """``(K,)`` float64 in [0, 1]: right predictions of each label over its predictions; 0 for a
    label never predicted (scikit-learn's ``zero_division=0``)."""
    cm = _matrix(confusion)
    predicted = cm.sum(axis=0)
    return np.divide(np.diag(cm), predicted, out=np.zeros(len(cm)), where=predicted > 0)


def recall(confusion: np.ndarray) -> np.ndarray:
    """``(K,)`` float64 in [0, 1]: right predictions of each label over its samples; 0 for a label
    with no samples."""
    cm = _matrix(confusion)
    rows = cm.sum(axis=1)
    return np.divide(np.diag(cm), rows, out=np.zeros(len(cm)), where=rows > 0)


def f1(confusion: np.ndarray) -> np.ndarray:
    """``(K,)`` float64 per-label F1, the harmonic mean of precision and recall (0 where both are 0)."""
    p, r = precision(confusion), recall(confusion)
    return np.divide(2 * p * r, p + r, out=np.zeros(len(p)), where=(p + r) > 0)


def macro_f1(confusion: np.ndarray) -> float:
    """Mean F1 over the labels that occur as truth or as prediction (scikit-learn's label set when
    none is given); 0.0 for an empty matrix."""
    cm = _matrix(confusion)
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(f1(cm)[seen].mean()) if seen.any() else 0.0


@dataclass(frozen=True)
class Confusion:
    """One kind of mistake: samples of ``true`` predicted as ``predicted``.

    ``count`` is how many; ``rate`` is their fraction of all samples of ``true`` (in [0, 1]), the
    figure a human-observer confusion matrix reports. ``base_rate`` is the chance baseline for it:
    the fraction of samples of the *other* labels (neither ``true`` nor ``predicted``) that were
    predicted as ``predicted`` (None when there are none): a model that answers one label whatever
    it sees has ``rate == base_rate``, so its mistakes say nothing about ``true``.
    """

    true: str
    predicted: str
    count: int
    rate: float
    base_rate: float | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, str | int | float | None]:
        """``{"true", "predicted", "count", "rate", "base_rate"}`` (rates rounded to 6 places), JSON-ready."""
        return {"true": self.true, "predicted": self.predicted, "count": self.count, "rate": round(self.rate, 6),
                "base_rate": None if self.base_rate is None else round(self.base_rate, 6)}


def top_confusions(confusion: np.ndarray, labels: Sequence[str], k: int = 3) -> list[Confusion]:
    """The ``k`` most frequent off-diagonal cells, most frequent first (ties: higher rate first,
    then row-major order); cells with no samples are left out.

    Args:
        confusion: ``(K, K)`` counts, rows true labels.
        labels: the ``K`` label names, in matrix order.
    """
    cm = _matrix(confusion)
    if len(labels) != len(cm):
        raise InputError(f"{len(labels)} labels for a {len(cm)}x{len(cm)} confusion matrix")
    rates = np.divide(cm, cm.sum(axis=1, keepdims=True), out=np.zeros(cm.shape), where=cm.sum(axis=1, keepdims=True) > 0)
    cells = [(int(cm[t, p]), float(rates[t, p]), t, p) for t in range(len(cm)) for p in range(len(cm))
             if t != p and cm[t, p] > 0]
    cells.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    rows = cm.sum(axis=1)

    def base_rate(t: int, p: int) -> float | None:
        others = [u for u in range(len(cm)) if u not in (t, p)]
        seen = int(rows[others].sum()) if others else 0
        return float(cm[others, p].sum()) / seen if seen else None

    return [Confusion(labels[t], labels[p], count, rate, base_rate(t, p)) for count, rate, t, p in cells[:max(k, 0)]]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0.0 for a single value) of per-fold scores.

    Raises:
        InputError: no values.
    """
    arr = np.asarray(values, np.float64)
    if arr.size == 0:
        raise InputError("no values to average")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


#: The normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n`` (95 % by default), in [0, 1].

    Chosen over the normal approximation because it stays inside [0, 1] and stays honest for small
    ``n`` and for rates near 0 or 1 (a webcam session of 12 frames, a class never missed).

    Raises:
        InputError: ``n`` < 1 or ``successes`` outside 0..n.
    """
    if n < 1 or not 0 <= successes <= n:
        raise InputError(f"a proportion needs 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    scale = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * float(np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / scale
    return max(0.0, centre - half), min(1.0, centre + half)
