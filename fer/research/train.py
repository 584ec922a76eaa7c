"""Fine-tune an expression CNN on a dataset the user holds, optionally on face × saliency inputs
(the paper's method), and save a checkpoint whose spec carries labels, preprocessing, saliency
mode, split, the run's identity and held-out metrics.

    python -m fer train --dataset rafd --root RaFD/ --backbone alexnet --saliency face-prior
    torchrun --nproc_per_node 4 -m fer train --dataset rafd --root RaFD/ --backbone resnet18

The recipes and every setting are in `fer.research.recipes`, the command line in
`fer.research.train_cli`. Runs are deterministic for a given
seed and device: the classifier's initial weights and the data order depend on the seed alone,
whatever saliency predictor is used (so with/without-saliency runs are a matched ablation), and
``--resume`` continues an interrupted run exactly, but only the same run (`fer.research.runs`).
Under torchrun each process takes its share of every global batch; rank 0 alone logs and writes.

Outputs in ``--out``: ``best.safetensors`` + ``best.json`` (the checkpoint with the best validation
accuracy; load with `fer.zoo.load_model` or `fer.load`), ``last.safetensors`` + ``last_state.pt``
(for resuming), ``confusion.png`` (test split).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer.errors import InputError, WeightsError
from fer.models import ARCHITECTURES, LoadedModel, ModelSpec, predict_probabilities, preprocess_array, save_checkpoint
from fer.research import distributed as dist
from fer.research.datasets import load_dataset, restrict_labels
from fer.research.evaluate import EvaluationResult, score
from fer.research.preemption import Preempted, StopRequest
from fer.research.recipes import TrainConfig, WeightAverage, lr_factor, make_optimizer, warmup_factor
from fer.research.runs import STATE_FILE, environment, resume_state, run_id, run_identity, saliency_digest
from fer.research.shared_inputs import release, training_inputs
from fer.research.splits import part_fingerprints, split_dataset
from fer.research.step_log import StepLog

#: Largest random zoom of the training augmentation ("small crops"): up to 15 % of the side cut away.
MAX_ZOOM = 0.15


def seed_everything(seed: int) -> None:
    """Seed torch and numpy and ask for deterministic kernels (warnings, not errors, where none exist)."""
    # cuBLAS is deterministic only with a fixed workspace; must be set before CUDA starts.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def augment_params(n: int, generator: torch.Generator, max_zoom: float = MAX_ZOOM) -> torch.Tensor:
    """Random horizontal flip and random crop (zoom in by up to ``max_zoom``, anywhere in the frame)
    for ``n`` samples, as ``(n, 2, 3)`` float32 affine matrices for `augment`. Drawn for a whole
    global batch, so every process of a distributed run draws the same numbers and takes its rows."""
    scale = 1.0 - max_zoom * torch.rand(n, generator=generator)
    shift = (1.0 - scale)[:, None] * (2.0 * torch.rand(n, 2, generator=generator) - 1.0)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale * flip
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    return theta


def augment(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply `augment_params` matrices as one resampling.

    Args:
        x: ``(N, C, H, W)`` float32 batch; theta: ``(N, 2, 3)``.
    Returns:
        ``(N, C, H, W)`` float32; borders repeat when a crop would leave the image.
    """
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class Batches(torch.utils.data.Dataset):
    """Preprocessed batches in a fixed order; a DataLoader's workers (GPU runs) build them ahead."""

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, steps: list[np.ndarray], spec: ModelSpec) -> None:
        self.inputs, self.targets, self.steps, self.spec = inputs, targets, steps, spec

    def __len__(self) -> int:
        return len(self.steps)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.steps[k]  # may be empty: a rank with no share of a short batch
        return torch.from_numpy(preprocess_array(self.inputs[rows], self.spec)), torch.from_numpy(self.targets[rows])


