"""The model zoo: everything `fer` loads by name — face detectors, expression networks, ensembles,
saliency predictors — with what it is, its licence, what it takes as input and its weights file.

`entries()` lists them (`fer.available_models(entries=True)` the expression models among them);
`load_model` loads an expression model or ensemble by name or checkpoint path. The entries are
views of the two registries that hold the builders: `fer.weights.REGISTRY` (every weights file)
and `fer.saliency.SALIENCY_REGISTRY` (every predictor, the weightless ones too). Importing this
module loads no torch; `entries()` reads the shipped spec JSONs, not the networks.

    >>> import fer
    >>> [(e.name, e.licence) for e in fer.available_models(entries=True)]
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, overload

from fer.errors import InputError
from fer.weights import ALIASES, REGISTRY, Kind, local_spec

if TYPE_CHECKING:
    import torch

    from fer.ensemble import Ensemble
    from fer.models import Engine, LoadedModel

#: Where the shipped detectors come from (weights/README.md has the full record).
_DETECTOR_LICENCE = "Apache-2.0 (Google, from the mediapipe 0.10.21 wheel)"
_OWN_LICENCE = "MIT (this package; no weights)"


@dataclass(frozen=True)
class ZooEntry:
    """One loadable thing.

    Attributes:
        name: what `fer.load`, ``--model``, ``--saliency`` and the app take.
        kind: ``"detector"``, ``"expression"``, ``"ensemble"`` or ``"saliency"``.
        description: one line.
        licence: of the weights (or of this package, for what has none); ``"unknown"`` when the
            weights' spec is not here (a Hub-only or not yet trained ML-Net).
        input: what it takes, e.g. ``"64×64 grey, aligned crop, margin 0.2"``.
        weights: the weights file name; ``""`` for what has none (computed predictors, ensembles).
        members: an ensemble's networks, main member first.
    """

    name: str
    kind: Kind
    description: str
    licence: str
    input: str
    weights: str = ""
    members: tuple[str, ...] = ()


def _spec_json(name: str) -> dict | None:
    """A registered network's shipped spec, read as plain JSON (no torch); None when not here."""
    path = local_spec(name)
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _network_input(spec: dict) -> str:
    margin = spec.get("margin")
    margin_text = "the pipeline's margin (0.2)" if margin is None else f"margin {margin:g}"
    fed = f", × {spec['saliency_input']} saliency" if spec.get("saliency_input") else ""
    return f"{spec['input_size']}×{spec['input_size']} {spec['colour']}, {spec.get('crop', 'aligned')} crop, {margin_text}{fed}"


@functools.cache
def _entries() -> tuple[ZooEntry, ...]:
    from fer.blazeface import LAYOUTS
    from fer.saliency import SALIENCY_REGISTRY

    found: list[ZooEntry] = []
    for name, reg in REGISTRY.items():
        if reg.kind == "detector":
            side = LAYOUTS[reg.spec].input_size
            found.append(ZooEntry(name, "detector", reg.description, _DETECTOR_LICENCE,
                                  f"any RGB image, letterboxed to {side}×{side}", reg.weights))
        elif reg.kind == "expression":
            spec = _spec_json(name)
            found.append(ZooEntry(name, "expression", reg.description, str((spec or {}).get("licence", "unknown")),
                                  _network_input(spec) if spec else "see its spec", str((spec or {}).get("weights", ""))))
        elif reg.kind == "ensemble":
            specs = [_spec_json(m) or {} for m in reg.members]
            # Each member's licence name, without the copyright notes its own entry carries.
            licences = "; ".join(dict.fromkeys(str(s.get("licence", "unknown")).split(" (")[0] for s in specs))
            found.append(ZooEntry(name, "ensemble", reg.description, f"its members': {licences}",
                                  "each member its own crop: " + "; ".join(
                                      f"{m} {_network_input(s)}" for m, s in zip(reg.members, specs, strict=True) if s),
                                  members=reg.members))
    for name, predictor in SALIENCY_REGISTRY.items():
        if name not in REGISTRY:  # computed from the crop and its keypoints
            found.append(ZooEntry(name, "saliency", predictor.description, _OWN_LICENCE,
                                  "(N, S, S, 3) uint8 RGB face crops and their 6 keypoints"))
        else:
            spec = _spec_json(name) or {}
            found.append(ZooEntry(name, "saliency", predictor.description, str(spec.get("licence", "unknown")),
                                  "(N, S, S, 3) uint8 RGB face crops, resized to the network's input",
                                  str(spec.get("weights", f"{name}.safetensors"))))
    return tuple(found)


def entries(kind: Kind | None = None) -> list[ZooEntry]:
    """Every loadable thing (of one ``kind``), in registry order."""
    return [e for e in _entries() if kind is None or e.kind == kind]


def entry(name: str) -> ZooEntry:
    """The zoo entry ``name`` (aliases allowed). Raises `fer.InputError` listing the names."""
    name = ALIASES.get(name, name)
    for e in _entries():
        if e.name == name:
            return e
    raise InputError(f"nothing named {name!r} in the zoo; known: {', '.join(e.name for e in _entries())}")


@overload
def available_models(entries: Literal[False] = False) -> list[str]: ...
@overload
def available_models(entries: Literal[True]) -> list[ZooEntry]: ...
def available_models(entries: bool = False) -> list[str] | list[ZooEntry]:
    """Expression models `fer.load` takes by name: aliases first, then networks and ensembles
    (sorted); with ``entries`` their `ZooEntry` records instead (no aliases)."""
    models = sorted((e for e in _entries() if e.kind in ("expression", "ensemble")),
                    key=lambda e: (e.kind != "expression", e.name))
    if entries:
        return models
    return sorted(ALIASES) + [e.name for e in models]


def load_model(
    name_or_path: str | Path = "default", device: str | torch.device = "cpu", engine: Engine = "auto"
) -> LoadedModel | Ensemble:
    """Load a registered network or ensemble (a `fer.ensemble.Ensemble`) by name, or a checkpoint.

    Every network is verified by SHA-256 and put in eval mode on ``device``; ``engine`` as in
    `fer.models.load_network`.

    Raises:
        InputError: unknown name or path; WeightsError: missing or altered weights.
    """
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    reg = REGISTRY.get(name)
    if reg is not None and reg.kind == "ensemble":
        from fer.ensemble import load_ensemble

        return load_ensemble(name, device=device, engine=engine)
    if reg is not None and reg.kind not in ("expression",):
        raise InputError(f"{name!r} is a registered {reg.kind}, not an expression model")
    from fer.models import load_network

    return load_network(name_or_path, device=device, engine=engine)
