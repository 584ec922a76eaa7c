"""The paper's last claim, that the model's mistakes are human-like: the model's most frequent
confusions set beside what is published about human observers of posed expressions.

Only what could be read and cited is used. Human confusion *rates* for the datasets here (the
RaFD validation study, Langner et al. 2010, Cognition & Emotion 24(8):1377-1388; CFEE's in Du,
Tao & Martinez 2014) were not available to this project, so no human rate is shown anywhere:
inventing them would be worse than leaving them out. What is cited is which pairs humans are
known to confuse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from fer.metrics import Confusion


@dataclass(frozen=True)
class HumanConfusion:
    """A pair of posed expressions human observers are reported to confuse (either way round)."""

    pair: frozenset[str]
    source: str


#: Pairs reported in the literature, with the source read for each; no rates (see the module text).
HUMAN_CONFUSIONS: tuple[HumanConfusion, ...] = (
    HumanConfusion(frozenset({"fear", "surprise"}),
                   "Wingenbach, Ashwin & Brosnan 2016, PLoS ONE 11(1):e0147112 (ADFES-BIV): fear confused with "
                   "surprise, a confusion they call typical and previously reported"),
    HumanConfusion(frozenset({"disgust", "angry"}),
                   "Wingenbach, Ashwin & Brosnan 2016, PLoS ONE 11(1):e0147112 (ADFES-BIV): disgust confused with "
                   "anger, likewise typical"),
)

#: What every report says about the missing human rates.
NO_HUMAN_RATES = ("Human confusion rates for these datasets (RaFD: Langner et al. 2010; CFEE: Du et al. 2014) "
                  "could not be read here (no copy of their tables), so none are shown and no model is compared "
                  "with them; pairs marked 'human-like' are those the cited studies report humans confusing.")


def human_match(confusion: Confusion) -> HumanConfusion | None:
    """The published human confusion this model confusion matches (same pair, either direction), or None."""
    pair = frozenset({confusion.true, confusion.predicted})
    return next((h for h in HUMAN_CONFUSIONS if h.pair == pair), None)


#: One-sided significance level at which a confusion counts as above its chance baseline.
ALPHA = 0.05


def binomial_tail(count: int, n: int, p: float) -> float:
    """P(X >= count) for X ~ Binomial(n, p): how likely ``count`` such mistakes in ``n`` samples are
    if each sample were mistaken that way at the chance rate ``p``."""
    if count <= 0:
        return 1.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return float(min(1.0, sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(count, n + 1))))


def above_chance(confusion: Confusion) -> tuple[bool, float | None]:
    """Whether ``confusion`` is more frequent than its chance baseline (`fer.metrics.Confusion.base_rate`:
    how often the model gives that answer to the other labels), by a one-sided binomial test at
    `ALPHA`; returns ``(above, p_value)`` (``(False, None)`` without a baseline)."""
    if confusion.base_rate is None or confusion.rate <= 0:
        return False, None
    n = max(confusion.count, round(confusion.count / confusion.rate))
    p_value = binomial_tail(confusion.count, n, confusion.base_rate)
    return confusion.rate > confusion.base_rate and p_value < ALPHA, p_value


def describe(confusion: Confusion) -> str:
    """``true → predicted: count (rate of true)``, with a mark for pairs humans are known to confuse:
    "[human-like: …]" only when the confusion is above its chance baseline, else "[human pair, not
    above chance: …]" (a model answering one label for everything makes every pair with it)."""
    text = f"{confusion.true} → {confusion.predicted}: {confusion.count} ({confusion.rate:.1%} of {confusion.true})"
    if not human_match(confusion):
        return text
    base = confusion.base_rate
    if base is None:
        return f"{text}  [human pair; no other class to set a chance baseline]"
    above, p_value = above_chance(confusion)
    chance = f"chance {base:.1%}: how often the model answers {confusion.predicted} for the other classes"
    if above:
        return f"{text}  [human-like: above {chance}; p {p_value:.2g}]"
    return f"{text}  [human pair, not above {chance}; p {p_value:.2g}]"


def notes(confusions: Sequence[Confusion]) -> list[str]:
    """The sources of the human-like marks among ``confusions``, then the note on missing human rates."""
    sources = list(dict.fromkeys(m.source for c in confusions if (m := human_match(c))))
    baseline = ([f"A pair is human-like only above its chance baseline (one-sided binomial test, p < {ALPHA}): "
                 "the rate at which the model gives the same answer to the images of the other classes."]
                if sources else [])
    return [f"human-like: {s}" for s in sources] + baseline + [NO_HUMAN_RATES]


def confusion_lines(confusions: Sequence[Confusion]) -> list[str]:
    """One plain-text line per confusion (`describe`), then its `notes`."""
    return [describe(c) for c in confusions] + notes(confusions)
