"""Convert face-api's expression CNN (npm ``@vladmandic/face-api`` 1.7.15, MIT) to a `fer` checkpoint.

Fetches the package with ``npm pack`` (or reads a tarball already fetched), reads the TF.js weights
manifest ``model/face_expression_model-weights_manifest.json`` and its binary
``model/face_expression_model.bin``, undoes the 8-bit quantisation (TF.js's ``decodeWeights``:
``value = min + scale * q`` per tensor, computed in float64 and stored as float32, as TF.js does),
maps the tensor names onto `fer.face_expression_net.FaceExpressionNet` and writes
``weights/face_api_expression.safetensors`` + ``weights/face_api_expression.json`` (the
`fer.models.ModelSpec`, with the SHA-256 of the weights).

Usage:
    python scripts/convert_face_api.py                                   # npm pack @vladmandic/face-api@1.7.15
    python scripts/convert_face_api.py --tarball vladmandic-face-api-1.7.15.tgz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer.face_expression_net import FaceExpressionNet  # noqa: E402
from fer.models import ModelSpec, canonical_label, save_checkpoint  # noqa: E402

PACKAGE = "@vladmandic/face-api"
VERSION = "1.7.15"
MANIFEST = "model/face_expression_model-weights_manifest.json"
WEIGHTS = "model/face_expression_model.bin"
STEM = "face_api_expression"
#: face-api's label order (``src/faceExpressionNet/FaceExpressions.ts``).
FACE_API_LABELS = ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
#: face-api's per-channel RGB means, subtracted before dividing by 255 (``FaceFeatureExtractor.ts``).
MEAN_RGB = (122.782, 117.001, 104.298)


def fetch_tarball(dest: Path) -> Path:
    """``npm pack PACKAGE@VERSION`` into ``dest``; returns the tarball's path."""
    out = subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent", "--pack-destination", str(dest)],
                         check=True, capture_output=True, text=True).stdout.strip().splitlines()
    return dest / out[-1]


