"""Equal-budget controls (full at a budget, random = RS2) and InfoBatch as the official sampler.

``OfficialInfoBatch`` is the official algorithm (NUS-HPC-AI-Lab/InfoBatch @ 8bbb012,
infobatch/infobatch.py: ``InfoBatch.prune``, ``IBSampler.reset``) written out from its code,
iteration counter included: the sampler's constructor calls ``reset()`` once, so at epoch e the
counter is e + 1 and the epoch prunes while e + 1 <= delta x epochs. Scores start at 3 for
everyone; only the trained samples' scores are overwritten. erts is driven through its public
``DataDropout`` with the same loss sequences.
"""
import math
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import ROOT, tiny_overrides
from erts import DataDropout
from erts.config import ConfigError, load_config
from erts.selection.rules import rs2_subset
from erts.selection.schedule import budget_epochs
from erts.train.loop import train

sys.path.insert(0, str(ROOT / "benchmarks"))
from infobatch_side_by_side import loss_sequences, ours as erts_epochs  # noqa: E402 (erts' side, as benchmarked)


class OfficialInfoBatch:
    def __init__(self, n: int, num_epochs: int, prune_ratio: float = 0.5, delta: float = 0.875, seed: int = 0):
        self.keep_ratio = min(1.0, max(1e-1, 1.0 - prune_ratio))
        self.scores = np.ones(n) * 3
        self.weights = np.ones(n)
        self.stop_prune = num_epochs * delta
        self.iterations = 0
        self.rng = np.random.default_rng(seed)
        self.sample()  # IBSampler.__init__ calls reset() once

    def prune(self) -> np.ndarray:
        well = self.scores < self.scores.mean()
        low, kept = np.where(well)[0], np.where(~well)[0]
        selected = self.rng.choice(low, int(self.keep_ratio * len(low)), replace=False)
        self.weights[:] = 1
        self.weights[selected] = 1 / self.keep_ratio
        return np.concatenate([kept, selected])

    def sample(self) -> np.ndarray:
        """IBSampler.reset: the epoch's indices."""
        if self.iterations > self.stop_prune:
            if self.iterations == self.stop_prune + 1:
                self.weights[:] = 1
            out = np.arange(len(self.scores))
        else:
            out = self.prune()
        self.iterations += 1
        return out

    def update(self, idx: np.ndarray, loss: np.ndarray) -> None:
        self.scores[idx] = loss


class Identity(nn.Module):  # DataDropout needs a model; InfoBatch never runs it (scores from the update)
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))


def official_epochs(losses: np.ndarray, epochs: int, seed: int = 0):
    ib = OfficialInfoBatch(losses.shape[1], epochs, seed=seed)
    out = []
    for e in range(epochs):
        idx = ib.sample()
        out.append((idx, ib.weights[idx].copy()))
        ib.update(idx, losses[e][idx])
    return out


@pytest.mark.parametrize("epochs", [30, 7, 40])
def test_infobatch_matches_the_official_sampler(epochs):
    n = 2000
    losses = loss_sequences(n, epochs)
    ours, theirs = erts_epochs(losses, 0.5, 0.875), official_epochs(losses, epochs)
    full = [len(k) == n for k, _ in theirs]
    # the same epochs train on everything: epoch 0 (all scores equal) and from floor(delta x epochs)
    assert [len(k) == n for k, _ in ours] == full
    assert full.index(True, 1) == math.floor(0.875 * epochs)
    # epoch 1 starts from identical scores: the kept count is the same to the sample
    assert len(ours[1][0]) == len(theirs[1][0])
    for e in range(1, epochs):
        (k_o, w_o), (k_t, w_t) = ours[e], theirs[e]
        assert abs(len(k_o) - len(k_t)) <= 0.02 * n, f"epoch {e}: {len(k_o)} vs {len(k_t)} kept"
        if full[e]:
            assert (w_o == 1).all()  # erts drops the rescale in full-data epochs (the official may keep it)
            continue
        # kept low-loss samples carry 1 / keep_ratio, the others 1; exactly int(0.5 n_low) are kept
        assert set(np.unique(w_o)) <= {1.0, 2.0} and set(np.unique(w_t)) <= {1.0, 2.0}
        # sum(w l) / sum(l) over the whole set estimates 1 (the rescaled gradient is unbiased)
        for kept, w in ((k_o, w_o), (k_t, w_t)):
            l_all = losses[e - 1]  # a proxy loss known for every sample
            assert abs((w * l_all[kept]).sum() / l_all.sum() - 1) < 0.1
    kept_o = sum(len(k) for k, _ in ours)
    kept_t = sum(len(k) for k, _ in theirs)
    assert abs(kept_o / kept_t - 1) < 0.01  # total samples trained (the steps) within 1 %


def test_infobatch_keeps_exactly_half_of_the_low_loss_samples():
    n, epochs = 1000, 10
    losses = loss_sequences(n, epochs, seed=3)
    dataset = torch.utils.data.TensorDataset(torch.zeros(n, 1, 4), torch.zeros(n, dtype=torch.long))
    dd = DataDropout(Identity(), "infobatch", num_samples=n, epochs=epochs)
    dd.bank.write(torch.arange(n), 0, p=torch.zeros(n), correct=torch.zeros(n, dtype=torch.bool),
                  loss=torch.tensor(losses[0], dtype=torch.float32), el2n=torch.zeros(n))
    kept = dd.epoch_indices(1, dataset, num_classes=2).numpy()
    low = np.where(losses[0].astype(np.float32) < losses[0].astype(np.float32).mean())[0]
    assert len(kept) == (n - len(low)) + int(0.5 * len(low))
    assert set(np.setdiff1d(np.arange(n), low)) <= set(kept)


