"""One expression CNN: the `ModelSpec` that travels with every checkpoint, the architecture registry,
the views of the named pretrained models, preprocessing, and loading/saving one network
(`load_network`). Ensembles build on this module (`fer.ensemble`), never the other way round; loading
any model by name, ensembles too, is `fer.zoo.load_model`.

A checkpoint is two files side by side: ``NAME.safetensors`` (tensors only, no pickle) and
``NAME.json`` (the `ModelSpec`). Loading never needs the caller to know the preprocessing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
import numpy as np
import torch
from torch import nn

from fer import opencv_dnn
from fer.backbones import BUILTIN, Architecture
from fer.errors import InputError, WeightsError
from fer.gradcam import FeatureTap, LinearHeadCam
from fer.weights import ALIASES, REGISTRY, WEIGHTS_DIR, JsonSpec, load_state_dict, names, resolve, spec_file

log = logging.getLogger(__name__)

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
    ``published`` cites the best published figure for these weights, never measured by us:
    ``{"accuracy", "dataset", "split", "n", "n_note", "source", "quote", "reference", "unlike"}``
    (accuracy in [0, 1]; ``n`` the test images it was scored on, ``n_note`` where that n comes from;
    ``quote`` the source's words; ``reference`` what to compare it with; ``unlike`` what it does
    not tell), or ``{"none": why}`` when nothing is published.
    ``crop`` and ``margin`` say how the face crop the model was trained on is cut (see
    `fer.crops.CropStyle`): ``"aligned"``, our eye-levelled square, or ``"box"``, the detector's
    axis-aligned box zero-padded to a centred square (face-api's way); ``margin`` None means the
    pipeline's default.
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
    crop: Literal["aligned", "box"] = "aligned"
    hf_repo: str | None = None
    evaluation: Mapping[str, Any] | None = None
    published: Mapping[str, Any] | None = None
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
        if self.crop not in ("aligned", "box"):
            raise WeightsError(f"spec {self.name!r}: crop must be 'aligned' or 'box', not {self.crop!r}")

    @property
    def channels(self) -> int:
        """Input channels: 1 for grey, 3 for RGB."""
        return 1 if self.colour == "grey" else 3


# --------------------------------------------------------------------------- architectures


#: name → Architecture; the built-in families live in `fer.backbones`.
ARCHITECTURES: dict[str, Architecture] = dict(BUILTIN)


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
    """`preprocess_array` as a ``(N, C, input_size, input_size)`` float32 CPU tensor (shares memory)."""
    return torch.from_numpy(preprocess_array(crops, spec))


def preprocess_array(crops: Sequence[np.ndarray] | np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Turn face crops into the model's input.

    Args:
        crops: ``N`` crops, each ``(S, S, 3)`` uint8 RGB (any S).
        spec: the model's spec (input size, colour, mean/std).
    Returns:
        ``(N, C, input_size, input_size)`` float32 C-contiguous array, normalised as the spec says.
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
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------- named models


#: Inference engines for `load_model`: ``"auto"`` is OpenCV DNN on the CPU when the network exports
#: and passes the parity check, else PyTorch.
Engine = Literal["auto", "opencv", "torch"]
ENGINES: tuple[str, ...] = ("auto", "opencv", "torch")


#: Which class each Grad-CAM map explains: indices, a function of the ``(N, K)`` probabilities, or
#: None for each input's top-1 (`LoadedModel.classify`).
Targets = Sequence[int] | Callable[[np.ndarray], Sequence[int]] | None


@dataclass(frozen=True)
class LoadedModel:
    """A network in eval mode with the spec that describes it, and the engine that runs it.

    ``module`` is always the PyTorch network (Grad-CAM's backward pass, training, inspection);
    ``net`` is its OpenCV DNN copy when ``engine == "opencv"``. ``cam`` computes Grad-CAM from the
    forward pass's features alone when the architecture's head is affine (`fer.gradcam.LinearHeadCam`).
    """

    module: nn.Module
    spec: ModelSpec
    path: Path | None = field(default=None, compare=False)
    engine: Literal["opencv", "torch"] = "torch"
    net: opencv_dnn.OpenCVNet | None = field(default=None, compare=False, repr=False)
    cam: LinearHeadCam | None = field(default=None, compare=False, repr=False)
    tap: FeatureTap | None = field(default=None, compare=False, repr=False)

    @property
    def device(self) -> torch.device:
        """Device of the PyTorch module."""
        return next(self.module.parameters()).device

    def run(self, x: np.ndarray, features: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """One forward pass on preprocessed input (see `preprocess_array`), on the model's engine;
        `classify` builds on it.

        Args:
            x: ``(N, C, input_size, input_size)`` float32.
            features: also return the Grad-CAM layer's output (needs ``cam``, i.e. a linear head).
        Returns:
            ``(N, K)`` float32 logits and ``(N, D, h, w)`` float32 features (None unless asked).
        """
        if features and self.tap is None and self.net is None:
            raise ValueError(f"{self.spec.architecture}: features are only kept for architectures with a linear head")
        if self.net is not None:
            logits, feats = self.net(x)
            return logits, feats if features else None
        t = torch.from_numpy(x).to(self.device, memory_format=torch.channels_last)
        with torch.inference_mode():
            if features and self.tap is not None:
                out, kept = self.tap(self.module, t)
                return out.float().cpu().numpy(), kept.float().cpu().numpy()
            return self.module(t).float().cpu().numpy(), None

    def classify(self, x: np.ndarray, *, attention: bool = False, targets: Targets = None,
                 size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The one classifier call: probabilities and, when asked, Grad-CAM maps from the same forward pass.

        Args:
            x: ``(N, C, input_size, input_size)`` float32 from `preprocess_array`.
            attention: also compute Grad-CAM maps.
            targets: the class index (of ``spec.labels``) each map explains, or a function of the
                ``(N, K)`` probabilities that picks them (an ensemble's classes); default: each
                input's top-1.
            size: side ``S`` of the maps (default: the feature map's).
        Returns:
            ``(N, K)`` float32 probabilities over ``spec.labels`` (rows sum to 1), and ``(N, S, S)``
            float32 maps in [0, 1] (None without ``attention``).
        """
        if not attention:
            return softmax(self.run(x)[0]), None
        if self.cam is not None:
            # Affine head: Grad-CAM's channel weights are constants; the forward pass's features suffice.
            logits, features = self.run(x, features=True)
            assert features is not None
            probs = softmax(logits)
            return probs, self.cam(features, _chosen(targets, probs), size)
        from fer.gradcam import grad_cam

        t = torch.from_numpy(x).to(self.device, memory_format=torch.channels_last)
        maps, scores = grad_cam(self.module, cam_layer(self.module, self.spec), t,
                                lambda out: _chosen(targets, softmax(out.float().cpu().numpy())),
                                size=size, return_logits=True)
        return softmax(scores.float().cpu().numpy()), maps


def _chosen(targets: Targets, probs: np.ndarray) -> list[int]:
    if targets is None:
        return [int(i) for i in probs.argmax(axis=1)]
    return [int(t) for t in (targets(probs) if callable(targets) else targets)]


#: Registered expression CNNs (`fer.weights.REGISTRY`): name → spec JSON in the shipped weights.
PRETRAINED: dict[str, Path] = {name: WEIGHTS_DIR / REGISTRY[name].spec for name in names("expression")}

#: Registered ensembles (`fer.ensemble`): name → member models, the main member first (its label
#: order, its Grad-CAM, its crop shown as the model input).
ENSEMBLES: dict[str, tuple[str, ...]] = {name: REGISTRY[name].members for name in names("ensemble")}


def spec_path_for(name_or_path: str | Path) -> Path:
    """Find the spec JSON for a registered name, a ``.json``/``.safetensors`` path, or a folder.

    A folder must hold exactly one spec (``best.json`` preferred, as written by training).
    """
    name = str(name_or_path)
    name = ALIASES.get(name, name)
    if name in PRETRAINED:
        return spec_file(name)
    if name in ENSEMBLES:
        raise InputError(f"{name!r} is an ensemble of {', '.join(ENSEMBLES[name])}: it has no spec file of its own "
                         "(load it with fer.zoo.load_model or fer.load)")
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
        f"unknown model {name_or_path!r}: not a registered name ({', '.join([*ALIASES, *PRETRAINED, *ENSEMBLES])}) "
        "nor an existing checkpoint (.json spec beside its .safetensors)"
    )


