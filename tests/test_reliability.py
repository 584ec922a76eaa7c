"""Reliability, security and privacy of the library and the CLI (the app: test_app_reliability.py).

Whatever a user sends, `fer` answers with a one-line message, keeps serving, and the next good
request is still right. The bad-input corpus is made in tests/badinputs.py from the shipped assets.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fer.errors import InputError
from fer.limits import DEFAULT_MAX_FACES, MAX_FACES

from .badinputs import BadInput, array_cases, image_cases, net_audit_env, pil_cases
from .conftest import ASTRONAUT, ROOT

CASES: dict[str, BadInput] = {c.name: c for c in image_cases()}
ARRAYS = {name: (array, reason) for name, array, reason in array_cases()}


def _one_line(message: str) -> None:
    assert message and "\n" not in message and "Traceback" not in message, message


def test_corpus_is_broad():
    errors = [c for c in CASES.values() if c.expect == "error"]
    readable = [c for c in CASES.values() if c.expect == "ok"]
    assert len(CASES) + len(ARRAYS) >= 40 and len(errors) >= 15 and len(readable) >= 25
    # The bombs are small files that declare huge images.
    for name in ("bomb-png-900mp", "bomb-jpeg-3600mp", "bomb-gif-4300mp"):
        assert len(CASES[name].data) < 200_000


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    """Every image case written to disk under its own file name."""
    folder = tmp_path_factory.mktemp("corpus")
    return {name: case.write(folder) for name, case in CASES.items()}


@pytest.fixture(scope="module")
def reference(pipeline, astronaut):
    """The pipeline's answer for the plain astronaut (what a later good request must reproduce)."""
    (pred,) = pipeline(astronaut)
    assert pred.label == "happy"
    return pred


@pytest.fixture(scope="module")
def plain_pipeline():
    """``fer.load()`` as a newcomer calls it (no saliency shown, no Grad-CAM)."""
    import fer

    with fer.load() as pipe:
        yield pipe


def _check_still_serving(pipeline, astronaut, reference) -> None:
    (pred,) = pipeline(astronaut)
    np.testing.assert_allclose(pred.probabilities, reference.probabilities, atol=1e-5)


def _check_predictions(case: BadInput, preds, image_shape) -> None:
    lo, hi = case.faces
    assert lo <= len(preds) <= hi, f"{case.name}: {len(preds)} faces, expected {lo}..{hi}"
    height, width = image_shape[:2]
    for pred in preds:
        x0, y0, x1, y1 = pred.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert np.isfinite(pred.probabilities).all() and abs(pred.probabilities.sum() - 1) < 1e-4
        for picture in (pred.saliency, pred.attention):
            assert picture is None or (np.isfinite(picture).all() and 0 <= picture.min() <= picture.max() <= 1)
    if case.label and preds:
        assert preds[0].label == case.label, f"{case.name}: {preds[0].top_k(3)}"


# --------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("name", list(CASES))
def test_python_api_file(name, corpus, pipeline, astronaut, reference):
    from fer.io import read_image

    case, path = CASES[name], corpus[name]
    if case.expect == "error":
        with pytest.raises(InputError) as err:
            pipeline(path)
        message = str(err.value)
        _one_line(message)
        assert str(path) in message and case.reason in message, message
    else:
        preds = pipeline(path)
        _check_predictions(case, preds, read_image(path).shape)
        if name == "exif-rotated":  # shown upright: the face sits where it does in the upright original
            assert np.abs(np.subtract(preds[0].box, reference.box)).max() <= 6, preds[0].box
        if name == "face-at-border":
            assert preds[0].box[0] == 0
        return
    _check_still_serving(pipeline, astronaut, reference)


#: Readable cases also sent as bytes (files and bytes share the decoder; these cover its branches).
BYTES_READABLE = ("grey-16bit", "cmyk", "palette-transparent", "exif-rotated", "animated-gif", "avif", "no-face")


