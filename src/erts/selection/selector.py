"""The schedule around the rules: warm-up, selection, revision, and when ERTS runs.

One Selector serves every method, so the training loop has a single code path:
it asks the selector whether it needs scores and Grad-CAM for an epoch, then
hands it the pool's scores and gets back the keep-masks.

Class rescue follows the published code by default (``class_rescue=published``,
xai-ecg-dropout @133e7b9): a pool in which the rule keeps nobody gets no update;
plain DBPD then rescues a class its rule wiped out of the pool; SMRD and SRD
never rescue; with ERTS the rule's candidates are not rescued, and the focus
filter rescues a class among the hard candidates only. ``always`` is erts 0.1's
behaviour (every rule rescues, even in a pool it kept nobody of); ``off`` never.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from erts.config import METHODS, PDD_RULES, SelectionConfig, fraction_for_budget
from erts.selection.rules import (class_rescue, dbpd_keep, diffuse_rank_keep, diffuse_threshold_keep, focus_rank_keep,
                                  focus_threshold_keep, class_prior_weights, infobatch_keep, loss_percentile_keep,
                                  loss_quantile_keep, low_loss_keep, random_keep, reducible_loss_keep, rs2_subset,
                                  srd_count, top_fraction_keep)
from erts.selection.schedule import budget_epochs, resolve_schedule


# the literature's rules: Selector.loss_rule runs them (their weights and hard set matter)
LOSS_RULES = ("infobatch", "loss-topk", "el2n", "rho-loss")


@dataclass
class PoolScores:
    """What the scoring pass measured for one pool (batch or epoch)."""

    p: torch.Tensor        # (n,) confidence of the true label(s)
    correct: torch.Tensor  # (n,) bool, prediction right
    member: torch.Tensor   # (n, K) bool class membership (from the labels)
    p_label: torch.Tensor | None = None  # (n, K) multi-label: probability of each class's correct label
    focus: torch.Tensor | None = None  # (n,) focus scores of the PDD candidates, NaN elsewhere
    focus_all: torch.Tensor | None = None  # (n,) fast-path focus of every scored sample
    loss: torch.Tensor | None = None   # (n,) per-sample training loss (infobatch, loss-topk)
    el2n: torch.Tensor | None = None   # (n,) ||probabilities - labels||_2 (el2n)
    loss_mean: float | None = None     # infobatch: mean last-known loss over the whole training set
    irreducible: torch.Tensor | None = None  # (n,) rho-loss: loss of the model that did not train on the sample

    def usefulness(self, focus: torch.Tensor | None = None) -> torch.Tensor:
        """How much a sample is worth rescuing: 1 - p (times focus for the filter); per class
        (n, K) for multi-label, where each class ranks by its own probability."""
        u = 1 - self.p_label if self.p_label is not None else 1 - self.p
        if focus is not None:
            u = u * (focus[:, None] if u.ndim == 2 else focus)
        return u


@dataclass
class Selection:
    """The masks one pool ends with."""

    candidates: torch.Tensor  # the rule's keep-mask with its rescues (pdd_keep in the log)
    keep: torch.Tensor        # after the focus filter (erts_keep): what gets the update
    rescued: torch.Tensor     # kept only because class rescue put them back
    weight: torch.Tensor | None = None  # per-sample loss weights of the kept samples' update (infobatch)
    ranked: torch.Tensor | None = None  # the candidates the focus filter ranked (filter_cand in the log)


class Selector:
    """``epochs``: the run's epochs (for full with a budget, the reference the budget is a share of:
    ``self.epochs`` is then the compressed count). ``seed``: the run's, for RS2's subsets."""

    def __init__(self, cfg: SelectionConfig, epochs: int, seed: int = 0):
        if cfg.method not in METHODS:
            raise ValueError(f"unknown method {cfg.method!r}; expected one of {', '.join(METHODS)}")
        self.cfg, self.seed = cfg, seed
        self.rule = cfg.method.removeprefix("erts-")
        self.uses_erts = cfg.method.startswith("erts-")
        self.epochs, self.last_fraction = budget_epochs(epochs, cfg.budget if cfg.method == "full" else None)
        self.schedule = resolve_schedule(cfg.method, self.epochs, cfg.warmup_epochs, cfg.gradcam_start,
                                         cfg.revision_epoch, cfg.infobatch_delta)
        self.random_fraction = (fraction_for_budget(self.schedule, cfg.budget) if self.rule == "random" and cfg.budget
                                else cfg.random_fraction)
        auto = "update" if self.rule == "infobatch" else "pass"
        self.score_source = auto if cfg.score_source == "auto" else cfg.score_source
        self.loss_history = torch.empty(0)  # loss-topk: the most recent losses (saved with the run state)

    def state_dict(self) -> dict:
        return {"loss_history": self.loss_history.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.loss_history = state["loss_history"].clone()

    @property
    def warmup_epochs(self) -> int:
        return self.schedule.warmup

    @property
    def gradcam_start(self) -> int:
        return self.schedule.gradcam_start

    @property
    def revision_epoch(self) -> int:
        return self.schedule.revision

    def phase(self, epoch: int) -> str:
        """warmup and revision epochs train on everything; select epochs apply the rule."""
        return self.schedule.phase(epoch)

    def erts_active(self, epoch: int) -> bool:
        return self.schedule.erts_active(epoch)

    def needs_scores(self, epoch: int) -> bool:
        """SRD and random alone need no scores; every other rule (and ERTS) does, from a pass or the bank."""
        return self.phase(epoch) == "select" and (self.rule not in ("srd", "random") or self.erts_active(epoch))

    def partial(self, epoch: int) -> bool:
        """full with a budget: the last epoch trains on a random ``last_fraction`` of the data."""
        return self.rule == "full" and self.last_fraction < 1 and epoch == self.epochs - 1

    def subset(self, epoch: int, ids: torch.Tensor, universe: torch.Tensor) -> torch.Tensor:
        """Keep-mask of the pool ``ids``: members of this epoch's random subset of ``universe`` (the
        training ids): RS2's round for random, the partial last epoch's part for full."""
        if self.rule == "random":
            chosen = rs2_subset(universe, self.random_fraction, epoch - self.schedule.warmup, self.seed)
        else:
            chosen = rs2_subset(universe, self.last_fraction, 0, self.seed + 7_777_777)
        return torch.isin(ids, chosen.to(ids.device))

    def needs_pass(self, epoch: int) -> bool:
        """Whether this epoch's scores come from a scoring forward (else from the score bank).

        ``pass``: every select epoch, except el2n (a static score: the first select epoch);
        ``update``: none. ``rescore_every=k`` adds a pass every k select epochs in both."""
        if not self.needs_scores(epoch):
            return False
        since = epoch - self.schedule.warmup
        k = self.cfg.rescore_every
        if k and since % k == 0:
            return True
        if self.score_source == "update":
            return False
        return since == 0 if self.rule == "el2n" else True

    @property
    def importance_weighted(self) -> bool:
        """Loss weights that make the kept samples an unbiased estimate of the pool's loss (InfoBatch,
        easy_keep): a per-batch update then divides the weighted sum by the pool size."""
        return self.rule == "infobatch" or self.keeps_some_easy

    def reweights(self, epoch: int) -> bool:
        """Whether this epoch's kept samples carry loss weights (importance weights, kept_weighting)."""
        return self.phase(epoch) == "select" and (self.importance_weighted or self.cfg.kept_weighting != "none")

    def needs_focus(self, candidates: torch.Tensor) -> bool:
        """Whether the filter runs on these candidates: rank mode keeps a lone candidate whatever its
        reliability (published: no Grad-CAM for it)."""
        return bool(candidates.any()) and (self.cfg.focus_filter == "threshold" or int(candidates.sum()) > 1)

    @property
    def uses_cam(self) -> bool:
        """ERTS with a Grad-CAM reliability (focus, diffuse); reliability=loss reads the scoring pass's loss."""
        return self.uses_erts and self.cfg.reliability != "loss"

    def cam_active(self, epoch: int) -> bool:
        """Whether this epoch's scoring pass computes Grad-CAM focus for the filter."""
        return self.uses_cam and self.erts_active(epoch)

    # ------------------------------------------------------------ the PDD rule
    def _rule_rescues(self, rule: str) -> bool:
        mode = self.cfg.class_rescue
        if mode == "off" or rule in ("smrd", "random"):  # size controls: SMRD's count holds DBPD's rescues
            return False
        return mode == "always" or (rule == "dbpd" and not self.uses_erts)

    def _rescue(self, keep: torch.Tensor, member: torch.Tensor, usefulness: torch.Tensor,
                eligible: torch.Tensor | None = None) -> torch.Tensor:
        """Class rescue, except in a pool the rule kept nobody of (skipped, as published) unless ``always``."""
        if self.cfg.class_rescue != "always" and not bool(keep.any()):
            return keep
        return class_rescue(keep, member, usefulness, eligible)

    def dbpd_count(self, member: torch.Tensor, scores: PoolScores) -> int:
        """What DBPD (ERTS-DBPD for erts-smrd) would keep on this pool, its own rescues included:
        the size SMRD matches."""
        hard = dbpd_keep(scores.p, scores.correct, self.cfg.tau)
        if self._rule_rescues("dbpd"):
            hard = self._rescue(hard, member, scores.usefulness())
        return int(hard.sum())

    def pdd_candidates(self, epoch: int, member: torch.Tensor, scores: PoolScores | None,
                       generator: torch.Generator, count: int | None = None, ids: torch.Tensor | None = None,
                       universe: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The PDD rule's keep-mask for a pool (all True outside select epochs) and its rescued samples
        (dbpd, smrd, srd; ``loss_rule`` holds the literature's).

        ``member`` is the pool's (n, K) class membership; ``scores`` may be None only for plain
        SRD, whose rescue (``class_rescue=always``) then picks a random sample of the wiped-out
        class. ``count`` fixes SMRD's size (a replayed schedule); by default it is DBPD's count.
        random (RS2) and full's partial last epoch keep the pool's members of the epoch's subset of
        ``universe`` (the pool ``ids`` are dataset indices).
        """
        n, device = len(member), member.device
        none = torch.zeros(n, dtype=torch.bool, device=device)
        if self.partial(epoch):
            return self.subset(epoch, ids, universe), none
        if self.phase(epoch) != "select":
            return torch.ones(n, dtype=torch.bool, device=device), none
        if self.rule == "random":
            keep = self.subset(epoch, ids, universe)
        elif self.rule == "srd":
            keep = random_keep(n, srd_count(n, self.cfg.gamma, epoch), generator, device)
        elif self.rule == "dbpd":
            keep = dbpd_keep(scores.p, scores.correct, self.cfg.tau)
        elif self.rule == "smrd":
            size = self.dbpd_count(member, scores) if count is None else min(int(count), n)
            keep = random_keep(n, size, generator, device)
        else:  # one entry for the literature's rules: select() (their weights and hard set matter)
            raise ValueError(f"pdd_candidates: {self.rule!r} is not a PDD rule; Selector.select runs it")
        if not self._rule_rescues(self.rule):
            return keep, none
        usefulness = scores.usefulness() if scores is not None else torch.rand(n, generator=generator).to(device)
        rescued = self._rescue(keep, member, usefulness)
        return rescued, rescued & ~keep

    # ------------------------------------------------------------ the focus filter
    def loss_rule(self, scores: PoolScores, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The literature's rules: (keep, loss weights or None, the kept samples the rule deems hard)."""
        c = self.cfg
        if self.rule == "infobatch":
            return infobatch_keep(scores.loss, scores.loss_mean, c.infobatch_r, generator)
        if self.rule == "loss-topk":
            loss = scores.loss.detach().float().cpu()
            self.loss_history = torch.cat([self.loss_history, loss])[-c.topk_history:]
            keep = loss_percentile_keep(loss, self.loss_history, c.topk_beta, generator).to(scores.loss.device)
            return keep, None, keep
        if self.rule == "rho-loss":
            keep = reducible_loss_keep(scores.loss, scores.irreducible, c.rho_keep)
            return keep, None, keep
        keep = top_fraction_keep(scores.el2n, c.el2n_keep)
        return keep, None, keep

    @property
    def keeps_some_easy(self) -> bool:
        """easy_keep is the PDD rules' (dbpd, smrd, srd): what ``random`` leaves out is not easy, and its
        budget (``random_fraction``) counts only the subset it draws, so a control stays at its budget."""
        return self.cfg.easy_keep > 0 and self.rule in PDD_RULES

    def _keep_some_easy(self, hard: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """easy_keep: every sample the rule dropped is kept with probability q, weighted 1/q."""
        q = self.cfg.easy_keep
        draw = torch.rand(len(hard), generator=generator).to(hard.device)
        easy = ~hard & (draw < q)
        weight = torch.where(easy, torch.tensor(1.0 / q, device=hard.device), torch.tensor(1.0, device=hard.device))
        return hard | easy, weight

    def reliable(self, candidates: torch.Tensor, scores: PoolScores) -> torch.Tensor:
        """The candidates the filter keeps by the ``reliability`` signal (rank: the phi share; threshold:
        an absolute cut), before class rescue."""
        c = self.cfg
        rank = c.focus_filter == "rank"
        if c.reliability == "loss":
            return (low_loss_keep(candidates, scores.loss, c.phi, c.phi_round) if rank
                    else loss_quantile_keep(candidates, scores.loss, c.loss_quantile))
        if c.reliability == "diffuse":
            return (diffuse_rank_keep(candidates, scores.p, scores.focus, c.phi, c.phi_round) if rank
                    else diffuse_threshold_keep(candidates, scores.focus, c.focus_threshold))
        return (focus_rank_keep(candidates, scores.p, scores.focus, c.phi, c.phi_round) if rank
                else focus_threshold_keep(candidates, scores.focus, c.focus_threshold))

    def rescue_usefulness(self, scores: PoolScores) -> torch.Tensor:
        """Which candidate of a wiped-out class the filter puts back: the one it ranks highest
        ((1 - p) * focus, (1 - p) * (1 - focus), or the lowest loss)."""
        if self.cfg.reliability == "loss":
            return -scores.loss.float()
        focus = torch.nan_to_num(scores.focus, nan=0.0)
        return scores.usefulness(1 - focus if self.cfg.reliability == "diffuse" else focus)

    def focus_filter(self, candidates: torch.Tensor, scores: PoolScores) -> tuple[torch.Tensor, torch.Tensor]:
        """ERTS: keep the reliable candidates (``reliable``), then rescue a class among the candidates.
        Returns the keep-mask and the filter's rescues."""
        none = torch.zeros_like(candidates)
        if not self.needs_focus(candidates):
            return candidates.clone(), none
        keep = self.reliable(candidates, scores)
        if self.cfg.class_rescue == "off":
            return keep, none
        rescued = class_rescue(keep, scores.member, self.rescue_usefulness(scores), eligible=candidates)
        return rescued, rescued & ~keep

    def select(self, epoch: int, member: torch.Tensor, scores: PoolScores | None, generator: torch.Generator,
               focus_fn=None, count: int | None = None, ids: torch.Tensor | None = None,
               universe: torch.Tensor | None = None) -> Selection:
        """Rule, then (in ERTS epochs) ``focus_fn(candidates)`` fills ``scores.focus`` and the filter runs
        on the candidates the rule deems hard (all of them, but for InfoBatch the above-mean ones)."""
        weight = None
        if self.phase(epoch) == "select" and self.rule in LOSS_RULES:
            candidates, weight, hard = self.loss_rule(scores, generator)
            rescued = torch.zeros_like(candidates)
        else:
            candidates, rescued = self.pdd_candidates(epoch, member, scores, generator, count, ids, universe)
            hard = candidates
            if self.keeps_some_easy and self.phase(epoch) == "select":
                candidates, weight = self._keep_some_easy(candidates, generator)
        keep, ranked = candidates, torch.zeros_like(candidates)
        if self.erts_active(epoch) and self.needs_focus(hard):
            if self.uses_cam:
                focus_fn(hard)
            kept_hard, filter_rescued = self.focus_filter(hard, scores)
            keep = (candidates & ~hard) | kept_hard
            rescued = (rescued & keep) | filter_rescued
            ranked = hard
        if self.cfg.kept_weighting == "prior" and self.phase(epoch) == "select":
            prior = class_prior_weights(keep, member)
            weight = prior if weight is None else weight * prior
        return Selection(candidates, keep, rescued, weight, ranked)
