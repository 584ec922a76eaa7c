"""Paired statistics of the saliency effect: Student's t computed here, checked against a numerical
integral of its density and against textbook quantiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fer.errors import InputError
from fer.research import stats


def _t_tail_by_integration(t: float, df: int) -> float:
    """P(|T| >= t) as 1 - 2 * integral of the t density from 0 to t (trapezoids on a fine grid)."""
    x = np.linspace(0.0, t, 200001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    pdf = np.exp(log_c - (df + 1) / 2 * np.log1p(x * x / df))
    return 1.0 - 2.0 * float(np.sum((pdf[1:] + pdf[:-1]) / 2 * np.diff(x)))


@pytest.mark.parametrize(("t", "df"), [(0.5, 2), (2.0, 4), (3.1, 9), (1.2, 30)])
def test_t_tail_matches_the_integrated_density(t: float, df: int) -> None:
    assert stats.t_sf_two_sided(t, df) == pytest.approx(_t_tail_by_integration(t, df), abs=1e-8)


def test_t_quantiles_match_the_tables() -> None:
    # Two-sided 5 % critical values of Student's t, as printed in every statistics table.
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (30, 2.042)):
        assert stats.t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)


def test_paired_difference() -> None:
    with_, without = [[0.80, 0.70, 0.90, 0.85, 0.75]], [[0.70, 0.72, 0.80, 0.80, 0.70]]
    p = stats.paired_difference(with_, without)
    d = np.subtract(with_[0], without[0])
    se = d.std(ddof=1) / math.sqrt(5)
    assert p.mean_difference == pytest.approx(d.mean()) and p.n_folds == 5
    assert p.ci95 == pytest.approx((d.mean() - 2.7764451 * se, d.mean() + 2.7764451 * se), abs=1e-6)
    assert p.p_value == pytest.approx(_t_tail_by_integration(d.mean() / se, 4), abs=1e-7)
    assert p.to_dict()["test"] == "two-sided paired t-test over 5 folds (df 4)"
    same = stats.paired_difference([[0.5, 0.6]], [[0.5, 0.6]])
    assert same.p_value == 1.0 and same.ci95 == (0.0, 0.0)
    one = stats.paired_difference([[0.7]], [[0.5]]).to_dict()
    assert one["p_value"] is None and one["ci95"] == [None, None] and one["n_folds"] == 1
    with pytest.raises(InputError, match="equal"):
        stats.paired_difference([[0.5, 0.6]], [[0.5]])