def test_python_api_bytes(plain_pipeline, astronaut):
    """Every refused case, and a few readable ones, handed over as bytes in memory to ``fer.load()``'s
    pipeline: the same answers as from files."""
    pipeline = plain_pipeline
    wrong = []
    for case in CASES.values():
        if case.file_only or (case.expect == "ok" and case.name not in BYTES_READABLE):
            continue
        try:
            preds = pipeline(case.data)
        except InputError as exc:
            if case.expect != "error" or case.reason not in str(exc) or "\n" in str(exc):
                wrong.append(f"{case.name}: refused with {exc}")
            continue
        if case.expect == "error":
            wrong.append(f"{case.name}: accepted, {len(preds)} faces")
        elif not case.faces[0] <= len(preds) <= case.faces[1] or (case.label and preds[0].label != case.label):
            wrong.append(f"{case.name}: {[p.label for p in preds]}")
    assert not wrong, wrong
    assert pipeline(astronaut)[0].label == "happy"


@pytest.mark.parametrize("name", list(ARRAYS))
def test_python_api_arrays(name, pipeline, astronaut, reference):
    array, reason = ARRAYS[name]
    if reason is not None:
        with pytest.raises(InputError, match=reason) as err:
            pipeline(array)
        _one_line(str(err.value))
    else:
        preds = pipeline(array)
        assert len(preds) == 1 and preds[0].label == "happy"
        if name in ("fortran-order", "negative-strides", "read-only", "rgba"):
            np.testing.assert_allclose(preds[0].probabilities, reference.probabilities, atol=1e-5)
        return
    _check_still_serving(pipeline, astronaut, reference)


def test_caller_array_is_never_modified(pipeline, astronaut):
    frozen = astronaut.copy()
    frozen.flags.writeable = False  # writing to it would raise
    pipeline(frozen)
    np.testing.assert_array_equal(frozen, astronaut)


@pytest.mark.parametrize("crops", ["nan-float", "int16", "no-channels", "keypoints-mismatch"])
def test_predict_crops_refuses_bad_crops(plain_pipeline, crops):
    keypoints = np.tile(np.array([[70, 80], [150, 80], [112, 120], [112, 160], [40, 100], [180, 100]], np.float32),
                        (2, 1, 1))
    batch = {
        "nan-float": np.full((2, 224, 224, 3), np.nan, np.float32),
        "int16": np.zeros((2, 224, 224, 3), np.int16),
        "no-channels": np.zeros((2, 224, 224), np.uint8),
        "keypoints-mismatch": np.zeros((2, 224, 224, 3), np.uint8),
    }[crops]
    if crops == "keypoints-mismatch":
        keypoints = keypoints[:1]
    with pytest.raises(InputError) as err:
        plain_pipeline.predict_crops(batch, keypoints)
    _one_line(str(err.value))


@pytest.mark.parametrize("case", pil_cases(), ids=lambda c: c[0])
def test_python_api_pil_images_pillow_cannot_read(case, pipeline, astronaut, reference):
    _, make, reason = case
    with pytest.raises(InputError, match=reason) as err:
        pipeline(make())
    _one_line(str(err.value))
    _check_still_serving(pipeline, astronaut, reference)


def test_path_edge_cases(tmp_path, pipeline):
    with pytest.raises(InputError, match="no such file") as err:
        pipeline("holiday\x00.png")  # a NUL byte in a path
    assert "\x00" not in str(err.value)
    for path, reason in ((tmp_path, "folder"), (tmp_path / "missing.png", "no such file")):
        with pytest.raises(InputError, match=reason) as err:
            pipeline(path)
        assert str(path) in str(err.value)
    odd = tmp_path / "visage été 😀 (copie).png"
    shutil.copy(ASTRONAUT, odd)
    assert pipeline(str(odd))[0].label == "happy"


