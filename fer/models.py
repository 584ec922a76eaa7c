"""Expression CNNs: the `ModelSpec` that travels with every checkpoint, the architecture registry,
the registry of named pretrained models, preprocessing, and loading/saving checkpoints.

A checkpoint is two files side by side: ``NAME.safetensors`` (tensors only, no pickle) and
``NAME.json`` (the `ModelSpec`). Loading never needs the caller to know the preprocessing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from torch import nn

from fer.backbones import BUILTIN, Architecture
from fer.errors import InputError, WeightsError
from fer.weights import WEIGHTS_DIR, JsonSpec, load_state_dict, resolve

#: Canonical expression names, used everywhere; datasets map their own names onto these.
CANONICAL_LABELS: tuple[str, ...] = (
    "angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt",
)

#: Spellings found in datasets and papers, mapped onto the canonical names.
LABEL_SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt", "contemptuous": "contempt",
}


def canonical_label(name: str) -> str | None:
    """Map a dataset's label spelling (``"Happiness"``, ``"fearful"``) to its canonical name.

    Returns None for names outside the canonical set (e.g. CFEE compound categories keep their own
    names and are handled by the dataset loader).
    """
    return LABEL_SYNONYMS.get(name.strip().lower().replace("-", "_").replace(" ", "_"))


@dataclass(frozen=True)
class ModelSpec(JsonSpec):
    """Everything needed to rebuild, feed and describe a model; saved as JSON beside its weights.

    ``mean``/``std`` apply to pixels scaled to [0, 1]: ``x = (pixel / 255 - mean) / std``.
    ``saliency_input`` names the saliency predictor whose map multiplied the face crop during
    training (None: plain crops), with ``saliency_floor`` the floor used
    (``crop * (floor + (1 - floor) * map)``; 0.0 means pure products).
    ``evaluation`` holds measured metrics: ``{"dataset", "split", "n", "accuracy", "macro_f1",
    "labels", "confusion", "per_class"}`` (rows of ``confusion`` are true labels).
    """

    KIND: ClassVar[str] = "model spec"
    TUPLE_FIELDS: ClassVar[tuple[str, ...]] = ("mean", "std", "labels")

    name: str
    architecture: str
    input_size: int
    colour: Literal["grey", "rgb"]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    labels: tuple[str, ...]
    weights: str
    sha256: str
    licence: str = "unknown"
    source: str = ""
    training_data: str = ""
    saliency_input: str | None = None
    saliency_floor: float = 0.0
    margin: float | None = None
    hf_repo: str | None = None
    evaluation: Mapping[str, Any] | None = None
    training: Mapping[str, Any] | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        channels = 1 if self.colour == "grey" else 3
        if self.colour not in ("grey", "rgb"):
            raise WeightsError(f"spec {self.name!r}: colour must be 'grey' or 'rgb', not {self.colour!r}")
        if len(self.mean) != channels or len(self.std) != channels:
            raise WeightsError(f"spec {self.name!r}: mean/std need {channels} values for colour {self.colour!r}")
        if len(set(self.labels)) != len(self.labels) or not self.labels:
            raise WeightsError(f"spec {self.name!r}: labels must be non-empty and unique")

    @property
    def channels(self) -> int:
        """Input channels: 1 for grey, 3 for RGB."""
        return 1 if self.colour == "grey" else 3


# --------------------------------------------------------------------------- architectures


#: name → Architecture; the built-in families live in `fer.backbones`.
ARCHITECTURES: dict[str, Architecture] = dict(BUILTIN)


def register_architecture(name: str, arch: Architecture) -> None:
    """Add an architecture to the registry under ``name``."""
    ARCHITECTURES[name] = arch


def available_architectures() -> list[str]:
    """Names of the registered architectures (backbones), sorted."""
    return sorted(ARCHITECTURES)


def build_model(spec: ModelSpec, pretrained: bool = False) -> nn.Module:
    """Build the (untrained or ImageNet-initialised) network described by ``spec``."""
    try:
        arch = ARCHITECTURES[spec.architecture]
    except KeyError:
        raise WeightsError(
            f"unknown architecture {spec.architecture!r}; known: {', '.join(available_architectures())}"
        ) from None
    return arch.build(len(spec.labels), spec.channels, pretrained)


def cam_layer(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """The layer of ``model`` whose activations Grad-CAM uses."""
    return ARCHITECTURES[spec.architecture].cam_layer(model)


# --------------------------------------------------------------------------- preprocessing


def preprocess(crops: Sequence[np.ndarray] | np.ndarray, spec: ModelSpec) -> torch.Tensor:
    """Turn face crops into the model's input tensor.

    Args:
        crops: ``N`` crops, each ``(S, S, 3)`` uint8 RGB (any S).
        spec: the model's spec (input size, colour, mean/std).
    Returns:
        ``(N, C, input_size, input_size)`` float32 tensor, normalised as the spec says.
    """
    size = spec.input_size
    batch = np.empty((len(crops), size, size, 3), np.uint8)
    for i, crop in enumerate(crops):
        # INTER_AREA: the right filter for shrinking; crops are almost always larger than the input.
        interp = cv2.INTER_AREA if crop.shape[0] >= size else cv2.INTER_LINEAR
        batch[i] = crop if crop.shape[0] == size else cv2.resize(crop, (size, size), interpolation=interp)
    if spec.colour == "grey":
        # ITU-R 601 luma, the same weights as OpenCV's RGB2GRAY used to build FER2013-style inputs.
        x = batch.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        x = x[:, None]
    else:
        x = batch.astype(np.float32).transpose(0, 3, 1, 2)
    mean = np.asarray(spec.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, -1, 1, 1)
    x = (x / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# --------------------------------------------------------------------------- named models


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode with the spec that describes it."""

    module: nn.Module
    spec: ModelSpec
    path: Path | None = field(default=None, compare=False)


