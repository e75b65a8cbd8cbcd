"""Selection rules: which samples get a gradient update.

Every function works on one *pool* of samples, a mini-batch (as published) or a
whole epoch, and returns a boolean keep-mask. All are vectorised torch ops on the
pool's device; randomness comes only from the generator passed in.

``member`` is a (n, K) bool matrix of class membership (one-hot for single-label,
the multi-hot labels for multi-label); it lets class rescue treat both alike.
"""
from __future__ import annotations

import math

import torch


def dbpd_keep(p: torch.Tensor, correct: torch.Tensor, tau: float) -> torch.Tensor:
    """Difficulty-based: keep samples whose true-class confidence p < tau.

    tau = 0 is the published special case: keep the misclassified samples.
    """
    return ~correct if tau == 0 else p < tau


def random_keep(n: int, n_keep: int, generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """A uniformly random subset of exactly ``n_keep`` of ``n`` samples."""
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    if n_keep > 0:
        keep[torch.randperm(n, generator=generator)[:n_keep].to(device)] = True
    return keep


def srd_count(n: int, gamma: float, epoch: int) -> int:
    """SRD pool size: ceil(gamma^(t-1) * n) with the paper's 1-based t = epoch + 1."""
    return min(n, math.ceil(gamma ** epoch * n - 1e-9))


def class_rescue(keep: torch.Tensor, member: torch.Tensor, usefulness: torch.Tensor,
                 eligible: torch.Tensor | None = None) -> torch.Tensor:
    """If a rule removed every (eligible) sample of a class present in the pool, keep the
    most useful sample of that class. Returns a new mask; vectorised over classes.

    ``usefulness`` is (n,) (one number per sample) or (n, K) (per sample and class: a
    multi-label class is rescued by its own probability, not the sample's overall one).
    """
    if eligible is None:
        eligible = torch.ones_like(keep)
    m = member & eligible[:, None]                      # (n, K)
    present = m.any(0)
    covered = (m & keep[:, None]).any(0)
    need = present & ~covered
    if not bool(need.any()):
        return keep
    u = usefulness.float()
    u = u[:, None].expand_as(m) if u.ndim == 1 else u
    scores = torch.where(m, u, torch.tensor(float("-inf"), device=keep.device))
    best = scores.argmax(0)                             # (K,) most useful sample per class (first on ties)
    out = keep.clone()
    out[best[need]] = True
    return out


def filter_count(n: int, phi: float, rounding: str = "floor") -> int:
    """How many of ``n`` candidates the focus filter keeps: int(phi * n), at least one
    (published), or ceil(phi * n)."""
    if n == 0:
        return 0
    if rounding == "ceil":
        return min(n, math.ceil(phi * n - 1e-9))
    return min(n, max(1, int(phi * n + 1e-9)))


def rank_keep(candidates: torch.Tensor, score: torch.Tensor, phi: float, rounding: str = "floor") -> torch.Tensor:
    """ERTS filter, rank mode: among candidates keep the ``filter_count`` with the highest ``score``
    (ties by position, so the result is deterministic)."""
    n_keep = filter_count(int(candidates.sum()), phi, rounding)
    keep = torch.zeros_like(candidates)
    if n_keep == 0:
        return keep
    score = torch.where(candidates, score.float(), torch.tensor(float("-inf"), device=score.device))
    keep[torch.sort(score, descending=True, stable=True).indices[:n_keep]] = True
    return keep


def focus_rank_keep(candidates: torch.Tensor, p: torch.Tensor, focus: torch.Tensor, phi: float,
                    rounding: str = "floor") -> torch.Tensor:
    """ERTS filter (the paper's): among candidates keep the top ``filter_count`` by (1 - p) * focus."""
    return rank_keep(candidates, (1 - p) * focus, phi, rounding)


def diffuse_rank_keep(candidates: torch.Tensor, p: torch.Tensor, focus: torch.Tensor, phi: float,
                      rounding: str = "floor") -> torch.Tensor:
    """reliability=diffuse: concentration read the other way round (a map locked onto one spot is
    suspicious, issue 24): keep the top ``filter_count`` by (1 - p) * (1 - focus)."""
    return rank_keep(candidates, (1 - p) * (1 - focus), phi, rounding)


def low_loss_keep(candidates: torch.Tensor, loss: torch.Tensor, phi: float, rounding: str = "floor") -> torch.Tensor:
    """reliability=loss, rank mode: the ``filter_count`` candidates with the lowest loss (the highest
    losses of the hard set are the likeliest wrong labels)."""
    return rank_keep(candidates, -loss, phi, rounding)


def loss_quantile_keep(candidates: torch.Tensor, loss: torch.Tensor, q: float) -> torch.Tensor:
    """reliability=loss, threshold mode: the candidates whose loss is at most the ``q`` quantile of the
    pool's losses (linear interpolation); the pool, not the candidates, sets the bar."""
    return candidates & (loss <= torch.quantile(loss.float(), q))


def reducible_loss_keep(loss: torch.Tensor, irreducible: torch.Tensor, frac: float) -> torch.Tensor:
    """RHO-LOSS (Mindermann et al., ICML 2022): the ``max(1, int(n * frac))`` samples with the highest
    reducible loss, training loss minus irreducible loss (learnable, worth learning, not yet learnt).
    The count is the official code's (OATML/RHO-Loss, ``MultiModels.training_step``): 6 of a batch of 64
    at ``frac=0.1``, 32 of the paper's 320."""
    return top_count_keep(loss.float() - irreducible.float(), max(1, int(len(loss) * frac)))


def infobatch_keep(loss: torch.Tensor, mean: float, r: float,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoBatch (Qin et al., ICLR 2024), as the official sampler prunes (NUS-HPC-AI-Lab/InfoBatch
    @ 8bbb012, ``InfoBatch.prune``): of the n samples whose last known loss is below ``mean`` (the
    mean over the training set), exactly int((1 - r) n) are kept, drawn at random without
    replacement, their loss scaled by 1 / (1 - r), so the expected gradient is the full data's.
    Returns (keep, weight, hard): ``hard`` = the above-mean samples, kept unconditionally."""
    well_learned = loss < mean
    keep_ratio = 1.0 - r
    low = torch.nonzero(well_learned).squeeze(1)
    n_keep = int(keep_ratio * len(low) + 1e-9)
    chosen = low[torch.randperm(len(low), generator=generator)[:n_keep].to(low.device)]
    keep = ~well_learned
    keep[chosen] = True
    weight = torch.ones(len(loss), device=loss.device)
    weight[chosen] = 1.0 / keep_ratio
    return keep, weight, ~well_learned


def rs2_subset(universe: torch.Tensor, fraction: float, round_index: int, seed: int) -> torch.Tensor:
    """RS2 (Okanovic et al., ICLR 2024, repeated sampling of random subsets without replacement):
    the ids of round ``round_index``'s subset of ``universe``, round(fraction x n) of them. The
    rounds walk through a seeded permutation of the universe, a fresh one once it is exhausted,
    so no sample is drawn twice before every sample was drawn once. Stateless: round r's subset
    follows from (seed, r) alone, so a resumed run draws what an uninterrupted one would."""
    n = len(universe)
    k = min(n, max(1, round(fraction * n)))
    cycle, offset = divmod(round_index * k, n)

    def order(c: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed((seed * 1_000_003 + c * 7919 + 17) % 2**63)
        return universe[torch.randperm(n, generator=gen).to(universe.device)]

    take = order(cycle)[offset:offset + k]
    if len(take) < k:  # this round spans two permutations: the rest from the next, no id twice
        nxt = order(cycle + 1)
        take = torch.cat([take, nxt[~torch.isin(nxt, take)][:k - len(take)]])
    return take


def loss_percentile_keep(loss: torch.Tensor, history: torch.Tensor, beta: float,
                         generator: torch.Generator) -> torch.Tensor:
    """Selective-Backprop (Jiang et al. 2019): keep each sample with probability P(L < loss)^beta, the
    share of ``history`` (recent losses, this pool's included) below its loss, as the official code
    computes it (angelajiang/SelectiveBackprop, ``UnboundedHistogram.percentile_of_score``)."""
    cdf = torch.searchsorted(torch.sort(history).values, loss.float(), right=False).float() / max(len(history), 1)
    draw = torch.rand(len(loss), generator=generator).to(loss.device)
    return draw < cdf.pow(beta)


def top_fraction_keep(score: torch.Tensor, frac: float) -> torch.Tensor:
    """The ``ceil(frac * n)`` highest scores (EL2N pruning keeps the hardest; ties by position)."""
    return top_count_keep(score, math.ceil(frac * len(score) - 1e-9))


def top_count_keep(score: torch.Tensor, n_keep: int) -> torch.Tensor:
    """The ``n_keep`` highest scores (ties by position)."""
    keep = torch.zeros(len(score), dtype=torch.bool, device=score.device)
    keep[torch.sort(score.float(), descending=True, stable=True).indices[:min(len(score), n_keep)]] = True
    return keep


def class_prior_weights(keep: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """Per-sample loss weights that give each class the share of the update it has in the pool:
    a kept sample of class c weighs (n_c / n) / (k_c / k), n_c of n in the pool, k_c of k kept.
    Multi-label samples take the mean weight of their classes. The kept weights average 1."""
    m = member.float()
    n_c, k_c = m.sum(0), (m * keep[:, None].float()).sum(0)
    n, k = float(len(keep)), float(keep.sum())
    if k == 0:
        return torch.ones(len(keep), device=keep.device)
    w_c = torch.where(k_c > 0, (n_c / n) / (k_c / k).clamp_min(1e-12), torch.zeros_like(n_c))
    per_sample = (m * w_c).sum(1) / m.sum(1).clamp_min(1.0)
    w = torch.where(keep, per_sample, torch.ones_like(per_sample))
    return w * (k / float(w[keep].sum())) if keep.any() else w


def focus_threshold_keep(candidates: torch.Tensor, focus: torch.Tensor, threshold: float) -> torch.Tensor:
    """ERTS filter, absolute mode: keep candidates whose focus score reaches the threshold."""
    return candidates & (focus >= threshold)


def diffuse_threshold_keep(candidates: torch.Tensor, focus: torch.Tensor, threshold: float) -> torch.Tensor:
    """reliability=diffuse, absolute mode: drop the candidates whose concentration reaches the threshold."""
    return candidates & (focus < threshold)
