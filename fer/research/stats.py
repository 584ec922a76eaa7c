"""Paired statistics for the paper's claim, a difference between training with and without saliency:
`paired_difference` over matched folds (the same subjects, seed and initial weights on both sides),
with a Student t interval and p-value. Student's t distribution is computed here (regularised
incomplete beta function by its continued fraction) rather than pulled in with SciPy for two
numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fer.errors import InputError


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz), for x < (a+1)/(a+b+2)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                          -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b), x in [0, 1]."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_sf_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile (0.5 < p < 1) of Student's t with ``df`` degrees of freedom, by bisection."""
    if not 0.5 < p < 1.0:
        raise InputError(f"quantile must be in (0.5, 1), got {p}")
    low, high = 0.0, 1.0
    while t_sf_two_sided(high, df) > 2.0 * (1.0 - p):
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_sf_two_sided(mid, df) > 2.0 * (1.0 - p):
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Paired:
    """A with-minus-without difference over matched folds.

    Attributes:
        differences: per fold, with minus without (accuracy in [0, 1]; with several seeds, the
            mean over seeds of that fold).
        mean_difference: their mean; ci95: its 95 % Student t interval (NaN with one fold);
        p_value: two-sided paired t-test of "no difference" (NaN with one fold; 1.0 when every
            difference is 0); n_seeds: seeds averaged per fold.
    """

    differences: tuple[float, ...]
    mean_difference: float
    ci95: tuple[float, float]
    p_value: float
    n_seeds: int = 1

    @property
    def n_folds(self) -> int:
        """Matched folds compared."""
        return len(self.differences)

    @property
    def test(self) -> str:
        """What the p-value is."""
        seeds = f", each fold the mean of {self.n_seeds} seeds" if self.n_seeds > 1 else ""
        return f"two-sided paired t-test over {self.n_folds} folds (df {self.n_folds - 1}{seeds})"

    def to_dict(self) -> dict[str, Any]:
        """``{"mean_difference", "ci95", "p_value", "test", "n_folds", "n_seeds", "differences"}``."""
        def num(v: float) -> float | None:
            return None if math.isnan(v) else round(v, 6)

        return {"mean_difference": num(self.mean_difference), "ci95": [num(self.ci95[0]), num(self.ci95[1])],
                "p_value": num(self.p_value), "test": self.test, "n_folds": self.n_folds, "n_seeds": self.n_seeds,
                "differences": [round(d, 6) for d in self.differences]}


def paired_difference(with_values: Sequence[Sequence[float]], without_values: Sequence[Sequence[float]]) -> Paired:
    """Paired t statistics of ``with - without``.

    Args:
        with_values, without_values: ``[seed][fold]`` scores, matched position by position (the same
            fold and seed on both sides). Seeds are averaged per fold first: the folds, whose test
            subjects differ, are the independent units; seeds of one fold share them.
    Raises:
        InputError: shapes differ or nothing to compare.
    """
    a, b = np.asarray(with_values, np.float64), np.asarray(without_values, np.float64)
    if a.shape != b.shape or a.ndim != 2 or a.size == 0:
        raise InputError(f"paired scores need equal [seed][fold] shapes, got {a.shape} and {b.shape}")
    d = (a - b).mean(axis=0)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return Paired(tuple(float(v) for v in d), mean, (math.nan, math.nan), math.nan, a.shape[0])
    se = float(d.std(ddof=1)) / math.sqrt(n)
    if se == 0.0:
        p = 1.0 if mean == 0.0 else 0.0
        return Paired(tuple(float(v) for v in d), mean, (mean, mean), p, a.shape[0])
    half = t_quantile(0.975, n - 1) * se
    return Paired(tuple(float(v) for v in d), mean, (mean - half, mean + half), t_sf_two_sided(mean / se, n - 1),
                  a.shape[0])
