"""BlazeFace run directly on LiteRT: the shipped MediaPipe face-detection models without MediaPipe's
graph.

MediaPipe's Tasks face detector spends about as long handing a frame between its threads and
calculators as the network itself takes, and more after an idle gap such as a webcam stream leaves
(figures: benchmarks/README.md). This module runs the same ``.tflite`` files in a LiteRT interpreter on the calling thread and does the
post-processing MediaPipe's graph does, in NumPy:

1. letterbox: the frame is scaled to fit the model's square input, centred, the rest black; the
   warp samples the frame the way MediaPipe's OpenCV image-to-tensor converter does (an affine map
   with no half-pixel shift, bilinear), because BlazeFace's keypoints move by several pixels with
   the sampling phase;
2. SSD decoding against a fixed grid of anchors (MediaPipe's ``SsdAnchorsCalculator`` settings for
   these models: fixed-size anchors, 0.5 offsets), sigmoid scores;
3. MediaPipe's *weighted* non-maximum suppression: overlapping boxes (IoU > 0.3) are merged into
   their score-weighted mean, keeping the best score;
4. boxes back to image pixels, truncated to ints as MediaPipe's pixel detections are.

`tests/test_blazeface.py` checks that the result equals MediaPipe's on real pictures (same faces, scores
within 0.005, keypoints within 1 % of the face size).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: Overlap above which MediaPipe's face detector merges two detections (its default).
MIN_SUPPRESSION_IOU = 0.3


@dataclass(frozen=True)
class BlazeFaceLayout:
    """How one BlazeFace model's outputs are laid out.

    Attributes:
        input_size: side of the square RGB input, in pixels.
        strides: one entry per SSD layer (the feature map of a layer is ``input_size / stride``);
            consecutive layers with the same stride share one feature map.
        anchors_per_layer: anchors per feature-map cell that each layer adds.
    """

    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int

    def anchors(self) -> np.ndarray:
        """Anchor centres, ``(N, 2)`` float32 ``(x, y)`` in [0, 1] of the input, in output order."""
        groups = []
        i = 0
        while i < len(self.strides):
            stride = self.strides[i]
            per_cell = 0
            while i < len(self.strides) and self.strides[i] == stride:
                per_cell += self.anchors_per_layer
                i += 1
            cells = -(-self.input_size // stride)
            ys, xs = np.mgrid[0:cells, 0:cells]
            centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
            groups.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
        return np.concatenate(groups).astype(np.float32)


#: Layouts of the shipped detectors (`fer.face.DETECTOR_MODELS`), as MediaPipe configures them:
#: short range 128 px, 896 anchors; full range 192 px, 2304 anchors.
LAYOUTS: dict[str, BlazeFaceLayout] = {
    "short": BlazeFaceLayout(128, (8, 16, 16, 16), 2),
    "full": BlazeFaceLayout(192, (4,), 1),
}


@dataclass(frozen=True)
class Detection:
    """One face as the detector gives it, before cropping.

    Attributes:
        score: confidence in [0, 1].
        box: ``(x0, y0, x1, y1)`` int pixels, clipped to the image.
        keypoints: ``(6, 2)`` float32 ``(x, y)`` image pixels, order `fer.face.KEYPOINT_NAMES`.
    """

    score: float
    box: tuple[int, int, int, int]
    keypoints: np.ndarray


def letterbox(width: int, height: int, size: int) -> np.ndarray:
    """The affine map from image pixels to a ``size``-pixel square input that holds the whole image,
    centred, aspect ratio kept: ``(2, 3)`` float32."""
    scale = size / max(width, height)
    return np.array([[scale, 0.0, (max(width, height) - width) / 2 * scale],
                     [0.0, scale, (max(width, height) - height) / 2 * scale]], np.float32)


def weighted_nms(scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                 threshold: float = MIN_SUPPRESSION_IOU) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression.

    Repeatedly takes the best remaining detection, gathers every remaining one whose IoU with it is
    above ``threshold`` (itself included), and replaces the group by its score-weighted mean box and
    keypoints, with the best score.

    Args:
        scores: ``(N,)`` float in [0, 1].
        boxes: ``(N, 4)`` float ``(x0, y0, x1, y1)``.
        keypoints: ``(N, K, 2)`` float.
        threshold: IoU in [0, 1).
    Returns:
        ``(score, box (4,), keypoints (K, 2))`` per merged detection, best score first.
    """
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    merged = []
    while order.size:
        best = order[0]
        rest = boxes[order]
        inter_w = np.minimum(rest[:, 2], boxes[best, 2]) - np.maximum(rest[:, 0], boxes[best, 0])
        inter_h = np.minimum(rest[:, 3], boxes[best, 3]) - np.maximum(rest[:, 1], boxes[best, 1])
        inter = np.clip(inter_w, 0, None) * np.clip(inter_h, 0, None)
        union = areas[order] + areas[best] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        group = iou > threshold
        group[0] = True  # a degenerate (zero-area) best box still stands for itself
        members = order[group]
        weights = scores[members] / scores[members].sum()
        merged.append((float(scores[best]), weights @ boxes[members],
                       np.tensordot(weights, keypoints[members], axes=1)))
        order = order[~group]
    return merged