def test_the_documented_per_batch_loop_prunes_with_infobatch():
    """The docs/api.md loop (select, per_sample_loss, epoch_end) with method=infobatch: the losses
    reach the bank through per_sample_loss, so epochs after the first prune."""
    torch.manual_seed(0)
    x_all, y_all = torch.randn(256, 1, 64), torch.randint(0, 3, (256,))
    model = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                          nn.Linear(8, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    dd = DataDropout(model, "infobatch", num_samples=256, epochs=6, granularity="batch")
    kept = []
    for epoch in range(6):
        for b in torch.randperm(256).split(64):
            x, y, idx, weight = dd.select(x_all[b], y_all[b], b, epoch, num_classes=3)
            loss = (dd.per_sample_loss(model(x), y) * weight).mean()
            opt.zero_grad(); loss.backward(); opt.step()
        kept.append(dd.epoch_end(epoch)["n_kept"])
    assert kept[0] == 256 and kept[-1] == 256  # warm-up, and the annealing epoch (floor(0.875 x 6) = 5)
    assert all(k < 230 for k in kept[1:5]), kept


def test_rs2_draws_without_replacement_until_the_set_is_exhausted():
    universe = torch.arange(100, 200)
    seen = [rs2_subset(universe, 0.3, r, seed=1) for r in range(7)]
    assert all(len(s) == 30 for s in seen) and all(len(set(s.tolist())) == 30 for s in seen)
    first_cycle = torch.cat(seen[:3])
    assert len(set(first_cycle.tolist())) == 90  # rounds 0-2: 90 distinct of 100
    round3 = set(seen[3].tolist())  # spans the cycle boundary: the 10 unseen ones, then 20 of the next cycle
    assert set(universe.tolist()) - set(first_cycle.tolist()) <= round3
    assert torch.equal(rs2_subset(universe, 0.3, 5, seed=1), seen[5])  # stateless: resumable
    assert not torch.equal(rs2_subset(universe, 0.3, 5, seed=2), seen[5])


def test_budget_epochs_and_the_random_fraction():
    assert budget_epochs(30, 0.62) == (19, pytest.approx(0.6))
    assert budget_epochs(30, None) == (30, 1.0) and budget_epochs(10, 0.5) == (5, 1.0)
    cfg = load_config(overrides={"method": "full", "budget": 0.62, "epochs": 30})
    assert cfg.selection.granularity == "epoch"
    assert [load_config(overrides={"method": m}).selection.granularity for m in ("infobatch", "random", "dbpd", "full")] \
        == ["epoch", "epoch", "batch", "batch"]
    # random, 30 epochs: warm-up 2 + revision 15 full epochs; 0.7 x 30 = 21 -> f = (21 - 17) / 13
    dd = DataDropout(Identity(), "random", num_samples=10, epochs=30, budget=0.7)
    assert dd.selector.random_fraction == pytest.approx(4 / 13)
    with pytest.raises(ConfigError, match="cannot be met"):
        load_config(overrides={"method": "random", "budget": 0.5, "epochs": 30})
    with pytest.raises(ConfigError, match="budget is for method=full or random"):
        load_config(overrides={"method": "dbpd", "budget": 0.5})


def test_full_at_a_budget_trains_the_share_with_the_schedule_compressed(cache_dir, tmp_path):
    m = train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="full", epochs=6, budget=0.55,
                                                   name="b")))
    log = pd.read_csv(tmp_path / "b" / "log.csv")
    n = int(log.n_train[0])
    assert len(log) == 4 and m["epochs"] == 4 and m["reference_epochs"] == 6
    assert list(log.n_updated[:3]) == [n] * 3 and log.n_updated.iloc[3] == round(0.3 * n)
    assert m["cost"]["effective_epochs"] == pytest.approx(3.3, abs=1 / n)
    # cosine over the 4 trained epochs: epoch 3 starts at lr x (1 + cos(3 pi / 4)) / 2
    assert log.lr.iloc[3] == pytest.approx(1e-3 * (1 + math.cos(3 * math.pi / 4)) / 2, rel=1e-6)


@pytest.mark.parametrize("easy_keep", [0.0, 0.3])
def test_random_trains_a_fresh_subset_each_select_epoch(cache_dir, tmp_path, easy_keep):
    """easy_keep is the PDD rules' setting: a benchmark that sets it for every run (noise_filter.py) must
    not give its random control more than the subset it draws (it once kept 0.4 + 0.3 x 0.6 = 0.58)."""
    m = train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="random", epochs=5, warmup_epochs=1,
                                                   revision_epoch=4, random_fraction=0.4, name="r",
                                                   easy_keep=easy_keep)))
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    n = int(log.n_train[0])
    assert list(log.n_updated) == [n, round(0.4 * n), round(0.4 * n), round(0.4 * n), n]
    assert m["cost"]["effective_epochs"] == pytest.approx(2 + 3 * round(0.4 * n) / n)
    sel = [np.load(tmp_path / "r" / "selection" / f"epoch_{e:03d}.npz") for e in (1, 2)]
    a, b = (set(s["index"][s["updated"]]) for s in sel)
    assert not a & b  # without replacement across epochs
    assert m["cost"]["forwards"]["scoring"] == 0  # no scores needed
