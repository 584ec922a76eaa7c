"""ML-Net: architecture, loss, checkpoints, and a short real training run on synthetic fixations."""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np
import pytest
import torch

from fer.errors import InputError, WeightsError
from fer.mlnet import MLNet, SaliencySpec, letterbox, load_mlnet, mlnet_loss, prior_size, save_mlnet
from fer.research.saliency_metrics import cc
from fer.research.saliency_train import train_mlnet
from fer.research.saliency_train_cli import add_arguments, run
from fer.saliency import load_saliency, saliency_status


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These small networks run fastest on one thread; on a shared 2-core machine torch's second
    thread mostly spins waiting for a core (measured: training 9 s on one thread, 90 s on two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_paper_shapes_480x640():
    """The paper's network at the paper's size: shapes traced on torch's meta device (no arithmetic,
    so it costs milliseconds; a real 480×640 forward takes 3-9 s on the shared 2-core test machine),
    then a real forward of the same full-width network at a reduced size."""
    with torch.device("meta"), torch.inference_mode():
        model = MLNet().eval()
        out = model(torch.empty(1, 3, 480, 640))
    assert out.shape == (1, 1, 60, 80)
    assert prior_size((480, 640)) == (6, 8) and tuple(model.prior.shape) == (6, 8)
    assert model.encode.in_channels == 1280  # 256 + 512 + 512 channels, as in the paper
    torch.manual_seed(0)
    model = MLNet((64, 96)).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 1, 8, 12) and out.dtype == torch.float32
    assert (out >= 0).all() and torch.isfinite(out).all()


def test_vgg_layout_matches_torchvision():
    """ImageNet VGG-16 weights from torchvision fit the feature layers key for key."""
    from torchvision.models import vgg16

    with torch.device("meta"):  # keys and shapes only: skips initialising 138 M parameters
        reference = vgg16(weights=None).features[:30].state_dict()
        own = MLNet(width=1.0).features.state_dict()
    assert list(own) == list(reference)
    assert all(own[k].shape == reference[k].shape for k in reference)


def test_backbone_weights_load(tmp_path):
    from safetensors.torch import save_file

    source = MLNet((64, 64), width=0.125)
    path = tmp_path / "vgg.safetensors"
    save_file({f"features.{k}": v.contiguous() for k, v in source.features.state_dict().items()}, str(path))
    target = MLNet((64, 64), width=0.125, backbone_weights=path)
    for k, v in source.features.state_dict().items():
        assert torch.equal(target.features.state_dict()[k], v)
    with pytest.raises(WeightsError, match="safetensors"):
        MLNet((64, 64), width=0.125, backbone_weights=tmp_path / "vgg.pth")
    with pytest.raises(WeightsError, match="not VGG-16 features"):
        MLNet((64, 64), width=0.25, backbone_weights=path)


def test_input_size_checked():
    with pytest.raises(InputError, match="multiples of 8"):
        MLNet((100, 130))


def test_loss_by_hand():
    # pred max 2 → normalised (0.5, 1); target (0, 1); weights 1/(1.1 - t) = (1/1.1, 10).
    # error mean = (0.25/1.1 + 0) / 2 = 0.113636…; prior (6, 8) of 0.5 → Σ(1 - p)² = 48·0.25 = 12,
    # λ = 1/48 → 0.25. Total 0.363636…
    pred = torch.tensor([[[[1.0, 2.0]]]])
    target = torch.tensor([[[[0.0, 1.0]]]])
    prior = torch.full((6, 8), 0.5)
    assert mlnet_loss(pred, target, prior).item() == pytest.approx(0.25 / 1.1 / 2 + 0.25)
    assert mlnet_loss(pred, target, torch.ones(6, 8)).item() == pytest.approx(0.25 / 1.1 / 2)
    with pytest.raises(InputError):
        mlnet_loss(pred, target[..., :1], prior)


def test_letterbox_keeps_aspect():
    img = np.full((50, 100, 3), 200, np.uint8)
    out, (y0, y1, x0, x1) = letterbox(img, (96, 128))
    assert out.shape == (96, 128, 3)
    assert (x0, x1) == (0, 128) and y1 - y0 == 64
    assert out[:y0].max() == 0 and out[y0:y1].min() == 200


def test_mlnet_without_weights_says_how_to_get_them(monkeypatch):
    monkeypatch.delenv("FER_MLNET_WEIGHTS", raising=False)
    assert saliency_status()["mlnet"].startswith("needs weights:")
    with pytest.raises(WeightsError, match="train-saliency") as err:
        load_saliency("mlnet")
    assert "FER_MLNET_WEIGHTS" in str(err.value)