class BlazeFace:
    """A BlazeFace ``.tflite`` model on a LiteRT interpreter, with MediaPipe's post-processing.

    One interpreter, one thread of its own; calls from several threads take turns on a lock (the
    preprocessing and decoding run outside it).
    """

    def __init__(self, path: str | Path, layout: BlazeFaceLayout, min_score: float = 0.5,
                 min_suppression_iou: float = MIN_SUPPRESSION_IOU) -> None:
        """Args:
            path: the ``.tflite`` file (already verified by the caller).
            layout: its `BlazeFaceLayout`.
            min_score: detections below this confidence in [0, 1] are dropped before merging.
            min_suppression_iou: IoU above which detections are merged.
        """
        from ai_edge_litert.interpreter import Interpreter

        # One thread: a second one gains back to back but loses after an idle gap (a webcam stream),
        # and takes the core the rest of the pipeline or another session would use (benchmarks/README.md).
        self._interpreter = Interpreter(model_path=str(path), num_threads=1)
        self._interpreter.allocate_tensors()
        (inp,) = self._interpreter.get_input_details()
        shape = tuple(inp["shape"])
        if shape != (1, layout.input_size, layout.input_size, 3):
            raise ValueError(f"{path}: input {shape} does not match the layout's {layout.input_size} px")
        self._input = inp["index"]
        outputs = self._interpreter.get_output_details()
        # The regressor output has 16 values per anchor (box + 6 keypoints), the classifier one.
        by_width = {int(o["shape"][-1]): o["index"] for o in outputs}
        self._regressors, self._classifiers = by_width[16], by_width[1]
        self.layout = layout
        self._anchors = layout.anchors()
        if int(outputs[0]["shape"][1]) != len(self._anchors):
            raise ValueError(f"{path}: {outputs[0]['shape'][1]} anchors in the model, {len(self._anchors)} in the layout")
        self.min_score = min_score
        self.min_suppression_iou = min_suppression_iou
        # Scores are compared as logits: sigmoid(x) >= p  <=>  x >= log(p / (1 - p)).
        self._min_logit = -np.inf if min_score <= 0 else np.inf if min_score >= 1 else float(np.log(min_score / (1 - min_score)))
        self._lock = threading.Lock()

    def raw(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's outputs for one frame.

        Args:
            image: ``(H, W, 3)`` uint8 RGB.
        Returns:
            ``(regressors (N, 16) float32, logits (N,) float32)`` in input pixels, anchor order.
        """
        size = self.layout.input_size
        warped = cv2.warpAffine(image, letterbox(image.shape[1], image.shape[0], size), (size, size),
                                flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        tensor = warped.astype(np.float32)[None]
        tensor *= 2.0 / 255.0
        tensor -= 1.0
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            regressors = self._interpreter.get_tensor(self._regressors)[0]
            logits = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        return regressors, logits

    def __call__(self, image: np.ndarray) -> list[Detection]:
        """Detect faces.

        Args:
            image: ``(H, W, 3)`` uint8 RGB, at least 1×1.
        Returns:
            Faces with score >= ``min_score``, best score first, boxes clipped to the image.
        """
        height, width = image.shape[:2]
        regressors, logits = self.raw(image)
        keep = np.flatnonzero(logits >= self._min_logit)
        if keep.size == 0:
            return []
        size = self.layout.input_size
        values = regressors[keep] / size
        anchors = self._anchors[keep]
        centres = values[:, :2] + anchors
        half = values[:, 2:4] / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        keypoints = values[:, 4:].reshape(len(keep), -1, 2) + anchors[:, None, :]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[keep].astype(np.float64), -100.0, 100.0)))
        # Input fractions → image pixels: undo the letterbox.
        to_image = cv2.invertAffineTransform(letterbox(width, height, size))
        scale, shift = to_image[0, 0] * size, to_image[:, 2]
        detections = []
        for score, box, points in weighted_nms(scores, boxes, keypoints, self.min_suppression_iou):
            x0, y0 = box[:2] * scale + shift
            x1, y1 = box[2:] * scale + shift
            detections.append(Detection(score, pixel_box(x0, y0, x1, y1, width, height),
                                        (points * scale + shift).astype(np.float32)))
        return detections


def pixel_box(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> tuple[int, int, int, int]:
    """A float box in image pixels as MediaPipe's pixel detections give it: corner and size
    truncated to ints and bounded to the image, then the far corner clipped.

    Returns:
        ``(x0, y0, x1, y1)`` ints with ``0 <= x0 <= x1 <= width`` and ``0 <= y0 <= y1 <= height``.
    """
    left = min(max(int(x0), 0), width)
    top = min(max(int(y0), 0), height)
    box_w = min(max(int(x1 - x0), 0), width)
    box_h = min(max(int(y1 - y0), 0), height)
    return left, top, min(width, left + box_w), min(height, top + box_h)
