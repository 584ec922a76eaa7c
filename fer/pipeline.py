"""The pipeline: image → faces → saliency → (face × saliency) → CNN → `Prediction` records.

    >>> import fer
    >>> pipe = fer.load()                      # shipped mini-Xception (FER2013) + BlazeFace detector
    >>> [p.top_k(3) for p in pipe("assets/astronaut.png")]
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fer.config import FIELDS, PipelineConfig
from fer.crops import DEFAULT_MARGIN, CropStyle
from fer.ensemble import Ensemble, project
from fer.errors import InputError
from fer.face import Face, FaceDetector
from fer.io import ImageSource, read_image
from fer.models import Engine, LoadedModel, ModelSpec, load_network, preprocess_array
from fer.saliency import DEFAULT_SALIENCY_FLOOR, SaliencyPredictor, load_saliency, weight_by_saliency
from fer.zoo import load_model

#: Saliency predictor used for the CNN input when the model's spec names none.
DEFAULT_INPUT_SALIENCY = "face-prior"


@dataclass(frozen=True, eq=False)
class Prediction:
    """Result for one face.

    Attributes:
        face: the detected face (box, score, keypoints, crop).
        labels: the model's label names, length ``C``.
        probabilities: ``(C,)`` float32, sums to 1, in the order of ``labels``.
        model_input: ``(S, S, 3)`` uint8 RGB — the crop exactly as the CNN saw it (the face × saliency
            product when saliency input is on, else the plain crop), before resizing.
        saliency: ``(S, S)`` float32 in [0, 1] aligned with ``crop`` (where humans would look), or None.
        saliency_name: the predictor that made ``saliency``, or None.
        attention: ``(S, S)`` float32 in [0, 1], Grad-CAM of the CNN for ``attention_label``, or None.
        attention_label: the class Grad-CAM explains, or None.
        attention_model: the network whose Grad-CAM ``attention`` is (an ensemble's main member), or None.
        members: every network the pipeline ran on this face (an ensemble's members, a second
            opinion), name → ``(C,)`` float32 probabilities over ``labels`` (each renormalised over the
            labels it shares with them; 0 for a label it lacks); empty for a single model alone.
    """

    face: Face
    labels: tuple[str, ...]
    probabilities: np.ndarray
    model_input: np.ndarray
    saliency: np.ndarray | None = None
    saliency_name: str | None = None
    attention: np.ndarray | None = None
    attention_label: str | None = None
    attention_model: str | None = None
    members: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` face box in image pixels."""
        return self.face.box

    @property
    def score(self) -> float:
        """Face detector confidence in [0, 1]."""
        return self.face.score

    @property
    def crop(self) -> np.ndarray:
        """``(S, S, 3)`` uint8 RGB eye-levelled face crop."""
        return self.face.crop

    @property
    def label(self) -> str:
        """The most probable expression."""
        return self.labels[int(np.argmax(self.probabilities))]

    def member_top1(self, name: str) -> tuple[str, float]:
        """``(label, probability)`` of network ``name``'s most probable expression (a key of `members`)."""
        try:
            probs = self.members[name]
        except KeyError:
            raise InputError(f"no network {name!r} ran on this face; these did: {', '.join(self.members)}") from None
        best = int(np.argmax(probs))
        return self.labels[best], float(probs[best])

    def agrees_with(self, name: str) -> bool:
        """Whether network ``name``'s top-1 is this prediction's `label`."""
        return self.member_top1(name)[0] == self.label

    def top_k(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(label, probability)`` pairs, most probable first."""
        order = np.argsort(-self.probabilities, kind="stable")[: max(1, k)]
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def to_dict(self, k: int = 3) -> dict[str, Any]:
        """JSON-ready summary: box, score and top-k."""
        return {
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "top_k": [{"label": lab, "probability": round(p, 4)} for lab, p in self.top_k(k)],
        }


class Pipeline:
    """Detector + optional saliency + expression CNN(s) (+ optional Grad-CAM), loaded once.

    The model is one network or an `fer.ensemble.Ensemble`; a second network may run beside it as a
    "second opinion". Every network gets the crop its spec was trained on, cut from the same
    detected face (`fer.face.Face.crop_in`); `Prediction.members` holds each one's probabilities.

    Build it with `fer.load` (from a `fer.PipelineConfig`). Thread-safe for concurrent calls (the detector serialises itself;
    the CNN runs under ``torch.inference_mode``).
    """

    def __init__(
        self,
        model: LoadedModel | Ensemble,
        detector: FaceDetector,
        saliency: str | None = None,
        saliency_input: bool | None = None,
        saliency_floor: float | None = None,
        attention: bool = False,
        second_opinion: LoadedModel | None = None,
        *,
        saliency_weights: str | None = None,
    ) -> None:
        spec = model.spec
        self.model = model
        members = model.members if isinstance(model, Ensemble) else (model,)
        #: The network whose input `Prediction.model_input` shows and whose Grad-CAM is computed:
        #: the model itself, or an ensemble's main member. Its crop is the detector's `Face.crop`.
        self.main: LoadedModel = members[0]
        #: Every network run on each face, by name, the main one first.
        self.networks: dict[str, LoadedModel] = {m.spec.name: m for m in members}
        if second_opinion is not None:
            self.networks.setdefault(second_opinion.spec.name, second_opinion)
        #: How each network's crop is cut (the main one's is the detector's `Face.crop`).
        self.styles = {name: detector.style if net is self.main else crop_style(net.spec)
                       for name, net in self.networks.items()}
        for name in self.styles:
            if self.networks[name] is not self.main and self.networks[name].spec.saliency_input is not None:
                raise InputError(f"{name} was trained on face × saliency input: only the main network can be fed that")
        self.detector = detector
        #: The settings it was built from (`fer.load`, `from_config`); None when assembled by hand.
        self.config: PipelineConfig | None = None
        self.attention = attention
        self.saliency_name = saliency
        #: Whether the CNN is fed face × saliency (the paper's method). The spec says what the model
        #: was trained with; an explicit argument overrides it.
        self.saliency_input = spec.saliency_input is not None if saliency_input is None else saliency_input
        self.input_saliency_name = spec.saliency_input or saliency or DEFAULT_INPUT_SALIENCY
        if saliency_floor is None:
            saliency_floor = spec.saliency_floor if spec.saliency_input else DEFAULT_SALIENCY_FLOOR
        if not 0.0 <= saliency_floor <= 1.0:
            raise InputError(f"saliency_floor must be in [0, 1], got {saliency_floor}")
        self.saliency_floor = saliency_floor
        needed = {n for n in (saliency, self.input_saliency_name if self.saliency_input else None) if n}
        #: The weights file given for a predictor that needs one (None: its default).
        self.saliency_weights = saliency_weights
        self._predictors = {name: load_saliency(name, device=str(self.device), weights=saliency_weights)
                            for name in sorted(needed)}

    @property
    def spec(self) -> ModelSpec:
        """The expression model's `fer.models.ModelSpec` (an ensemble's own, see `fer.ensemble.Ensemble.spec`)."""
        return self.model.spec

    @property
    def runs_as_trained(self) -> bool:
        """Whether the main network is fed as it was trained: its spec's crop margin, and its saliency
        input (and floor) or none (what a model card's evaluation measured; the detector's model and
        threshold are not compared)."""
        spec = self.main.spec
        if self.detector.margin != (DEFAULT_MARGIN if spec.margin is None else spec.margin):
            return False
        if self.saliency_input != (spec.saliency_input is not None):
            return False
        return not self.saliency_input or (self.input_saliency_name == spec.saliency_input
                                           and self.saliency_floor == spec.saliency_floor)

    @property
    def labels(self) -> tuple[str, ...]:
        """The expression labels, in probability order."""
        return self.model.spec.labels

    @property
    def device(self) -> torch.device:
        """Device the CNN runs on."""
        return self.main.device

    def __call__(
        self, image: ImageSource, *, attention: bool | None = None, target: str | None = None
    ) -> list[Prediction]:
        """Analyse every face in an image.

        Args:
            image: path, bytes, PIL image or ``(H, W, 3)`` uint8 RGB array.
            attention: compute Grad-CAM (defaults to the pipeline's setting).
            target: label Grad-CAM explains (default: each face's top-1).
        Returns:
            One `Prediction` per face, largest face first; ``[]`` when no face is found.
        """
        return self.predict_faces(self.detect(image), attention=attention, target=target)

    def detect(self, image: ImageSource) -> list[Face]:
        """Read the image, detect faces and cut each face's crop for every network (no
        classification): the detector's `Face.crop` for the main one, `Face.other_crops` for the
        others, each as its spec says (`styles`)."""
        rgb = read_image(image)
        others = [style for style in self.styles.values() if style != self.detector.style]
        return [face.with_crops(rgb, others) for face in self.detector(rgb)]

    def predictor(self, name: str) -> SaliencyPredictor:
        """The loaded saliency predictor ``name`` (the shown one, or `input_saliency_name`)."""
        return self._predictors[name]

    def saliency_maps(self, name: str, crops: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` float32 maps in [0, 1] from the named (already loaded) predictor."""
        return self._predictors[name](crops, keypoints)

    def predict_faces(
        self, faces: list[Face], *, attention: bool | None = None,
        target: str | Callable[[np.ndarray], Sequence[int]] | None = None,
    ) -> list[Prediction]:
        """Classify already-detected faces in one batch (see `__call__`).

        ``target`` may also be a function of the faces' ``(N, C)`` probabilities (over `labels`)
        that returns the class index each face's Grad-CAM explains: the caller picks the class
        from this very forward pass (Live explains the smoothed label, which needs this frame's
        probabilities), so one forward serves both. It is called once, when Grad-CAM is computed.
        """
        if not faces:
            return []
        crops = np.stack([f.crop for f in faces])
        keypoints = np.stack([f.crop_keypoints for f in faces])
        shown = self.saliency_maps(self.saliency_name, crops, keypoints) if self.saliency_name else None
        model_input = crops
        if self.saliency_input:
            name = self.input_saliency_name
            model_input = weight_by_saliency(crops, keypoints, self._predictors[name], self.saliency_floor,
                                             maps=shown if name == self.saliency_name else None)
        want_cams = self.attention if attention is None else attention
        fixed = None if target is None or callable(target) else self._targets(len(faces), target)
        chooser = target if callable(target) else None
        picked: list[int] = []
        # The other networks, each on the crop its spec asks for.
        own = {name: net.classify(preprocess_array(np.stack([f.crop_in(self.styles[name]) for f in faces]),
                                                   net.spec))[0]
               for name, net in self.networks.items() if net is not self.main}

        def combined(main_probs: np.ndarray) -> np.ndarray:
            """The model's probabilities over `labels` from the main network's (and the others')."""
            if not isinstance(self.model, Ensemble):
                return main_probs
            return self.model.combine([main_probs if m is self.main else own[m.spec.name] for m in self.model.members])

        def explained(main_probs: np.ndarray) -> list[int]:
            """The main network's class index for each face's Grad-CAM: the model's top-1 or ``target``'s."""
            probs = combined(main_probs)
            chosen = fixed if fixed is not None else [int(i) for i in (chooser(probs) if chooser else probs.argmax(axis=1))]
            picked[:] = chosen
            return self._main_indices(chosen)

        # One forward pass of the main network serves the classification and Grad-CAM.
        main_probs, cams = self.main.classify(preprocess_array(model_input, self.main.spec), attention=want_cams,
                                              targets=explained, size=crops.shape[1])
        own[self.main.spec.name] = main_probs
        probs = combined(main_probs)
        cam_targets = picked or (fixed if fixed is not None else [int(i) for i in probs.argmax(axis=1)])
        members = {name: project(own[name], net.spec.labels, self.labels) for name, net in self.networks.items()}
        return [
            Prediction(
                face=face,
                labels=self.labels,
                probabilities=probs[i],
                model_input=model_input[i],
                saliency=None if shown is None else shown[i],
                saliency_name=self.saliency_name if shown is not None else None,
                attention=None if cams is None else cams[i],
                attention_label=self.labels[cam_targets[i]] if cams is not None else None,
                attention_model=self.main.spec.name if cams is not None else None,
                members={name: p[i] for name, p in members.items()},
            )
            for i, face in enumerate(faces)
        ]

    def predict_crops(self, crops: np.ndarray, keypoints: np.ndarray, **kwargs: Any) -> list[Prediction]:
        """Classify ready-made face crops (no detection), e.g. from a dataset cache.

        Every network gets the crops as they are (their crop style is unknown).

        Args:
            crops: ``(N, S, S, 3)`` uint8 RGB face crops.
            keypoints: ``(N, 6, 2)`` float32 keypoints in crop pixels (for keypoint-based saliency).
        """
        crops, keypoints = np.asarray(crops), np.asarray(keypoints)
        if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2]:
            raise InputError(f"crops must be an (N, S, S, 3) uint8 RGB array, got {crops.shape} {crops.dtype}")
        if keypoints.shape != (len(crops), 6, 2) or not np.isfinite(keypoints).all():
            raise InputError(f"keypoints must be finite (N={len(crops)}, 6, 2) crop pixels, got {keypoints.shape}")
        size = crops.shape[1]
        identity = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
        faces = [Face((0, 0, size, size), 1.0, kp, crop, kp, identity) for crop, kp in zip(crops, keypoints, strict=True)]
        return self.predict_faces(faces, **kwargs)

    def grad_cam(self, model_input: np.ndarray, targets: list[int], size: int) -> np.ndarray:
        """Grad-CAM maps ``(N, size, size)`` float32 in [0, 1] of the main network for class indices
        ``targets`` (of `labels`).

        Args:
            model_input: ``(N, S, S, 3)`` uint8 RGB, the CNN's input as in `Prediction.model_input`.
        """
        x = preprocess_array(model_input, self.main.spec)
        maps = self.main.classify(x, attention=True, targets=self._main_indices(targets), size=size)[1]
        assert maps is not None
        return maps

    def _main_indices(self, targets: list[int]) -> list[int]:
        """Class indices of `labels` → the same classes' indices in the main network's labels."""
        main_labels = self.main.spec.labels
        return targets if main_labels == self.labels else [main_labels.index(self.labels[t]) for t in targets]

    def _targets(self, n: int, target: str) -> list[int]:
        if target not in self.labels:
            raise InputError(f"unknown target label {target!r}; the model knows {', '.join(self.labels)}")
        return [self.labels.index(target)] * n

    def close(self) -> None:
        """Release the detector."""
        self.detector.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def crop_style(spec: ModelSpec) -> CropStyle:
    """The crop a model was trained on (its spec's ``crop`` and ``margin``, else the default margin)."""
    return CropStyle(spec.crop, DEFAULT_MARGIN if spec.margin is None else spec.margin)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else checked to exist here.

    Raises:
        InputError: not a device name PyTorch knows, or a CUDA device this machine does not have.
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {str(device)[:40]!r}; use cpu, cuda, cuda:N or auto") from None
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if resolved.index is not None and resolved.index >= count or count == 0:
            raise InputError(f"device {device}: this machine has {count} CUDA device{'s' if count != 1 else ''}")
    elif resolved.type not in ("cpu", "mps", "xpu"):
        raise InputError(f"device {device}: not supported here; use cpu, cuda, cuda:N or auto")
    return resolved


def load(
    model: PipelineConfig | str | os.PathLike[str] = "default",
    saliency: str | None = None,
    device: str | torch.device = "cpu",
    **settings: Any,
) -> Pipeline:
    """Build a ready `Pipeline` (the one front door): ``load(config)`` from a `fer.PipelineConfig`,
    or ``load(model, saliency, device, **settings)`` with any of its fields by keyword, e.g.
    ``load("ensemble", detector="full", second_opinion=None)``.

    Args:
        model: a `PipelineConfig` (then nothing else may be given), or its ``model``: a name from
            `fer.available_models()` (a network or an ensemble) or a checkpoint path
            (``.json``/``.safetensors``/folder).
        saliency, device, settings: the other `PipelineConfig` fields (see its attributes); a
            ``margin`` sets an ensemble's main member's crop, the others keep their own.
    Raises:
        InputError: a setting out of range or unknown (one line naming it); WeightsError: missing weights.
    """
    if isinstance(model, PipelineConfig):
        if saliency is not None or str(device) != "cpu" or settings:
            raise InputError("give fer.load a PipelineConfig or settings by keyword, not both")
        return from_config(model)
    unknown = sorted(set(settings) - set(FIELDS))
    if unknown:
        raise InputError(f"not a pipeline setting: {', '.join(unknown)}; the settings are {', '.join(FIELDS)}")
    return from_config(PipelineConfig(model=model, saliency=saliency, device=device, **settings))  # type: ignore[arg-type]


def from_config(config: PipelineConfig) -> Pipeline:
    """The `Pipeline` ``config`` describes (what `load` builds); ``pipe.config`` is ``config``."""
    device = resolve_device(config.device)
    engine: Engine = config.engine  # type: ignore[assignment]  # checked by PipelineConfig
    loaded = load_model(config.model, device=device, engine=engine)
    second = None if config.second_opinion is None else load_network(config.second_opinion, device=device,
                                                                      engine=engine)
    pipe = assemble(loaded, config, second)
    pipe.config = config
    return pipe


def assemble(model: LoadedModel | Ensemble, config: PipelineConfig,
             second_opinion: LoadedModel | None = None) -> Pipeline:
    """A `Pipeline` around networks already loaded (e.g. a fold model in training's evaluation),
    with the detector, crops and saliency ``config`` asks for; its ``model``, ``engine``, ``device``
    and ``second_opinion`` are not read (the networks are given), and ``pipe.config`` stays None."""
    networks = [*(model.members if isinstance(model, Ensemble) else (model,)),
                *([second_opinion] if second_opinion else [])]
    main = networks[0].spec
    margin = config.margin
    if margin is None:
        margin = main.margin if main.margin is not None else DEFAULT_MARGIN
    face_detector = FaceDetector(
        config.detector, min_score=config.min_score, max_faces=config.max_faces,  # type: ignore[arg-type]
        margin=margin, crop_size=config.crop_size, engine=config.detector_engine,  # type: ignore[arg-type]
        crop=main.crop,
    )
    try:
        return Pipeline(model, face_detector, config.saliency, config.saliency_input, config.saliency_floor,
                        config.attention, second_opinion, saliency_weights=config.saliency_weights)
    except Exception:
        face_detector.close()
        raise
