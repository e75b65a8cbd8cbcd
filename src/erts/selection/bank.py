"""The per-sample score bank: the last known p, loss, EL2N and focus of every sample (and, for
rho-loss, its irreducible loss, computed once before training).

Why: rules like InfoBatch rank samples by a score taken from their own training
forward, so a sample the rule skips keeps the value it had when it was last seen.
The bank is N floats per field on the training device; a scoring pass or an
update writes the rows it saw, and the rules read a pool's rows. It is part of
the run's checkpoint, so a resumed run continues with the same scores.
"""
from __future__ import annotations

import torch

from erts.distributed import Dist, gather_cat
from erts.selection.selector import PoolScores

FIELDS = ("p", "loss", "el2n", "focus")


class ScoreBank:
    def __init__(self, n: int, device: torch.device | str = "cpu"):
        # InfoBatch initialises every score alike (1.0), so nothing is below the mean before a sample is seen
        self.p = torch.zeros(n, device=device)
        self.loss = torch.ones(n, device=device)
        self.el2n = torch.ones(n, device=device)
        self.focus = torch.full((n,), float("nan"), device=device)
        self.irreducible = torch.full((n,), float("nan"), device=device)  # rho-loss; NaN until computed
        self.correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.seen_epoch = torch.full((n,), -1, dtype=torch.long, device=device)
        self.local = torch.zeros(n, dtype=torch.bool, device=device)  # written by this rank alone since the last sync

    def write(self, ids: torch.Tensor, epoch: int, *, p: torch.Tensor, correct: torch.Tensor, loss: torch.Tensor,
              el2n: torch.Tensor, focus: torch.Tensor | None = None, local: bool = True) -> None:
        """Stores what a forward measured for ``ids`` (focus only when it was computed). ``local``:
        only this rank saw these rows (its updates, its per-batch pools), so ``sync`` shares them;
        a shared pool's scores are written alike on every rank."""
        self.p[ids], self.correct[ids] = p.float(), correct
        self.loss[ids], self.el2n[ids] = loss.float(), el2n.float()
        if focus is not None:
            self.focus[ids] = focus.float()
        self.seen_epoch[ids] = epoch
        if local:
            self.local[ids] = True

    def sync(self, d: Dist) -> None:
        """Distributed training: every rank's locally written rows into every rank's bank, so the
        banks are equal again (each sample is in one rank's share of an epoch, so rows never clash).
        One all-gather of 6 floats per written row; nothing in one process."""
        if d.enabled:
            ids = torch.nonzero(self.local).squeeze(1)
            rows = torch.stack([self.p[ids], self.loss[ids], self.el2n[ids], self.focus[ids],
                                self.correct[ids].float(), self.seen_epoch[ids].float()], 1)
            ids, rows = gather_cat(ids, d), gather_cat(rows, d)
            self.p[ids], self.loss[ids], self.el2n[ids], self.focus[ids] = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
            self.correct[ids], self.seen_epoch[ids] = rows[:, 4] > 0.5, rows[:, 5].long()
        self.local.zero_()

    def scores(self, ids: torch.Tensor, member: torch.Tensor) -> PoolScores:
        """A pool's last known scores (the caller adds InfoBatch's threshold, the training set's mean loss)."""
        return PoolScores(self.p[ids], self.correct[ids], member, loss=self.loss[ids], el2n=self.el2n[ids],
                          focus_all=self.focus[ids])

    def state_dict(self) -> dict:
        return {k: getattr(self, k).cpu() for k in (*FIELDS, "correct", "seen_epoch", "irreducible")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k).copy_(v)
        self.local.zero_()
