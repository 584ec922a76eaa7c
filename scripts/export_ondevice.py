"""Make the on-device (in-browser) models from the shipped weights.

    python scripts/export_ondevice.py            # writes fer/app/static/ondevice/models/

Outputs, each checked here against the Python engine that runs the same weights:

- ``blazeface_short.onnx``: the shipped ``face_detection_short_range.tflite`` rebuilt op by op as
  an ONNX graph (its float16 weights widened to float32, exactly as LiteRT's DEQUANTIZE does), so the
  browser needs one runtime (onnxruntime-web) for the detector and the CNNs. Input ``(1, 128, 128, 3)``
  float32 in [-1, 1] (the letterboxed frame); outputs ``regressors (1, 896, 16)`` and
  ``classificators (1, 896, 1)``, as the ``.tflite``'s. Post-processing (anchors, weighted NMS) is
  the page's, as `fer.blazeface` does it in Python.
- ``NAME.onnx`` per registered expression network: input ``x (N, C, S, S)`` as
  `fer.models.preprocess_array` makes it; outputs ``probabilities (N, K)`` and, for networks with
  an affine head (`fer.gradcam.LinearHeadCam`), ``cams (N, K, h, w)``: ReLU of Grad-CAM's constant
  channel weights times the last feature map, one map per class, in the same forward pass.
- ``models.json``: what the page needs to use them (sizes, labels, crop styles, SHA-256 of each file
  and of the weights it was made from).

Why rebuild the detector rather than run MediaPipe's own web runtime: onnxruntime-web runs all
three networks, and MediaPipe's vision wasm would be a second multi-megabyte runtime on the first
visit (docs/ON_DEVICE.md has the sizes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ONDEVICE = ROOT / "fer" / "app" / "static" / "ondevice"
OUT = ONDEVICE / "models"
#: The engine's own scripts (served, listed without a hash: they are this repository's source).
OWN_FILES = ("engine.mjs", "imageproc.mjs", "live.mjs")
#: What is taken from the onnxruntime-web npm tarball: its single-file ES module (the emscripten
#: loader inside) and the SIMD WebAssembly build, stored gzip-compressed.
RUNTIME_FILES = ("package/dist/ort.wasm.bundle.min.mjs", "package/dist/ort-wasm-simd-threaded.wasm")
RUNTIME = "onnxruntime-web 1.30.0 (npm), MIT licence, Copyright (c) Microsoft Corporation"
OPSET = 17
#: Largest difference accepted between the ONNX graphs and the Python engines on the check input.
TOLERANCE = 1e-4

# NHWC (LiteRT) axis → NCHW (this graph) axis.
_NCHW_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- BlazeFace


class _TfliteGraph:
    """Reads a LiteRT flatbuffer and emits the equivalent ONNX nodes, 4-D tensors kept NCHW."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert import schema_py_generated as schema

        self.schema = schema
        self.model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        self.graph = self.model.subgraphs[0]
        self.codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[int, np.ndarray] = {}
        self.names: dict[int, str] = {}

    def tensor_name(self, index: int) -> str:
        return self.names.get(index, f"t{index}")

    def const(self, index: int) -> np.ndarray | None:
        if index in self.consts:
            return self.consts[index]
        tensor = self.graph.tensors[index]
        data = self.model.buffers[tensor.buffer].data
        if data is None or len(data) == 0:
            return None
        dtype = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}[tensor.type]
        value = np.frombuffer(bytes(bytearray(data)), dtype).reshape(tensor.shape)
        self.consts[index] = value
        return value

    def add_init(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def activation(self, name: str, fused: int) -> str:
        if fused == 0:
            return name
        if fused == 1:
            self.nodes.append(helper.make_node("Relu", [name], [name + "_relu"]))
            return name + "_relu"
        if fused == 3:
            self.nodes.append(helper.make_node("Clip", [name, self.add_init(name + "_lo", np.array(0, np.float32)),
                                                         self.add_init(name + "_hi", np.array(6, np.float32))],
                                               [name + "_relu6"]))
            return name + "_relu6"
        raise ValueError(f"fused activation {fused} not supported")

    def convert(self) -> onnx.ModelProto:
        g = self.graph
        (inp,) = g.inputs
        in_shape = [int(v) for v in g.tensors[inp].shape]
        self.nodes.append(helper.make_node("Transpose", ["input"], ["input_nchw"], perm=[0, 3, 1, 2]))
        self.names[inp] = "input_nchw"
        layout: dict[int, str] = {inp: "nchw"}
        for op in g.operators:
            code = self.model.operatorCodes[op.opcodeIndex]
            kind = self.codes[max(code.builtinCode, code.deprecatedBuiltinCode)]
            ins, (out,) = [int(i) for i in op.inputs], [int(o) for o in op.outputs]
            opts = op.builtinOptions
            name = f"t{out}"
            if kind == "DEQUANTIZE":
                value = self.const(ins[0])
                assert value is not None, "DEQUANTIZE of a computed tensor"
                self.consts[out] = value.astype(np.float32)
                continue
            x = self.tensor_name(ins[0])
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                kernel, bias = self.const(ins[1]), self.const(ins[2])
                assert kernel is not None and bias is not None
                if kind == "CONV_2D":
                    w = kernel.transpose(0, 3, 1, 2)  # OHWI → OIHW
                    group = 1
                else:
                    w = kernel.transpose(3, 0, 1, 2)  # 1HW(C·m) → (C·m)1HW
                    group = int(g.tensors[ins[0]].shape[3])
                    assert opts.depthMultiplier == 1
                pad = "SAME_UPPER" if opts.padding == self.schema.Padding.SAME else "VALID"
                self.nodes.append(helper.make_node(
                    "Conv", [x, self.add_init(name + "_w", np.ascontiguousarray(w, np.float32)),
                             self.add_init(name + "_b", bias.astype(np.float32))], [name],
                    strides=[opts.strideH, opts.strideW], auto_pad=pad, group=group,
                    dilations=[opts.dilationHFactor, opts.dilationWFactor]))
                name = self.activation(name, opts.fusedActivationFunction)
            elif kind == "RELU":
                self.nodes.append(helper.make_node("Relu", [x], [name]))
            elif kind == "ADD":
                self.nodes.append(helper.make_node("Add", [x, self.tensor_name(ins[1])], [name]))
                name = self.activation(name, opts.fusedActivationFunction)
            elif kind == "MAX_POOL_2D":
                pad = "SAME_UPPER" if opts.padding == self.schema.Padding.SAME else "VALID"
                self.nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=[opts.filterHeight, opts.filterWidth],
                                                   strides=[opts.strideH, opts.strideW], auto_pad=pad))
                name = self.activation(name, opts.fusedActivationFunction)
            elif kind == "PAD":
                pads = self.const(ins[1])
                assert pads is not None and pads.shape == (4, 2)
                nchw = pads[[0, 3, 1, 2]]
                onnx_pads = np.concatenate([nchw[:, 0], nchw[:, 1]]).astype(np.int64)
                self.nodes.append(helper.make_node("Pad", [x, self.add_init(name + "_pads", onnx_pads)], [name]))
            elif kind == "RESHAPE":
                shape = np.array(g.tensors[out].shape, np.int64)
                if layout.get(ins[0]) == "nchw":  # LiteRT reshapes the NHWC memory order
                    self.nodes.append(helper.make_node("Transpose", [x], [name + "_nhwc"], perm=[0, 2, 3, 1]))
                    x = name + "_nhwc"
                self.nodes.append(helper.make_node("Reshape", [x, self.add_init(name + "_shape", shape)], [name]))
            elif kind == "CONCATENATION":
                axis = int(opts.axis)
                if layout.get(ins[0]) == "nchw":
                    axis = _NCHW_AXIS[axis % 4]
                self.nodes.append(helper.make_node("Concat", [self.tensor_name(i) for i in ins], [name], axis=axis))
                name = self.activation(name, opts.fusedActivationFunction)
            else:
                raise ValueError(f"LiteRT op {kind} not supported by this converter")
            self.names[out] = name
            if kind != "RESHAPE" and len(g.tensors[out].shape) == 4 and layout.get(ins[0]) == "nchw":
                layout[out] = "nchw"
        outputs = []
        for index in g.outputs:
            tensor = g.tensors[int(index)]
            label = tensor.name.decode()
            assert layout.get(int(index)) != "nchw"
            self.nodes.append(helper.make_node("Identity", [self.tensor_name(int(index))], [label]))
            outputs.append(helper.make_tensor_value_info(label, TensorProto.FLOAT, [int(v) for v in tensor.shape]))
        graph = helper.make_graph(self.nodes, "blazeface",
                                  [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
                                  outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="fer scripts/export_ondevice.py")
        model.ir_version = 8  # the version of opset 17, which onnxruntime-web reads
        onnx.checker.check_model(model)
        return model


def export_detector(out: Path) -> dict[str, object]:
    """BlazeFace short range → ONNX, checked against LiteRT on a real picture."""
    import cv2

    from fer.blazeface import LAYOUTS, BlazeFace, letterbox
    from fer.io import read_image
    from fer.weights import resolve_registered

    tflite = resolve_registered("blazeface_short")
    model = _TfliteGraph(tflite).convert()
    path = out / "blazeface_short.onnx"
    path.write_bytes(model.SerializeToString())
    layout = LAYOUTS["short"]
    detector = BlazeFace(tflite, layout)
    image = read_image(ROOT / "assets" / "astronaut.png")
    want_reg, want_logit = detector.raw(image)
    size = layout.input_size
    warped = cv2.warpAffine(image, letterbox(image.shape[1], image.shape[0], size), (size, size),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    x = (warped.astype(np.float32) * (2.0 / 255.0) - 1.0)[None]
    reg, cls = run_onnx(path, {"input": x})
    error = max(float(np.abs(reg[0] - want_reg).max()), float(np.abs(cls[0, :, 0] - want_logit).max()))
    print(f"{path.name}: largest difference from LiteRT {error:.2e}")
    if error > 1e-2:
        raise SystemExit(f"{path.name} differs from LiteRT by {error}")
    return {"file": path.name, "sha256": sha256(path), "source": tflite.name, "source_sha256": sha256(tflite),
            "input_size": size, "strides": list(layout.strides), "anchors_per_layer": layout.anchors_per_layer,
            "max_difference_from_litert": error}


# --------------------------------------------------------------------------- expression CNNs


def export_network(name: str, out: Path) -> dict[str, object]:
    """One registered expression network → ONNX with probabilities (and per-class Grad-CAM maps)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from fer.models import ARCHITECTURES, load_network, preprocess_array
    from fer.opencv_dnn import _WithFeatures
    from fer.pipeline import crop_style

    loaded = load_network(name, engine="torch")
    spec, module = loaded.spec, loaded.module.to(memory_format=torch.contiguous_format)
    layer = ARCHITECTURES[spec.architecture].cam_layer(module)
    weights = None if loaded.cam is None else loaded.cam.weights.clone()

    class Browser(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = _WithFeatures(module, layer)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            logits, features = self.inner(x)
            probs = F.softmax(logits, dim=1)
            if weights is None:
                return (probs,)
            # Grad-CAM with an affine head: constant channel weights (K, D) times the features, ReLU.
            return probs, F.relu(F.conv2d(features, weights[:, :, None, None]))

    outputs = ["probabilities"] + ([] if weights is None else ["cams"])
    example = torch.zeros((1, spec.channels, spec.input_size, spec.input_size))
    path = out / f"{name}.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(Browser().eval(), (example,), str(path), dynamo=False, input_names=["x"],
                          output_names=outputs, dynamic_axes={n: {0: "n"} for n in ["x", *outputs]},
                          opset_version=OPSET)
    # Check on real crops against the library's own classify (its Grad-CAM for every class).
    from fer.face import FaceDetector
    from fer.io import read_image

    with FaceDetector("short", crop=spec.crop, margin=crop_style(spec).margin) as detector:
        faces = detector(read_image(ROOT / "assets" / "astronaut.png"))
    x = preprocess_array(np.stack([f.crop for f in faces]), spec)
    got = run_onnx(path, {"x": x})
    want_probs, _ = loaded.classify(x)
    error = float(np.abs(got[0] - want_probs).max())
    cam_shape = None
    if weights is not None:
        logits, features = loaded.run(x, features=True)
        assert features is not None
        want = np.maximum(np.einsum("kd,ndhw->nkhw", weights.numpy(), features), 0)
        error = max(error, float(np.abs(got[1] - want).max() / max(float(want.max()), 1e-6)))
        cam_shape = list(got[1].shape[2:])
    print(f"{path.name}: largest difference from fer's classify {error:.2e}")
    if error > TOLERANCE:
        raise SystemExit(f"{path.name} differs from fer's classify by {error}")
    style = crop_style(spec)
    return {"file": path.name, "sha256": sha256(path), "name": name, "source": spec.weights, "source_sha256": spec.sha256,
            "input_size": spec.input_size, "colour": spec.colour, "mean": list(spec.mean), "std": list(spec.std),
            "labels": list(spec.labels), "crop": style.kind, "margin": style.margin, "cam_size": cam_shape,
            "licence": spec.licence, "max_difference_from_python": error}


def display() -> dict[str, object]:
    """What the page draws with, taken from the Python side so that both modes look alike: the
    server's own three panels (`fer.app.views.panels_html` for the astronaut, each picture turned
    into a ``<canvas>`` the page draws on), the colour maps (`fer.viz.PALETTES`), the label colours,
    the networks' display names."""
    import re

    import fer
    from fer.app import views
    from fer.app.settings import second_opinion_for
    from fer.io import read_image
    from fer.viz import LABEL_COLOURS, PALETTES, label_colour_hex

    main = "mini_xception_fer2013"
    with fer.load(main, saliency="face-prior", attention=True, second_opinion=second_opinion_for(main)) as pipe:
        view = views.face_view(pipe(read_image(ROOT / "assets" / "astronaut.png"))[0], pipe, 3)
    panels = {key: re.sub(r'<img class="fer-picture"[^>]*>', '<canvas class="fer-picture"></canvas>', html)
              for key, html in zip(views.TITLES, views.panels_html(view), strict=True)}
    return {"panels": panels, "palettes": {k: PALETTES[k].reshape(-1).tolist() for k in ("saliency", "attention")},
            "label_colours": {k: label_colour_hex(k) for k in LABEL_COLOURS},
            "default_colour": label_colour_hex(""), "network_names": views.NETWORK_NAMES}


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs, by onnxruntime when installed, else ONNX's reference evaluator (slow, exact)."""
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return [np.asarray(v) for v in session.run(None, feeds)]
    except ImportError:
        from onnx.reference import ReferenceEvaluator

        return [np.asarray(v) for v in ReferenceEvaluator(str(path)).run(None, feeds)]


def vendor_runtime(tarball: Path) -> dict[str, dict[str, object]]:
    """Copy the runtime's two files out of the npm tarball into ``vendor/`` (the WebAssembly gzipped,
    reproducibly: no name or time in the header)."""
    import gzip
    import tarfile

    vendor = ONDEVICE / "vendor"
    vendor.mkdir(exist_ok=True)
    entries = {}
    with tarfile.open(tarball) as tar:
        for member in RUNTIME_FILES:
            extracted = tar.extractfile(member)
            assert extracted is not None, member
            data = extracted.read()
            name = Path(member).name
            original = hashlib.sha256(data).hexdigest()
            if name.endswith(".wasm"):
                data, name = gzip.compress(data, compresslevel=9, mtime=0), name + ".gz"
            (vendor / name).write_bytes(data)
            entries[f"vendor/{name}"] = {"source": f"{RUNTIME}: {member} of {tarball.name} "
                                                   f"(SHA-256 {hashlib.sha256(tarball.read_bytes()).hexdigest()})",
                                         "original_sha256": original}
    return entries


def write_manifest(runtime: dict[str, dict[str, object]] | None) -> None:
    """``MANIFEST.json``: every served file; SHA-256, source and licence of the ones not written here."""
    path = ONDEVICE / "MANIFEST.json"
    old = json.loads(path.read_text())["files"] if path.is_file() else {}
    files: dict[str, dict[str, object]] = {name: {"own": True} for name in OWN_FILES if (ONDEVICE / name).is_file()}
    vendored = runtime or {k: v for k, v in old.items() if k.startswith("vendor/")}
    if not vendored:
        raise SystemExit("no runtime vendored yet: pass --runtime onnxruntime-web-1.30.0.tgz (npm pack onnxruntime-web@1.30.0)")
    for name, entry in vendored.items():
        files[name] = {**entry, "sha256": sha256(ONDEVICE / name), "licence": "MIT"}
    for model in sorted(OUT.iterdir()):
        files[f"models/{model.name}"] = {"sha256": sha256(model), "source": "scripts/export_ondevice.py from weights/"}
    path.write_text(json.dumps({"files": files}, indent=1) + "\n")
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--runtime", type=Path, help="the onnxruntime-web 1.30.0 npm tarball to vendor from")
    parser.add_argument("--manifest-only", action="store_true", help="only rewrite MANIFEST.json")
    args = parser.parse_args(argv)
    if args.manifest_only:
        write_manifest(None)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    runtime = vendor_runtime(args.runtime) if args.runtime else None
    from fer.app.settings import SECOND_OPINION

    networks = ["mini_xception_fer2013", *{v for v in SECOND_OPINION.values() if v and v != "mini_xception_fer2013"}]
    manifest = {"detector": export_detector(args.out),
                "networks": {name: export_network(name, args.out) for name in networks},
                "display": display(), "made_by": "scripts/export_ondevice.py"}
    (args.out / "models.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {args.out / 'models.json'}")
    write_manifest(runtime)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
