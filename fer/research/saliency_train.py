"""Train ML-Net (`fer.mlnet`) on a fixation dataset: ``python -m fer train-saliency`` (its options:
`fer.research.saliency_train_cli`).

Dataset layout (SALICON / MIT1003 style): ``IMAGES/<stem>.jpg|png``, ground-truth density maps
``MAPS/<stem>.png|jpg`` (grey; MIT1003's ``<stem>_fixMap.jpg`` also matches) and, optionally,
binary fixation maps ``FIXATIONS/<stem>.png`` (or ``<stem>_fixPts.jpg``). Files that do not pair up
or cannot be read are skipped and listed, never fatal.

Images are letterboxed into the network input (aspect kept, zero padding, as the authors do);
maps get the same letterbox at the output resolution and are max-normalised. A seeded split holds
out ``val_fraction`` of the pairs; after every epoch CC, KLD, SIM (and NSS, AUC-Judd when fixation
maps exist) are measured on it at the network's output resolution — a quick proxy, use
``evaluate-saliency`` for benchmark numbers. The best epoch by validation CC is saved as
``OUT/mlnet.safetensors`` + ``OUT/mlnet.json`` (`fer.mlnet.SaliencySpec`, with SHA-256 and metrics).

Defaults follow the authors' release: SGD with Nesterov momentum 0.9, learning rate 1e-3 decayed
as ``lr / (1 + 5e-4 · step)``, batch 10, 20 epochs, early stopping after 5 epochs without
improvement. The release starts from ImageNet VGG-16 weights (``--backbone-weights``); from random
weights ML-Net can collapse to an all-zero map (its ReLU output dies) when salient regions are
small, so prefer a backbone when you have one.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from fer.errors import FerError, InputError
from fer.mlnet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MLNet,
    SaliencySpec,
    letterbox,
    mlnet_loss,
    output_region,
    output_size,
    save_mlnet,
    to_tensor,
)
from fer.research.saliency_metrics import binarise_fixations, match_files, read_grey, score_map, summarise


@dataclasses.dataclass(frozen=True)
class SaliencySample:
    """One training pair: image, ground-truth density map, optional fixation map (paths)."""

    stem: str
    image: Path
    density: Path
    fixations: Path | None = None


def find_samples(
    images_dir: str | Path, maps_dir: str | Path, fixations_dir: str | Path | None = None
) -> tuple[list[SaliencySample], list[str]]:
    """Pair files by stem and check each can be opened (header only, so this stays fast).

    Returns:
        ``(samples sorted by stem, skip messages)``.
    """
    from PIL import Image

    pairs, skipped = match_files(images_dir, maps_dir, fixations_dir)
    samples = []
    for stem, image, density, fix in pairs:
        bad = None
        sizes = []
        for path in (image, density, fix):
            if path is None:
                continue
            try:
                with Image.open(path) as im:
                    sizes.append(im.size)
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                bad = f"{path}: unreadable ({type(exc).__name__})"
                break
        if bad is None and len(set(sizes)) > 1:
            bad = f"{image}: image and ground-truth sizes differ ({', '.join(f'{w}×{h}' for w, h in sizes)})"
        if bad:
            skipped.append(bad)
        else:
            samples.append(SaliencySample(stem, image, density, fix))
    return samples, skipped


class SaliencyDataset(Dataset):
    """Letterboxed, normalised images with their ground truth at ML-Net's output resolution.

    Item: dict with ``image`` ``(3, H, W)`` float32 (ImageNet mean/std), ``density`` ``(h, w)``
    float32 max-normalised to [0, 1], ``fixations`` ``(h, w)`` uint8 (all zero when none),
    ``has_fixations`` bool, ``region`` ``(4,)`` int64 ``(y0, y1, x0, x1)`` of the output grid that
    holds the image (the rest is padding). A file that fails to decode gives None (see `collate`)
    and is recorded in ``failures``.
    """

    def __init__(self, samples: Sequence[SaliencySample], input_size: Sequence[int], flip: bool = False) -> None:
        self.samples = list(samples)
        self.input_size = tuple(int(s) for s in input_size)
        self.out_size = output_size(self.input_size)
        self.flip = flip
        self.failures: list[str] = []

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict | None:
        from fer.io import read_image

        sample = self.samples[index]
        try:
            image = read_image(sample.image)
            density = read_grey(sample.density)
            fixations = read_grey(sample.fixations) if sample.fixations else None
        except FerError as exc:
            message = f"{sample.image}: {exc}"
            self.failures.append(message)
            print(f"skipped {message}", file=sys.stderr)
            return None
        boxed, region = letterbox(image, self.input_size)
        density_out, _ = letterbox(density, self.out_size)
        peak = density_out.max()
        density_out = density_out / peak if peak > 0 else density_out
        fix_out = np.zeros(self.out_size, np.uint8)
        if fixations is not None:
            # Fixations move as points so none is lost when the map shrinks by 8× or more.
            ys, xs = np.nonzero(binarise_fixations(fixations))
            scale = min(self.out_size[0] / fixations.shape[0], self.out_size[1] / fixations.shape[1])
            oy = (self.out_size[0] - round(fixations.shape[0] * scale)) // 2
            ox = (self.out_size[1] - round(fixations.shape[1] * scale)) // 2
            py = np.clip(((ys + 0.5) * scale + oy).astype(int), 0, self.out_size[0] - 1)
            px = np.clip(((xs + 0.5) * scale + ox).astype(int), 0, self.out_size[1] - 1)
            fix_out[py, px] = 1
        x = to_tensor(boxed[None], IMAGENET_MEAN, IMAGENET_STD)[0]
        dens = torch.from_numpy(density_out.astype(np.float32))
        fix = torch.from_numpy(fix_out)
        if self.flip and torch.rand(()) < 0.5:
            x, dens, fix = x.flip(-1), dens.flip(-1), fix.flip(-1)
            region = (region[0], region[1], self.input_size[1] - region[3], self.input_size[1] - region[2])
        return {
            "image": x,
            "density": dens,
            "fixations": fix,
            "has_fixations": fixations is not None,
            "region": torch.tensor(output_region(region), dtype=torch.int64),
        }


def collate(items: list[dict | None]) -> dict | None:
    """Stack dataset items, dropping the ones that failed to decode; None if none is left."""
    from torch.utils.data import default_collate

    items = [it for it in items if it is not None]
    return default_collate(items) if items else None


def split_samples(samples: Sequence[SaliencySample], val_fraction: float, seed: int) -> tuple[list, list]:
    """Seeded shuffle, then ``val_fraction`` of the samples (at least 1) for validation."""
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(samples) < 2:
        raise InputError(f"need at least 2 image/map pairs to train and validate, found {len(samples)}")
    order = np.random.default_rng(seed).permutation(len(samples))
    n_val = min(len(samples) - 1, max(1, round(len(samples) * val_fraction)))
    val = [samples[i] for i in sorted(order[:n_val])]
    train = [samples[i] for i in sorted(order[n_val:])]
    return train, val


@torch.no_grad()
def validate(model: MLNet, loader: DataLoader, device: str) -> dict[str, float]:
    """Mean CC/KLD/SIM (and NSS/AUC-Judd where fixations exist) over the loader, computed on the
    unpadded part of each output map."""
    model.eval()
    rows = []
    for batch in loader:
        if batch is None:
            continue
        pred = model(batch["image"].to(device))[:, 0].float().cpu().numpy()
        for i in range(len(pred)):
            y0, y1, x0, x1 = batch["region"][i].tolist()
            density = batch["density"][i].numpy()[y0:y1, x0:x1]
            fixations = batch["fixations"][i].numpy()[y0:y1, x0:x1] if batch["has_fixations"][i] else None
            rows.append(score_map(pred[i, y0:y1, x0:x1], density if density.max() > 0 else None, fixations))
    return summarise([r for r in rows if r]) | {"n": len(rows)}


def _seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def train_mlnet(
    images_dir: str | Path,
    maps_dir: str | Path,
    fixations_dir: str | Path | None = None,
    *,
    out_dir: str | Path = "runs/mlnet",
    epochs: int = 20,
    size: Sequence[int] = (480, 640),
    batch_size: int = 10,
    lr: float = 1e-3,
    optimizer: str = "sgd",
    lr_decay: float = 5e-4,
    val_fraction: float = 0.1,
    patience: int = 5,
    device: str = "cpu",
    seed: int = 0,
    width: float = 1.0,
    conv5_dilation: int = 1,
    backbone_weights: str | Path | None = None,
    flip: bool = True,
    workers: int = 0,
    training_data: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train ML-Net and save the best epoch (by validation CC).

    Args:
        images_dir, maps_dir, fixations_dir: the dataset folders (see module docstring).
        out_dir: where ``mlnet.safetensors`` and ``mlnet.json`` are written.
        size: network input ``(rows, cols)``, multiples of 8 (480×640 in the paper).
        optimizer: ``"sgd"`` (Nesterov, momentum 0.9, the release's) or ``"adam"``.
        lr_decay: SGD learning rate at step t is ``lr / (1 + lr_decay · t)`` (Keras ``decay``).
        width: VGG channel multiplier; 1.0 is the paper's network (smaller only for quick tests).
        backbone_weights: optional torchvision VGG-16 ``.safetensors`` to start from.
        flip: random horizontal flips of training pairs.
        training_data: a short description stored in the spec (default: the images folder name).
    Returns:
        Path of the saved ``mlnet.safetensors`` (its spec JSON lies beside it).
    Raises:
        InputError: bad folders or settings, or fewer than 2 usable pairs.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise InputError(f"epochs and batch size must be >= 1 and lr > 0 (got {epochs}, {batch_size}, {lr})")
    if optimizer not in ("sgd", "adam"):
        raise InputError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise InputError(f"size must be two numbers (rows, cols), got {size}")
    samples, skipped = find_samples(images_dir, maps_dir, fixations_dir)
    for line in skipped:
        log(f"skipped {line}")
    train, val = split_samples(samples, val_fraction, seed)
    generator = _seed_everything(seed)
    model = MLNet(size, width=width, conv5_dilation=conv5_dilation, backbone_weights=backbone_weights).to(device)
    train_set, val_set = SaliencyDataset(train, size, flip=flip), SaliencyDataset(val, size)
    train_loader = DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=generator, collate_fn=collate, num_workers=workers
    )
    val_loader = DataLoader(val_set, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=workers)
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1.0 + lr_decay * step))
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = None
    log(f"ML-Net {size[0]}×{size[1]} (width {width}): {len(train)} training, {len(val)} validation pairs, "
        f"{len(skipped)} skipped; device {device}")
    from tqdm.auto import tqdm

    spec = SaliencySpec(
        weights="mlnet.safetensors", sha256="", input_size=size, width=width, conv5_dilation=conv5_dilation,
        training_data=training_data or Path(images_dir).name, source="trained with fer.research.saliency_train",
    )
    history: list[dict] = []
    best_cc, best_epoch, stale = -math.inf, 0, 0
    out_path = Path(out_dir) / "mlnet.safetensors"
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{epochs}", disable=not progress, leave=False)
        for batch in bar:
            if batch is None:
                continue
            pred = model(batch["image"].to(device))
            loss = mlnet_loss(pred, batch["density"].to(device)[:, None], model.prior)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if schedule is not None:
                schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.4f}")
        metrics = validate(model, val_loader, device)
        train_loss = float(np.mean(losses)) if losses else float("nan")
        history.append({"epoch": epoch, "train_loss": train_loss, **metrics})
        shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n")
        log(f"epoch {epoch}: train loss {train_loss:.4f}  validation {shown}")
        cc_now = metrics.get("cc", -math.inf)
        if math.isnan(cc_now):  # every validation map constant (a collapsed ReLU output): no CC to rank by
            cc_now = -math.inf
        if cc_now > best_cc:
            best_cc, best_epoch, stale = cc_now, epoch, 0
            evaluation = {"split": "validation", "resolution": "network output", "epoch": epoch, **metrics}
            training = {
                "epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer, "lr_decay": lr_decay,
                "seed": seed, "n_train": len(train), "n_val": len(val), "n_skipped": len(skipped) + len(train_set.failures),
                "flip": flip, "backbone_weights": str(backbone_weights) if backbone_weights else None,
                "history": history,
            }
            save_mlnet(model, dataclasses.replace(spec, evaluation=evaluation, training=training), out_dir)
        else:
            stale += 1
            if stale >= patience:
                log(f"no validation CC gain for {patience} epochs: stopping")
                break
    if best_epoch == 0:  # validation never produced a CC (e.g. every map unreadable): keep the last weights
        save_mlnet(model, dataclasses.replace(spec, training={"history": history}), out_dir)
    for line in train_set.failures + val_set.failures:
        log(f"skipped {line}")
    log(f"best epoch {best_epoch} (validation CC {best_cc:.4f}): {out_path}")
    return out_path
