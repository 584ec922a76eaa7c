"""The expression CNN on OpenCV's DNN engine, from an ONNX graph exported in memory at load time.

Why: the shipped CNNs are small, so eager PyTorch spends most of its time in per-operator overhead;
OpenCV DNN runs the same graph at a fraction of the cost (`python -m fer bench` times both; the
figures are in benchmarks/README.md).

The graph is traced from the module just loaded from its safetensors file, so there is no second
weights file to ship or keep in step, and every checkpoint `fer train` writes gets the same path. The
export gives two outputs: the logits and the feature map Grad-CAM reads, so one pass serves the
classification and (for networks with an affine head, see `fer.gradcam.LinearHeadCam`) the attention
map. A parity check against PyTorch on a fixed input refuses the export when OpenCV computes
something else, and the caller keeps PyTorch.

Tracing and exporting take a noticeable part of a cold start, so the exported graph is kept in the
cache folder (`fer.cache.cache_dir`, ``onnx``: model graphs only, never anything of a user's
pictures), named by a key of the weights' SHA-256 and the library versions. A cached graph is used
only after the same parity check; one that fails it, or cannot be read, is exported again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import threading
import warnings

import cv2
import numpy as np
import torch
from torch import nn

from fer.cache import cache_dir

log = logging.getLogger(__name__)

#: The two graph outputs, in the order `OpenCVNet.__call__` returns them.
OUTPUTS = ("logits", "features")

#: Largest difference from PyTorch's logits (relative to their scale) accepted by the parity check.
PARITY_TOLERANCE = 1e-3
#: ONNX operator set of the export.
OPSET = 17
#: Bump when the export itself changes (outputs, wrapper), so that older cached graphs are not used.
EXPORT_VERSION = 1
#: Cached graphs kept; the least recently used beyond this are deleted.
CACHE_KEEP = 8

# torch.onnx's exporter keeps its state in module globals, and `warnings.catch_warnings` changes
# the process-wide filters: one export at a time (the app may load two pipelines at once).
_EXPORT_LOCK = threading.Lock()


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
    with _EXPORT_LOCK:
        _export(_WithFeatures(module, layer), example, buffer)
    return buffer.getvalue()


def _export(wrapped: nn.Module, example: torch.Tensor, buffer: io.BytesIO) -> None:
    # Tracing warns about Python-level shape checks (fixed for a fixed input size) and the
    # TorchScript exporter's deprecation; neither concerns a graph used only for this input size.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped, (example,), buffer,  # type: ignore[arg-type] # file objects work
            dynamo=False, input_names=["x"],
            output_names=list(OUTPUTS), dynamic_axes={name: {0: "n"} for name in ("x", *OUTPUTS)},
            opset_version=OPSET,
        )


class OpenCVNet:
    """An ONNX graph run by OpenCV DNN, one ``cv2.dnn.Net`` per calling thread.

    A ``cv2.dnn.Net`` keeps its input and intermediate blobs inside itself, so one instance must
    not run two inputs at once; each thread of the app gets its own (small: the graph's blobs).
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


def cache_key(weights_sha256: str, architecture: str, input_shape: tuple[int, int, int]) -> str:
    """Name of a cached graph: what it was exported from, and with which library versions."""
    parts = (weights_sha256, architecture, input_shape, torch.__version__, cv2.__version__, OPSET, EXPORT_VERSION)
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def _cache_read(key: str) -> bytes | None:
    folder = cache_dir("onnx")
    if folder is None:
        return None
    path = folder / f"{key}.onnx"
    try:
        data = path.read_bytes()
        os.utime(path)  # most recently used: kept longest
        return data
    except OSError:
        return None


def _cache_write(key: str, onnx_model: bytes) -> None:
    """Store a graph (best effort: a read-only or full disk only costs the next load its export)."""
    folder = cache_dir("onnx")
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed: a process reading concurrently sees all or nothing.
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".tmp", delete=False) as fh:
            fh.write(onnx_model)
        os.replace(fh.name, folder / f"{key}.onnx")
        graphs = sorted(folder.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in graphs[CACHE_KEEP:]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("ONNX graph not cached in %s: %s", folder, exc)


def build(module: nn.Module, layer: nn.Module, input_shape: tuple[int, int, int], key: str | None = None) -> OpenCVNet:
    """The OpenCV DNN copy of ``module``, checked to reproduce PyTorch on a fixed input.

    Args:
        module: the loaded network, eval mode, on the CPU.
        layer: the Grad-CAM layer (its output becomes the ``features`` output).
        input_shape: ``(C, H, W)`` of one preprocessed input.
        key: `cache_key` of this network: use and keep the exported graph in the cache folder (None: no cache).
    Raises:
        RuntimeError: the export failed, OpenCV cannot read it, or its outputs differ from PyTorch's
            by more than `PARITY_TOLERANCE` (relative).
    """
    # A fixed pseudo-random input in the range preprocessing produces (about [-3, 3]).
    probe = torch.from_numpy(np.random.default_rng(0).uniform(-2, 2, (2, *input_shape)).astype(np.float32))
    with torch.inference_mode():
        want = _WithFeatures(module, layer)(probe)
    cached = _cache_read(key) if key else None
    if cached is not None:
        try:
            net = OpenCVNet(cached)
            _check_parity(net, probe, want)
            return net
        except Exception as exc:  # noqa: BLE001 - a stale or damaged cache entry: export again
            log.info("cached ONNX graph %s not used (%s); exporting again", key, str(exc).splitlines()[:1])
    onnx_model = export_onnx(module, layer, probe[:1])
    net = OpenCVNet(onnx_model)
    _check_parity(net, probe, want)
    if key:
        _cache_write(key, onnx_model)
    return net


def _check_parity(net: OpenCVNet, probe: torch.Tensor, want: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Raise RuntimeError unless ``net`` gives PyTorch's outputs ``want`` on ``probe``."""
    logits, features = net(probe.numpy())
    for name, got, expected in (("logits", logits, want[0]), ("features", features, want[1])):
        want_np = expected.float().contiguous().numpy()
        scale = max(1.0, float(np.abs(want_np).max()))
        if got.shape != want_np.shape or not np.allclose(got, want_np, rtol=0, atol=PARITY_TOLERANCE * scale):
            raise RuntimeError(f"OpenCV DNN {name} differ from PyTorch's "
                               f"(shape {got.shape} vs {want_np.shape}, scale {scale:.3g})")
