"""`PipelineConfig`: every setting of a pipeline in one frozen, self-validating record.

The library (`fer.load`), the command line (`fer predict`, `fer evaluate`), the app's settings and
evaluation all build their pipeline from one of these, so no layer maps settings by hand and two
pipelines built from equal configs answer alike (the app keys its pipeline cache by it, and quotes a
measured accuracy only beside answers made with the config it was measured with).

    >>> import fer
    >>> config = fer.PipelineConfig("ensemble", saliency="face-prior", detector="full")
    >>> pipe = fer.load(config)

Torch-free: building and checking a config loads no model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from fer.crops import DEFAULT_CROP_SIZE
from fer.errors import InputError
from fer.limits import DEFAULT_MAX_FACES, MAX_CROP_SIZE, MAX_FACES, MIN_CROP_SIZE
from fer.weights import DETECTORS as WEIGHTS_DETECTORS

#: Values of the string settings, as `fer.weights.DETECTORS`, `fer.face.DetectorEngine` and
#: `fer.models.Engine` spell them (the engines kept here so checking a config imports no torch).
DETECTORS = tuple(WEIGHTS_DETECTORS)
DETECTOR_ENGINES = ("auto", "litert", "mediapipe")
ENGINES = ("auto", "opencv", "torch")
#: Device names a config accepts; whether this machine has the device is checked when it loads.
_DEVICE = re.compile(r"(auto|cpu|mps|xpu|cuda(:\d{1,2})?)")


@dataclass(frozen=True)
class PipelineConfig:
    """What a `fer.pipeline.Pipeline` is made of. Checked on construction (and by
    `dataclasses.replace`): a bad value raises `fer.InputError` with a one-line reason.

    Attributes:
        model: a name from `fer.available_models()` (a network or an ensemble) or a checkpoint path.
        saliency: predictor whose map fills `Prediction.saliency` (`fer.available_saliency()`), or None.
        saliency_input: feed the CNN face × saliency (the paper's method); None: as the model was trained.
        saliency_floor: brightness kept where saliency is 0, in [0, 1]; None: the spec's, else 0.3.
        detector: ``"short"`` (webcam, portraits) or ``"full"`` (group photos, small faces).
        detector_engine: ``"auto"`` (LiteRT when installed, else MediaPipe), ``"litert"``, ``"mediapipe"``.
        margin: crop margin per side, fraction of the face box in [0, 1]; None: the model's, else 0.2.
        max_faces: most faces analysed per image (largest first), 1 … `fer.limits.MAX_FACES`.
        min_score: detector confidence threshold in [0, 1].
        crop_size: side of the face crops and maps in pixels, `fer.limits.MIN_CROP_SIZE` …
            `fer.limits.MAX_CROP_SIZE`.
        engine: what runs the CNN: ``"auto"``, ``"opencv"`` or ``"torch"`` (`fer.models.load_network`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"xpu"`` or ``"auto"``.
        attention: compute Grad-CAM for every face by default.
        second_opinion: a network run beside the model on every face, on its own crop, or None.
        saliency_weights: weights file for a saliency predictor that needs one (ML-Net), or None
            for its default (``$FER_MLNET_WEIGHTS``, the registry).
    """

    model: str = "default"
    saliency: str | None = None
    saliency_input: bool | None = None
    saliency_floor: float | None = None
    detector: str = "short"
    detector_engine: str = "auto"
    margin: float | None = None
    max_faces: int = DEFAULT_MAX_FACES
    min_score: float = 0.5
    crop_size: int = DEFAULT_CROP_SIZE
    engine: str = "auto"
    device: str = "cpu"
    attention: bool = False
    second_opinion: str | None = None
    saliency_weights: str | None = None

    def __post_init__(self) -> None:
        fix = object.__setattr__  # frozen: normalise once, here
        fix(self, "model", _name(self.model, "model"))
        for name in ("second_opinion", "saliency_weights"):
            if getattr(self, name) is not None:
                fix(self, name, _name(getattr(self, name), name))
        if self.saliency is not None:
            from fer.saliency import SALIENCY_REGISTRY

            if self.saliency not in SALIENCY_REGISTRY:
                raise InputError(f"unknown saliency predictor {str(self.saliency)[:40]!r}; "
                                 f"choose one of {', '.join(SALIENCY_REGISTRY)}")
        for name in ("saliency_input", "attention"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "saliency_input" and value is None):
                raise InputError(f"{name} must be True or False{' or None' if name == 'saliency_input' else ''}, "
                                 f"got {str(value)[:40]!r}")
        for name, choices in (("detector", DETECTORS), ("detector_engine", DETECTOR_ENGINES), ("engine", ENGINES)):
            if getattr(self, name) not in choices:
                raise InputError(f"unknown {name} {str(getattr(self, name))[:40]!r}; choose one of {', '.join(choices)}")
        for name in ("saliency_floor", "margin", "min_score"):
            value = getattr(self, name)
            if value is not None or name == "min_score":
                fix(self, name, _number(value, name, 0.0, 1.0))
        fix(self, "max_faces", _whole(self.max_faces, "max_faces", 1, MAX_FACES))
        fix(self, "crop_size", _whole(self.crop_size, "crop_size", MIN_CROP_SIZE, MAX_CROP_SIZE))
        device = str(self.device)  # a torch.device becomes its name
        if not _DEVICE.fullmatch(device):
            raise InputError(f"unknown device {device[:40]!r}; use cpu, cuda, cuda:N or auto")
        fix(self, "device", device)

    def replace(self, **changes: Any) -> PipelineConfig:
        """A copy with ``changes`` (checked again)."""
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise InputError(f"not a pipeline setting: {', '.join(unknown)}; the settings are {', '.join(FIELDS)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{field: value}`` (what `from_dict` reads back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> PipelineConfig:
        """The config `to_dict` wrote. Raises `fer.InputError` on anything else."""
        if not isinstance(data, dict) or not set(data) <= set(FIELDS):
            raise InputError("not a pipeline configuration record")
        return cls(**data)


#: The settings, in declaration order.
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(PipelineConfig))


def _name(value: Any, what: str) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{what} must be a name or a file path, got {str(value)[:40]!r}")
    return value


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise InputError(f"{what} must be a number, got {str(value)[:40]!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{what} must be in [{low:g}, {high:g}], got {str(value)[:40]}")
    return number


def _whole(value: Any, what: str, low: int, high: int) -> int:
    number = _number(value, what, low, high) if not isinstance(value, bool) else None
    if number is None or number != int(number):
        raise InputError(f"{what} must be a whole number in [{low}, {high}], got {str(value)[:40]}")
    return int(number)