def _blob(h, w, cy, cx, sigma):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def _synthetic(rng, h, w):
    """Noise with one or two bright blobs; the fixation density is a wider Gaussian on each blob."""
    img = rng.uniform(0, 100, (h, w))
    density = np.zeros((h, w))
    centres = []
    for _ in range(rng.integers(1, 3)):
        cy, cx = rng.uniform(14, h - 14), rng.uniform(14, w - 14)
        img += 150 * _blob(h, w, cy, cx, 8)
        density = np.maximum(density, _blob(h, w, cy, cx, 14))
        centres.append((cy, cx))
    rgb = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return rgb, density, centres


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A reduced-width ML-Net trained briefly on 48 synthetic 96×128 images written as files."""
    root = tmp_path_factory.mktemp("salicon")
    rng = np.random.default_rng(0)
    for d in ("images", "maps", "fixations"):
        (root / d).mkdir()
    for i in range(48):
        rgb, density, centres = _synthetic(rng, 96, 128)
        cv2.imwrite(str(root / "images" / f"{i:03d}.jpg"), rgb[..., ::-1])
        cv2.imwrite(str(root / "maps" / f"{i:03d}.png"), np.rint(255 * density).astype(np.uint8))
        fix = np.zeros((96, 128), np.uint8)
        for cy, cx in centres:
            fix[int(cy), int(cx)] = 255
        cv2.imwrite(str(root / "fixations" / f"{i:03d}.png"), fix)
    (root / "images" / "broken.png").write_bytes(b"not an image")
    (root / "maps" / "broken.png").write_bytes(b"not an image")
    (root / "images" / "unpaired.jpg").write_bytes(b"no map")
    logs: list[str] = []
    path = train_mlnet(
        root / "images", root / "maps", root / "fixations", out_dir=root / "out", epochs=6, size=(96, 128),
        batch_size=8, lr=3e-4, optimizer="adam", val_fraction=0.2, width=0.125, seed=0, progress=False,
        log=logs.append,
    )
    return path, logs, root


def test_training_learns_synthetic_fixations(trained):
    path, logs, root = trained
    assert path.name == "mlnet.safetensors" and path.is_file()
    spec = json.loads(path.with_suffix(".json").read_text())
    history = spec["training"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert spec["evaluation"]["cc"] >= 0.8
    assert set(spec["evaluation"]) >= {"cc", "kld", "sim", "nss", "auc_judd"}
    assert spec["input_size"] == [96, 128] and len(spec["sha256"]) == 64
    assert any("broken.png" in line for line in logs) and any("unpaired.jpg" in line for line in logs)


def test_trained_checkpoint_through_load_saliency(trained):
    """Held-out square crops (letterboxed into the 96×128 input): maps in [0, 1] that find the blob."""
    path, _, _ = trained
    predictor = load_saliency("mlnet", weights=str(path))
    assert predictor.name == "mlnet" and "ML-Net" in predictor.description
    rng = np.random.default_rng(123)
    crops, truths = zip(*[_synthetic(rng, 96, 96)[:2] for _ in range(6)], strict=True)
    maps = predictor(np.stack(crops), None)
    assert maps.shape == (6, 96, 96) and maps.dtype == np.float32
    assert maps.min() >= 0.0 and maps.max() == pytest.approx(1.0)
    assert np.mean([cc(m, t) for m, t in zip(maps, truths, strict=True)]) >= 0.8


def test_checkpoint_from_env_and_tampering(trained, monkeypatch, tmp_path):
    path, _, _ = trained
    monkeypatch.setenv("FER_MLNET_WEIGHTS", str(path.parent))
    assert saliency_status()["mlnet"] == "ready"
    model, spec = load_mlnet(path.with_suffix(".json"))
    assert isinstance(spec, SaliencySpec) and not model.training
    # A copy whose bytes changed no longer matches the SHA-256 in its spec.
    copy = tmp_path / "mlnet.safetensors"
    copy.write_bytes(path.read_bytes()[:-1] + b"\x00")
    (tmp_path / "mlnet.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(WeightsError, match="SHA-256"):
        load_saliency("mlnet", weights=str(copy))


def test_save_and_reload_roundtrip(tmp_path):
    model = MLNet((64, 64), width=0.125).eval()
    spec = save_mlnet(model, SaliencySpec(weights="", sha256="", input_size=(64, 64), width=0.125), tmp_path)
    reloaded, spec2 = load_mlnet(tmp_path)
    assert spec2 == spec
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), reloaded(x))


def test_cli_reports_bad_folders(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--images", str(tmp_path / "nope"), "--maps", str(tmp_path), "--out", str(tmp_path / "o")])
    assert run(args) == 2
    assert "not a folder" in capsys.readouterr().err