def _state_digest(module: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _evaluate(module: nn.Module, spec: ModelSpec, inputs: np.ndarray, rows: np.ndarray, labels: list[str],
              batch_size: int, ctx: dist.Context) -> tuple[EvaluationResult, float]:
    """Score ``module`` on ``inputs[rows]`` (true labels ``labels[r]``), each rank its share; returns
    the result (confusion summed over ranks) and the mean cross-entropy."""
    module.eval()
    local = rows[dist.shard(len(rows), ctx)]
    probs = predict_probabilities(LoadedModel(module, spec), inputs[local], batch_size=batch_size)
    true = np.array([spec.labels.index(labels[r]) for r in local], np.int64)
    loss = float(-np.log(np.clip(probs[np.arange(len(true)), true], 1e-12, None)).sum())
    result = score(probs, spec.labels, [labels[r] for r in local], data_labels=spec.labels, model=spec.name)
    total = dist.all_reduce_sum(np.array([loss, len(true)], np.float64), ctx)
    result = dataclasses.replace(result, confusion=dist.all_reduce_sum(result.confusion, ctx))
    return result, float(total[0] / max(total[1], 1.0))


def train_epoch(model: nn.Module, batches: Batches, order: np.ndarray, generator: torch.Generator,
                optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler, config: TrainConfig,
                device: torch.device, amp: str, ctx: dist.Context, desc: str = "epoch", *, start_step: int = 0,
                totals: np.ndarray | None = None, stop: StopRequest | None = None,
                log: StepLog | None = None, epoch: int = 0, global_step: int = 0,
                ema: WeightAverage | None = None) -> dict[str, float]:
    """One pass over ``order`` in global batches (this rank's rows of each in ``batches``, see
    `epoch_steps`), from step ``start_step`` on (a run resumed mid-epoch, with the loss/right/seen
    ``totals`` of the steps before). Each step is written to ``log`` (epoch ``epoch`` + 1, steps
    counted on from ``global_step``); ``ema`` is updated after every step.

    Returns:
        ``{"loss", "train_accuracy", "train_samples", "steps"}`` over all ranks: mean loss and
        accuracy, images trained on, optimizer steps.
    Raises:
        Preempted: ``stop`` saw a stop signal; raised after a whole optimizer step, with the totals so far.
    """
    from tqdm.auto import tqdm

    settings = dist.loader_settings(device, config.workers)
    steps = len(batches.steps)
    batches = Batches(batches.inputs, batches.targets, batches.steps[start_step:], batches.spec)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, **settings)
    totals = np.zeros(3) if totals is None else np.array(totals, np.float64)  # loss sum, right, seen
    channels_last = device.type == "cuda"
    model.train()
    for k, (x, y) in enumerate(tqdm(loader, desc=desc, unit="batch", leave=False, initial=start_step, total=steps,
                                    disable=not (config.progress and ctx.main)), start=start_step):
        n_global = len(order[k * config.batch_size:(k + 1) * config.batch_size])
        theta = augment_params(n_global, generator)[dist.batch_share(n_global, ctx)]
        x = x.to(device, non_blocking=True, memory_format=torch.channels_last if channels_last else torch.preserve_format)
        y = y.to(device, non_blocking=True)
        if config.warmup_epochs:
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr_factor(config, epoch) * warmup_factor(config, epoch, k, steps)
        idle = len(y) == 0  # no share of this short batch: zero gradients, for the all-reduce
        if config.augment and not idle:
            x = augment(x, theta)
        if idle and device.type != "cuda":
            model.eval()  # BatchNorm statistics of no images are none (SyncBatchNorm on CUDA takes empty shares)
        with dist.autocast(device, amp):
            logits = model(x)
        model.train()
        # Summed over this rank's rows and scaled so that DDP's gradient average is the global
        # batch mean, whatever the share of each rank.
        loss = F.cross_entropy(logits.float(), y, reduction="sum", label_smoothing=config.label_smoothing) * (
            ctx.world_size / n_global)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if config.grad_clip is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not fp16-scaled ones
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if ema is not None:
            ema.update()
        step = np.array([loss.item() * n_global / ctx.world_size, int((logits.argmax(1) == y).sum()), len(y)])
        totals += step
        signum, step = (stop or StopRequest()).check(ctx, step)  # one all-reduce: stop flag and step metrics
        if log is not None:
            log.write(epoch + 1, k + 1, global_step + k + 1, int(step[2]), step[0] / step[2], step[1] / step[2],
                      optimizer.param_groups[-1]["lr"])
        if signum:
            raise Preempted(signum, k + 1, dist.all_reduce_sum(totals, ctx))
    totals = dist.all_reduce_sum(totals, ctx)
    return {"loss": totals[0] / max(totals[2], 1), "train_accuracy": totals[1] / max(totals[2], 1),
            "train_samples": int(totals[2]), "steps": steps}


