"""The app's logic as plain functions: settings, the image / live / video / evaluate handlers and
the texts of the About tab. ``app.py`` only lays out widgets and calls these.

Handlers take numpy images, file paths, a `Settings` and per-session state (`fer.live.LiveSession`,
`ImageResult`), and return records of what the widgets show. They never raise for bad input: a
refused input becomes a one-line ``message`` (``ok=False``). Loaded pipelines are shared by every
session through a small LRU (`PIPELINES`); a model is not user data, everything per user lives in
the state objects the caller keeps.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import os
import re
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from fer.errors import FerError, InputError
from fer.io import IMAGE_FORMATS, describe, encode_image, read_bytes, read_image
from fer.limits import DEFAULT_MAX_FACES, MAX_FACES, MAX_ZIP_BYTES, MAX_ZIP_ENTRIES, MAX_ZIP_UNPACKED_BYTES
from fer.live import DEFAULT_SMOOTHING, LiveSession, check_smoothing

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from fer.models import ModelSpec
    from fer.pipeline import Pipeline, Prediction

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"

#: Live stream: seconds between webcam frames sent to the server, the most streams served at
#: once, and the longest a stream runs before the user restarts it (so a queue cannot starve).
#: A browser sends its next frame only once the previous answer is back, so concurrent streams
#: share the CPU rather than pile up: a frame costs ~40 ms of one core (measured, 2-core machine),
#: so 20 streams get about 2-3 frames/s each there. Beyond 20, newcomers wait in the queue.
LIVE_STREAM_EVERY = 0.1
LIVE_CONCURRENCY = 20
LIVE_TIME_LIMIT = 300
#: Live frames are shrunk to this longest side before analysis: webcam faces stay well above the
#: detector's and the CNN's input sizes, and encoding the annotated frame costs a quarter.
LIVE_MAX_SIDE = 640
#: Seconds between redraws of each live statistics panel, and the fewest frames between two
#: redraws of the same panel. Drawing and encoding a matplotlib figure (the confusion matrices)
#: costs 50-300 ms of CPU (measured on a busy 2-core machine), several frames' worth, so panels are
#: redrawn rarely and never more than one per frame; a slow stream (a loaded server) redraws them
#: more rarely still. The timeline is only data (the browser draws it), but it takes its turn too.
STATS_EVERY_S: dict[str, float] = {"trust": 1.0, "timeline": 1.0, "session": 2.0}
STATS_MIN_FRAMES = 5
#: Live streams that draw their figures at the full rate of `STATS_EVERY_S`. With more streams at
#: once, every stream's intervals grow in proportion, so the figures' total cost stays that of this
#: many streams: drawn at the full rate, 8 streams spent most of the 2 cores on figures (about
#: 75-100 ms each) and their frames waited up to 1.4 s (p95; `benchmarks/stream_load.py`).
STATS_FULL_RATE_STREAMS = 2
#: A stream counts as active for this long after its last frame.
STREAM_ACTIVE_S = 3.0
#: Frames kept in each face's timeline.
TIMELINE_FRAMES = 100
#: Pipelines kept loaded (one per distinct model/saliency/face settings).
PIPELINE_CACHE_SIZE = 3
#: The "I'm posing" choice meaning "don't count this frame".
NOT_POSING = "(not posing)"
#: Side of the per-face pictures shown (the crop size).
VIEW_SIZE = 224
#: Video tab: sample-rate choices offered (frames per second of video).
VIDEO_SAMPLE_FPS = (1.0, 2.0, 5.0, 10.0)
#: Gradio's cache is checked every `CACHE_CHECK_EVERY_S` seconds and files older than
#: `CACHE_MAX_AGE_S` are deleted (``gr.Blocks(delete_cache=...)``): the app deletes each upload as
#: soon as it has read it and writes no file there itself, so this sweep only catches uploads never
#: analysed (a clip or archive picked without pressing its button, a request the full queue refused).
CACHE_CHECK_EVERY_S = 300
CACHE_MAX_AGE_S = 600
#: Seconds an image result (the upload's bytes, per-face crops and maps) stays in a session's memory
#: after it was last analysed (Gradio keeps a closed tab's session state up to an hour instead).
IMAGE_STATE_TTL_S = 1800
#: Gradio keeps, per session, a copy of the last value of every widget (pictures included, once they
#: are sent inline); the app drops the copies holding inline data every so many seconds.
FORGET_SHOWN_EVERY_S = 10.0


# --------------------------------------------------------------------------- settings and pipelines


@dataclass(frozen=True)
class Settings:
    """What the Settings tab chooses; one per user session.

    Attributes:
        model: registered model name or checkpoint path.
        saliency: saliency predictor shown (and used as input unless the model names its own).
        saliency_input: feed the CNN face × saliency; None = what the model was trained with.
        margin: face crop margin per side (fraction of the box); None = the model's, else 0.2.
        max_faces: most faces analysed per image, 1 … `fer.limits.MAX_FACES`.
        detector: ``"short"`` (webcam, portraits) or ``"full"`` (group photos).
        top_k: labels shown per face.
        smoothing: weight of the past in the live/video probability smoothing, 0 … 0.95.
    """

    model: str = "default"
    saliency: str = "face-prior"
    saliency_input: bool | None = None
    margin: float | None = None
    max_faces: int = DEFAULT_MAX_FACES
    detector: str = "short"
    top_k: int = 3
    smoothing: float = DEFAULT_SMOOTHING

    def pipeline_key(self) -> tuple[Any, ...]:
        """The fields that change the loaded pipeline (not ``top_k`` / ``smoothing``)."""
        margin = None if self.margin is None else round(float(self.margin), 3)
        return (self.model, self.saliency, self.saliency_input, margin, int(self.max_faces), self.detector)


def make_settings(
    model: str,
    saliency: str,
    saliency_input: str | bool | None = None,
    margin: float | None = None,
    max_faces: int | float = DEFAULT_MAX_FACES,
    detector: str = "short",
    top_k: int | float = 3,
    smoothing: float = DEFAULT_SMOOTHING,
) -> Settings:
    """Validate widget values into `Settings`.

    ``saliency_input`` may be a bool, None, or the radio's words ``"model default"``/``"on"``/``"off"``.
    Raises:
        InputError: a value out of range.
    """
    if isinstance(saliency_input, str):
        saliency_input = {"on": True, "off": False}.get(saliency_input.strip().lower())
    if not model:
        raise InputError("choose a model")
    if margin is not None and not 0.0 <= float(margin) <= 1.0:
        raise InputError(f"margin must be between 0 and 1, got {margin}")
    if not 1 <= int(max_faces) <= MAX_FACES:
        raise InputError(f"max faces must be between 1 and {MAX_FACES}, got {max_faces}")
    if detector not in ("short", "full"):
        raise InputError(f"detector must be 'short' or 'full', got {detector!r}")
    if not 1 <= int(top_k) <= 10:
        raise InputError(f"top-k must be between 1 and 10, got {top_k}")
    return Settings(
        model=str(model), saliency=str(saliency), saliency_input=saliency_input,
        margin=None if margin is None else float(margin), max_faces=int(max_faces), detector=detector,
        top_k=int(top_k), smoothing=check_smoothing(smoothing),
    )


class PipelineCache:
    """A few loaded pipelines, least recently used dropped first; safe to share between threads.

    Pipelines are only read after loading (`fer.Pipeline` is thread-safe), so sessions share them.
    A dropped pipeline is not closed here: a request may still be using it; its detector closes
    itself when the last reference goes.
    """

    def __init__(self, size: int = PIPELINE_CACHE_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Pipeline] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[Any, ...], threading.Lock] = {}

    def get(self, settings: Settings) -> Pipeline:
        """The pipeline for ``settings``, loading it on first use.

        Raises:
            InputError / WeightsError: unknown model or predictor, broken checkpoint.
        """
        key = settings.pipeline_key()
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
                pipe = _load_pipeline(settings)
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


def _load_pipeline(settings: Settings) -> Pipeline:
    import fer
    from fer.saliency import SALIENCY_REGISTRY

    if settings.saliency not in SALIENCY_REGISTRY:
        raise InputError(f"unknown saliency predictor {settings.saliency!r}")
    return fer.load(
        settings.model, saliency=settings.saliency, margin=settings.margin, max_faces=settings.max_faces,
        detector=settings.detector, saliency_input=settings.saliency_input,  # type: ignore[arg-type]
    )


#: The pipelines every session shares (read-only models, not user data).
PIPELINES = PipelineCache()


def find_checkpoints(root: str | Path = "runs") -> list[str]:
    """Local checkpoints written by training: ``ROOT/*/best.json`` (newest first)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("*/best.json") if p.with_suffix(".safetensors").is_file()]
    return [str(p) for p in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)]


