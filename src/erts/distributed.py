"""Distributed data parallel under torchrun: the process group, each rank's share of a pool,
and the few collectives selection needs.

torchrun starts one process per GPU (or per CPU worker) and sets WORLD_SIZE, RANK and
LOCAL_RANK; ``setup`` turns that into a process group (NCCL on CUDA, gloo on CPU). Gradients
are averaged by PyTorch's DistributedDataParallel; what is erts' own is the selection:

- a *shared* pool (per-epoch selection, evaluation) is the same on every rank: each rank
  scores the positions ``rank, rank + W, ...`` of it and ``gather_pool`` reassembles the
  whole, so the rule runs once on the global pool, identically on every rank;
- a *local* pool (per-batch selection) is a rank's own share of a global batch
  (``rank_slice``); ranks agree on the number of steps, never on the pool.

A single process (no torchrun) is ``Dist()``: world 1, and every helper is the identity.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

# a rank waits at most this long for the others (rank 0 may be preparing a dataset cache)
TIMEOUT_MIN = float(os.environ.get("ERTS_DIST_TIMEOUT_MIN", "60"))


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``world`` processes, this one is ``rank``."""

    world: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes run files and prints."""
        return self.rank == 0


def from_env() -> Dist:
    """The job torchrun describes in the environment (a plain process: world 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Dist(world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")))


def local_device(device: torch.device, d: Dist) -> torch.device:
    """Under torchrun, a plain ``cuda`` means the GPU of this local rank."""
    if d.enabled and device.type == "cuda" and device.index is None:
        return torch.device("cuda", d.local_rank)
    return device


def setup(device: torch.device) -> Dist:
    """Joins the torchrun job (once per process), on the backend ``device`` calls for; returns its place."""
    d = from_env()
    device = local_device(device, d)
    if d.enabled and not tdist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                 timeout=datetime.timedelta(minutes=TIMEOUT_MIN))
    return d


def shutdown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        tdist.barrier()


def shard(n: int, d: Dist, device: torch.device | str = "cpu") -> torch.Tensor:
    """This rank's positions of a shared pool of ``n``: rank, rank + W, ... (sizes differ by at most one)."""
    return torch.arange(d.rank, n, d.world, device=device)


def rank_slice(batch: torch.Tensor, d: Dist) -> torch.Tensor:
    """This rank's contiguous share of a global batch: concatenated in rank order, the shares are
    the batch itself (a share is empty when the batch has fewer samples than ranks)."""
    return batch.tensor_split(d.world)[d.rank] if d.enabled else batch


def global_batches(ids: torch.Tensor, batch_size: int, d: Dist) -> list[torch.Tensor]:
    """The order cut into global batches of ``batch_size`` per rank (every rank gets the same list)."""
    return list(ids.split(batch_size * d.world))


def _gather_padded(local: torch.Tensor, d: Dist, counts: list[int]) -> list[torch.Tensor]:
    """all_gather of tensors whose first dimension differs by rank (padded to the longest)."""
    longest = max(counts)
    pad = local.new_zeros((longest - local.shape[0], *local.shape[1:]))
    send = torch.cat([local, pad]) if len(pad) else local
    dtype = send.dtype
    if dtype == torch.bool:  # NCCL and gloo disagree on bool: move it as uint8
        send = send.to(torch.uint8)
    out = [torch.empty_like(send) for _ in range(d.world)]
    tdist.all_gather(out, send.contiguous())
    return [o[:c].to(dtype) for o, c in zip(out, counts)]


def gather_pool(local: torch.Tensor, n: int, d: Dist) -> torch.Tensor:
    """The whole shared pool from each rank's ``shard``: ``out[shard(n, r)] = local of rank r``."""
    if not d.enabled:
        return local
    counts = [len(range(r, n, d.world)) for r in range(d.world)]
    parts = _gather_padded(local, d, counts)
    out = local.new_empty((n, *local.shape[1:]))
    for r, part in enumerate(parts):
        out[r::d.world] = part
    return out


def gather_cat(local: torch.Tensor, d: Dist) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order (the number of rows may differ by rank)."""
    if not d.enabled:
        return local
    n = torch.tensor([len(local)], device=local.device)
    sizes = [torch.empty_like(n) for _ in range(d.world)]
    tdist.all_gather(sizes, n)
    return torch.cat(_gather_padded(local, d, [int(s) for s in sizes]))


def all_sum(values: torch.Tensor, d: Dist) -> torch.Tensor:
    """The sum over ranks (a copy; ``values`` is left as it is)."""
    if not d.enabled:
        return values
    out = values.clone()
    tdist.all_reduce(out)
    return out


def rank_seed(seed: int, d: Dist) -> int:
    """A seed of this rank's own (crops, dropout, per-batch rule draws): unchanged in one process."""
    return seed if not d.enabled else (seed + 7919 * (d.rank + 1)) % (2**63)
