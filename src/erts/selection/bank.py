"""The per-sample score bank: the last known p, loss, EL2N and focus of every sample.

Why: rules like InfoBatch rank samples by a score taken from their own training
forward, so a sample the rule skips keeps the value it had when it was last seen.
The bank is N floats per field on the training device; a scoring pass or an
update writes the rows it saw, and the rules read a pool's rows. It is part of
the run's checkpoint, so a resumed run continues with the same scores.
"""
from __future__ import annotations

import torch

from erts.selection.selector import PoolScores

FIELDS = ("p", "loss", "el2n", "focus")


class ScoreBank:
    def __init__(self, n: int, device: torch.device | str = "cpu"):
        # InfoBatch initialises every score alike (1.0), so nothing is below the mean before a sample is seen
        self.p = torch.zeros(n, device=device)
        self.loss = torch.ones(n, device=device)
        self.el2n = torch.ones(n, device=device)
        self.focus = torch.full((n,), float("nan"), device=device)
        self.correct = torch.zeros(n, dtype=torch.bool, device=device)
        self.seen_epoch = torch.full((n,), -1, dtype=torch.long, device=device)

    def write(self, ids: torch.Tensor, epoch: int, *, p: torch.Tensor, correct: torch.Tensor, loss: torch.Tensor,
              el2n: torch.Tensor, focus: torch.Tensor | None = None) -> None:
        """Stores what a forward measured for ``ids`` (focus only when it was computed)."""
        self.p[ids], self.correct[ids] = p.float(), correct
        self.loss[ids], self.el2n[ids] = loss.float(), el2n.float()
        if focus is not None:
            self.focus[ids] = focus.float()
        self.seen_epoch[ids] = epoch

    def scores(self, ids: torch.Tensor, member: torch.Tensor) -> PoolScores:
        """A pool's last known scores (the caller adds InfoBatch's threshold, the training set's mean loss)."""
        return PoolScores(self.p[ids], self.correct[ids], member, loss=self.loss[ids], el2n=self.el2n[ids],
                          focus_all=self.focus[ids])

    def state_dict(self) -> dict:
        return {k: getattr(self, k).cpu() for k in (*FIELDS, "correct", "seen_epoch")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k).copy_(v)
