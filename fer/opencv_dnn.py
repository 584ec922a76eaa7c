"""The expression CNN on OpenCV's DNN engine, from an ONNX graph exported in memory at load time.

Why: the shipped mini-Xception is tiny (57 k parameters, 64x64 input), so eager PyTorch spends most
of its time in per-operator overhead: 2.1 ms a face on one thread, against 0.56 ms for the same
graph in OpenCV DNN (measured on this 2-core machine, batch 1; `python -m fer bench` reports both).

The graph is traced from the module just loaded from its safetensors file, so there is no second
weights file to ship or keep in step, and every checkpoint `fer train` writes gets the same path. The
export gives two outputs: the logits and the feature map Grad-CAM reads, so one pass serves the
classification and (for networks with an affine head, see `fer.gradcam.LinearHeadCam`) the attention
map. A parity check against PyTorch on a fixed input refuses the export when OpenCV computes
something else, and the caller keeps PyTorch.
"""

from __future__ import annotations

import io
import logging
import threading
import warnings

import cv2
import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

#: The two graph outputs, in the order `OpenCVNet.__call__` returns them.
OUTPUTS = ("logits", "features")

#: Largest difference from PyTorch's logits (relative to their scale) accepted by the parity check.
PARITY_TOLERANCE = 1e-3


class _WithFeatures(nn.Module):
    """``x`` → ``(logits, feature map of layer)``, for tracing: the hook's tensor becomes a graph output."""

    def __init__(self, module: nn.Module, layer: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.layer = layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        handle = self.layer.register_forward_hook(lambda _m, _i, out: seen.append(out))
        try:
            logits = self.module(x)
        finally:
            handle.remove()
        return logits, seen[-1]


def export_onnx(module: nn.Module, layer: nn.Module, example: torch.Tensor) -> bytes:
    """Trace ``module`` (eval mode, CPU) to an ONNX graph with outputs `OUTPUTS`.

    Args:
        module: ``(N, C, H, W)`` → ``(N, K)`` logits.
        layer: submodule whose ``(N, D, h, w)`` output becomes the ``features`` output.
        example: ``(1, C, H, W)`` float32 input of the size the graph will always get (the batch
            dimension stays dynamic; the spatial size is fixed by tracing).
    Returns:
        The serialised ONNX model.
    """
    buffer = io.BytesIO()
    # Tracing warns about Python-level shape checks (fixed for a fixed input size) and the
    # TorchScript exporter's deprecation; neither concerns a graph used only for this input size.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _WithFeatures(module, layer), (example,), buffer,  # type: ignore[arg-type] # file objects work
            dynamo=False, input_names=["x"],
            output_names=list(OUTPUTS), dynamic_axes={name: {0: "n"} for name in ("x", *OUTPUTS)},
            opset_version=17,
        )
    return buffer.getvalue()


class OpenCVNet:
    """An ONNX graph run by OpenCV DNN, one ``cv2.dnn.Net`` per calling thread.

    A ``cv2.dnn.Net`` keeps its input and intermediate blobs inside itself, so one instance must
    not run two inputs at once; each thread of the app gets its own (about 1 MB for the mini-Xception).
    """

    def __init__(self, onnx_model: bytes) -> None:
        self._model = np.frombuffer(onnx_model, np.uint8)
        self._local = threading.local()
        self._net()  # fail here, at load time, if OpenCV cannot read the graph

    def _net(self) -> cv2.dnn.Net:
        net = getattr(self._local, "net", None)
        if net is None:
            net = cv2.dnn.readNetFromONNX(self._model)
            self._local.net = net
        return net

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, C, H, W)`` float32 → ``(N, K)`` float32 logits, ``(N, D, h, w)`` float32 features."""
        net = self._net()
        net.setInput(np.ascontiguousarray(x, dtype=np.float32))
        logits, features = net.forward(list(OUTPUTS))
        return logits, features


def build(module: nn.Module, layer: nn.Module, input_shape: tuple[int, int, int]) -> OpenCVNet:
    """Export ``module`` and check that OpenCV reproduces PyTorch on a fixed input.

    Args:
        module: the loaded network, eval mode, on the CPU.
        layer: the Grad-CAM layer (its output becomes the ``features`` output).
        input_shape: ``(C, H, W)`` of one preprocessed input.
    Raises:
        RuntimeError: the export failed, OpenCV cannot read it, or its outputs differ from PyTorch's
            by more than `PARITY_TOLERANCE` (relative).
    """
    # A fixed pseudo-random input in the range preprocessing produces (about [-3, 3]).
    probe = torch.from_numpy(np.random.default_rng(0).uniform(-2, 2, (2, *input_shape)).astype(np.float32))
    net = OpenCVNet(export_onnx(module, layer, probe[:1]))
    with torch.inference_mode():
        want_logits, want_features = _WithFeatures(module, layer)(probe)
    logits, features = net(probe.numpy())
    for name, got, want in (("logits", logits, want_logits), ("features", features, want_features)):
        want_np = want.float().contiguous().numpy()
        scale = max(1.0, float(np.abs(want_np).max()))
        if got.shape != want_np.shape or not np.allclose(got, want_np, rtol=0, atol=PARITY_TOLERANCE * scale):
            raise RuntimeError(f"OpenCV DNN {name} differ from PyTorch's "
                               f"(shape {got.shape} vs {want_np.shape}, scale {scale:.3g})")
    return net
