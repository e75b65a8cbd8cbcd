"""Honest cost accounting: every forward, backward, FLOP and second, per phase.

Effective epochs alone hide the scoring passes and Grad-CAM (METHOD.md sec. 4),
so the meter counts sample-forwards and sample-backwards for each phase
(scoring, gradcam, update, and rho-loss's irreducible-loss models; eval is timed too), FLOPs from PyTorch's own counter
measured on the first batch of each phase and scaled by the sample counts, and
wall-clock seconds (synchronising CUDA so asynchronous kernels are not missed).
Whatever no phase timed (the rules, log and checkpoint writes) is ``other``, so
the phases add up to the wall clock of the epochs.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from erts.train.costnames import (BACKWARD_PHASES, COST_GROUPS, FLOP_PHASES, FORWARD_PHASES, PHASES,  # noqa: F401
                                  TRAINING_PHASES)


def _zeros() -> dict[str, float]:
    return {p: 0.0 for p in PHASES}


@dataclass
class CostMeter:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seconds: dict[str, float] = field(default_factory=_zeros)
    cpu_seconds: dict[str, float] = field(default_factory=_zeros)  # process CPU time, all threads (machine noise-proof)
    forwards: dict[str, float] = field(default_factory=_zeros)   # sample-forwards
    backwards: dict[str, float] = field(default_factory=_zeros)  # sample-backwards
    flops: dict[str, float] = field(default_factory=_zeros)
    flops_per_sample: dict[str, float] = field(default_factory=dict)  # measured once per phase
    updated: float = 0.0  # samples back-propagated (numerator of effective epochs)
    _nested: list = field(default_factory=list)  # (wall, cpu) seconds spent in phases opened inside the open ones

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def phase(self, name: str, n_samples: int, *, forward: bool = True, backward: bool = False,
              work: str | None = None) -> Iterator[None]:
        """Times a block of work on ``n_samples`` samples and counts it.

        The first time a phase runs, the block runs under FlopCounterMode and the
        FLOPs per sample are recorded; later blocks are scaled from that. ``work`` names
        the kind of work when one phase holds several (irreducible: training steps and
        scoring forwards), each measured once. A phase opened inside another (the update's
        own Grad-CAM) is booked to itself only: its seconds are taken out of the enclosing phase.
        """
        key = f"{name}:{work}" if work else name
        measure = key not in self.flops_per_sample and n_samples > 0
        counter = FlopCounterMode(display=False) if measure else None
        self._sync()
        start, cpu_start = time.perf_counter(), time.process_time()
        self._nested.append([0.0, 0.0])
        try:
            if counter is not None:
                with counter:
                    yield
            else:
                yield
        finally:
            self._sync()
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
            inner, inner_cpu = self._nested.pop()
            if self._nested:
                self._nested[-1][0] += elapsed
                self._nested[-1][1] += cpu
        self.seconds[name] += elapsed - inner
        self.cpu_seconds[name] += cpu - inner_cpu
        if counter is not None:
            self.flops_per_sample[key] = counter.get_total_flops() / n_samples
        self.forwards[name] += n_samples if forward else 0
        self.backwards[name] += n_samples if backward else 0
        self.flops[name] += self.flops_per_sample.get(key, 0.0) * n_samples

    def add_seconds(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def add_other(self, elapsed: float, before: dict, cpu_elapsed: float = 0.0) -> None:
        """Books as ``other`` the part of ``elapsed`` wall (and ``cpu_elapsed`` CPU) seconds since
        snapshot ``before`` that no phase timed."""
        timed = sum(self.seconds.values()) - sum(before["seconds"].values())
        self.seconds["other"] += max(elapsed - timed, 0.0)
        timed_cpu = sum(self.cpu_seconds.values()) - sum(before["cpu_seconds"].values())
        self.cpu_seconds["other"] += max(cpu_elapsed - timed_cpu, 0.0)

    def snapshot(self) -> dict:
        """Plain numbers (for checkpoints and per-epoch differences)."""
        return {"seconds": dict(self.seconds), "cpu_seconds": dict(self.cpu_seconds),
                "forwards": dict(self.forwards), "backwards": dict(self.backwards),
                "flops": dict(self.flops), "flops_per_sample": dict(self.flops_per_sample), "updated": self.updated}

    def restore(self, snap: dict) -> None:
        for key in ("seconds", "cpu_seconds", "forwards", "backwards", "flops", "flops_per_sample"):
            getattr(self, key).update({k: float(v) for k, v in snap.get(key, {}).items()})  # older runs: no "other", no CPU
        self.updated = float(snap["updated"])

    def summary(self, n_train: int) -> dict:
        """The cost block of metrics.json. Its groups are the column scheme (COST_GROUPS): flattened
        with "_" they are the names log.csv (per epoch) and results.csv (per run) use."""
        training = TRAINING_PHASES
        return {
            "effective_epochs": self.updated / max(n_train, 1),
            "seconds": {**{p: self.seconds[p] for p in PHASES},
                        "train": sum(self.seconds[p] for p in training),
                        "total": sum(self.seconds.values())},
            "cpu_seconds": {**{p: self.cpu_seconds[p] for p in PHASES},
                            "train": sum(self.cpu_seconds[p] for p in training),
                            "total": sum(self.cpu_seconds.values())},
            "forwards": {p: self.forwards[p] for p in FORWARD_PHASES},
            "backwards": {p: self.backwards[p] for p in BACKWARD_PHASES},
            "flops": {**{p: self.flops[p] for p in training}, "total": sum(self.flops[p] for p in training)},
        }


def epoch_row(before: dict, after: dict) -> dict[str, float]:
    """Per-epoch differences of two snapshots, as log.csv columns (``<group>_<phase>``, COST_GROUPS),
    with ``seconds_epoch`` and ``cpu_seconds_epoch``: the sums over the phases."""
    row: dict[str, float] = {}
    for p in FORWARD_PHASES:
        row[f"forwards_{p}"] = after["forwards"][p] - before["forwards"][p]
    for p in BACKWARD_PHASES:
        row[f"backwards_{p}"] = after["backwards"][p] - before["backwards"][p]
    for p in FLOP_PHASES:
        row[f"flops_{p}"] = after["flops"][p] - before["flops"][p]
    for p in PHASES:
        row[f"seconds_{p}"] = after["seconds"][p] - before["seconds"][p]
    before_cpu, after_cpu = before.get("cpu_seconds", {}), after["cpu_seconds"]
    for p in PHASES:
        row[f"cpu_seconds_{p}"] = after_cpu[p] - before_cpu.get(p, 0.0)
    row["seconds_epoch"] = sum(row[f"seconds_{p}"] for p in PHASES)
    row["cpu_seconds_epoch"] = sum(row[f"cpu_seconds_{p}"] for p in PHASES)
    return row
