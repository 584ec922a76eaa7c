"""fer.metrics on cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fer.errors import InputError
from fer.metrics import (
    Confusion,
    accuracy,
    confusion_matrix,
    f1,
    macro_f1,
    mean_std,
    precision,
    recall,
    support,
    top_confusions,
)

#: Rows true, columns predicted: angry 2 right 1 as happy; happy 1 right 1 as sad; sad 1 right.
CM = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]])
LABELS = ("angry", "happy", "sad")


def test_confusion_matrix_counts_pairs() -> None:
    cm = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 2, 1, 2, 2, 0], 3)
    assert cm.dtype == np.int64 and cm.tolist() == [[1, 0, 1], [0, 1, 0], [1, 0, 2]]
    assert confusion_matrix([], [], 2).tolist() == [[0, 0], [0, 0]]
    with pytest.raises(InputError, match="length"):
        confusion_matrix([0, 1], [0], 2)
    with pytest.raises(InputError, match="0..1"):
        confusion_matrix([0, 2], [0, 1], 2)


def test_scores_by_hand() -> None:
    assert accuracy(CM) == pytest.approx(4 / 6)
    assert support(CM).tolist() == [3, 2, 1]
    # Precision: column sums 2, 2, 2 → 2/2, 1/2, 1/2. Recall: 2/3, 1/2, 1/1.
    np.testing.assert_allclose(precision(CM), [1.0, 0.5, 0.5])
    np.testing.assert_allclose(recall(CM), [2 / 3, 0.5, 1.0])
    # F1 = 2pr/(p+r): angry 2·(2/3)/(5/3) = 0.8, happy 0.5, sad 2·0.5/1.5 = 2/3.
    np.testing.assert_allclose(f1(CM), [0.8, 0.5, 2 / 3])
    assert macro_f1(CM) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_labels_never_seen_are_left_out_of_macro_f1() -> None:
    # A fourth label with no sample and no prediction does not drag the mean towards 0.
    padded = np.zeros((4, 4), np.int64)
    padded[:3, :3] = CM
    assert macro_f1(padded) == pytest.approx(macro_f1(CM))
    assert precision(padded)[3] == 0.0 and recall(padded)[3] == 0.0
    assert accuracy(np.zeros((2, 2), np.int64)) == 0.0 and macro_f1(np.zeros((2, 2), np.int64)) == 0.0


def test_top_confusions_with_counts_and_rates() -> None:
    cm = np.array([[5, 3, 0], [1, 8, 0], [0, 3, 1]])
    top = top_confusions(cm, LABELS, k=2)
    # Two cells of 3: sad→happy (3 of 4 sad samples) outranks angry→happy (3 of 8) on rate.
    assert top == [Confusion("sad", "happy", 3, 0.75), Confusion("angry", "happy", 3, 3 / 8)]
    assert [c.to_dict() for c in top_confusions(cm, LABELS, k=5)][-1] == \
        {"true": "happy", "predicted": "angry", "count": 1, "rate": round(1 / 9, 6), "base_rate": 0.0}
    # The chance baseline: how often the other labels (here: sad) are predicted as "happy" too.
    assert top[0].base_rate == pytest.approx(3 / 8) and top[1].base_rate == pytest.approx(3 / 4)
    assert len(top_confusions(cm, LABELS, k=10)) == 3  # empty cells are not mistakes
    assert top_confusions(np.eye(3, dtype=np.int64), LABELS) == []


def test_bad_matrices_are_refused() -> None:
    with pytest.raises(InputError, match="square"):
        accuracy(np.zeros((2, 3), np.int64))
    with pytest.raises(InputError, match="integer"):
        accuracy(np.full((2, 2), 0.5))
    with pytest.raises(InputError, match="labels"):
        top_confusions(CM, ("a", "b"))


def test_mean_std_uses_the_sample_deviation() -> None:
    mean, std = mean_std([0.5, 0.7, 0.9])
    assert mean == pytest.approx(0.7) and std == pytest.approx(0.2)  # sqrt((0.04 + 0 + 0.04) / 2)
    assert mean_std([0.8]) == (0.8, 0.0)
    with pytest.raises(InputError):
        mean_std([])
