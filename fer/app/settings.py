"""Settings every tab shares: what they hold, how widget values become them (refusing anything
not offered), the pipelines they load (shared by every session), and the Settings tab itself."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fer.config import DETECTORS as CONFIG_DETECTORS
from fer.config import FIELDS, PipelineConfig
from fer.errors import FerError, InputError
from fer.limits import DEFAULT_MAX_FACES, MAX_FACES
from fer.tracking import DEFAULT_SMOOTHING, MAX_SMOOTHING

if TYPE_CHECKING:
    from fer.pipeline import Pipeline

#: Pipelines kept loaded (one per distinct `fer.PipelineConfig`).
PIPELINE_CACHE_SIZE = 3
#: Widget ranges (the sliders' bounds; values outside are refused).
MARGIN_RANGE = (0.0, 0.6)
TOP_K_RANGE = (1, 8)
SALIENCY_INPUT_CHOICES = ("model default", "on", "off")


@dataclass(frozen=True)
class Settings(PipelineConfig):
    """What the Settings tab chooses, one per user session: a `fer.PipelineConfig` (its `config`,
    which the pipeline is built from and keyed by) plus what is only displayed.

    Attributes:
        saliency: as in `fer.PipelineConfig`, but a predictor is always shown (default face-prior).
        top_k: labels shown per face, `TOP_K_RANGE`.
        smoothing: weight of the past in the live/video probability smoothing, 0 … 0.95.
    """

    saliency: str | None = "face-prior"
    top_k: int = 3
    smoothing: float = DEFAULT_SMOOTHING

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "top_k", _integer(self.top_k, "top-k", *TOP_K_RANGE))
        object.__setattr__(self, "smoothing", _number(self.smoothing, "smoothing", 0.0, MAX_SMOOTHING))

    @property
    def config(self) -> PipelineConfig:
        """The pipeline's settings alone (what `PipelineCache` is keyed by, and evaluations record)."""
        return PipelineConfig(**{name: getattr(self, name) for name in FIELDS})


