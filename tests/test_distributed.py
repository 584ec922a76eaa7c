"""Training and evaluation as one job over 2 CPU processes (gloo), as torchrun starts them: the same
seed and global batch give the single process's weights and scores, and only rank 0 writes files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fer.models import ModelSpec, load_network
from fer.research import distributed as dist
from fer.research.datasets import load_dataset
from fer.research.evaluate import evaluate
from fer.research.recipes import TrainConfig
from fer.research.train import train
from tests import distributed_worker as W
from tests import synthetic as S
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent

#: Weights after training may differ by float summation order only (gradients are summed over
#: ranks by all-reduce instead of within one batch); docs/TRAINING.md gives the measured gap.
WEIGHT_ATOL = 1e-5


def test_shards_cover_every_item_once() -> None:
    for n in (0, 1, 5, 8):
        parts = [dist.shard(n, dist.Context(rank, 3)) for rank in range(3)]
        assert sum((list(range(n))[p] for p in parts), []) == list(range(n))
        assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_gpu_only_settings_are_off_or_refused_on_the_cpu() -> None:
    from fer.errors import InputError

    cpu = torch.device("cpu")
    assert dist.resolve_amp("auto", cpu) == "off" and dist.resolve_amp("off", cpu) == "off"
    with pytest.raises(InputError, match="needs a CUDA device"):
        dist.resolve_amp("bf16", cpu)
    with pytest.raises(InputError, match="amp must be one of"):
        dist.resolve_amp("fp8", cpu)
    assert dist.loader_settings(cpu, None) == {"num_workers": 0, "pin_memory": False}
    assert dist.loader_settings(torch.device("cuda"), None)["pin_memory"] is True
    assert not dist.grad_scaler(cpu, "off").is_enabled()
    x = torch.ones(2)
    with dist.autocast(cpu, "off"):
        assert (x * 2).dtype == torch.float32
    assert dist.context() == dist.Context() and dist.context().main  # no job: one process
    module = torch.nn.Linear(2, 2)
    assert dist.wrap(module, cpu, dist.Context()) is module


def test_short_batches_go_to_ranks_that_can_train_them() -> None:
    """Every global batch of 2 or more rows is trained, whatever the process count: ranks take at
    least 2 rows each or none (BatchNorm cannot train on one)."""
    for n in range(2, 12):
        for world in (1, 2, 3, 4):
            parts = [dist.batch_share(n, dist.Context(rank, world)) for rank in range(world)]
            sizes = [p.stop - p.start for p in parts]
            assert sum((list(range(n))[p] for p in parts), []) == list(range(n))
            assert all(size == 0 or size >= 2 for size in sizes) and sizes[0] >= 2


def _assert_same_run(single: Path, two: Path) -> None:
    from safetensors.torch import load_file

    a, b = ModelSpec.load(single), ModelSpec.load(two / "best.json")
    assert b.training["world_size"] == 2 and a.training["world_size"] == 1
    assert b.training["run_id"] == a.training["run_id"]  # the process count is not part of the run
    one, other = load_file(str(single.with_suffix(".safetensors"))), load_file(str(two / "best.safetensors"))
    assert one.keys() == other.keys()
    for key in one:
        torch.testing.assert_close(other[key], one[key], atol=WEIGHT_ATOL, rtol=1e-4)
    for ha, hb in zip(a.training["history"], b.training["history"], strict=True):
        assert (hb["train_samples"], hb["steps"]) == (ha["train_samples"], ha["steps"])
        assert hb == pytest.approx(ha, abs=1e-5)
    assert b.evaluation["confusion"] == a.evaluation["confusion"]


def test_two_processes_match_one(tmp_path: Path) -> None:
    """Same seed and global batch: 2 processes train what 1 trains. 12 training images: batch 8
    (a last batch of 4), 5 and 9 (last batches of 2 and 3, which 2 processes used to drop) and 3
    (every batch too small to share: the second process idles with zero gradients)."""
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=8, size=32, gazes=("frontal",))
    W.register_tiny()
    config = dict(dataset="rafd", root=str(tmp_path / "rafd"), backbone=W.TINY, pretrained=False, input_size=32,
                  batch_size=8, lr=3e-3, epochs=3, folds=5, assume_cropped=True, device="cpu", progress=False)
    batches = (5, 9, 3)
    more = tuple({**config, "batch_size": b, "epochs": 2, "out": str(tmp_path / f"two-{b}")} for b in batches)
    single = train(TrainConfig(out=str(tmp_path / "one"), **config))
    logs = tmp_path / "logs"
    logs.mkdir()
    torch.multiprocessing.start_processes(W.run_rank, args=({**config, "out": str(tmp_path / "two")}, str(logs),
                                                            free_port(), more), nprocs=2, start_method="spawn")
    ranks = [json.loads((logs / f"rank-{r}.json").read_text()) for r in range(2)]
    _assert_same_run(single, tmp_path / "two")
    # One copy of the inputs for both processes (a memory map rank 0 wrote), removed at the end.
    assert ModelSpec.load(tmp_path / "two" / "best.json").training["inputs"] == "memory-mapped, shared by 2 processes"
    assert ModelSpec.load(single).training["inputs"] == "in memory"
    assert not list((tmp_path / "two").glob("inputs*"))
    for b, extra in zip(batches, more, strict=True):
        one = train(TrainConfig(**{**extra, "out": str(tmp_path / f"one-{b}")}))
        _assert_same_run(one, tmp_path / f"two-{b}")
        history = ModelSpec.load(one).training["history"]
        assert [(h["train_samples"], h["steps"]) for h in history] == [(12, -(-12 // b))] * 2  # nothing dropped
    # Sharded evaluation sums the ranks' confusion: every rank holds the whole result.
    reference = evaluate(load_network(single, engine="torch"), load_dataset("rafd", config["root"], assume_cropped=True))
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["n"] == reference.n == 20
        assert np.array_equal(rank["confusion"], reference.confusion)
    # Rank 0 alone writes: checkpoints, state, spec, confusion plot (of every run).
    assert ranks[1]["written"] == []
    assert set(ranks[0]["written"]) == {"best.safetensors", "last.safetensors", "best.json", "last.json", "last_state.pt",
                                        "confusion.png"}


@pytest.mark.slow
def test_torchrun_runs_the_cli_as_one_job(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 -m fer train``: a BatchNorm network (per-rank statistics on gloo)
    trains to a checkpoint whose spec records 2 processes; rank 0 alone prints the summary."""
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=9, size=32, gazes=("frontal",))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "fer", "train", "--dataset", "rafd", "--root", str(tmp_path / "rafd"),
               "--crops", "--backbone", "mini_xception", "--no-pretrained", "--input-size", "32", "--epochs", "1",
               "--batch-size", "8", "--folds", "5", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("saved ") == 1 and "test accuracy" in done.stdout
    spec = ModelSpec.load(tmp_path / "run" / "best.json")
    assert spec.training["world_size"] == 2 and spec.evaluation["n"] == 4


@pytest.mark.slow
def test_two_nodes_with_c10d_rendezvous_are_one_job(tmp_path: Path) -> None:
    """Multi-node as a cluster runs it, on one host: two torchrun launches (``--nnodes 2
    --nproc_per_node 1``) meet through c10d rendezvous; one run is written, its spec says 2 processes."""
    S.write_rafd(tmp_path / "rafd", n_subjects=5, seed=9, size=32, gazes=("frontal",))
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-id", "fer-test",
               "-m", "fer", "train", "--dataset", "rafd", "--root", str(tmp_path / "rafd"), "--crops", "--backbone",
               "mini_xception", "--no-pretrained", "--input-size", "32", "--epochs", "1", "--batch-size", "8",
               "--folds", "5", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    outputs = [node.communicate(timeout=240) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sum(out.count("saved ") for out, _ in outputs) == 1  # rank 0 alone reports
    spec = ModelSpec.load(tmp_path / "run" / "best.json")
    assert spec.training["world_size"] == 2 and spec.evaluation["n"] == 4
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.json", "best.safetensors", "confusion.png", "last.json", "last.safetensors", "last_state.pt", "steps.csv"]
