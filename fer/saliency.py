"""Saliency stage: where humans look in a face crop, and the paper's crop × saliency-map product.

Predictors are registered by name in `SALIENCY_REGISTRY`; `load_saliency(name)` builds one. Each
takes ``crops (N, S, S, 3) uint8 RGB`` and ``keypoints (N, 6, 2) float32`` crop pixels (MediaPipe
order: right eye, left eye, nose tip, mouth centre, right ear, left ear) and returns
``(N, S, S) float32`` maps in [0, 1], each divided by its maximum. Non-square ``(N, H, W, 3)``
images work too and give ``(N, H, W)`` maps.

``face-prior`` (default): a model of human fixations on faces built from the detected keypoints,
not a learned saliency network. It is a mixture of five Gaussians in the eye-levelled crop: one on
each eye, one on the upper nose (half-way between the eyes and the nose tip), one on the mouth and
a broad one over the inner face. Their widths scale with the face (the inter-ocular distance, or
0.8× the eye-to-mouth distance when that is larger, as in profile views) and their weights, the
fraction of fixations each region receives, are a rounded synthesis of published eye-tracking
findings, not a fit to data:

eyes 0.40 (0.20 each), upper nose 0.25, mouth 0.15, the rest of the inner face 0.20; the findings
behind each weight, with their sources, are `fer.texts.FACE_PRIOR_EVIDENCE`.

With these weights the map peaks on the eyes of a frontal face. ``spectral-residual`` is
bottom-up image saliency (Hou & Zhang, CVPR 2007). ``mlnet`` is ML-Net (Cornia et al., ICPR 2016,
`fer.mlnet`), the network the paper used; no trained weights are shipped, so it is listed only when
a checkpoint is available (``weights=``, ``FER_MLNET_WEIGHTS``, or the registered ``mlnet`` of
`fer.weights.REGISTRY` in the shipped weights or the Hub's cache).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer.errors import InputError, WeightsError
from fer.texts import FACE_PRIOR_EVIDENCE, FACE_PRIOR_SHORT
from fer.weights import local_spec, registered, spec_file

#: Saliency predictor used when none is named.
DEFAULT_SALIENCY = "face-prior"

#: Default floor of `apply_saliency`: pixels where nobody looks keep 30 % of their brightness.
DEFAULT_SALIENCY_FLOOR = 0.3

#: Environment variable naming an ML-Net checkpoint (``.safetensors``, its ``.json`` or their folder).
MLNET_WEIGHTS_ENV = "FER_MLNET_WEIGHTS"


class SaliencyPredictor(Protocol):
    """What `load_saliency` returns."""

    name: str
    description: str

    def __call__(self, crops: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray: ...


def _check_crops(crops: np.ndarray, min_side: int = 8) -> np.ndarray:
    if not isinstance(crops, np.ndarray) or crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3:
        got = f"{crops.shape} {crops.dtype}" if isinstance(crops, np.ndarray) else type(crops).__name__
        raise InputError(f"saliency expects crops as an (N, S, S, 3) uint8 RGB array, got {got}")
    if crops.shape[1] < min_side or crops.shape[2] < min_side:
        raise InputError(f"crops of {crops.shape[2]}×{crops.shape[1]} pixels are too small (min {min_side}×{min_side})")
    return crops


def _max_normalise(maps: np.ndarray) -> np.ndarray:
    """Divide each non-negative ``(N, H, W)`` map by its maximum, in place when it is float32; a map
    without any positive value becomes uniform ones (no preference), so `apply_saliency` leaves
    such a crop unchanged."""
    maps = maps.astype(np.float32, copy=False)
    peak = maps.max(axis=(1, 2)) if maps.size else np.zeros(len(maps), np.float32)
    flat = peak <= 1e-12
    maps /= np.where(flat, 1.0, peak).astype(np.float32)[:, None, None]
    if flat.any():
        maps[flat] = 1.0
    return maps


# --------------------------------------------------------------------------- face prior

#: Face-prior components: weight (fraction of fixations) and Gaussian sigmas (x, y) in units of the
#: face scale. Why these weights: `fer.texts.FACE_PRIOR_EVIDENCE` (eyes, upper nose, mouth, inner face).
FACE_PRIOR_REGIONS: dict[str, tuple[float, float, float]] = {
    "right_eye": (0.20, 0.25, 0.25),
    "left_eye": (0.20, 0.25, 0.25),
    # Half-way from the eyes to the nose tip: the nasion and nose bridge.
    "upper_nose": (0.25, 0.30, 0.35),
    "mouth": (0.15, 0.40, 0.20),
    "inner_face": (0.20, 1.00, 1.20),
}


@functools.lru_cache(maxsize=16)
def _pixel_centres(n: int) -> np.ndarray:
    # Keypoints are continuous coordinates (pixel i spans [i, i + 1)), so pixel centres are i + 0.5.
    return np.arange(n, dtype=np.float32) + 0.5


class FacePrior:
    """Where people look on a face, from its keypoints: a Gaussian mixture over eyes, upper nose,
    mouth and inner face (see the module docstring for the weights' sources).

    Crops are eye-levelled by `fer.face`, so the Gaussians are axis-aligned and each map is a sum
    of five outer products of 1-D Gaussians (cheap: no 2-D Gaussian is evaluated).
    """

    name = "face-prior"
    description = f"Face fixation prior, not ML-Net: {FACE_PRIOR_SHORT}"
    #: The findings behind each region's weight, with their sources.
    evidence = FACE_PRIOR_EVIDENCE

    def __init__(self, regions: dict[str, tuple[float, float, float]] | None = None) -> None:
        regions = FACE_PRIOR_REGIONS if regions is None else regions
        if set(regions) != set(FACE_PRIOR_REGIONS):
            raise InputError(f"face-prior regions must be exactly {sorted(FACE_PRIOR_REGIONS)}")
        table = np.array([regions[k] for k in FACE_PRIOR_REGIONS], np.float32)
        if (table <= 0).any():
            raise InputError("face-prior weights and sigmas must be positive")
        self._weights, self._sigmas = table[:, 0], table[:, 1:]

    def centres(self, keypoints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Component centres ``(N, 5, 2)`` and face scale ``(N,)`` in pixels from ``(N, 6, 2)`` keypoints."""
        right_eye, left_eye, nose, mouth = (keypoints[:, i] for i in range(4))
        eye_mid = (right_eye + left_eye) / 2
        centres = np.stack([right_eye, left_eye, (eye_mid + nose) / 2, mouth, (eye_mid + mouth) / 2], axis=1)
        inter_ocular = np.linalg.norm(left_eye - right_eye, axis=1)
        eye_mouth = np.linalg.norm(mouth - eye_mid, axis=1)
        scale = np.maximum(np.maximum(inter_ocular, 0.8 * eye_mouth), 1.0)
        return centres.astype(np.float32), scale.astype(np.float32)

    def __call__(self, crops: np.ndarray, keypoints: np.ndarray | None) -> np.ndarray:
        """``crops (N, H, W, 3) uint8``, ``keypoints (N, 6, 2)`` crop pixels → ``(N, H, W)`` float32 in [0, 1]."""
        crops = _check_crops(crops)
        n, h, w = crops.shape[:3]
        if keypoints is None:
            raise InputError("face-prior needs face keypoints (N, 6, 2) in crop pixels; use fer.face.FaceDetector")
        kp = np.asarray(keypoints, np.float32)
        if kp.shape[0] != n or kp.ndim != 3 or kp.shape[1] < 4 or kp.shape[2] != 2:
            raise InputError(f"keypoints must be (N={n}, 6, 2) crop pixels, got {kp.shape}")
        if not np.isfinite(kp[:, :4]).all():
            raise InputError("keypoints contain NaN or infinite values")
        centres, scale = self.centres(kp)
        sigma = self._sigmas[None] * scale[:, None, None]  # (N, K, 2)
        gx = np.exp(-0.5 * ((_pixel_centres(w)[None, None] - centres[..., 0:1]) / sigma[..., 0:1]) ** 2)
        gy = np.exp(-0.5 * ((_pixel_centres(h)[None, None] - centres[..., 1:2]) / sigma[..., 1:2]) ** 2)
        # Each Gaussian integrates to its weight, so a wide component spreads its share thin.
        amplitude = self._weights[None] / (2 * np.pi * sigma[..., 0] * sigma[..., 1])
        maps = np.matmul((gy * amplitude[..., None]).transpose(0, 2, 1), gx)  # (N, H, K) @ (N, K, W)
        return _max_normalise(maps)


# --------------------------------------------------------------------------- spectral residual


class SpectralResidual:
    """Spectral residual saliency (Hou & Zhang, "Saliency Detection: A Spectral Residual Approach",
    CVPR 2007) as OpenCV's contrib ``saliency`` module computes it
    (``StaticSaliencySpectralResidual``: the grey crop shrunk to 64×64 as in the paper, the log
    amplitude spectrum minus its 3×3 average recombined with the phase, the squared inverse
    transform smoothed and brought back to the crop's size), each map divided by its maximum.
    """

    name = "spectral-residual"
    description = (
        "Spectral residual (Hou & Zhang 2007): bottom-up image contrast saliency, not a model of "
        "where people look at faces, not ML-Net"
    )

    def __call__(self, crops: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """``crops (N, H, W, 3) uint8`` (keypoints ignored) → ``(N, H, W)`` float32 in [0, 1]."""
        crops = _check_crops(crops)
        # One OpenCV object per call: they hold buffers, so sharing one between threads is unsafe.
        algorithm = cv2.saliency.StaticSaliencySpectralResidual_create()  # type: ignore[attr-defined]
        out = np.empty(crops.shape[:3], np.float32)
        for i, crop in enumerate(crops):
            ok, found = algorithm.computeSaliency(cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
            out[i] = found if ok else 0.0
        return _max_normalise(np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0))


# --------------------------------------------------------------------------- ML-Net


class MLNetSaliency:
    """ML-Net (Cornia et al., ICPR 2016) on face crops: each crop is letterboxed into the network's
    input (ImageNet mean/std), the output is cut back to the crop, upsampled and max-normalised."""

    name = "mlnet"

    def __init__(self, module, spec, device: str = "cpu", batch_size: int = 8) -> None:
        self.module = module
        self.spec = spec
        self.device = device
        self.batch_size = batch_size
        trained_on = spec.training_data or "unstated data"
        self.description = f"ML-Net (Cornia et al. 2016) saliency CNN, weights trained on {trained_on}"

    def __call__(self, crops: np.ndarray, keypoints: np.ndarray | None = None) -> np.ndarray:
        """``crops (N, H, W, 3) uint8`` (keypoints ignored) → ``(N, H, W)`` float32 in [0, 1]."""
        import torch
        import torch.nn.functional as F

        from fer.mlnet import letterbox, output_region, to_tensor

        crops = _check_crops(crops)
        n, h, w = crops.shape[:3]
        boxed = [letterbox(c, self.spec.input_size) for c in crops]
        # Same-sized crops share one region; cut it from the output grid, then upsample.
        y0, y1, x0, x1 = output_region(boxed[0][1]) if n else (0, 0, 0, 0)
        out = np.empty((n, h, w), np.float32)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                batch = np.stack([b[0] for b in boxed[start : start + self.batch_size]])
                x = to_tensor(batch, self.spec.mean, self.spec.std).to(self.device)
                pred = self.module(x)[:, :, y0:y1, x0:x1]
                pred = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)
                out[start : start + len(batch)] = pred[:, 0].float().cpu().numpy()
        return _max_normalise(np.maximum(out, 0.0))


def _mlnet_checkpoint(weights: str | os.PathLike | None, fetch: bool) -> Path | None:
    """The ML-Net checkpoint to use: ``weights``, else ``$FER_MLNET_WEIGHTS``, else the registered
    ``mlnet`` (`fer.weights.REGISTRY`: shipped, or from the Hub when ``fetch``); None if there is none."""
    chosen = weights or os.environ.get(MLNET_WEIGHTS_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return spec_file("mlnet") if fetch else local_spec("mlnet")


def _mlnet_status(weights: str | None) -> str:
    path = _mlnet_checkpoint(weights, fetch=False)
    if path is None:
        return f"needs weights: {registered('mlnet').howto}"
    from fer.mlnet import spec_path_for

    try:
        spec_path_for(path)
    except WeightsError as exc:
        return f"needs weights: {exc}; {registered('mlnet').howto}"
    return "ready"


def _build_mlnet(device: str, weights: str | None) -> MLNetSaliency:
    path = _mlnet_checkpoint(weights, fetch=True)
    assert path is not None  # spec_file raises instead
    from fer.mlnet import load_mlnet

    module, spec = load_mlnet(path, device=device)
    return MLNetSaliency(module, spec, device=device)


# --------------------------------------------------------------------------- registry


def _ready(weights: str | None) -> str:
    return "ready"


@dataclass(frozen=True)
class SaliencyEntry:
    """A registered predictor: ``build(device, weights)``, the one-line description the UI shows,
    and ``status(weights)`` ("ready" or "needs weights: …")."""

    build: Callable[[str, str | None], SaliencyPredictor]
    description: str
    status: Callable[[str | None], str] = _ready


SALIENCY_REGISTRY: dict[str, SaliencyEntry] = {
    "face-prior": SaliencyEntry(lambda device, weights: FacePrior(), FacePrior.description),
    "spectral-residual": SaliencyEntry(lambda device, weights: SpectralResidual(), SpectralResidual.description),
    "mlnet": SaliencyEntry(
        _build_mlnet,
        "ML-Net (Cornia et al. 2016), the saliency CNN the paper used; needs a trained checkpoint",
        _mlnet_status,
    ),
}


def saliency_status() -> dict[str, str]:
    """Every registered predictor → ``"ready"`` or ``"needs weights: <how to get them>"``."""
    return {name: entry.status(None) for name, entry in SALIENCY_REGISTRY.items()}


def available_saliency() -> list[str]:
    """Names of the predictors usable now (default first)."""
    ready = [name for name, status in saliency_status().items() if status == "ready"]
    return sorted(ready, key=lambda name: (name != DEFAULT_SALIENCY, name))


def load_saliency(name: str = DEFAULT_SALIENCY, device: str = "cpu", weights: str | None = None) -> SaliencyPredictor:
    """Build a saliency predictor by name.

    Args:
        name: one of `SALIENCY_REGISTRY` (see `available_saliency`).
        device: torch device for network predictors (``"cpu"``, ``"cuda"``).
        weights: checkpoint for predictors that need one (``mlnet``): a ``.safetensors`` file, its
            ``.json`` spec or their folder; default ``$FER_MLNET_WEIGHTS``.
    Raises:
        InputError: unknown name.
        WeightsError: the predictor needs weights that are missing or invalid.
    """
    try:
        entry = SALIENCY_REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown saliency predictor {name!r}; choose one of {', '.join(SALIENCY_REGISTRY)}") from None
    return entry.build(device, None if weights is None else str(weights))


# --------------------------------------------------------------------------- the paper's product


def apply_saliency(crops: np.ndarray, maps: np.ndarray, floor: float = DEFAULT_SALIENCY_FLOOR) -> np.ndarray:
    """Weight each crop by its saliency map: ``crops * (floor + (1 - floor) * map)``, rounded.

    ``floor=0.0`` is the paper's pure product (pixels nobody looks at turn black). The default
    floor dims rather than erases them: a CNN fine-tuned on ordinary face crops has never seen
    large black regions, which would be out-of-distribution input for it; with a floor the
    salient regions still stand out while the image stays a face photo. A model trained on
    saliency-weighted crops records its floor in `fer.models.ModelSpec.saliency_floor`.

    Args:
        crops: ``(N, S, S, 3)`` uint8 RGB.
        maps: ``(N, S, S)`` float in [0, 1].
        floor: in [0, 1]; 1.0 leaves crops unchanged.
    Returns:
        ``(N, S, S, 3)`` uint8 RGB, a new array.
    """
    crops = _check_crops(crops, min_side=1)
    maps = np.asarray(maps, np.float32)
    if maps.shape != crops.shape[:3]:
        raise InputError(f"saliency maps {maps.shape} do not match crops {crops.shape[:3]}")
    if not 0.0 <= floor <= 1.0:
        raise InputError(f"saliency floor must be in [0, 1], got {floor}")
    gain = floor + (1.0 - floor) * np.clip(maps, 0.0, 1.0)
    return np.clip(np.rint(crops * gain[..., None]), 0, 255).astype(np.uint8)


def weight_by_saliency(
    crops: np.ndarray,
    keypoints: np.ndarray,
    predictor: SaliencyPredictor,
    floor: float = DEFAULT_SALIENCY_FLOOR,
    *,
    maps: np.ndarray | None = None,
    batch_size: int = 64,
    progress: bool = False,
    description: str = "saliency",
) -> np.ndarray:
    """The paper's CNN input: each crop weighted by its saliency map (`apply_saliency`), made
    ``batch_size`` crops at a time, so that a dataset's maps are never all in memory at once.

    Args:
        crops: ``(N, S, S, 3)`` uint8 RGB.
        keypoints: ``(N, 6, 2)`` float32 crop pixels (for keypoint-based predictors).
        predictor: a predictor from `load_saliency`.
        floor: in [0, 1], see `apply_saliency`.
        maps: ``(N, S, S)`` float32 maps ``predictor`` already made for these crops (the pipeline
            shows them too); None: made here.
        progress: show a progress bar over the batches, titled ``description``.
    Returns:
        ``(N, S, S, 3)`` uint8 RGB, a new array.
    """
    crops = _check_crops(crops, min_side=1)
    out = np.empty_like(crops)
    starts: Iterable[int] = range(0, len(crops), max(1, batch_size))
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=description, unit="batch", leave=False)
    for start in starts:
        images = crops[start:start + batch_size]
        batch_maps = predictor(images, keypoints[start:start + batch_size]) if maps is None else maps[start:start + batch_size]
        out[start:start + batch_size] = apply_saliency(images, batch_maps, floor)
    return out