def read_package_files(tarball: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of ``names`` (paths inside the package) from an ``npm pack`` tarball."""
    with tarfile.open(tarball, "r:gz") as tar:
        out = {}
        for name in names:
            member = tar.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{tarball} has no file package/{name}")
            out[name] = member.read()
    return out


def decode_weights(manifest: list[dict], data: bytes) -> dict[str, np.ndarray]:
    """TF.js ``io.decodeWeights`` for float32 tensors stored as float32 or uint8-quantised.

    Returns:
        name → float32 array in the manifest's (TF) layout.
    """
    (group,) = manifest
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for entry in group["weights"]:
        if entry["dtype"] != "float32":
            raise SystemExit(f"{entry['name']}: dtype {entry['dtype']} not handled")
        count = int(np.prod(entry["shape"], dtype=np.int64))
        quant = entry.get("quantization")
        if quant is None:
            values = np.frombuffer(data, "<f4", count, offset)
            offset += 4 * count
        elif quant["dtype"] == "uint8":
            q = np.frombuffer(data, np.uint8, count, offset)
            values = (q.astype(np.float64) * quant["scale"] + quant["min"]).astype(np.float32)
            offset += count
        else:
            raise SystemExit(f"{entry['name']}: quantisation {quant['dtype']} not handled")
        tensors[entry["name"]] = values.reshape(entry["shape"])
    if offset != len(data):
        raise SystemExit(f"the manifest describes {offset} bytes, the weights file has {len(data)}")
    return tensors


def torch_state_dict(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF.js names and layouts → `FaceExpressionNet` state dict.

    ``dense0/conv0/filters`` (kh, kw, in, out) is the first block's plain conv; ``*/depthwise_filter``
    (kh, kw, in, 1) and ``*/pointwise_filter`` (1, 1, in, out) are a separable conv whose ``bias``
    follows the pointwise one; ``fc/weights`` is (in, out).
    """
    state: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        *path, kind = name.split("/")
        prefix = ".".join(path)
        if prefix == "fc":
            state[f"fc.{'weight' if kind == 'weights' else 'bias'}"] = value.T if kind == "weights" else value
        elif prefix == "dense0.conv0":
            state[f"{prefix}.conv.{'weight' if kind == 'filters' else 'bias'}"] = (
                value.transpose(3, 2, 0, 1) if kind == "filters" else value)
        elif kind == "depthwise_filter":
            state[f"{prefix}.depthwise.weight"] = value.transpose(2, 3, 0, 1)
        elif kind == "pointwise_filter":
            state[f"{prefix}.pointwise.weight"] = value.transpose(3, 2, 0, 1)
        elif kind == "bias":
            state[f"{prefix}.pointwise.bias"] = value
        else:
            raise SystemExit(f"unexpected tensor {name}")
    return {k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()}


def spec(sources: dict[str, bytes]) -> ModelSpec:
    """The spec of the converted model (weights/sha256 are filled in by `save_checkpoint`)."""
    labels = tuple(canonical_label(name) for name in FACE_API_LABELS)
    assert all(labels), labels
    files = ", ".join(f"{name} (SHA-256 {hashlib.sha256(data).hexdigest()})" for name, data in sources.items())
    return ModelSpec(
        name=STEM,
        architecture="face_expression_net",
        input_size=112,
        colour="rgb",
        mean=tuple(m / 255 for m in MEAN_RGB),
        std=(1.0, 1.0, 1.0),
        labels=labels,  # type: ignore[arg-type] # checked above: every name maps
        weights=f"{STEM}.safetensors",
        sha256="",
        licence="MIT (package LICENSE: Copyright (c) Vladimir Mandic; forked from face-api.js 0.22.2, "
                "MIT, Copyright (c) 2018 Vincent Mühler, who trained and published the model)",
        source=f"npm {PACKAGE} {VERSION}, files {files}; dequantised and converted by scripts/convert_face_api.py",
        training_data="as its author describes it: 'a variety of images from publicly available datasets as well "
                      "as images scraped from the web' (face-api.js TUTORIAL.md); the datasets are not named",
        saliency_input=None,
        # face-api crops the detector's box with no margin and zero-pads it to a centred square
        # (extractFaceTensors, then padToSquare(isCenterImage=true) in NetInput.toBatchTensor).
        margin=0.0,
        crop="box",
        evaluation=None,
        published={
            "none": "its author publishes no accuracy and names no test data (face-api.js)",
        },
        notes=(
            "FaceExpressionNet of face-api.js (Vincent Mühler), as shipped by @vladmandic/face-api 1.7.15: "
            "TF.js weights quantised to 8 bits per tensor, dequantised here as TF.js does. Accuracy not "
            "measured here, and none is published. face-api finds faces with its own detectors (SSD "
            "MobileNet v1 or Tiny Face Detector); here the box comes from BlazeFace, so the crop's extent "
            "differs from the one it was trained with. Outputs match the package's own JavaScript (tfjs "
            "4.22.0 'cpu' backend) within 1e-4 (tests/test_face_expression_net.py, fixture from "
            "scripts/face_api_reference.py)."
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Convert face-api's expression model to safetensors.")
    parser.add_argument("--tarball", type=Path, help=f"the `npm pack {PACKAGE}@{VERSION}` tarball (default: fetch it)")
    parser.add_argument("--out", type=Path, default=ROOT / "weights", help="output folder (default: weights/)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or fetch_tarball(Path(tmp))
        files = read_package_files(tarball, (MANIFEST, WEIGHTS))
    tensors = decode_weights(json.loads(files[MANIFEST]), files[WEIGHTS])
    state = torch_state_dict(tensors)
    model = FaceExpressionNet(num_classes=len(FACE_API_LABELS), in_channels=3)
    # strict: every tensor of the port must come from the file, and every file tensor must be used.
    model.load_state_dict(state, strict=True)
    written = save_checkpoint(model, spec(files), args.out, stem=STEM)
    count = sum(v.numel() for v in state.values())
    print(f"{count} values from {len(state)} tensors → {args.out / written.weights} (sha256 {written.sha256})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