def _number(value: Any, what: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{what} must be between {low:g} and {high:g}, got {str(value)[:40]}")
    return number


def _integer(value: Any, what: str, low: int, high: int) -> int:
    number = _number(value, what, low, high)
    if number != int(number):
        raise InputError(f"{what} must be a whole number, got {value}")
    return int(number)


def make_settings(
    model: Any,
    saliency: Any,
    saliency_input: Any = None,
    margin: Any = None,
    max_faces: Any = DEFAULT_MAX_FACES,
    detector: Any = "short",
    top_k: Any = 3,
    smoothing: Any = DEFAULT_SMOOTHING,
    *,
    models: Sequence[str] | None = None,
) -> Settings:
    """Validate raw widget values into `Settings`.

    ``saliency_input`` may be a bool, None, or the radio's words ``"model default"``/``"on"``/``"off"``.
    ``models``: the model values offered (a client may not name any other file); None accepts any.
    Raises:
        InputError: a value not offered, or out of range.
    """
    from fer.saliency import SALIENCY_REGISTRY

    if not isinstance(model, str) or not model or (models is not None and model not in models):
        raise InputError("choose one of the offered models")
    if not isinstance(saliency, str) or saliency not in SALIENCY_REGISTRY:
        raise InputError("choose one of the offered saliency predictors")
    if isinstance(saliency_input, str):
        if saliency_input not in SALIENCY_INPUT_CHOICES:
            raise InputError(f"saliency input must be one of {', '.join(SALIENCY_INPUT_CHOICES)}")
        saliency_input = {"on": True, "off": False}.get(saliency_input)
    elif saliency_input is not None and not isinstance(saliency_input, bool):
        raise InputError(f"saliency input must be one of {', '.join(SALIENCY_INPUT_CHOICES)}")
    if detector not in CONFIG_DETECTORS:
        raise InputError(f"detector must be one of {', '.join(CONFIG_DETECTORS)}")
    return Settings(
        model=model, saliency=saliency, saliency_input=saliency_input,
        # Rounded: a slider's 0.30000000000000004 is the same pipeline as 0.3.
        margin=None if margin is None else round(_number(margin, "margin", *MARGIN_RANGE), 3),
        max_faces=_integer(max_faces, "most faces", 1, MAX_FACES), detector=detector,
        top_k=_integer(top_k, "top-k", *TOP_K_RANGE),
        smoothing=_number(smoothing, "smoothing", 0.0, MAX_SMOOTHING),
        second_opinion=second_opinion_for(model),
    )


class PipelineCache:
    """A few loaded pipelines, least recently used dropped first; safe to share between threads.

    Pipelines are only read after loading (`fer.Pipeline` is thread-safe), so sessions share them.
    A dropped pipeline is not closed here: a request may still be using it; its detector closes
    itself when the last reference goes.
    """

    def __init__(self, size: int = PIPELINE_CACHE_SIZE,
                 loader: Callable[[PipelineConfig], Pipeline] | None = None) -> None:
        self.size = size
        self._loader = loader or _load_pipeline
        self._items: OrderedDict[PipelineConfig, Pipeline] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[PipelineConfig, threading.Lock] = {}

    def get(self, settings: PipelineConfig) -> Pipeline:
        """The pipeline for ``settings`` (a `Settings`' display-only fields play no part), loading
        it on first use.

        Raises:
            InputError / WeightsError: unknown model or predictor, broken checkpoint.
        """
        key = settings.config if isinstance(settings, Settings) else settings
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        # One lock per key: two sessions asking for the same new pipeline load it once, while
        # sessions using other, loaded pipelines are not held up by a load of several seconds.
        with loading:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                pipe = self._loader(key)
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._items[key] = pipe
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return pipe

    def clear(self) -> None:
        """Drop every pipeline (tests)."""
        with self._lock:
            self._items.clear()


#: The network that gives a second opinion beside each model: the other shipped network (trained on
#: other data); the ensemble runs both already.
SECOND_OPINION = {"mini_xception_fer2013": "face_api_expression", "face_api_expression": "mini_xception_fer2013",
                  "ensemble": None}


def second_opinion_for(model: str) -> str | None:
    """The network run beside ``model`` for a second opinion (a checkpoint gets the default model)."""
    return SECOND_OPINION.get(model, "mini_xception_fer2013")


def _load_pipeline(config: PipelineConfig) -> Pipeline:
    import fer

    return fer.load(config)


#: The pipelines every session shares (read-only models, not user data).
PIPELINES = PipelineCache()


def find_checkpoints(root: str | Path = "runs") -> list[str]:
    """Local checkpoints written by training: ``ROOT/*/best.json`` (newest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/best.json") if p.with_suffix(".safetensors").is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


#: What the model dropdown calls the shipped models: what each is and what it learnt from.
MODEL_NAMES = {"mini_xception_fer2013": "mini-Xception (trained on FER2013)",
               "face_api_expression": "face-api (trained on web images)",
               "ensemble": "both, averaged (ensemble of the two)"}


def model_choices(extra: Sequence[str] = (), runs: str | Path = "runs") -> list[tuple[str, str]]:
    """``(shown name, value)`` for the model dropdown: ``extra`` (e.g. ``--model``) first, then the
    registered models, then local checkpoints under ``runs``. These are the only models a session
    may choose."""
    from fer.models import ENSEMBLES, PRETRAINED

    named = [*sorted(PRETRAINED), *sorted(ENSEMBLES)]
    choices: list[tuple[str, str]] = []
    for value in [*extra, *named, *find_checkpoints(runs)]:
        if value and value not in [v for _, v in choices]:
            shown = MODEL_NAMES.get(value, value) if value in named else f"{Path(value).parent.name or value} ({value})"
            choices.append((shown, value))
    return choices


def saliency_choices() -> list[tuple[str, str]]:
    """``(shown name, value)`` of the saliency predictors usable now (default first)."""
    from fer.saliency import available_saliency

    return [(name, name) for name in available_saliency()]


def default_settings(model: str = "default") -> Settings:
    """Settings a new session starts with: ``model``, the default saliency predictor, the model's
    own saliency input and crop margin."""
    from fer.saliency import DEFAULT_SALIENCY, available_saliency

    usable = available_saliency()
    saliency = DEFAULT_SALIENCY if DEFAULT_SALIENCY in usable else usable[0]
    return Settings(model=model, saliency=saliency, margin=model_margin(model), second_opinion=second_opinion_for(model))


def model_margin(model: str) -> float:
    """The crop margin a model was trained with (its spec), else the detector's default."""
    from fer.face import DEFAULT_MARGIN
    from fer.models import ModelSpec, spec_path_for

    try:
        spec = ModelSpec.load(spec_path_for(model))
    except FerError:
        return DEFAULT_MARGIN
    return spec.margin if spec.margin is not None else DEFAULT_MARGIN


def describe(settings: Settings) -> tuple[bool, str]:
    """Load the pipeline ``settings`` need (so the first request does not pay for it) and say
    what it does.

    Returns:
        ``(ok, markdown)``: what is loaded, with a warning when the CNN is fed face × saliency
        but was not trained on it; or why the settings were refused.
    """
    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return False, f"⚠️ Settings not applied: {exc}"
    fed = f"face × {pipe.input_saliency_name} saliency" if pipe.saliency_input else "the plain face crop"
    name = MODEL_NAMES.get(settings.model, pipe.spec.name)
    text = (f"Model **{name}** ({len(pipe.labels)} expressions); the CNN is fed {fed}; "
            f"saliency shown: **{settings.saliency}**; margin {pipe.detector.margin:.2f}; "
            f"up to {pipe.detector.max_faces} faces; {settings.detector}-range detector.")
    if pipe.saliency_input and not pipe.spec.saliency_input:
        text += ("\n\n⚠️ **This model was trained on plain crops, not on face × saliency**: its answers on "
                 "these inputs are less reliable (compare the astronaut example with it off). "
                 "The paper's method needs a model trained on such inputs; About says how to train one.")
    return True, text