def load_network(
    name_or_path: str | Path = "default", device: str | torch.device = "cpu", engine: Engine = "auto"
) -> LoadedModel:
    """Load one network (a registered model or a checkpoint), verified by SHA-256, in eval mode on ``device``.

    ``engine``: ``"auto"`` runs the network on OpenCV DNN when ``device`` is the CPU and the network
    exports to ONNX with the same outputs as PyTorch (else PyTorch, with the reason logged);
    ``"opencv"`` insists on it (`WeightsError` if impossible); ``"torch"`` keeps PyTorch.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    device = torch.device(device)
    spec_path = spec_path_for(name_or_path)
    spec = ModelSpec.load(spec_path)
    name = ALIASES.get(str(name_or_path), str(name_or_path))
    howto = {"howto": REGISTRY[name].howto} if name in PRETRAINED else {}
    weights_path = resolve(spec.weights, spec.sha256, hf_repo=spec.hf_repo, search_dirs=[spec_path.parent], **howto)
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
    # oneDNN's CPU convolutions are much faster channels-last (benchmarks/README.md).
    module.to(memory_format=torch.channels_last)
    arch = ARCHITECTURES[spec.architecture]
    layer = arch.cam_layer(module)
    input_shape = (spec.channels, spec.input_size, spec.input_size)
    cam = tap = None
    if arch.linear_head is not None:
        tap = FeatureTap(layer)
        with torch.inference_mode():
            _, probe = tap(module, torch.zeros((1, *input_shape), device=device))
        cam = LinearHeadCam(arch.linear_head(module), tuple(probe.shape[1:]), device=device)
    net = None
    if engine == "opencv" or (engine == "auto" and device.type == "cpu"):
        net = _opencv_net(module, layer, input_shape, spec, device, required=engine == "opencv")
    return LoadedModel(module=module, spec=spec, path=spec_path, engine="opencv" if net else "torch", net=net,
                       cam=cam, tap=tap)


def _opencv_net(module: nn.Module, layer: nn.Module, input_shape: tuple[int, int, int], spec: ModelSpec,
                device: torch.device, required: bool) -> opencv_dnn.OpenCVNet | None:
    """The OpenCV DNN copy of ``module``, or None (reason logged) when ``required`` is False."""
    try:
        if device.type != "cpu":
            raise RuntimeError(f"OpenCV DNN runs on the CPU, not {device}")
        return opencv_dnn.build(module, layer, input_shape,
                                key=opencv_dnn.cache_key(spec.sha256, spec.architecture, input_shape))
    except Exception as exc:  # noqa: BLE001 - any failure means: keep PyTorch, and say why
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if required:
            raise WeightsError(f"model {spec.name!r} cannot run on OpenCV DNN: {reason}") from None
        log.info("model %r runs on PyTorch: the OpenCV DNN export was refused (%s)", spec.name, reason)
        return None


def predict_probabilities(loaded: LoadedModel, crops: Sequence[np.ndarray] | np.ndarray, *, batch_size: int = 64,
                          progress: bool = False) -> np.ndarray:
    """Classify face crops, ``batch_size`` at a time (`LoadedModel.classify` on `preprocess_array`).

    Args:
        loaded: a model from `load_network`.
        crops: ``N`` crops, each ``(S, S, 3)`` uint8 RGB — already multiplied by a saliency map when the
            model expects saliency input (`fer.saliency.weight_by_saliency`).
        progress: show a progress bar over the batches.
    Returns:
        ``(N, C)`` float32 probabilities (softmax over ``loaded.spec.labels``), rows sum to 1.
    """
    out = np.zeros((len(crops), len(loaded.spec.labels)), np.float32)
    starts: Iterable[int] = range(0, len(crops), max(1, batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="classify", unit="batch", leave=False)
    for start in starts:
        out[start:start + batch_size] = loaded.classify(preprocess_array(crops[start:start + batch_size], loaded.spec))[0]
    return out


def softmax(logits: np.ndarray) -> np.ndarray:
    """``(N, K)`` logits → ``(N, K)`` float32 probabilities, rows sum to 1."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


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
