"""fer — facial expression recognition with visual saliency.

An implementation of Mavani, Raman & Miyapuram, "Facial Expression Recognition using Visual
Saliency and Deep Learning" (ICCV Workshops 2017). Three lines to start:

    >>> import fer
    >>> pipe = fer.load()
    >>> pipe("assets/astronaut.png")[0].top_k(3)

Heavy modules (torch, LiteRT) load on first use of `load` and friends, so ``import fer`` and
``fer.InputError`` are cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fer.errors import FerError, InputError, WeightsError

__version__ = "0.1.0"

__all__ = [
    "FerError", "InputError", "WeightsError", "Face", "ModelSpec", "Pipeline", "PipelineConfig", "Prediction",
    "available_models", "available_saliency", "load", "read_image", "__version__",
]

_LAZY = {
    "load": "fer.pipeline", "Pipeline": "fer.pipeline", "PipelineConfig": "fer.config", "Prediction": "fer.pipeline",
    "Face": "fer.face", "ModelSpec": "fer.models", "available_models": "fer.zoo",
    "available_saliency": "fer.saliency", "read_image": "fer.io",
}

if TYPE_CHECKING:
    from fer.config import PipelineConfig
    from fer.face import Face
    from fer.io import read_image
    from fer.models import ModelSpec
    from fer.pipeline import Pipeline, Prediction, load
    from fer.saliency import available_saliency
    from fer.zoo import available_models


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fer' has no attribute {name!r}")