def model_choices(extra: Sequence[str] = (), runs: str | Path = "runs") -> list[tuple[str, str]]:
    """``(shown name, value)`` for the model dropdown: ``extra`` (e.g. ``--model``) first, then the
    registered models, then local checkpoints under ``runs``."""
    from fer.models import PRETRAINED

    choices: list[tuple[str, str]] = []
    for value in [*extra, *sorted(PRETRAINED), *find_checkpoints(runs)]:
        if value and value not in [v for _, v in choices]:
            shown = value if value in PRETRAINED else f"{Path(value).parent.name or value} ({value})"
            choices.append((shown, value))
    return choices


def saliency_choices() -> list[tuple[str, str]]:
    """``(shown name, value)`` of the saliency predictors usable now (default first)."""
    from fer.saliency import available_saliency

    return [(name, name) for name in available_saliency()]


def saliency_notes() -> str:
    """Markdown: each usable predictor with its description, and what the others need."""
    from fer.saliency import SALIENCY_REGISTRY, saliency_status

    lines = []
    for name, status in saliency_status().items():
        description = SALIENCY_REGISTRY[name].description
        if status == "ready":
            lines.append(f"- **{name}**: {description}")
        else:
            lines.append(f"- {name} (not available: {status.removeprefix('needs weights: ')})")
    return "\n".join(lines)


def default_settings(model: str = "default") -> Settings:
    """Settings a new session starts with: ``model``, the default saliency predictor, the model's
    own saliency input and crop margin."""
    from fer.saliency import DEFAULT_SALIENCY, available_saliency

    usable = available_saliency()
    saliency = DEFAULT_SALIENCY if DEFAULT_SALIENCY in usable else usable[0]
    return Settings(model=model, saliency=saliency, margin=model_margin(model))


def model_margin(model: str) -> float:
    """The crop margin a model was trained with (its spec), else the detector's default."""
    from fer.face import DEFAULT_MARGIN
    from fer.models import ModelSpec, spec_path_for

    try:
        spec = ModelSpec.load(spec_path_for(model))
    except FerError:
        return DEFAULT_MARGIN
    return spec.margin if spec.margin is not None else DEFAULT_MARGIN


def apply_settings(settings: Settings) -> tuple[bool, str]:
    """Load the pipeline ``settings`` need (so the first request does not pay for it).

    Returns:
        ``(ok, markdown status)``: what is loaded, or why the settings were refused.
    """
    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return False, f"⚠️ Settings not applied: {exc}"
    what = "face × saliency" if pipe.saliency_input else "plain face crops"
    source = pipe.input_saliency_name if pipe.saliency_input else None
    return True, (
        f"Model **{pipe.spec.name}** ({len(pipe.labels)} expressions: {', '.join(pipe.labels)}); "
        f"the CNN is fed {what}{f' ({source})' if source else ''}; saliency shown: **{settings.saliency}**; "
        f"margin {pipe.detector.margin:.2f}; up to {pipe.detector.max_faces} faces; "
        f"{settings.detector}-range detector."
    )


# --------------------------------------------------------------------------- pictures


def cnn_view(model_input: np.ndarray, spec: ModelSpec, size: int = VIEW_SIZE) -> np.ndarray:
    """What the CNN literally receives, enlarged for display: the model input resized to the
    network's input size (and made grey for grey models), then scaled to ``size`` with visible pixels.

    Args:
        model_input: ``(S, S, 3)`` uint8 RGB, `fer.pipeline.Prediction.model_input`.
    Returns:
        ``(size, size, 3)`` uint8 RGB.
    """
    small = cv2.resize(model_input, (spec.input_size, spec.input_size), interpolation=cv2.INTER_AREA)
    if spec.colour == "grey":
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        small = np.repeat(grey[..., None], 3, axis=2)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_NEAREST)


def data_url(image: np.ndarray, quality: int = 80) -> str:
    """``(H, W, 3)`` uint8 RGB → ``data:image/jpeg;base64,…`` (encoded in memory, never on disk)."""
    return "data:image/jpeg;base64," + base64.b64encode(encode_image(image, "jpeg", quality)).decode("ascii")


def data_url_bytes(url: str) -> bytes:
    """The bytes a ``data:…;base64,…`` URL carries.

    Raises:
        InputError: not a base64 ``data:`` URL.
    """
    head, _, payload = url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64"):
        raise InputError("not a base64 data: URL")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError("not valid base64 data") from None


