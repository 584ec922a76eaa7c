"""Grad-CAM (Selvaraju et al., ICCV 2017): where the expression CNN looked.

The class score's gradient, averaged over each channel of the last spatial feature map, weights
that map's channels; the ReLU of the weighted sum is the attention map.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def grad_cam(
    module: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    targets: Sequence[int] | Callable[[torch.Tensor], Sequence[int]] | None = None,
    size: int | None = None,
    return_logits: bool = False,
) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
    """Grad-CAM maps for a batch.

    Args:
        module: the classifier, ``(N, C, H, W)`` → ``(N, K)`` logits, in eval mode.
        layer: a submodule of ``module`` whose output is a ``(N, D, h, w)`` feature map.
        x: ``(N, C, H, W)`` float32 input, already preprocessed.
        targets: class index per sample, or a function of the ``(N, K)`` logits that picks them
            (default: each sample's top-1).
        size: output side ``S`` (default: the feature map's size, ``h × w``).
        return_logits: also return the ``(N, K)`` logits of the forward pass (the classification).
    Returns:
        ``(N, S, S)`` float32 in [0, 1], each map divided by its maximum (all zeros when the class
        has no positive evidence anywhere); with ``return_logits``, ``(maps, logits)``.
    """
    captured: list[torch.Tensor] = []
    # The module is shared by every thread of the app, and while this hook is attached other
    # threads' forward passes run through it too: keep only this thread's activation.
    owner = threading.get_ident()

    def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> torch.Tensor | None:
        if threading.get_ident() != owner:
            return None
        features = output.detach().requires_grad_(True)
        captured.append(features)
        # Only the gradient with respect to these features is needed: the layers before `layer` ran
        # without autograd; from here on (this thread only, until the no_grad block ends) they record.
        torch.set_grad_enabled(True)
        return features

    with torch.inference_mode(False), torch.no_grad():
        handle = layer.register_forward_hook(keep)
        try:
            logits = module(x.detach().clone())
        finally:
            handle.remove()
        (features,) = captured
        if targets is None:
            chosen: Sequence[int] = logits.argmax(dim=1).tolist()
        else:
            chosen = targets(logits.detach()) if callable(targets) else targets
        index = torch.as_tensor(list(chosen), device=logits.device)
        score = logits.gather(1, index[:, None]).sum()
        (grads,) = torch.autograd.grad(score, features)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
        logits = logits.detach()
    maps = _to_maps(cam, size)
    return (maps, logits) if return_logits else maps


def _to_maps(cam: torch.Tensor, size: int | None) -> np.ndarray:
    """``(N, 1, h, w)`` non-negative evidence → ``(N, S, S)`` float32 in [0, 1], each divided by its peak."""
    small = cam[:, 0].detach().float().cpu().numpy()
    side = size or small.shape[1]
    maps = np.zeros((len(small), side, side if size else small.shape[2]), np.float32)
    for i, m in enumerate(small):
        # OpenCV's bilinear resize: the same half-pixel centres as torch's align_corners=False, and cheaper.
        m = cv2.resize(m, (side, side), interpolation=cv2.INTER_LINEAR) if size else m
        peak = float(m.max())
        if peak > 1e-12:
            np.multiply(m, 1.0 / peak, out=maps[i])
    return np.clip(maps, 0.0, 1.0, out=maps)


class LinearHeadCam:
    """Grad-CAM without a backward pass, for networks whose head after the Grad-CAM layer is affine.

    When the logits are an affine function of the feature map ``A`` (global average pooling then a
    linear layer, or the mini-Xception's class-map convolution then averaging), the gradient of a
    logit with respect to ``A`` does not depend on the input, so Grad-CAM's channel weights (that
    gradient averaged over space) are constants of the model. They are computed once here, with
    autograd through the head itself, and each map is then ``ReLU(sum_k w[c, k] A_k)``: exactly
    `grad_cam`'s result from the forward pass's features alone.

    Args:
        head: ``(N, D, h, w)`` features → ``(N, K)`` logits; must be affine in its input.
        feature_shape: ``(D, h, w)`` of the features the head receives.
    """

    def __init__(self, head: Callable[[torch.Tensor], torch.Tensor], feature_shape: tuple[int, ...],
                 device: torch.device | str = "cpu") -> None:
        with torch.inference_mode(False), torch.enable_grad():
            features = torch.zeros((1, *feature_shape), device=device, requires_grad=True)
            logits = head(features)[0]
            rows = [torch.autograd.grad(logit, features, retain_graph=True)[0][0].mean(dim=(1, 2))
                    for logit in logits]
        #: ``(K, D)`` float32: Grad-CAM's channel weights for each class.
        self.weights = torch.stack(rows).detach().float().cpu()
        self.feature_shape = tuple(feature_shape)

    def __call__(self, features: np.ndarray | torch.Tensor, targets: Sequence[int], size: int | None = None) -> np.ndarray:
        """Maps for class indices ``targets`` from ``(N, D, h, w)`` features (len(targets) == N).

        Returns:
            ``(N, S, S)`` float32 in [0, 1] (``S`` = ``size``, default ``h``), as `grad_cam`.
        """
        a = torch.as_tensor(features, dtype=torch.float32)
        if tuple(a.shape[1:]) != self.feature_shape or len(targets) != len(a):
            raise ValueError(f"features {tuple(a.shape)} / {len(targets)} targets do not fit {self.feature_shape}")
        w = self.weights[torch.as_tensor(list(targets), dtype=torch.long)].to(a.device)
        cam = F.relu(torch.einsum("nk,nkhw->nhw", w, a))[:, None]
        return _to_maps(cam, size)


class FeatureTap:
    """Hands back a layer's output from a forward pass, to the thread that ran it.

    One hook is installed for the module's lifetime, so no hook is added or removed while other
    threads run the shared module; a pass keeps the output only when its own thread asked.
    """

    def __init__(self, layer: nn.Module) -> None:
        self._local = threading.local()
        layer.register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        if getattr(self._local, "armed", False):
            self._local.output = output

    def __call__(self, module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``module(x)`` and the layer's output during that call."""
        self._local.armed, self._local.output = True, None
        try:
            logits = module(x)
            kept = self._local.output
        finally:
            self._local.armed, self._local.output = False, None
        if kept is None:
            raise RuntimeError("the tapped layer did not run in this forward pass")
        return logits, kept