#: Named pretrained models: name → spec JSON shipped in ``weights/``.
PRETRAINED: dict[str, Path] = {
    "mini_xception_fer2013": WEIGHTS_DIR / "mini_xception_fer2013.json",
}

#: Short names for the models above.
ALIASES: dict[str, str] = {"default": "mini_xception_fer2013"}


def available_models() -> list[str]:
    """Names accepted by `fer.load` / `load_model`: aliases first, then registered models."""
    return sorted(ALIASES) + sorted(PRETRAINED)


def spec_path_for(name_or_path: str | Path) -> Path:
    """Find the spec JSON for a registered name, a ``.json``/``.safetensors`` path, or a folder.

    A folder must hold exactly one spec (``best.json`` preferred, as written by training).
    """
    name = str(name_or_path)
    name = ALIASES.get(name, name)
    if name in PRETRAINED:
        return PRETRAINED[name]
    path = Path(name).expanduser()
    if path.is_dir():
        for candidate in ("best.json", "model.json"):
            if (path / candidate).is_file():
                return path / candidate
        specs = sorted(path.glob("*.json"))
        if len(specs) == 1:
            return specs[0]
        raise WeightsError(f"{path}: expected one model spec .json in the folder, found {len(specs)}")
    if path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if path.suffix == ".json" and path.is_file():
        return path
    raise InputError(
        f"unknown model {name_or_path!r}: not a registered name ({', '.join(available_models())}) "
        "nor an existing checkpoint (.json spec beside its .safetensors)"
    )


def load_model(name_or_path: str | Path = "default", device: str | torch.device = "cpu") -> LoadedModel:
    """Load a registered model or a checkpoint, verified by SHA-256, in eval mode on ``device``."""
    spec_path = spec_path_for(name_or_path)
    spec = ModelSpec.load(spec_path)
    weights_path = resolve(spec.weights, spec.sha256, hf_repo=spec.hf_repo, search_dirs=[spec_path.parent])
    module = build_model(spec, pretrained=False)
    state = load_state_dict(weights_path, spec.sha256)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise WeightsError(f"{weights_path} does not fit architecture {spec.architecture!r}: {first}") from None
    module.eval().to(device)
    fold = getattr(module, "fold_batchnorm", None)
    if callable(fold):
        fold()
    # oneDNN convolutions are much faster channels-last on CPU (2.9x for the mini-Xception at batch 5).
    module.to(memory_format=torch.channels_last)
    return LoadedModel(module=module, spec=spec, path=spec_path)


def predict_probabilities(loaded: LoadedModel, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Classify face crops in one batch.

    Args:
        loaded: a model from `load_model`.
        crops: ``N`` crops, each ``(S, S, 3)`` uint8 RGB — already multiplied by a saliency map when the
            model expects saliency input.
    Returns:
        ``(N, C)`` float32 probabilities (softmax over ``loaded.spec.labels``), rows sum to 1.
    """
    if len(crops) == 0:
        return np.zeros((0, len(loaded.spec.labels)), np.float32)
    device = next(loaded.module.parameters()).device
    with torch.inference_mode():
        logits = loaded.module(preprocess(crops, loaded.spec).to(device, memory_format=torch.channels_last))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def save_checkpoint(module: nn.Module, spec: ModelSpec, out_dir: str | Path, stem: str = "model") -> ModelSpec:
    """Save ``module``'s weights as ``OUT/STEM.safetensors`` and the spec (with the file's SHA-256)
    as ``OUT/STEM.json``. Returns the spec as written."""
    from safetensors.torch import save_file

    from fer.weights import sha256_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights_file = out / f"{stem}.safetensors"
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(weights_file))
    spec = dataclasses.replace(spec, weights=weights_file.name, sha256=sha256_file(weights_file))
    spec.save(out / f"{stem}.json")
    return spec