def inline_file(data: bytes, name: str, mime: str) -> dict[str, Any]:
    """A file record as Gradio's file, image and gallery widgets show it, carrying ``data`` inline as
    a ``data:`` URL: the browser displays or downloads it as is, and nothing is written to disk.

    ``path`` is None on purpose: neither Gradio's server nor `gradio_client` then takes the record
    for a file to copy or download (a client gets this dict, the bytes in ``url``, see
    `data_url_bytes`). Gradio sends it unchanged only from an event declared with
    ``postprocess=False``; its postprocessing would write a file into its cache.

    Returns:
        ``{"path": None, "url": "data:<mime>;base64,…", "orig_name": name, "mime_type": mime,
        "size": len(data), "is_stream": False, "meta": {"_type": "gradio.FileData"}}``.
    """
    return {
        "path": None, "url": f"data:{mime};base64," + base64.b64encode(data).decode("ascii"), "orig_name": name,
        "mime_type": mime, "size": len(data), "is_stream": False, "meta": {"_type": "gradio.FileData"},
    }


def inline_image(image: np.ndarray, name: str, quality: int = 90) -> dict[str, Any]:
    """``(H, W, 3)`` uint8 RGB as an `inline_file` record, encoded in the format named by ``name``'s
    suffix (``.png``, ``.webp``, else JPEG)."""
    fmt = Path(name).suffix.lstrip(".").lower()
    fmt = fmt if fmt in IMAGE_FORMATS else "jpeg"
    return inline_file(encode_image(image, fmt, quality), name, IMAGE_FORMATS[fmt][1])


def image_html(image: np.ndarray | None, caption: str, placeholder: str = "no face in view") -> str:
    """A captioned picture as inline HTML (the live tab's panels: data URLs keep frames off disk)."""
    from html import escape

    if image is None:
        body = f'<div class="fer-empty">{escape(placeholder)}</div>'
    else:
        body = f'<img src="{data_url(image)}" alt="{escape(caption)}" style="width:100%;height:auto;display:block">'
    return f'<figure class="fer-panel" style="margin:0">{body}<figcaption>{escape(caption)}</figcaption></figure>'


def fit_image(image: np.ndarray, max_side: int) -> np.ndarray:
    """Shrink ``(H, W, 3)`` uint8 so its longer side is at most ``max_side`` (unchanged if it is);
    the shorter side stays at least 1 pixel, whatever the aspect ratio."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def upload_source(value: Any) -> tuple[Any, str | None]:
    """An uploaded input as the handlers read it, and the name to show for it.

    Gradio hands the app its raw file record (``{"path": …, "orig_name": …}``; a video's is nested
    under ``"video"``) so that fer, not Gradio, reads the file: every refusal is then fer's one-line
    message, and Gradio makes no converted copy of it.
    """
    if isinstance(value, Mapping) and isinstance(value.get("video"), Mapping):
        value = value["video"]
    if isinstance(value, Mapping):
        path = value.get("path")
        return path, value.get("orig_name") or (Path(path).name if path else None)
    if isinstance(value, (str, os.PathLike)):
        return value, Path(value).name
    return value, None


def _for_user(exc: Exception, *sources: Any, name: str | None = None) -> str:
    """The error's message with each input as fer's reader names it (an uploaded file's full server
    path, or ``<N bytes>``) replaced by ``name``, the name the user knows it by (default: the file
    name of the first path)."""
    message = str(exc)
    for source in sources:
        if not isinstance(source, (str, os.PathLike, bytes, bytearray)) or not (shown := describe(source)):
            continue
        if name is None and isinstance(source, (str, os.PathLike)):
            name = Path(source).name
        if name:
            message = message.replace(shown, name)
    return message


#: Gradio stores an upload as ``<upload folder>/<SHA-256 of its bytes>/<file name>``.
_UPLOAD_FOLDER_NAME = re.compile(r"[0-9a-f]{64}")


def discard_upload(path: str | os.PathLike | None, upload_dir: str | os.PathLike, keep: Collection[str] = ()) -> bool:
    """Delete an uploaded file from Gradio's upload folder once it has been read.

    Only a regular file laid out as Gradio stores uploads, ``upload_dir/<64 hex digits>/<name>``,
    is deleted (then its folder, if that leaves it empty). Anything else is left alone: a file
    elsewhere (a user's own file passed by path, the shipped ``assets/``), a symbolic link, and the
    files in ``keep``, which other sessions share: Gradio's copies of the `gr.Examples` pictures
    (an upload with the same bytes and name lands on the same path).

    Returns:
        True when a file was deleted.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        return False
    file = Path(os.path.abspath(path))  # the link itself if it is one: never follow it
    folder = file.parent
    try:
        if folder.parent.resolve() != Path(upload_dir).resolve() or not _UPLOAD_FOLDER_NAME.fullmatch(folder.name):
            return False
        if str(file) in keep or str(file.resolve()) in keep:
            return False
        if not stat.S_ISREG(file.lstat().st_mode):
            return False
        file.unlink()
    except OSError:  # gone already (another request read the same upload), or not ours to delete
        return False
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty: another file with the same bytes under another name
    return True


# --------------------------------------------------------------------------- per-face views


@dataclass
class FaceView:
    """The side-by-side pictures and top-k of one face.

    Attributes:
        saliency: ``(S, S, 3)`` uint8 RGB crop with the saliency map overlaid (where humans would look).
        model_input: ``(S, S, 3)`` uint8 RGB, what the CNN sees (see `cnn_view`).
        attention: ``(S, S, 3)`` uint8 RGB crop with Grad-CAM overlaid (where the CNN looked), or None.
        top_k: label → probability for the ``k`` most probable labels ({} when no face).
        captions: one short caption per picture: keys ``saliency``, ``model_input``, ``attention``.
    """

    saliency: np.ndarray | None = None
    model_input: np.ndarray | None = None
    attention: np.ndarray | None = None
    top_k: dict[str, float] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)


def face_view(pred: Prediction | None, pipe: Pipeline, top_k: int, probabilities: np.ndarray | None = None) -> FaceView:
    """Pictures and top-k of one face (an empty view for None).

    Args:
        probabilities: ``(C,)`` to show instead of the prediction's own (smoothed live values).
    """
    from fer.viz import heatmap_overlay

    if pred is None:
        return FaceView()
    probs = pred.probabilities if probabilities is None else probabilities
    order = np.argsort(-probs, kind="stable")[:top_k]
    view = FaceView(top_k={pred.labels[i]: float(probs[i]) for i in order})
    if pred.saliency is not None:
        view.saliency = heatmap_overlay(pred.crop, pred.saliency)
        view.captions["saliency"] = f"where humans would look ({pred.saliency_name})"
    view.model_input = cnn_view(pred.model_input, pipe.spec)
    fed = f"face × {pipe.input_saliency_name}" if pipe.saliency_input else "plain crop; saliency input off"
    view.captions["model_input"] = (
        f"what the CNN sees: {pipe.spec.input_size}×{pipe.spec.input_size} {pipe.spec.colour} ({fed})"
    )
    if pred.attention is not None:
        view.attention = heatmap_overlay(pred.crop, pred.attention)
        view.captions["attention"] = f"where the CNN looked (Grad-CAM for {pred.attention_label})"
    return view


