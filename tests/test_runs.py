"""Run identity: every setting that changes data, split or training tells runs apart; an output
folder is only continued by the same run, and a finished one is never rewritten."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fer.errors import InputError
from fer.models import ModelSpec
from fer.research import datasets as D
from fer.research.recipes import TrainConfig
from fer.research.runs import NOT_IDENTITY, differences, run_id, run_identity, saliency_digest
from fer.research.train import train
from tests import synthetic as S

SMALL = dict(backbone="mini_xception", pretrained=False, input_size=32, batch_size=8, lr=3e-3, epochs=1,
             assume_cropped=True, device="cpu", progress=False, folds=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    S.write_rafd(root / "rafd", n_subjects=4, seed=5, size=24, gazes=("frontal", "left"))
    S.write_folder(root / "cfee", n_subjects=4, per_label=2, seed=6, size=24)
    return {"root": root, "rafd": root / "rafd", "cfee": root / "cfee"}


#: One change per setting that alters data, split or training (as the issue lists them).
CHANGES = {"subject_pattern": r"^(.*)$", "angles": (90, 45), "gazes": ("frontal",), "cfee_subset": "all",
           "usages": ("Training",), "margin": 0.3, "augment": False, "weight_decay": 0.01, "seed": 1, "folds": 4,
           "fold": 1, "classes": ("happy", "sad"), "saliency": "face-prior", "saliency_floor": 0.2,
           "batch_size": 16, "lr": 1e-2, "epochs": 2, "input_size": 48, "optimizer": "sgd", "pretrained": True,
           "backbone": "resnet18", "assume_cropped": False, "amp": "off", "name": "other", "warmup_epochs": 1,
           "label_smoothing": 0.1, "grad_clip": 1.0, "ema_decay": 0.9, "compile": True}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_every_setting_that_changes_a_run_changes_its_identity(data: dict[str, Path], field: str) -> None:
    base = TrainConfig(dataset="cfee", root=str(data["cfee"]), **SMALL).resolved()
    changed = dataclasses.replace(base, **{field: CHANGES[field]}).resolved()
    dataset = D.load_cfee(data["cfee"])
    a = run_identity(base, dataset, amp="off", saliency_weights=None)
    b = run_identity(changed, dataset, amp="off", saliency_weights=None)
    if field == "amp":  # the resolved mode is what counts: "auto" and "off" are both float32 on the CPU
        b = run_identity(changed, dataset, amp="bf16", saliency_weights=None)
    assert any(line.startswith(f"{'amp' if field == 'amp' else field}:") for line in differences(a, b))
    assert run_id(a) != run_id(b)


def test_where_things_live_is_not_identity(data: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    base = TrainConfig(dataset="cfee", root=str(data["cfee"]), **SMALL).resolved()
    moved = tmp_path / "moved"
    shutil.copytree(data["cfee"], moved)
    other = dataclasses.replace(base, root=str(moved), cache_dir=str(tmp_path), device="cuda", out="x", workers=3)
    a = run_identity(base, D.load_cfee(data["cfee"]), amp="off", saliency_weights=None)
    b = run_identity(other, D.load_cfee(moved), amp="off", saliency_weights=None)
    assert differences(a, b) == [] and run_id(a) == run_id(b)
    assert {"root", "device", "cache_dir", "out", "workers", "saliency_weights"} <= NOT_IDENTITY
    # The data's content stands in for its folder: other samples, other identity.
    every = D.load_cfee(data["cfee"])
    fewer = every.subset(range(len(every) - 1))
    assert [d.split(":")[0] for d in differences(a, run_identity(base, fewer, amp="off", saliency_weights=None))] == \
        ["data"]


def test_saliency_weights_count_by_content(tmp_path: Path) -> None:
    one, two, three = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "c.safetensors"
    one.write_bytes(b"weights")
    two.write_bytes(b"weights")
    three.write_bytes(b"other weights")
    assert saliency_digest(None, str(one)) == saliency_digest(None, str(two)) != saliency_digest(None, str(three))
    assert saliency_digest(None, None) is None

    class Predictor:  # ML-Net-like: its spec records the hash of the weights it loaded
        spec = ModelSpec.__new__(ModelSpec)

    object.__setattr__(Predictor.spec, "sha256", "ab" * 32)
    assert saliency_digest(Predictor(), str(three)) == "ab" * 32


def test_a_rerun_with_other_settings_is_refused_with_the_differences(data: dict[str, Path], tmp_path: Path) -> None:
    """The issue's leak: train with every image its own subject, re-run without it, and the old
    weights' 'test' images were training images. Now the re-run is refused."""
    out = tmp_path / "run"
    first = TrainConfig(dataset="cfee", root=str(data["cfee"]), subject_pattern=r"^(.*)$", out=str(out), **SMALL)
    spec_file = train(first)
    before = spec_file.read_bytes()
    assert ModelSpec.load(spec_file).training["identity"]["subject_pattern"] == r"^(.*)$"
    again = dataclasses.replace(first, subject_pattern=None, resume=True)
    with pytest.raises(InputError, match=r"holds another run.*data: was .*subject_pattern: was '\^\(\.\*\)\$', now None"):
        train(again)
    for field, value in (("weight_decay", 0.5), ("augment", False)):
        with pytest.raises(InputError, match=f"{field}: was"):
            train(dataclasses.replace(first, resume=True, **{field: value}))
    # The same settings with --resume: the finished run is returned as it is, spec and card untouched.
    assert train(dataclasses.replace(first, resume=True, progress=True)) == spec_file
    assert spec_file.read_bytes() == before
    with pytest.raises(InputError, match="already holds this trained model"):
        train(first)


def test_an_interrupted_run_continues_only_with_its_own_settings(data: dict[str, Path], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import fer.research.train as T

    out = tmp_path / "rafd"
    root = tmp_path / "data"
    shutil.copytree(data["rafd"], root)
    config = TrainConfig(dataset="rafd", root=str(root), gazes=("frontal", "left"), out=str(out),
                         **{**SMALL, "epochs": 2})
    real_save = T.save_checkpoint

    saves = []

    def crash_in_epoch_2(module, spec, out_dir, stem="model"):  # noqa: ANN001
        saves.append(stem)
        if saves.count("last") == 2:  # epoch 1 is saved with its state, epoch 2 never finishes
            raise KeyboardInterrupt
        return real_save(module, spec, out_dir, stem)

    monkeypatch.setattr(T, "save_checkpoint", crash_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        train(config)
    monkeypatch.setattr(T, "save_checkpoint", real_save)
    with pytest.raises(InputError, match="gazes: was \\['frontal', 'left'\\], now \\['frontal'\\]"):
        train(dataclasses.replace(config, gazes=("frontal",), resume=True))
    with pytest.raises(InputError, match="interrupted run of these settings; pass --resume"):
        train(config)
    # The case: another image copied over one file under the same name.
    images = sorted(root.glob("*.png"))
    original = images[0].read_bytes()
    shutil.copyfile(images[1], images[0])
    with pytest.raises(InputError, match="holds another run .*data: was"):
        train(dataclasses.replace(config, resume=True))
    images[0].write_bytes(original)
    spec = ModelSpec.load(train(dataclasses.replace(config, resume=True)))
    assert [h["epoch"] for h in spec.training["history"]] == [1, 2]
    shutil.copyfile(images[1], images[0])  # a finished run is not returned stale either
    with pytest.raises(InputError, match="holds another run .*data: was"):
        train(dataclasses.replace(config, resume=True))
