"""Full update batches from per-batch selection: the kept samples of several pools gather in a
queue, and each optimiser step trains on ``batch_size`` of them.

Selective-Backprop's official trainer back-propagates once ``batch_size`` selected samples have
gathered, and what is left at the epoch's end (unless its last pool completed a batch: then it
carries the rest into the next epoch; erts steps on it); RHO-LOSS trains each step on a batch selected from a
pool ``1 / rho_keep`` times larger. Both are this queue in front of a per-batch rule
(``update_batches=full``). The queue holds the very windows that were scored, so a sample is
updated on the window its rule saw. It is empty at every epoch's end, hence never checkpointed.
"""
from __future__ import annotations

import torch


class UpdateQueue:
    """Kept samples waiting for a step, oldest first: ids, their input windows, optional loss weights."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = device
        self.ids: list[torch.Tensor] = []
        self.x: list[torch.Tensor] = []
        self.weight: list[torch.Tensor] = []
        self.weighted = False  # whether any sample came with a loss weight (else take gives None)

    def __len__(self) -> int:
        return sum(len(i) for i in self.ids)

    def put(self, ids: torch.Tensor, x: torch.Tensor, weight: torch.Tensor | None = None) -> None:
        if len(ids):
            self.weighted |= weight is not None
            self.ids.append(ids)
            self.x.append(x)
            self.weight.append(weight if weight is not None else torch.ones(len(ids), device=ids.device))

    def take(self, n: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The oldest ``n`` samples (all, if fewer wait): ids, windows and loss weights (None when
        no sample was weighted). An empty queue gives no ids and no windows (a rank's empty share)."""
        if not self.ids:
            return torch.zeros(0, dtype=torch.long, device=self.device), None, None
        ids, x, weight = torch.cat(self.ids), torch.cat(self.x), torch.cat(self.weight)
        self.ids, self.x, self.weight = ([ids[n:]], [x[n:]], [weight[n:]]) if len(ids) > n else ([], [], [])
        return ids[:n], x[:n], weight[:n] if self.weighted else None