@dataclass
class TrustView:
    """How far to trust an answer, from the model's own evaluation.

    Attributes:
        figure: confusion-matrix heatmap with the answer's row/column outlined, or None when the
            model has no evaluation.
        text: markdown, "when the model says X, the truth was …", or why there is nothing to show.
    """

    figure: Figure | None
    text: str


def trust_text(evaluation: Mapping[str, Any] | None, label: str | None, model_name: str = "this model") -> str:
    """Markdown sentence(s) reading the model's confusion matrix for the answer ``label``."""
    if not evaluation or not evaluation.get("confusion"):
        return (
            f"**{model_name}** ships without a measured evaluation, so there is no confusion matrix to "
            "show and no per-class error to quote. Measure it on labelled faces in the **Evaluate** tab."
        )
    labels = list(evaluation["labels"])
    confusion = np.asarray(evaluation["confusion"], np.int64)
    where = evaluation.get("dataset") or "its test data"
    head = (f"Measured on {where}{' ' + evaluation['split'] if evaluation.get('split') else ''}: "
            f"n={int(confusion.sum())}, accuracy {float(evaluation.get('accuracy', np.trace(confusion) / max(confusion.sum(), 1))):.1%}.")
    if label is None:
        return head
    if label not in labels:
        return f"{head} The evaluation data had no **{label}** class, so this answer was never scored."
    j = labels.index(label)
    column = confusion[:, j]
    said = int(column.sum())
    if said == 0:
        return f"{head} In that evaluation the model never answered **{label}**."
    order = [i for i in np.argsort(-column, kind="stable") if column[i] > 0][:4]
    truths = ", ".join(f"{labels[i]} {column[i] / said:.0%}" for i in order)
    found = confusion[j, j] / max(int(confusion[j].sum()), 1)
    return (f"{head} When the model says **{label}**, the truth was: {truths} (of {said} such answers). "
            f"Of the faces that truly showed {label}, it found {found:.0%}.")


def trust_view(spec: ModelSpec, label: str | None) -> TrustView:
    """The model-confusion panel for an answer ``label`` (None: no face)."""
    from fer.plots import model_confusion_figure

    evaluation = spec.evaluation
    text = trust_text(evaluation, label, spec.name)
    if not evaluation or not evaluation.get("confusion"):
        return TrustView(None, text)
    return TrustView(model_confusion_figure(evaluation, highlight=label), text)


# --------------------------------------------------------------------------- image tab and API


NO_FACE_MESSAGE = (
    "No face found. Try a brighter, frontal face that fills more of the picture; for group photos "
    "or small faces choose the full-range detector in Settings."
)


@dataclass
class ImageResult:
    """Everything the Image tab shows for one picture (kept in the session's state).

    Attributes:
        ok: False when the input was refused (``message`` says why).
        message: one line for the status bar.
        image: ``(H, W, 3)`` uint8 RGB, or None.
        predictions: one per face, largest first.
        settings: the settings used.
        source: the picture as it was read, still encoded (at most `fer.limits.MAX_UPLOAD_BYTES`),
            so that `reanalyse` can redo it after the uploaded file is deleted; None for a picture
            given decoded (array, PIL image) and for a refused input.
        name: what the user calls the picture (an upload's file name), for messages; or None.
    """

    ok: bool
    message: str
    image: np.ndarray | None = None
    predictions: list[Prediction] = field(default_factory=list)
    settings: Settings = field(default_factory=Settings)
    source: bytes | None = field(default=None, repr=False)
    name: str | None = None

    def annotated(self) -> np.ndarray | None:
        """The picture with numbered boxes and top-1 labels."""
        from fer.viz import annotate

        if self.image is None:
            return None
        return annotate(self.image, self.predictions, [f"#{i + 1}" for i in range(len(self.predictions))])

    def captions(self) -> list[str]:
        """``"#1 happy 99%"`` per face."""
        return [f"#{i + 1} {p.label} {p.top_k(1)[0][1]:.0%}" for i, p in enumerate(self.predictions)]

    def gallery(self) -> list[tuple[np.ndarray, str]]:
        """``(crop (S, S, 3) uint8 RGB, caption)`` per face."""
        return [(p.crop, c) for p, c in zip(self.predictions, self.captions(), strict=True)]

    def top_k(self, index: int = 0) -> dict[str, float]:
        """Label → probability of face ``index`` ({} when there is no such face)."""
        if not 0 <= index < len(self.predictions):
            return {}
        return dict(self.predictions[index].top_k(self.settings.top_k))

    def to_json(self) -> dict[str, Any]:
        """Per-face JSON: ``{"message", "model", "saliency", "saliency_input", "faces": [{"face",
        "label", "box", "score", "top_k": [{"label", "probability"}]}]}``."""
        faces = [{"face": i + 1, "label": p.label, **p.to_dict(self.settings.top_k)}
                 for i, p in enumerate(self.predictions)]
        return {
            "message": self.message,
            "model": self.settings.model,
            "saliency": self.settings.saliency,
            "saliency_input": self.settings.saliency_input,
            "faces": faces,
        }


def _encoded(source: Any) -> bytes | None:
    """The bytes of a path or bytes input, read with `fer.io`'s checks and size limit; None for a
    picture given decoded.

    Raises:
        InputError: no such file, not a regular file, over the upload limit.
    """
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    if isinstance(source, (str, os.PathLike)):
        return read_bytes(source)
    return None


def analyse_image(image: Any, settings: Settings, name: str | None = None) -> ImageResult:
    """Find and classify every face in a picture, with saliency and Grad-CAM for each.

    The file is read once; the result keeps its bytes (``source``), not the file.

    Args:
        image: a path, bytes, PIL image, ``(H, W, 3)`` uint8 array or Gradio file record (see
            `upload_source`); None when the widget is empty.
        settings: the session's settings.
        name: what to call the picture in messages (default: the file name, if any).
    Returns:
        `ImageResult`; ``ok=False`` with a message when the input is refused; no face is ``ok``
        with `NO_FACE_MESSAGE`.
    """
    image, shown = upload_source(image)
    name = name or shown
    if image is None:
        return ImageResult(False, "Upload, paste or snap a picture.", settings=settings)
    source = None
    try:
        source = _encoded(image)
        rgb = read_image(image if source is None else source)
        pipe = PIPELINES.get(settings)
        predictions = pipe(rgb, attention=True)
    except FerError as exc:
        # Reading names the path, decoding names the bytes read: both become the user's name.
        return ImageResult(False, _for_user(exc, image, source, name=name), settings=settings, name=name)
    if not predictions:
        return ImageResult(True, NO_FACE_MESSAGE, rgb, [], settings, source, name)
    count = f"{len(predictions)} face{'s' if len(predictions) > 1 else ''}"
    return ImageResult(True, f"{count} found. Pick a face to see its saliency, the CNN's input and Grad-CAM.",
                       rgb, predictions, settings, source, name)