def test_special_files_refused(tmp_path):
    """Device files and pipes are refused, not read until memory runs out (run in a capped subprocess)."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        from fer.errors import InputError
        from fer.io import read_image
        for path in ("/dev/zero", {str(fifo)!r}):
            try:
                read_image(path)
                print("accepted", path)
            except InputError as exc:
                print("refused", exc)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("read_image hung on a special file")
    verdicts = [line.split(" ", 1)[0] for line in result.stdout.splitlines()]
    assert verdicts == ["refused", "refused"], result.stdout + result.stderr[-500:]


def test_face_limit_enforced_at_the_front_door():
    """`fer.load` refuses more faces than `MAX_FACES` (the detector's own checks: tests/test_face.py)."""
    import fer

    with pytest.raises(InputError, match="max_faces") as err:
        fer.load(max_faces=MAX_FACES + 1)
    _one_line(str(err.value))
    assert 1 <= DEFAULT_MAX_FACES <= MAX_FACES


# --------------------------------------------------------------------------- CLI


def _checkpoint_copy(folder: Path, damage: str) -> Path:
    """A copy of the shipped checkpoint with ``damage`` done to it; returns the spec path."""
    from fer.models import spec_path_for
    from fer.weights import sha256_file

    spec_file = spec_path_for("default")
    folder.mkdir(parents=True)
    spec = json.loads(spec_file.read_text())
    weights = folder / spec["weights"]
    shutil.copy(spec_file.parent / spec["weights"], weights)
    data = bytearray(weights.read_bytes())
    if damage == "tampered":
        data[-10] ^= 0xFF  # one weight changed
        weights.write_bytes(bytes(data))
    elif damage == "wrong-hash":
        spec["sha256"] = "0" * 64
    elif damage == "pickle":
        weights.unlink()
        pickled = folder / "model.pt"
        pickled.write_bytes(b"\x80\x04\x95" + bytes(data[:200]))
        spec["weights"], spec["sha256"] = pickled.name, sha256_file(pickled)
    out = folder / "model.json"
    out.write_text(json.dumps(spec))
    return out


#: Through the CLI: one per refusal path (SHA-256 mismatch of the file, of the spec, pickle refused);
#: truncated and missing files take the same paths and are covered in tests/test_weights.py.
WEIGHT_DAMAGE = ("tampered", "wrong-hash", "pickle")


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, corpus):
    """Every CLI call of this module, started together (each pays ~3 s of imports) and awaited.

    ``batch``: the whole corpus in ONE ``predict --json`` call, the astronaut after each refused
    file, run with outbound network attempts recorded and a private TMPDIR.
    ``weights-*``: ``predict --model`` pointing at a damaged checkpoint copy.
    """
    base = tmp_path_factory.mktemp("cli")
    tmpdir = base / "tmp"
    tmpdir.mkdir()
    odd_dir = base / "a folder.png"
    odd_dir.mkdir()
    paths: list[tuple[str, str]] = []  # (case name or marker, path)
    for name, path in corpus.items():
        paths.append((name, str(path)))
        if CASES[name].expect == "error":
            paths.append(("astronaut", str(ASTRONAUT)))
    paths += [("folder", str(odd_dir)), ("missing", str(base / "missing.jpg")), ("astronaut", str(ASTRONAUT))]
    env, net_log = net_audit_env(base / "audit", dict(os.environ))
    env["TMPDIR"] = str(tmpdir)
    commands = {"batch": (["predict", "--json", *[p for _, p in paths]], env)}
    plain_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    plain_env.pop("FER_HF_REPO", None)
    specs = {}
    for damage in WEIGHT_DAMAGE:
        specs[damage] = _checkpoint_copy(base / damage, damage)
        commands[f"weights-{damage}"] = (["predict", str(ASTRONAUT), "--model", str(specs[damage])], plain_env)
    procs = {
        key: subprocess.Popen([sys.executable, "-m", "fer", *args], cwd=ROOT, env=cmd_env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for key, (args, cmd_env) in commands.items()
    }
    results = {}
    for key, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        results[key] = (proc.returncode, out, err)
    return {"results": results, "paths": paths, "net_log": net_log, "tmpdir": tmpdir, "specs": specs}


def test_cli_corpus_in_one_call(cli_runs):
    returncode, out, err = cli_runs["results"]["batch"]
    paths = cli_runs["paths"]
    assert returncode == 1, err  # some inputs failed, the others were answered
    assert "Traceback" not in err and err.strip() == "", err[-2000:]
    doc = json.loads(out)
    assert [img["path"] for img in doc["images"]] == [p for _, p in paths]
    wrong = []
    for (name, path), img in zip(paths, doc["images"], strict=True):
        error = img["error"]
        if name in ("folder", "missing"):
            expected_error, reason, faces, label = True, {"folder": "folder", "missing": "no such file"}[name], (0, 0), None
        elif name == "astronaut":
            expected_error, reason, faces, label = False, "", (1, 1), "happy"
        else:
            case = CASES[name]
            expected_error, reason, faces, label = case.expect == "error", case.reason, case.faces, case.label
        if expected_error:
            if not error or reason not in error or path not in error or "\n" in error or img["faces"]:
                wrong.append(f"{name}: {error!r}")
        elif error or not faces[0] <= len(img["faces"]) <= faces[1] or (
                label and img["faces"][0]["top_k"][0]["label"] != label):
            wrong.append(f"{name}: error={error!r} faces={img['faces']}")
    assert not wrong, wrong


def test_cli_makes_no_network_calls_and_no_temp_files(cli_runs):
    assert cli_runs["results"]["batch"][0] == 1
    net_log = cli_runs["net_log"]
    assert not net_log.exists(), net_log.read_text()
    assert sorted(p.name for p in cli_runs["tmpdir"].rglob("*")) == []


@pytest.mark.parametrize("damage", WEIGHT_DAMAGE)
def test_cli_refuses_damaged_weights(cli_runs, damage):
    from fer.models import spec_path_for

    returncode, out, err = cli_runs["results"][f"weights-{damage}"]
    assert returncode != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    folder = cli_runs["specs"][damage].parent
    shipped = json.loads(spec_path_for("default").read_text())
    if damage == "tampered":
        assert str(folder / shipped["weights"]) in lines[0] and shipped["sha256"] in lines[0]
        assert "SHA-256 mismatch" in lines[0]
    elif damage == "wrong-hash":
        assert str(folder / shipped["weights"]) in lines[0] and "0" * 64 in lines[0]
    else:
        assert str(folder / "model.pt") in lines[0] and "only .safetensors" in lines[0]


# --------------------------------------------------------------------------- untrusted data


def _python_sources() -> list[Path]:
    return sorted((ROOT / "fer").rglob("*.py")) + [p for p in (ROOT / "app.py",) if p.exists()]


def test_no_unpickling_of_untrusted_data():
    """Weights are safetensors: any ``torch.load`` must pass ``weights_only=True``; no pickle loads,
    no ``numpy.load(allow_pickle=True)``."""
    offences = []
    for path in _python_sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (
                    node.module in ("pickle", "dill", "cloudpickle", "joblib")
                    or (node.module == "torch" and any(a.name == "load" for a in node.names))):
                offences.append(f"{path.name}:{node.lineno} from {node.module} import ...")
            if not isinstance(node, ast.Call):
                continue
            func = ast.unparse(node.func)
            keywords = {k.arg: k.value for k in node.keywords}
            if func == "torch.load":
                flag = keywords.get("weights_only")
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    offences.append(f"{path.name}:{node.lineno} torch.load without weights_only=True")
            if re.fullmatch(r"(pickle|cPickle|dill|cloudpickle|joblib)\.(load|loads|Unpickler)", func):
                offences.append(f"{path.name}:{node.lineno} {func}")
            if func.endswith("load") and "allow_pickle" in keywords:
                flag = keywords["allow_pickle"]
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    offences.append(f"{path.name}:{node.lineno} {func}(allow_pickle=...)")
            if func in ("torch.hub.load", "torch.jit.load"):
                offences.append(f"{path.name}:{node.lineno} {func}")
    assert not offences, offences


def test_limits_are_documented():
    """docs/LIMITS.md names every limit of fer/limits.py with its current value."""
    import fer.limits as limits

    doc = (ROOT / "docs" / "LIMITS.md").read_text()
    missing = []
    for name, value in vars(limits).items():
        if not name.isupper() or not isinstance(value, (int, float)):
            continue
        lines = [line for line in doc.splitlines() if f"`{name}`" in line]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
        if not any(shown in line for line in lines):
            missing.append(f"{name} = {shown}")
    assert not missing, f"docs/LIMITS.md lacks: {missing}"


def test_the_bomb_check_leaves_pillows_global_alone():
    """fer refuses oversized pictures itself, before decoding, without changing Pillow's process-wide
    limit (which every other user of PIL in the process shares)."""
    import subprocess
    import sys

    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
            "import fer.io, fer.pipeline; print(Image.MAX_IMAGE_PIXELS == before)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr
