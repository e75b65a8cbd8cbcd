"""The schedule around the rules: warm-up, selection, revision, and when ERTS runs.

One Selector serves every method, so the training loop has a single code path:
it asks the selector whether it needs scores and Grad-CAM for an epoch, then
hands it the pool's scores and gets back the two keep-masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from erts.config import METHODS, SelectionConfig
from erts.selection.rules import (class_rescue, dbpd_keep, focus_rank_keep, focus_threshold_keep,
                                  random_keep, srd_count)


@dataclass
class PoolScores:
    """What the scoring pass measured for one pool (batch or epoch)."""

    p: torch.Tensor        # (n,) confidence of the true label(s)
    correct: torch.Tensor  # (n,) bool, prediction right
    member: torch.Tensor   # (n, K) bool class membership (from the labels)
    focus: torch.Tensor | None = None  # (n,) focus scores of the PDD candidates, NaN elsewhere
    focus_all: torch.Tensor | None = None  # (n,) fast-path focus of every scored sample


class Selector:
    def __init__(self, cfg: SelectionConfig, epochs: int):
        if cfg.method not in METHODS:
            raise ValueError(f"unknown method {cfg.method!r}; expected one of {', '.join(METHODS)}")
        self.cfg = cfg
        self.epochs = epochs
        self.rule = cfg.method.removeprefix("erts-")
        self.uses_erts = cfg.method.startswith("erts-")
        self.revision_epoch = cfg.revision_epoch if cfg.revision_epoch is not None else epochs // 2
        self.gradcam_start = cfg.gradcam_start if cfg.gradcam_start is not None else cfg.warmup_epochs + 3

    def phase(self, epoch: int) -> str:
        """warmup and revision epochs train on everything; select epochs apply the rule."""
        if self.rule == "full" or epoch < self.cfg.warmup_epochs:
            return "warmup" if self.rule != "full" else "full"
        if epoch >= self.revision_epoch:
            return "revision"
        return "select"

    def erts_active(self, epoch: int) -> bool:
        return self.uses_erts and self.phase(epoch) == "select" and epoch >= self.gradcam_start

    def needs_scores(self, epoch: int) -> bool:
        """SRD alone needs no scoring pass; every other rule (and ERTS) does."""
        return self.phase(epoch) == "select" and (self.rule != "srd" or self.erts_active(epoch))

    def pdd_candidates(self, epoch: int, member: torch.Tensor, scores: PoolScores | None,
                       generator: torch.Generator) -> torch.Tensor:
        """The PDD rule's keep-mask for a pool (all True outside select epochs).

        ``member`` is the pool's (n, K) class membership; ``scores`` may be None only
        for plain SRD, whose rescue then picks a random sample of the wiped-out class.
        """
        n, device = len(member), member.device
        if self.phase(epoch) != "select":
            return torch.ones(n, dtype=torch.bool, device=device)
        if self.rule == "srd":
            keep = random_keep(n, srd_count(n, self.cfg.gamma, epoch), generator, device)
        else:
            dbpd = dbpd_keep(scores.p, scores.correct, self.cfg.tau)
            keep = dbpd if self.rule == "dbpd" else random_keep(n, int(dbpd.sum()), generator, device)
        if self.cfg.class_rescue:
            usefulness = 1 - scores.p if scores is not None else torch.rand(n, generator=generator).to(device)
            keep = class_rescue(keep, member, usefulness)
        return keep

    def focus_filter(self, candidates: torch.Tensor, scores: PoolScores) -> torch.Tensor:
        """ERTS: keep the focused candidates (rank by (1-p)*focus, or absolute threshold)."""
        if self.cfg.focus_filter == "rank":
            keep = focus_rank_keep(candidates, scores.p, scores.focus, self.cfg.phi)
        else:
            keep = focus_threshold_keep(candidates, scores.focus, self.cfg.focus_threshold)
        if self.cfg.class_rescue:
            keep = class_rescue(keep, scores.member, (1 - scores.p) * scores.focus, eligible=candidates)
        return keep