def reanalyse(previous: ImageResult | None, settings: Settings) -> ImageResult | None:
    """Analyse the picture of an earlier result again with new ``settings``, from the bytes it kept
    (the uploaded file is gone by then); None when there is nothing to redo."""
    if previous is None or previous.source is None:
        return None
    return analyse_image(previous.source, settings, name=previous.name)


def image_face_view(result: ImageResult | None, index: int | None) -> tuple[FaceView, TrustView | None]:
    """The side-by-side views and trust panel for face ``index`` of an `ImageResult`."""
    if result is None or not result.predictions:
        return FaceView(), None
    index = 0 if index is None or not 0 <= int(index) < len(result.predictions) else int(index)
    try:
        pipe = PIPELINES.get(result.settings)
    except FerError:
        return FaceView(), None
    pred = result.predictions[index]
    return face_view(pred, pipe, result.settings.top_k), trust_view(pipe.spec, pred.label)


# --------------------------------------------------------------------------- live tab


@dataclass
class LiveStats:
    """The live statistics panels redrawn on this frame; None means "unchanged, keep showing".

    Attributes:
        trust: the model-confusion panel, redrawn when the highlighted answer changes.
        session: the session confusion matrix figure and its markdown summary.
        timeline: probabilities of the followed face over the last frames.
    """

    trust: TrustView | None = None
    session: tuple[Figure, str] | None = None
    timeline: TimelineView | None = None


@dataclass(frozen=True)
class TimelineView:
    """The live timeline, drawn by the browser (``gr.LinePlot``): no figure is rendered on the server.

    Attributes:
        table: `fer.plots.timeline_table` of the followed face (columns seconds, probability, expression).
        title: what the plot shows.
    """

    table: pd.DataFrame
    title: str


@dataclass
class LiveOutput:
    """What one webcam frame updates.

    Attributes:
        annotated: ``(H, W, 3)`` uint8 RGB frame with boxes, track ids and smoothed labels.
        view: the followed (largest) face's pictures and smoothed top-k.
        status: one line.
        stats: the statistics panels redrawn on this frame (each None when unchanged).
    """

    annotated: np.ndarray | None
    view: FaceView
    status: str
    stats: LiveStats = field(default_factory=LiveStats)


def new_live_session(labels: Sequence[str]) -> LiveSession:
    """A fresh per-user live state for a model with ``labels``."""
    return LiveSession(tuple(labels), timeline_frames=TIMELINE_FRAMES)


def posing_choices(labels: Sequence[str]) -> list[str]:
    """The "I'm posing" dropdown: `NOT_POSING`, then the model's labels."""
    return [NOT_POSING, *labels]


#: What the session panel says before anything is counted.
SESSION_HINT = ("Choose **I'm posing** and hold the expression: every frame with a face is counted "
                "(posed versus the label shown). Nothing is counted while *(not posing)*.")


def session_text(session: LiveSession) -> str:
    """Markdown summary of the session confusion matrix."""
    conf = session.confusion
    if conf.total == 0:
        return SESSION_HINT
    lines = [f"**{conf.total} frames** counted, accuracy **{conf.accuracy:.0%}**."]
    per = conf.per_class()
    lines.append("Per posed expression: " + ", ".join(f"{k} {acc:.0%} of {n}" for k, (n, acc) in per.items()) + ".")
    mistakes = conf.top_confusions(3)
    if mistakes:
        lines.append("Most frequent confusions: " + "; ".join(f"posed {p} → said {q} ({n}×)" for p, q, n in mistakes) + ".")
    lines.append("_One person, one room, one camera: a sanity check, not a benchmark._")
    return "  \n".join(lines)


def session_panel(session: LiveSession) -> tuple[Figure, str]:
    """The session confusion matrix figure and its markdown summary."""
    from fer.plots import session_confusion_figure

    return session_confusion_figure(session.confusion), session_text(session)


class ActiveStreams:
    """How many live sessions sent a frame within the last ``window_s`` seconds (thread-safe)."""

    def __init__(self, window_s: float = STREAM_ACTIVE_S) -> None:
        self.window_s = window_s
        self._seen: dict[int, float] = {}
        self._lock = threading.Lock()

    def touch(self, key: int, now: float) -> int:
        """Record a frame of stream ``key`` at ``now``; returns the number of active streams."""
        with self._lock:
            self._seen[key] = now
            # abs(): callers with their own clocks (tests) must not keep other streams alive forever.
            for old in [k for k, t in self._seen.items() if abs(now - t) > self.window_s]:
                del self._seen[old]
            return len(self._seen)


#: The app's live streams, for sharing the figure-drawing budget (`STATS_FULL_RATE_STREAMS`).
ACTIVE_STREAMS = ActiveStreams()


def live_stats(session: LiveSession, spec: ModelSpec, highlight: str | None, now: float,
               streams: int = 1) -> LiveStats:
    """Redraw the statistics figure that is most due, at most one per frame (see `STATS_EVERY_S`).

    The model-confusion panel goes first when the answer changes; the session matrix is redrawn
    only when its counts changed. Panels never drawn are due at once. With more than
    `STATS_FULL_RATE_STREAMS` active ``streams``, the intervals grow in proportion.
    """
    from fer.plots import timeline_table

    slowdown = max(1.0, streams / STATS_FULL_RATE_STREAMS)

    def due(panel: str) -> bool:
        if panel not in session.drawn:
            return True
        when, frame = session.drawn[panel]
        return now - when >= STATS_EVERY_S[panel] * slowdown and session.frames - frame >= STATS_MIN_FRAMES

    stats = LiveStats()
    if highlight != session.last_highlight and (session.last_highlight is None or due("trust")):
        stats.trust = trust_view(spec, highlight)
        session.last_highlight = highlight
        session.drawn["trust"] = (now, session.frames)
        return stats
    candidates = [p for p in ("timeline", "session") if due(p)]
    if "session" in candidates and session.confusion.total == session.drawn_total:
        candidates.remove("session")
    if not candidates:
        return stats
    panel = min(candidates, key=lambda p: session.drawn.get(p, (-np.inf, 0))[0])
    session.drawn[panel] = (now, session.frames)
    if panel == "session":
        stats.session = session_panel(session)
        session.drawn_total = session.confusion.total
        return stats
    timeline = session.timelines.get(session.focus) if session.focus is not None else None
    if timeline is not None and len(timeline):
        stats.timeline = TimelineView(timeline_table(timeline.times, timeline.values, session.labels, top=3),
                                      f"face #{session.focus}, last {len(timeline)} frames")
    else:
        stats.timeline = TimelineView(timeline_table(np.zeros(0), np.zeros((0, len(session.labels))), session.labels),
                                      "timeline: no face in view")
    return stats


