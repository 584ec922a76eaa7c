"""What a training run *is*, so that an output folder is only ever continued by the same run.

A run's identity is every setting that changes its data, split or training (`run_identity`): the
`TrainConfig` fields, with the dataset folder replaced by a fingerprint of the samples it yields
(`fer.research.datasets.Dataset.fingerprint`) and saliency weights by their SHA-256. `resume_state`
compares it with what an output folder holds and refuses, naming every difference, rather than
continue or report another run's weights; a finished run is returned as it is, never rewritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from fer.errors import InputError
from fer.models import ModelSpec
from fer.research.datasets import Dataset
from fer.research.recipes import TrainConfig

#: `TrainConfig` fields that leave what a run computes unchanged (where data and caches live, the
#: device, progress display, DataLoader workers). ``root`` and ``saliency_weights`` are not compared
#: as written: the data's fingerprint and the weights' SHA-256 stand in for them.
NOT_IDENTITY = frozenset({"root", "cache_dir", "device", "out", "resume", "progress", "workers", "saliency_weights"})

STATE_FILE = "last_state.pt"


def saliency_digest(predictor: object | None, weights: str | None) -> str | None:
    """What identifies the saliency predictor's weights: the SHA-256 its spec records (ML-Net), else
    that of the ``weights`` file, else ``weights`` as given (None for predictors without weights)."""
    spec = getattr(predictor, "spec", None)
    if getattr(spec, "sha256", None):
        return str(spec.sha256)  # type: ignore[union-attr]
    if weights and Path(weights).is_file():
        from fer.weights import sha256_file

        return sha256_file(Path(weights))
    return weights


def check_saliency_weights(spec: ModelSpec, predictor: object | None, weights: str | None) -> None:
    """Refuse to feed a trained model saliency maps from other weights than those it was trained with.

    The run's identity records the predictor's weights as `saliency_digest` (an ML-Net checkpoint's
    SHA-256); other weights make other maps, so the model would be scored on inputs it never learned
    from. Models whose spec records no identity (shipped ones, older runs) are not checked.

    Raises:
        InputError: the digests differ (both named, with the way out).
    """
    recorded = ((spec.training or {}).get("identity") or {}).get("saliency_weights")
    if recorded is None:
        return
    current = saliency_digest(predictor, weights)
    if current != recorded:
        raise InputError(f"{spec.name} was trained on {spec.saliency_input} saliency maps from weights with SHA-256 "
                         f"{str(recorded)[:16]}…, these weights have {str(current)[:16]}…: its inputs would not be "
                         "those it learned from; pass the --saliency-weights it was trained with")


def run_identity(config: TrainConfig, dataset: Dataset, *, amp: str, saliency_weights: str | None) -> dict[str, Any]:
    """Every setting that changes the run, JSON-ready.

    Args:
        config: the resolved configuration.
        dataset: the samples the run trains on (after any class restriction).
        amp: the resolved mixed-precision mode ("off", "bf16", "fp16").
        saliency_weights: `saliency_digest` of the saliency predictor.
    """
    identity = {k: v for k, v in config.to_dict().items() if k not in NOT_IDENTITY}
    identity.update(amp=amp, saliency_weights=saliency_weights, data=dataset.fingerprint(),
                    data_labels=list(dataset.labels))
    return identity


def environment() -> dict[str, Any]:
    """What else decides the exact weights of a run, for the spec (not part of its identity):
    the intra-op thread count (other summation orders: ``OMP_NUM_THREADS`` 1 and 2 give weights a
    float rounding apart), torch, NumPy, CUDA and cuDNN versions, Python, and the git commit of
    this code (None outside a git checkout; ``git_dirty`` when tracked files were changed)."""
    import os
    import platform

    import numpy
    import torch

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    commit, dirty = _git_state()
    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "torch": torch.__version__,
            "numpy": numpy.__version__, "cuda": torch.version.cuda, "cudnn": cudnn,
            "python": platform.python_version(), "git_commit": commit, "git_dirty": dirty}


def _git_state() -> tuple[str | None, bool | None]:
    import subprocess

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None, None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(changed)


def run_id(identity: Mapping[str, Any]) -> str:
    """Short stable name of an identity: the first 16 hex digits of the SHA-256 of its sorted JSON."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``"field: was X, now Y"`` for every field that differs between two identities."""
    names = sorted(set(recorded) | set(current))
    return [f"{name}: was {recorded.get(name)!r}, now {current.get(name)!r}"
            for name in names if recorded.get(name) != current.get(name)]


def _refuse_other(out: Path, recorded: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    changed = differences(recorded, identity)
    if changed:
        raise InputError(f"{out} holds another run (use another --out, or the same settings): " + "; ".join(changed))


def resume_state(out: Path, identity: Mapping[str, Any], resume: bool) -> Literal["fresh", "continue", "finished"]:
    """What to do with output folder ``out`` for a run of ``identity``.

    Returns:
        "fresh" (nothing there), "continue" (an interrupted run of this identity, ``resume`` set) or
        "finished" (this very run is complete there, ``resume`` set: reuse it without rewriting).
    Raises:
        InputError: ``out`` holds another run (every differing setting is named), a run whose
            identity was not recorded, or this run without ``resume``.
    """
    spec_file, state_file = out / "best.json", out / STATE_FILE
    if spec_file.is_file():
        training = ModelSpec.load(spec_file).training
        if training is not None:
            if "identity" not in training:
                raise InputError(f"{out} holds a run whose full configuration is not recorded (made by an older "
                                 "version); it cannot be told apart from another run: use another --out")
            _refuse_other(out, training["identity"], identity)
            if not resume:
                raise InputError(f"{out} already holds this trained model; pass --resume to reuse it or choose "
                                 "another --out")
            return "finished"
    if state_file.is_file():
        import torch

        state = torch.load(state_file, map_location="cpu", weights_only=True)
        if "identity" not in state:
            raise InputError(f"{out} holds an interrupted run whose configuration is not recorded (made by an "
                             "older version): use another --out")
        _refuse_other(out, json.loads(state["identity"]), identity)
        if not resume:
            raise InputError(f"{out} holds an interrupted run of these settings; pass --resume to continue it")
        return "continue"
    # Left: nothing, or the checkpoint of a first epoch cut short before its state was saved,
    # which no finished run owns; a fresh run replaces it.
    return "fresh"
