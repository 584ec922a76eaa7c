"""Grad-CAM (Selvaraju et al., ICCV 2017): where the expression CNN looked.

The class score's gradient, averaged over each channel of the last spatial feature map, weights
that map's channels; the ReLU of the weighted sum is the attention map.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def grad_cam(
    module: nn.Module,
    layer: nn.Module,
    x: torch.Tensor,
    targets: Sequence[int] | None = None,
    size: int | None = None,
    return_logits: bool = False,
) -> np.ndarray | tuple[np.ndarray, torch.Tensor]:
    """Grad-CAM maps for a batch.

    Args:
        module: the classifier, ``(N, C, H, W)`` → ``(N, K)`` logits, in eval mode.
        layer: a submodule of ``module`` whose output is a ``(N, D, h, w)`` feature map.
        x: ``(N, C, H, W)`` float32 input, already preprocessed.
        targets: class index per sample (default: each sample's top-1).
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
            targets = logits.argmax(dim=1).tolist()
        index = torch.as_tensor(list(targets), device=logits.device)
        score = logits.gather(1, index[:, None]).sum()
        (grads,) = torch.autograd.grad(score, features)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        cam = F.relu((weights * features).sum(dim=1, keepdim=True)).detach()
        logits = logits.detach()
    if size is not None:
        cam = F.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    peak = cam.flatten(1).max(dim=1).values.clamp_min(1e-12)[:, None, None]
    cam = torch.where(peak > 1e-12, cam / peak, torch.zeros_like(cam))
    maps = cam.clamp(0, 1).cpu().numpy().astype(np.float32)
    return (maps, logits) if return_logits else maps