def decode_frame(frame: Any) -> np.ndarray | None:
    """A webcam frame as it arrives → ``(H, W, 3)`` uint8 RGB (None when there is no frame).

    Accepts an array, a ``data:image/…;base64,…`` URL (what the browser's webcam sends), bytes, a
    path, or Gradio's file record (``{"url": "data:…"}`` or ``{"path": …}``). Decoding goes
    through `fer.io.read_image`, so sizes are checked before decoding.

    Raises:
        InputError: not base64, not an image, truncated, too large.
    """
    if frame is None:
        return None
    if isinstance(frame, Mapping):
        url, path = frame.get("url"), frame.get("path")
        frame = url if isinstance(url, str) and url.startswith("data:") else path
        if frame is None:
            return None
    if isinstance(frame, str) and frame.startswith("data:"):
        try:
            frame = data_url_bytes(frame)
        except InputError:
            raise InputError("webcam frame: not valid base64 image data") from None
        if not frame:
            raise InputError("webcam frame: empty")
    return read_image(frame)


def live_step(
    frame: Any,
    settings: Settings,
    posing: str | None,
    session: LiveSession | None,
    now: float | None = None,
) -> tuple[LiveSession | None, LiveOutput]:
    """Process one webcam frame; never raises (one bad frame must not end a stream).

    Faces are tracked by box overlap and their probabilities smoothed (``settings.smoothing``);
    the largest face is followed: its saliency, CNN input and Grad-CAM are drawn, and while the user
    poses an expression its shown label is counted in the session confusion matrix.

    Args:
        frame: the frame in any form `decode_frame` takes, or None (camera off).
        settings: the session's settings.
        posing: a model label, or `NOT_POSING` / None.
        session: the per-user state from the previous frame (None at the start).
        now: clock in seconds (default `time.monotonic`).
    Returns:
        ``(session, output)``; the session is new when the model's labels changed. A frame that
        cannot be read or analysed gives an output with only a one-line ``status``.
    """
    now = time.monotonic() if now is None else now
    try:
        rgb = decode_frame(frame)
        if rgb is None:
            return session, LiveOutput(None, FaceView(), "Camera off: allow the browser to use the webcam and press record.")
        return _live_analyse(fit_image(rgb, LIVE_MAX_SIDE), settings, posing, session, now)
    except FerError as exc:
        return session, LiveOutput(None, FaceView(), f"⚠️ {str(exc).splitlines()[0]}")
    except Exception as exc:  # noqa: BLE001 - a native or numeric failure on one frame; the next may work
        # One line per frame (a failure may repeat at the frame rate); the traceback at DEBUG level.
        log.warning("live frame not analysed: %s: %s", type(exc).__name__, str(exc).splitlines()[:1])
        log.debug("live frame traceback", exc_info=True)
        return session, LiveOutput(None, FaceView(), f"⚠️ This frame could not be analysed ({type(exc).__name__}); "
                                                     "trying the next one.")


def _live_analyse(
    rgb: np.ndarray, settings: Settings, posing: str | None, session: LiveSession | None, now: float
) -> tuple[LiveSession, LiveOutput]:
    from fer.viz import annotate

    pipe = PIPELINES.get(settings)
    faces = pipe.detect(rgb)
    predictions = pipe.predict_faces(faces, attention=False)
    if session is None or session.labels != pipe.labels:
        session = new_live_session(pipe.labels)
    probs = np.stack([p.probabilities for p in predictions]) if predictions else np.zeros((0, len(pipe.labels)))
    tracks = session.observe(now, [p.box for p in predictions], probs, settings.smoothing)
    view = FaceView()
    shown: list[Prediction] = []
    if predictions:
        # Grad-CAM for the followed face only (the one face whose views are shown), for the smoothed
        # label shown, which may differ from this frame's top-1: one more forward pass (about 1 ms).
        focus = predictions[0]
        smoothed = tracks[0].probabilities
        target = int(np.argmax(smoothed))
        cam = pipe.grad_cam(focus.model_input[None], [target], size=focus.crop.shape[0])[0]
        focus = dataclasses.replace(focus, attention=cam, attention_label=pipe.labels[target])
        view = face_view(focus, pipe, settings.top_k, smoothed)
        shown = [dataclasses.replace(p, probabilities=t.probabilities) for p, t in zip(predictions, tracks, strict=True)]
        if posing and posing != NOT_POSING and posing in pipe.labels:
            session.confusion.add(posing, pipe.labels[target])
    annotated = annotate(rgb, shown, [f"#{t.id}" for t in tracks]) if shown else rgb
    if predictions:
        status = f"{len(predictions)} face{'s' if len(predictions) > 1 else ''}; following #{tracks[0].id}"
        if posing and posing != NOT_POSING:
            status += f"; counting: posing {posing}"
    else:
        status = "No face in view: face the camera, with light on your face."
    highlight = pipe.labels[int(np.argmax(tracks[0].probabilities))] if tracks else None
    streams = ACTIVE_STREAMS.touch(id(session), now)
    return session, LiveOutput(annotated, view, status, live_stats(session, pipe.spec, highlight, now, streams))


def reset_session_counts(session: LiveSession | None) -> LiveSession | None:
    """Zero the session confusion matrix (tracks and timelines continue)."""
    if session is not None:
        session.confusion.reset()
    return session


# --------------------------------------------------------------------------- exports


def session_csv(session: LiveSession | None) -> str | None:
    """The session confusion matrix as CSV text (numbers only), or None before any session."""
    if session is None:
        return None
    return session.confusion.to_csv()


# --------------------------------------------------------------------------- video tab


@dataclass
class VideoReport:
    """What the Video tab shows.

    Attributes:
        ok: False when the clip was refused.
        message: one line.
        figure: per-face timelines, or None.
        headers, rows: the per-face summary table.
        csv: per-frame CSV text for download (`fer.video.VideoAnalysis.to_csv`), or None.
    """

    ok: bool
    message: str
    figure: Figure | None = None
    headers: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    csv: str | None = None


SUMMARY_HEADERS = ["face", "frames", "from (s)", "to (s)", "most frequent expression", "share of frames",
                   "mean probability"]


