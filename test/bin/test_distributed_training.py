"""DDP through ESPnet's own trainer on the CPU: 2 ranks (one process each,
gloo), a tiny DLD student with the online teacher and ``accum_grad 2``.

Every rank must run the same blocks in every micro-batch of an update (else
one step mixes sub-networks and averages a block's gradient with zeros), the
parameters must stay identical across ranks, and a dynamic encoder without
``unused_parameters`` must stop before the first step with an error naming it.
"""
from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import torch

from espnet_dld.tasks.asr import GATE_TRACE_ENV

ROOT = Path(__file__).resolve().parents[2]
WORLD_SIZE = 2
ACCUM_GRAD = 2
ITERS_PER_EPOCH = 4  # micro-batches: 2 updates per epoch
EPOCHS = 2

# Runs asr_train as one rank and, once ESPnet's trainer returns, saves that
# rank's parameters (only rank 0 writes checkpoints).
RANK_RUNNER = """
import sys, torch
from espnet_dld.tasks.asr import DLDTrainer
from espnet_dld.bin.asr_train import main

original = DLDTrainer.run.__func__

def run(cls, model, *args, **kwargs):
    original(cls, model, *args, **kwargs)
    torch.save(model.state_dict(), sys.argv[1])

DLDTrainer.run = classmethod(run)
main(sys.argv[2:])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tiny_exp, out: Path, extra: List[str], timeout: int = 600) -> List[subprocess.CompletedProcess]:
    """Train the DLD student on 2 CPU ranks at once; returns both processes."""
    port = _free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), **{GATE_TRACE_ENV: str(out / "gates")})
    procs = []
    for rank in range(WORLD_SIZE):
        args = tiny_exp.train_args("dld", out) + [
            "--ngpu", "0", "--multiprocessing_distributed", "false", "--dist_backend", "gloo",
            "--dist_init_method", "env://", "--dist_world_size", str(WORLD_SIZE), "--dist_rank", str(rank),
            "--dist_master_addr", "127.0.0.1", "--dist_master_port", str(port),
            "--accum_grad", str(ACCUM_GRAD), "--num_iters_per_epoch", str(ITERS_PER_EPOCH),
            "--max_epoch", str(EPOCHS), "--use_tensorboard", "false", "--use_matplotlib", "false",
        ] + extra
        cmd = [sys.executable, "-c", RANK_RUNNER, str(out / f"params.rank{rank}.pth")] + args
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    done = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        done.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return done


def _trace(out: Path, rank: int) -> List[dict]:
    return [json.loads(line) for line in (out / "gates" / f"gates.rank{rank}.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def ddp_run(tiny_exp, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "dld"
    procs = _launch(tiny_exp, out, ["--unused_parameters", "true"])
    for rank, p in enumerate(procs):
        assert p.returncode == 0, f"rank {rank} failed:\n{p.stderr[-4000:]}"
    return out, procs


def test_all_ranks_run_the_same_blocks_once_per_update(ddp_run):
    out, _ = ddp_run
    traces = [_trace(out, rank) for rank in range(WORLD_SIZE)]
    assert len(traces[0]) == ITERS_PER_EPOCH * EPOCHS
    assert traces[0] == traces[1]  # same epoch, iteration, update and blocks on both ranks
    updates = {}
    for record in traces[0]:
        assert record["update"] == (record["iteration"] - 1) // ACCUM_GRAD
        updates.setdefault((record["epoch"], record["update"]), []).append(tuple(record["layers"][0]))
    assert len(updates) == EPOCHS * ITERS_PER_EPOCH // ACCUM_GRAD
    for key, micro_batches in updates.items():
        assert len(micro_batches) == ACCUM_GRAD and len(set(micro_batches)) == 1, (key, micro_batches)
        assert len(micro_batches[0]) >= 1


def test_ranks_end_with_equal_parameters_and_a_finite_loss(ddp_run):
    out, procs = ddp_run
    states = [torch.load(out / f"params.rank{rank}.pth", map_location="cpu") for rank in range(WORLD_SIZE)]
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        assert torch.equal(states[0][name], states[1][name]), name
    losses = [float(x) for x in re.findall(r"\[train\] [^\n]*?\bloss=([^,\s]+)", procs[0].stderr)]
    assert len(losses) == EPOCHS, procs[0].stderr[-3000:]
    assert all(math.isfinite(x) for x in losses)
    assert re.search(r"\[train\] [^\n]*\bgrad_norm=", procs[0].stderr)  # optimizer steps were taken


def test_ddp_without_unused_parameters_stops_before_the_first_step(tiny_exp, tmp_path):
    out = tmp_path / "dld"
    procs = _launch(tiny_exp, out, [], timeout=300)
    for rank, p in enumerate(procs):
        assert p.returncode != 0
        assert "ERROR: asr_train: distributed training of a dynamic-depth encoder" in p.stderr, p.stderr[-3000:]
        assert "unused_parameters: true" in p.stderr and str(out / "config.yaml") in p.stderr
    assert not (out / "gates").exists()  # no training step was taken
    assert not (out / "checkpoint.pth").exists()


def test_a_resumed_run_draws_the_gates_of_an_uninterrupted_one(tiny_exp, tmp_path, monkeypatch):
    from espnet_dld.bin.asr_train import main

    def train(out: Path, epochs: int) -> None:
        monkeypatch.setenv(GATE_TRACE_ENV, str(out / "gates"))
        main(tiny_exp.train_args("ld", out) + [
            "--accum_grad", str(ACCUM_GRAD), "--num_iters_per_epoch", str(ITERS_PER_EPOCH), "--max_epoch", str(epochs),
            "--resume", "true", "--use_tensorboard", "false", "--use_matplotlib", "false"])

    train(tmp_path / "straight", 2)
    train(tmp_path / "resumed", 1)
    torch.manual_seed(1234)  # the resumed process's global RNG state is not the first one's
    torch.rand(77)
    train(tmp_path / "resumed", 2)
    straight, resumed = _trace(tmp_path / "straight", 0), _trace(tmp_path / "resumed", 0)
    assert [r["epoch"] for r in resumed] == [1] * ITERS_PER_EPOCH + [2] * ITERS_PER_EPOCH
    assert straight == resumed
    assert len({tuple(r["layers"][0]) for r in straight}) > 1  # the gates do change between updates
