"""The paper's last claim, that the model's mistakes are human-like: the model's most frequent
confusions set beside what is published about human observers of posed expressions.

Only what could be read and cited is used. Human confusion *rates* for the datasets here (the
RaFD validation study, Langner et al. 2010, Cognition & Emotion 24(8):1377-1388; CFEE's in Du,
Tao & Martinez 2014) were not available to this project, so no human rate is shown anywhere:
inventing them would be worse than leaving them out. What is cited is which pairs humans are
known to confuse.
"""

from __future__ import annotations

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
                  "were not available here, so none are shown; pairs marked 'human-like' are those the cited "
                  "studies report humans confusing.")


def human_match(confusion: Confusion) -> HumanConfusion | None:
    """The published human confusion this model confusion matches (same pair, either direction), or None."""
    pair = frozenset({confusion.true, confusion.predicted})
    return next((h for h in HUMAN_CONFUSIONS if h.pair == pair), None)


def describe(confusion: Confusion) -> str:
    """``true → predicted: count (rate of true)``, marked "[human-like]" when humans are known to make it."""
    mark = "  [human-like]" if human_match(confusion) else ""
    return f"{confusion.true} → {confusion.predicted}: {confusion.count} ({confusion.rate:.1%} of {confusion.true}){mark}"


def notes(confusions: Sequence[Confusion]) -> list[str]:
    """The sources of the human-like marks among ``confusions``, then the note on missing human rates."""
    sources = list(dict.fromkeys(m.source for c in confusions if (m := human_match(c))))
    return [f"human-like: {s}" for s in sources] + [NO_HUMAN_RATES]


def confusion_lines(confusions: Sequence[Confusion]) -> list[str]:
    """One plain-text line per confusion (`describe`), then its `notes`."""
    return [describe(c) for c in confusions] + notes(confusions)