def analyse_video_file(
    path: str | None,
    settings: Settings,
    sample_fps: float = 5.0,
    progress: Callable[[float, str], None] | None = None,
    name: str | None = None,
) -> VideoReport:
    """Sample a clip, follow each face and summarise its expressions (see `fer.video.analyse_video`).

    Args:
        name: what to call the clip in messages (default: its file name).
    """
    from fer.plots import video_timeline_figure
    from fer.video import analyse_video

    if not path:
        return VideoReport(False, "Upload a short clip first.")
    try:
        pipe = PIPELINES.get(settings)
        analysis = analyse_video(pipe, path, sample_fps=float(sample_fps), smoothing=settings.smoothing,
                                 progress=progress)
    except FerError as exc:
        return VideoReport(False, _for_user(exc, path, name=name))
    summary = analysis.summary()
    rows = [[r["face"], r["frames"], r["first_s"], r["last_s"], r["top_expression"], r["share"],
             r["mean_probability"]] for r in summary]
    message = (f"{analysis.frames_sampled} frames sampled, {analysis.frames_with_faces} with a face, "
               f"{len(summary)} face track{'s' if len(summary) != 1 else ''}.")
    if not summary:
        message += " " + NO_FACE_MESSAGE
    return VideoReport(True, message, video_timeline_figure(analysis, top=min(settings.top_k, 4)),
                       SUMMARY_HEADERS, rows, analysis.to_csv() if summary else None)


# --------------------------------------------------------------------------- evaluate tab


def safe_extract(
    zip_path: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_bytes: int = MAX_ZIP_BYTES,
    max_entries: int = MAX_ZIP_ENTRIES,
    max_unpacked: int = MAX_ZIP_UNPACKED_BYTES,
) -> list[Path]:
    """Unpack a zip archive into ``dest`` after checking it cannot escape or explode.

    Refused: archives over ``max_bytes``, with more than ``max_entries`` entries, declaring more
    than ``max_unpacked`` bytes, or actually inflating past it (the declared sizes can lie); entries
    with absolute paths, drive letters or ``..`` components; symbolic links; encrypted entries.

    Returns:
        The files written, inside ``dest``.
    Raises:
        InputError: the archive is refused (nothing outside ``dest`` is ever written).
    """
    zip_path = Path(zip_path)
    dest = Path(dest).resolve()
    name = zip_path.name
    try:
        size = zip_path.stat().st_size
    except OSError:
        raise InputError(f"{name}: no such file") from None
    if size > max_bytes:
        raise InputError(f"{name}: archive is {size / 2**20:.1f} MB, over the {max_bytes / 2**20:.0f} MB limit")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError):
        raise InputError(f"{name}: not a zip archive (or a damaged one)") from None
    written: list[Path] = []
    with archive:
        infos = archive.infolist()
        if len(infos) > max_entries:
            raise InputError(f"{name}: archive has {len(infos)} entries, over the {max_entries} limit")
        declared = sum(info.file_size for info in infos)
        if declared > max_unpacked:
            raise InputError(
                f"{name}: archive would unpack to {declared / 2**20:.0f} MB, over the {max_unpacked / 2**20:.0f} MB limit"
            )
        for info in infos:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if (info.filename.startswith(("/", "\\")) or ".." in parts
                    or re.match(r"^[A-Za-z]:", info.filename)):
                raise InputError(f"{name}: refused entry {info.filename!r} (absolute path or '..')")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InputError(f"{name}: refused entry {info.filename!r} (symbolic link)")
            if info.flag_bits & 0x1:
                raise InputError(f"{name}: entry {info.filename!r} is encrypted")
        unpacked = 0
        for info in infos:
            target = dest.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
            if not target.resolve().is_relative_to(dest):
                raise InputError(f"{name}: refused entry {info.filename!r} (outside the archive folder)")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(info) as source, open(target, "wb") as out:
                    while chunk := source.read(1 << 20):
                        unpacked += len(chunk)
                        if unpacked > max_unpacked:
                            raise InputError(
                                f"{name}: archive unpacks to more than {max_unpacked / 2**20:.0f} MB (a zip bomb?)"
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise InputError(f"{name}: damaged entry {info.filename!r} ({exc})") from None
            written.append(target)
    return written


def dataset_root(folder: Path) -> Path:
    """The folder holding the labelled data: descend through single wrapping folders
    (``faces.zip`` → ``faces/happy/...``) and skip macOS ``__MACOSX`` metadata."""
    current = folder
    while True:
        entries = [p for p in current.iterdir() if not p.name.startswith((".", "__MACOSX"))]
        dirs = [p for p in entries if p.is_dir()]
        if len(dirs) == 1 and len(entries) == 1:
            current = dirs[0]
            continue
        return current


def load_labelled(folder: Path):  # noqa: ANN201 - fer.research.datasets.Dataset
    """A dataset from an unpacked archive: RaFD when file names follow RaFD's pattern, else
    folder-per-label."""
    from fer.research.datasets import IMAGE_SUFFIXES, RAFD_PATTERN, load_folder, load_rafd

    root = dataset_root(folder)
    images = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
              and "__MACOSX" not in p.parts]
    if not images:
        raise InputError("the archive holds no images (expected <label>/<image> folders or RaFD file names)")
    rafd = sum(bool(RAFD_PATTERN.match(p.stem)) for p in images)
    if rafd > len(images) / 2:
        return load_rafd(root, angles=None)
    return load_folder(root, name="uploaded")


def _archive_name(path: str, unpacked: Path) -> str:
    """``path`` relative to the unpacked archive folder (as the user named it in the zip)."""
    try:
        return Path(path).relative_to(unpacked).as_posix()
    except ValueError:
        return Path(path).name


@dataclass
class EvalReport:
    """What the Evaluate tab shows.

    Attributes:
        ok: False when the archive or its contents were refused.
        message: one line (skipped images are counted here).
        headline: markdown with n, accuracy and macro F1.
        headers, rows: per-class table (label, precision, recall, F1, n).
        figure: ``(H, W, 3)`` uint8 RGB confusion plot (`fer.research.evaluate.plot_confusion`), or None.
        result: `fer.research.evaluate.EvaluationResult.to_dict`, or None.
    """

    ok: bool
    message: str
    headline: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    figure: np.ndarray | None = None
    result: dict[str, Any] | None = None


