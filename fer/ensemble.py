"""Ensembles of expression CNNs: the mean of the members' probabilities over the labels they share.

An ensemble is registered by name in `fer.weights.REGISTRY` (kind ``ensemble``: member model names,
main member first; `fer.models.ENSEMBLES` lists them) and loads like any model: ``fer.load("ensemble")``,
``fer.zoo.load_model("ensemble")``, ``python -m fer predict --model ensemble``,
``evaluate(model="ensemble")``. Each member is fed its own input, cut and preprocessed as its spec
says (`fer.crops.CropStyle`); the ensemble's output is over the shared labels, in the main member's
order.

What an ensemble cannot average honestly it takes from the main member, and says so: Grad-CAM is the
main member's map for the ensemble's class (the members' crops differ in geometry, so their maps
do not overlay), and the spec's preprocessing fields describe the main member's input (what
`fer.pipeline.Prediction.model_input` shows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from fer.errors import InputError
from fer.models import ENSEMBLES, Engine, LoadedModel, ModelSpec, load_network


def project(probabilities: np.ndarray, labels: Sequence[str], onto: Sequence[str]) -> np.ndarray:
    """Probabilities over ``labels`` re-expressed over ``onto``.

    Labels of ``onto`` missing from ``labels`` get 0; each row is renormalised over the labels both
    share (dropping a label the other side lacks must not leave rows summing to less than 1).

    Args:
        probabilities: ``(N, len(labels))`` float32, rows sum to 1.
    Returns:
        ``(N, len(onto))`` float32, rows sum to 1 (0 where no label is shared).
    """
    if tuple(labels) == tuple(onto):
        return probabilities
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(probabilities), len(onto)), np.float32)
    for j, label in enumerate(onto):
        if label in index:
            out[:, j] = probabilities[:, index[label]]
    total = out.sum(axis=1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


@dataclass(frozen=True)
class Ensemble:
    """Loaded member networks and the spec that describes their combination.

    Attributes:
        spec: the ensemble's `ModelSpec`: its name, ``labels`` (those every member has, in the main
            member's order), licences, sources and training data of all members; ``architecture`` is
            ``"ensemble"`` (nothing to build); the preprocessing and crop fields are the main member's.
        members: the networks, main member first.
    """

    spec: ModelSpec
    members: tuple[LoadedModel, ...]
    path: Path | None = field(default=None, compare=False)

    @property
    def main(self) -> LoadedModel:
        """The main member: its labels' order, its input shown, its Grad-CAM."""
        return self.members[0]

    @property
    def module(self) -> torch.nn.Module:
        """The main member's PyTorch network."""
        return self.main.module

    @property
    def device(self) -> torch.device:
        """Device of the members."""
        return self.main.device

    @property
    def engine(self) -> str:
        """What runs the members, e.g. ``"opencv"``, or ``"opencv+torch"`` when they differ."""
        return "+".join(dict.fromkeys(m.engine for m in self.members))

    def combine(self, member_probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from each member's own.

        Args:
            member_probabilities: per member (in `members` order), ``(N, C_m)`` float32 over its labels.
        Returns:
            ``(N, C)`` float32 over ``spec.labels``: the mean of the members' probabilities, each first
            renormalised over the shared labels (`project`); rows sum to 1.
        """
        if len(member_probabilities) != len(self.members):
            raise ValueError(f"{len(member_probabilities)} probability arrays for {len(self.members)} members")
        projected = [project(p, m.spec.labels, self.spec.labels)
                     for p, m in zip(member_probabilities, self.members, strict=True)]
        return np.mean(projected, axis=0).astype(np.float32)


def ensemble_spec(name: str, members: Sequence[ModelSpec]) -> ModelSpec:
    """The spec of an ensemble of ``members`` (main member first); see `Ensemble.spec`."""
    main = members[0]
    shared = [label for label in main.labels if all(label in m.labels for m in members[1:])]
    if not shared:
        raise InputError(f"ensemble {name!r}: its members share no label")
    names = ", ".join(m.name for m in members)
    return ModelSpec(
        name=name, architecture="ensemble", input_size=main.input_size, colour=main.colour, mean=main.mean,
        std=main.std, labels=tuple(shared), weights="", sha256="",
        licence="; ".join(f"{m.name}: {m.licence}" for m in members),
        source=f"mean of the probabilities of {names} over their shared labels",
        training_data="; ".join(f"{m.name}: {m.training_data}" for m in members),
        saliency_input=main.saliency_input, saliency_floor=main.saliency_floor, margin=main.margin, crop=main.crop,
        notes=(f"Ensemble of {names}: each member gets its own crop and preprocessing; the probabilities are "
               f"averaged with equal weights. Grad-CAM is {main.name}'s map for the ensemble's class. "
               "Accuracy not measured here."),
    )


def load_ensemble(name: str, device: str | torch.device = "cpu", engine: Engine = "auto") -> Ensemble:
    """Load the registered ensemble ``name`` (a key of `fer.models.ENSEMBLES`); see `fer.zoo.load_model`."""
    try:
        names = ENSEMBLES[name]
    except KeyError:
        raise InputError(f"unknown ensemble {name!r}; known: {', '.join(sorted(ENSEMBLES))}") from None
    members = tuple(load_network(member, device=device, engine=engine) for member in names)
    return Ensemble(ensemble_spec(name, [m.spec for m in members]), members)
