"""The pipeline: image → faces → saliency → (face × saliency) → CNN → `Prediction` records.

    >>> import fer
    >>> pipe = fer.load()                      # shipped mini-Xception (FER2013) + BlazeFace detector
    >>> [p.top_k(3) for p in pipe("assets/astronaut.png")]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from fer.errors import InputError
from fer.face import DEFAULT_CROP_SIZE, DEFAULT_MARGIN, DetectorEngine, Face, FaceDetector
from fer.io import ImageSource, read_image
from fer.limits import DEFAULT_MAX_FACES
from fer.models import (
    Engine,
    LoadedModel,
    ModelSpec,
    cam_layer,
    load_model,
    preprocess_array,
    softmax,
)

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
    """

    face: Face
    labels: tuple[str, ...]
    probabilities: np.ndarray
    model_input: np.ndarray
    saliency: np.ndarray | None = None
    saliency_name: str | None = None
    attention: np.ndarray | None = None
    attention_label: str | None = None

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
    """Detector + optional saliency + expression CNN (+ optional Grad-CAM), loaded once.

    Build it with `fer.load`. Thread-safe for concurrent calls (the detector serialises itself;
    the CNN runs under ``torch.inference_mode``).
    """

    def __init__(
        self,
        model: LoadedModel,
        detector: FaceDetector,
        saliency: str | None = None,
        saliency_input: bool | None = None,
        saliency_floor: float | None = None,
        attention: bool = False,
    ) -> None:
        from fer import saliency as sal

        spec = model.spec
        self.model = model
        self.detector = detector
        self.attention = attention
        self.saliency_name = saliency
        #: Whether the CNN is fed face × saliency (the paper's method). The spec says what the model
        #: was trained with; an explicit argument overrides it.
        self.saliency_input = spec.saliency_input is not None if saliency_input is None else saliency_input
        self.input_saliency_name = spec.saliency_input or saliency or DEFAULT_INPUT_SALIENCY
        if saliency_floor is None:
            saliency_floor = spec.saliency_floor if spec.saliency_input else sal.DEFAULT_SALIENCY_FLOOR
        if not 0.0 <= saliency_floor <= 1.0:
            raise InputError(f"saliency_floor must be in [0, 1], got {saliency_floor}")
        self.saliency_floor = saliency_floor
        needed = {n for n in (saliency, self.input_saliency_name if self.saliency_input else None) if n}
        self._predictors = {name: sal.load_saliency(name, device=str(self.device)) for name in sorted(needed)}

    @property
    def spec(self) -> ModelSpec:
        """The expression model's `fer.models.ModelSpec`."""
        return self.model.spec

    @property
    def labels(self) -> tuple[str, ...]:
        """The expression labels, in probability order."""
        return self.model.spec.labels

    @property
    def device(self) -> torch.device:
        """Device the CNN runs on."""
        return self.model.device

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
        """Read the image and detect faces (no classification)."""
        return self.detector(read_image(image))

    def saliency_maps(self, name: str, crops: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` float32 maps in [0, 1] from the named (already loaded) predictor."""
        return self._predictors[name](crops, keypoints)

    def predict_faces(
        self, faces: list[Face], *, attention: bool | None = None, target: str | None = None
    ) -> list[Prediction]:
        """Classify already-detected faces in one batch (see `__call__`)."""
        if not faces:
            return []
        crops = np.stack([f.crop for f in faces])
        keypoints = np.stack([f.crop_keypoints for f in faces])
        maps = {name: self.saliency_maps(name, crops, keypoints) for name in self._predictors}
        model_input = crops
        if self.saliency_input:
            from fer.saliency import apply_saliency

            model_input = apply_saliency(crops, maps[self.input_saliency_name], self.saliency_floor)
        want_cams = self.attention if attention is None else attention
        fixed = None if target is None else self._targets(np.zeros((len(faces), 1)), target)
        # One forward pass serves both the classification and Grad-CAM.
        probs, cams = self.classify(preprocess_array(model_input, self.spec), attention=want_cams,
                                    targets=fixed, size=crops.shape[1])
        cam_targets = fixed if fixed is not None else [int(i) for i in probs.argmax(axis=1)]
        shown = maps.get(self.saliency_name) if self.saliency_name else None
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
            )
            for i, face in enumerate(faces)
        ]

    def predict_crops(self, crops: np.ndarray, keypoints: np.ndarray, **kwargs: Any) -> list[Prediction]:
        """Classify ready-made face crops (no detection), e.g. from a dataset cache.

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
        """Grad-CAM maps ``(N, size, size)`` float32 in [0, 1] for class indices ``targets``.

        Args:
            model_input: ``(N, S, S, 3)`` uint8 RGB, the CNN's input as in `Prediction.model_input`.
        """
        maps = self.classify(preprocess_array(model_input, self.spec), attention=True, targets=targets, size=size)[1]
        assert maps is not None
        return maps

    def classify(self, x: np.ndarray, *, attention: bool = False, targets: list[int] | None = None,
                 size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The CNN on preprocessed input, with Grad-CAM from the same forward pass when asked.

        Args:
            x: ``(N, C, input_size, input_size)`` float32 from `fer.models.preprocess_array`.
            attention: also compute Grad-CAM maps.
            targets: class index per input for Grad-CAM (default: each input's top-1).
            size: side ``S`` of the maps (default: the feature map's).
        Returns:
            ``(N, K)`` float32 probabilities and ``(N, S, S)`` float32 maps in [0, 1] (None without attention).
        """
        if not attention:
            return softmax(self.model.run(x)[0]), None
        if self.model.cam is not None:
            # Affine head: Grad-CAM's channel weights are constants; the forward pass's features suffice.
            logits, features = self.model.run(x, features=True)
            assert features is not None
            probs = softmax(logits)
            chosen = targets if targets is not None else [int(i) for i in probs.argmax(axis=1)]
            return probs, self.model.cam(features, chosen, size)
        from fer.gradcam import grad_cam

        t = torch.from_numpy(x).to(self.device, memory_format=torch.channels_last)
        maps, scores = grad_cam(self.model.module, cam_layer(self.model.module, self.spec), t, targets, size=size,
                                return_logits=True)
        return softmax(scores.float().cpu().numpy()), maps

    def _targets(self, probs: np.ndarray, target: str | None) -> list[int]:
        if target is None:
            return [int(i) for i in probs.argmax(axis=1)]
        if target not in self.labels:
            raise InputError(f"unknown target label {target!r}; the model knows {', '.join(self.labels)}")
        return [self.labels.index(target)] * len(probs)

    def close(self) -> None:
        """Release the detector."""
        self.detector.close()

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else as given."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load(
    model: str = "default",
    saliency: str | None = None,
    device: str | torch.device = "cpu",
    *,
    detector: Literal["short", "full"] = "short",
    margin: float | None = None,
    max_faces: int = DEFAULT_MAX_FACES,
    min_score: float = 0.5,
    crop_size: int = DEFAULT_CROP_SIZE,
    saliency_input: bool | None = None,
    saliency_floor: float | None = None,
    attention: bool = False,
    threads: int | None = 1,
    engine: Engine = "auto",
    detector_engine: DetectorEngine = "auto",
) -> Pipeline:
    """Build a ready `Pipeline` (the one front door).

    Args:
        model: a name from `fer.available_models()` or a checkpoint path (``.json``/``.safetensors``/folder).
        saliency: a name from `fer.available_saliency()` to fill `Prediction.saliency`, or None.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        detector: ``"short"`` (webcam, portraits) or ``"full"`` (group photos, small faces).
        margin: crop margin per side as a fraction of the face box (default: the model's spec, else 0.2).
        max_faces: most faces analysed per image (largest first).
        min_score: detector confidence threshold in [0, 1].
        crop_size: side of the face crops and of the maps, in pixels.
        saliency_input: feed the CNN face × saliency (the paper's method); default: what the model
            was trained with (its spec).
        saliency_floor: brightness kept where saliency is 0 (default: the spec's, else 0.3).
        attention: compute Grad-CAM for every face by default.
        threads: torch CPU threads, process-wide (``torch.set_num_threads``). 1 is as fast as 2 for
            this small CNN on an idle 2-core machine and keeps latency steady when other work or
            other requests share the cores (2 threads are then 5-10x slower); None leaves torch's
            setting alone.
        engine: what runs the CNN: ``"auto"`` (OpenCV DNN on the CPU when the network exports to it
            with PyTorch's outputs, else PyTorch), ``"opencv"`` or ``"torch"``; see `fer.models.load_model`.
        detector_engine: what runs the face detector: ``"auto"`` (LiteRT when installed, else
            MediaPipe), ``"litert"`` or ``"mediapipe"``; both give the same faces (see `fer.blazeface`).
    """
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    loaded = load_model(model, device=resolve_device(device), engine=engine)
    if margin is None:
        margin = loaded.spec.margin if loaded.spec.margin is not None else DEFAULT_MARGIN
    face_detector = FaceDetector(
        detector, min_score=min_score, max_faces=max_faces, margin=margin, crop_size=crop_size,
        engine=detector_engine,
    )
    try:
        return Pipeline(loaded, face_detector, saliency, saliency_input, saliency_floor, attention)
    except Exception:
        face_detector.close()
        raise