def evaluate_zip(zip_path: str | None, settings: Settings, *, progress: bool = False,
                 name: str | None = None) -> EvalReport:
    """Unpack a zip of labelled faces into a temporary folder (always deleted), evaluate the
    settings' model on it through `fer.research.evaluate.evaluate`, and draw its confusion matrix.

    Args:
        zip_path: the uploaded archive: ``<label>/<image>`` folders, or RaFD-named images.
        progress: show tqdm bars (the app's progress bar follows them).
        name: the archive's name as the user gave it (default: its file name); only ``.zip`` is taken.
    """
    from fer.research.evaluate import evaluate, plot_confusion

    if not zip_path:
        return EvalReport(False, "Upload a .zip of labelled face images first.")
    name = name or Path(zip_path).name
    if Path(name).suffix.lower() != ".zip":
        return EvalReport(False, f"{name}: wrong file type; upload a .zip of labelled face images.")
    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return EvalReport(False, str(exc))
    with tempfile.TemporaryDirectory(prefix="fer-eval-") as tmp:
        unpacked = Path(tmp) / "data"
        unpacked.mkdir()
        try:
            safe_extract(zip_path, unpacked)
            dataset = load_labelled(unpacked)
            # The face-crop cache lives in the temporary folder too: nothing of the upload outlives it.
            result = evaluate(pipe.model, dataset, margin=pipe.detector.margin, cache_dir=Path(tmp) / "cache",
                              progress=progress)
            plot = plot_confusion(result, Path(tmp) / "confusion.png",
                                  title=f"{pipe.spec.name} on the uploaded faces")
            figure = read_image(plot)
        except FerError as exc:
            # Paths inside the temporary folder mean nothing to the user: show them relative to the archive.
            message = str(exc).replace(f"{unpacked}{os.sep}", "").replace(str(unpacked), "the archive")
            return EvalReport(False, message)
    data = result.to_dict()
    # Skipped files by their name inside the archive: the temporary folder is gone, and a
    # {"path": ...} record would look like a downloadable file to Gradio clients.
    data["skipped"] = [
        {"file": _archive_name(s.path, unpacked), "reason": s.reason} for s in (*dataset.skipped, *result.skipped)
    ]
    skipped = len(data["skipped"])
    excluded = sum(result.excluded.values())
    faces = "face" if result.n == 1 else "faces"
    message = f"Scored {result.n} {faces} of {len(dataset)} labelled images."
    if skipped:
        message += f" {skipped} skipped (no face or unreadable)."
    if excluded:
        message += f" {excluded} not scored: labels the model does not know ({', '.join(result.excluded)})."
    fed = f"face × {pipe.spec.saliency_input}" if pipe.spec.saliency_input else "plain face crops"
    headline = (f"**Accuracy {result.accuracy:.1%}** on n={result.n} · macro F1 {result.macro_f1:.3f} · "
                f"model {pipe.spec.name}, fed {fed} as in its training")
    rows = [[label, round(v["precision"], 3), round(v["recall"], 3), round(v["f1"], 3), v["n"]]
            for label, v in data["per_class"].items()]
    return EvalReport(True, message, headline, ["expression", "precision", "recall", "F1", "n"], rows, figure, data)


# --------------------------------------------------------------------------- about tab


RESPONSIBLE_USE = """\
### Responsible use
- **Expression is not emotion.** The model reads facial movements, learned from posed and web
  photos. A smile is not proof of happiness, and people differ across cultures, contexts and
  conditions (Barrett, Adolphs, Marsella, Martinez & Pollak 2019, *Psychological Science in the
  Public Interest* 20(1)).
- **Law.** The EU AI Act prohibits AI systems that infer emotions of people in the workplace and in
  education institutions, except for medical or safety reasons (Art. 5(1)(f)), and requires people
  exposed to an emotion-recognition system to be told about it (Art. 50(3)). Do not use this demo
  to judge people; tell anyone in front of the camera what it does.
- **Error.** Every answer can be wrong; the confusion statistics beside each answer say how often
  and in which direction. Accuracy drops for faces, lighting and cameras unlike the training data.
"""

PRIVACY = f"""\
### Privacy
- **Webcam:** frames are analysed in memory and the pictures sent back are inlined in the page;
  no frame is written to disk, logged or kept after it is processed. The session's counts (numbers,
  no pictures) live in server memory for your browser session only; their CSV is made in memory too.
- **Uploads** (pictures, clips, zips): the server deletes each uploaded file as soon as it has read
  it, and every picture and download it sends back is inlined in the page, so nothing of your
  upload is left on its disk once your request is answered (to analyse a clip or an archive again,
  upload it again). A zip is unpacked into a temporary folder deleted as soon as the evaluation
  ends. A file you upload but never analyse (a clip or zip picked without pressing the button) is
  deleted within {(CACHE_MAX_AGE_S + CACHE_CHECK_EVERY_S) // 60} minutes, and everything at shutdown.
- **Memory:** a picture (as you uploaded it) and its face crops stay in server memory, for your
  session only, so that a settings change can redo it: at most {IMAGE_STATE_TTL_S // 60} minutes after
  it was last analysed, an hour if you close the tab. Gradio's own copies of the pictures
  exchanged with your browser (webcam frames included) are dropped within {FORGET_SHOWN_EVERY_S:.0f} seconds.
  Your browser keeps no history of your runs. Nothing is logged, used for training or shared.
"""


def about_markdown(settings: Settings) -> str:
    """The About tab: the model card, how saliency is computed and by which predictor, responsible
    use and privacy."""
    from fer.saliency import SALIENCY_REGISTRY

    try:
        pipe = PIPELINES.get(settings)
    except FerError as exc:
        return f"Model not loaded: {exc}\n\n{RESPONSIBLE_USE}\n{PRIVACY}"
    try:
        from fer.research.card import model_card

        card = model_card(pipe.spec)
    except FerError as exc:
        card = f"(no model card: {exc})"
    shown = SALIENCY_REGISTRY[settings.saliency].description if settings.saliency in SALIENCY_REGISTRY else "?"
    fed = (f"The CNN is fed the face crop × the **{pipe.input_saliency_name}** map "
           f"(floor {pipe.saliency_floor:.2f}: `crop × (floor + (1 − floor) × map)`), the paper's method."
           if pipe.saliency_input else
           "The CNN is fed the plain face crop (saliency input is off for this model; switch it on in Settings "
           "to see the paper's face × saliency input, which a model not trained on it may handle poorly).")
    saliency = (
        "### Saliency: where humans would look\n"
        f"Shown predictor: **{settings.saliency}**: {shown}\n\n{fed}\n\n"
        "The paper (Mavani et al., ICCV-W 2017) used ML-Net, a saliency CNN trained on SALICON; no trained "
        "ML-Net weights ship with this demo, so unless an ML-Net checkpoint is installed the maps come from "
        "the predictors listed below, and the UI names which one made each map.\n\n" + saliency_notes()
    )
    gradcam = ("### Grad-CAM: where the CNN looked\nThe gradient of the shown expression's score, averaged "
               "over each channel of the CNN's last feature map, weights that map (Selvaraju et al., ICCV 2017).")
    return "\n\n".join([card, saliency, gradcam, RESPONSIBLE_USE, PRIVACY])