def epoch_steps(order: np.ndarray, batch_size: int, ctx: dist.Context) -> list[np.ndarray]:
    """This rank's rows (`fer.research.distributed.batch_share`) of each global batch of ``order``.
    A last batch of one image is left out whatever the number of processes (BatchNorm cannot train
    on one sample); every other batch is trained, the same in 1 and in N processes."""
    steps = []
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        if len(rows) >= 2:
            steps.append(rows[dist.batch_share(len(rows), ctx)])
    return steps


def train(config: TrainConfig) -> Path:
    """Train a model as ``config`` says (under torchrun: one share of a distributed job).

    Returns:
        Path of the best checkpoint's spec (``OUT/best.json``), loadable with `fer.zoo.load_model`.
        A finished run of the same identity in ``OUT`` is returned as it is (``resume`` set).
    Raises:
        InputError: bad configuration, unusable data, or ``OUT`` holding another run;
        WeightsError: ImageNet weights unavailable.
    """
    from fer.pipeline import resolve_device

    config = config.resolved()
    device = resolve_device(config.device)
    with dist.process_group(device) as ctx, StopRequest() as stop:
        try:
            return _train(config, dist.device_for(device, ctx), ctx, stop)
        finally:
            release(Path(config.out or "."), ctx)


def _train(config: TrainConfig, device: torch.device, ctx: dist.Context, stop: StopRequest) -> Path:
    from tqdm.auto import tqdm

    assert config.out and config.name and config.input_size and config.epochs  # resolved() filled them in
    started = time.perf_counter()
    out = Path(config.out)
    seed_everything(config.seed)
    amp = dist.resolve_amp(config.amp, device)
    arch = ARCHITECTURES[config.backbone]
    dataset = load_dataset(
        config.dataset, config.root, assume_cropped=config.assume_cropped, angles=config.angles,
        gazes=config.gazes, subset=config.cfee_subset, subject_pattern=config.subject_pattern, usages=config.usages,
    )
    if config.classes:
        dataset = restrict_labels(dataset, config.classes)
    split = split_dataset(dataset, folds=config.folds, fold=config.fold, seed=config.seed)
    if not split.train:
        raise InputError(f"{dataset.name}: the training split is empty")
    predictor = None
    if config.saliency != "none":
        from fer.saliency import load_saliency

        # Building a network predictor (ML-Net) draws random numbers; they must not move the
        # classifier's stream, or runs with and without saliency would start from other weights.
        with torch.random.fork_rng(devices=[]):
            predictor = load_saliency(config.saliency, device=str(device), weights=config.saliency_weights)
    identity = run_identity(config, dataset, amp=amp, saliency_weights=saliency_digest(predictor, config.saliency_weights))
    state = resume_state(out, identity, config.resume)
    if state == "finished":
        return out / "best.json"

    # Rank 0 detects faces and weights them; every rank then reads one shared copy (removed by `train`).
    crops = training_inputs(dataset, config, predictor, ctx, out)
    row_of = {sample.key: row for row, sample in enumerate(crops.samples)}
    parts = {name: np.array([row_of[dataset.samples[i].key] for i in getattr(split, name)
                             if dataset.samples[i].key in row_of], np.int64) for name in ("train", "val", "test")}
    if len(parts["train"]) < 2:
        raise InputError(f"{dataset.name}: fewer than 2 training images have a face crop ({len(crops.skipped)} skipped)")
    inputs = crops.images
    labels = dataset.labels
    crop_labels = crops.labels
    targets = np.array([labels.index(label) for label in crop_labels], np.int64)

    from fer.face import DEFAULT_MARGIN

    # The margin the pipeline should crop with to match training; unknown for ready-made crops.
    margin = None if dataset.assume_cropped else (DEFAULT_MARGIN if config.margin is None else config.margin)
    spec = ModelSpec(
        name=config.name, architecture=config.backbone, input_size=config.input_size, colour=arch.colour,
        mean=tuple(arch.pretrained_mean), std=tuple(arch.pretrained_std), labels=labels, weights="", sha256="",
        licence="trained by the user: the training data's licence terms apply",
        source="fer train", training_data=f"{dataset.name} ({config.root}), {split.info['method']}",
        saliency_input=None if config.saliency == "none" else config.saliency,
        saliency_floor=config.saliency_floor if config.saliency != "none" else 0.0,
        margin=margin,
        notes="crops were given (no face detection); keypoints estimated" if dataset.assume_cropped else "",
    )
    torch.manual_seed(config.seed)  # the classifier's initial weights depend on the seed alone
    try:
        module = arch.build(len(labels), 1 if arch.colour == "grey" else 3, config.pretrained)
    except WeightsError as exc:
        hint = "" if "--no-pretrained" in str(exc) else " (command line: --no-pretrained trains from random weights)"
        raise WeightsError(f"{exc}{hint}") from None
    init_sha = _state_digest(module)
    module.to(device)
    if device.type == "cuda":
        module.to(memory_format=torch.channels_last)  # faster convolutions on tensor cores
    optimizer = make_optimizer(module, config, len(labels))
    model = dist.wrap(module, device, ctx)
    if config.compile:
        model = torch.compile(model)  # type: ignore[assignment]  # after DDP, as PyTorch's docs advise
    scaler = dist.grad_scaler(device, amp)
    ema = WeightAverage(module, config.ema_decay) if config.ema_decay else None
    # What validation scores and "best" holds: the weights, or their moving average.
    scored = copy.deepcopy(module) if ema is not None else module

    history: list[dict[str, float]] = []
    best_accuracy, best_epoch, start_epoch, order_sha = -1.0, -1, 0, ""
    best_state: dict[str, torch.Tensor] | None = None
    saved: dict = {}
    if state == "continue":
        from safetensors.torch import load_file

        saved = torch.load(out / STATE_FILE, map_location="cpu", weights_only=True)
        module.load_state_dict(load_file(str(out / "last.safetensors"), device="cpu"), strict=True)
        best_accuracy, best_epoch = float(saved["best_accuracy"]), int(saved["best_epoch"])
        if best_epoch > 0:  # none yet when the first epoch was preempted
            best_state = load_file(str(out / "best.safetensors"), device=str(device))
        optimizer.load_state_dict(saved["optimizer"])
        if "scaler" in saved:
            scaler.load_state_dict(saved["scaler"])
        if ema is not None:
            ema.state = {k: v.to(device) for k, v in saved["ema"].items()}
        history = json.loads(saved["history"])
        start_epoch, order_sha = int(saved["epoch"]) + 1, str(saved["order_sha256"])
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)

    train_rows, val_rows = parts["train"], parts["val"]
    epochs = tqdm(range(start_epoch, config.epochs), desc=config.name, unit="epoch", initial=start_epoch,
                  total=config.epochs, disable=not (config.progress and ctx.main))
    log = StepLog(out if ctx.main else None, (start_epoch + 1, int(saved.get("step", 0))) if saved else None)
    global_step = sum(int(h.get("steps", 0)) for h in history) + int(saved.get("step", 0))
    for epoch in epochs:
        # Everything random in an epoch derives from (seed, epoch): a resumed run repeats it exactly.
        torch.manual_seed(config.seed * 1000 + epoch)
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(config, epoch)
        order = train_rows[torch.randperm(len(train_rows), generator=generator).numpy()]
        previous_sha, order_sha = order_sha, hashlib.sha256(order_sha.encode() + order.tobytes()).hexdigest()
        batches = Batches(inputs, targets, epoch_steps(order, config.batch_size, ctx), spec)
        start_step = int(saved.get("step", 0)) if epoch == start_epoch else 0
        if start_step:  # resumed mid-epoch: the random streams as they were after that step
            generator.set_state(saved["generator"])
            torch.set_rng_state(saved["torch_rng"])
            if device.type == "cuda" and "cuda_rng" in saved:
                torch.cuda.set_rng_state(saved["cuda_rng"], device)
        try:
            record = {"epoch": epoch + 1, **train_epoch(
                model, batches, order, generator, optimizer, scaler, config, device, amp, ctx,
                desc=f"epoch {epoch + 1}", start_step=start_step,
                totals=np.array(saved["totals"]) if start_step and ctx.main else None, stop=stop, log=log,
                epoch=epoch, global_step=global_step - start_step, ema=ema)}
            global_step += record["steps"] - start_step
        except Preempted as stopped:
            if ctx.main:
                save_checkpoint(module, spec, out, "last")
                torch.save({"identity": json.dumps(identity), "epoch": epoch - 1, "step": stopped.step,
                            "totals": stopped.totals.tolist(), "generator": generator.get_state(),
                            "torch_rng": torch.get_rng_state(),
                            **({"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}),
                            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                            **({"ema": ema.state} if ema is not None else {}),
                            "best_accuracy": best_accuracy, "best_epoch": best_epoch, "history": json.dumps(history),
                            "order_sha256": previous_sha}, out / STATE_FILE)
            dist.barrier(ctx)
            log.close()
            raise
        if ema is not None:
            scored.load_state_dict(ema.state)
        if len(val_rows):
            result, val_loss = _evaluate(scored, spec, inputs, val_rows, crop_labels, config.batch_size, ctx)
            record.update(val_accuracy=result.accuracy, val_loss=val_loss)
            improved = result.accuracy > best_accuracy
        else:  # no validation data (e.g. a FER2013 CSV without PublicTest): keep the last epoch
            improved = True
        history.append({k: round(v, 6) if isinstance(v, float) else v for k, v in record.items()})
        if improved:
            best_accuracy, best_epoch = record.get("val_accuracy", -1.0), epoch + 1
            best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        if ctx.main:
            if improved:
                save_checkpoint(scored, spec, out, "best")
            save_checkpoint(module, spec, out, "last")
            torch.save({"identity": json.dumps(identity), "epoch": epoch, "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(), **({"ema": ema.state} if ema is not None else {}), "best_accuracy": best_accuracy, "best_epoch": best_epoch,
                        "history": json.dumps(history), "order_sha256": order_sha}, out / STATE_FILE)
        epochs.set_postfix(loss=f"{record['loss']:.3f}", val=f"{record.get('val_accuracy', float('nan')):.3f}")

    log.close()
    assert best_state is not None  # the first epoch always improves on -1
    module.load_state_dict(best_state)
    evaluation = None
    if len(parts["test"]):
        result, _ = _evaluate(module, spec, inputs, parts["test"], crop_labels, config.batch_size, ctx)
        result = dataclasses.replace(result, dataset=dataset.name)
        evaluation = {**result.to_dict(), "dataset": dataset.name, "split": "test"}
        del evaluation["skipped"]
        if ctx.main:
            from fer.research.evaluate import plot_confusion

            plot_confusion(result, out / "confusion.png", title=f"{spec.name}, test split")
    training = {
        **config.to_dict(),
        "dataset": dataset.name,
        "dataset_summary": dataset.describe(),
        "split": split.to_dict(),
        "data_parts": part_fingerprints(dataset, split),
        "identity": identity,
        "run_id": run_id(identity),
        "skipped": [s.to_dict() for s in (*dataset.skipped, *crops.skipped)][:100],
        "skipped_count": len(dataset.skipped) + len(crops.skipped),
        "inputs": crops.held,
        "best_epoch": best_epoch,
        "best_val_accuracy": round(best_accuracy, 6) if best_accuracy >= 0 else None,
        "selection": "best validation accuracy" if len(val_rows) else "last epoch (no validation data)",
        "history": history,
        "init_sha256": init_sha,
        "order_sha256": order_sha,
        "world_size": ctx.world_size,
        "amp": amp,
        "device": str(device),
        "torch": torch.__version__,
        "environment": environment(),
        "step_log": log.describe(),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if ctx.main:
        best = ModelSpec.load(out / "best.json")
        dataclasses.replace(best, evaluation=evaluation, training=training).save(out / "best.json")
    dist.barrier(ctx)  # nobody returns a spec rank 0 has not finished writing
    return out / "best.json"
