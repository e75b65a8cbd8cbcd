"""RHO-LOSS: irreducible losses from the model that did not train on the record, the reducible-loss rule,
its cost phase, and resume (Mindermann et al., ICML 2022; docs/selection.md)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import tiny_overrides
from erts.config import ConfigError, SelectionConfig, load_config
from erts.data import load_dataset
from erts.selection import PoolScores, Selector
from erts.train import irreducible
from erts.train.builders import build_model
from erts.train.loop import Trainer, resume, train

RHO = dict(method="rho-loss", rho_il_epochs=2, rho_keep=0.5)


def trainer(cache_dir, out, **extra) -> Trainer:
    cfg = load_config(overrides=tiny_overrides(cache_dir, out, **{**RHO, **extra}))
    return Trainer(cfg, load_dataset(cfg.data), out / "r", progress=False)


def selection_logs(run_dir):
    return [dict(np.load(f)) for f in sorted((run_dir / "selection").glob("epoch_*.npz"))]


class Memorizer(nn.Module):
    """A stand-in IL model that knows exactly the records it was trained on: the true label with
    certainty for an input it memorised, uniform logits for any other (loss log K)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, k: int):
        super().__init__()
        self.x, self.y, self.k = x.flatten(1), y, k

    def forward(self, x):
        match = (x.flatten(1)[:, None, :] == self.x[None]).all(-1)  # (B, memorised)
        seen = match.any(1)
        label = self.y[match.float().argmax(1)]
        return torch.where(seen[:, None], 30.0 * F.one_hot(label, self.k).float(), torch.zeros(len(x), self.k))


def test_holdout_halves_split_each_class_evenly_and_follow_the_seed():
    ids = torch.arange(10, 110)
    labels = torch.tensor([0] * 60 + [1] * 33 + [2] * 7)
    a, b = irreducible.holdout_halves(ids, labels, seed=3)
    assert len(set(a.tolist()) & set(b.tolist())) == 0 and sorted(a.tolist() + b.tolist()) == ids.tolist()
    for c in range(3):
        in_a, in_b = int((labels[a - 10] == c).sum()), int((labels[b - 10] == c).sum())
        assert abs(in_a - in_b) <= 1
    a2, _ = irreducible.holdout_halves(ids, labels, seed=3)
    a3, _ = irreducible.holdout_halves(ids, labels, seed=4)
    assert torch.equal(a, a2) and not torch.equal(a, a3)


def test_il_losses_come_from_the_model_that_did_not_train_on_the_record(cache_dir, tmp_path, one_thread, monkeypatch):
    """By construction: each stand-in IL model memorises its training records, so a record scored by
    the model that saw it would get a loss near 0 and one scored by the other model log K."""
    t = trainer(cache_dir, tmp_path)
    k, trained_on = t.rs.num_classes, []

    def fake_train(tr, ids, seed):
        trained_on.append(ids.clone())
        return Memorizer(tr.data.x(ids), tr.data.y[ids], k)

    monkeypatch.setattr(irreducible, "train_il_model", fake_train)
    train_ids = t.idx["train"]
    losses = irreducible.irreducible_losses(t)
    assert len(trained_on) == 2 and sorted(torch.cat(trained_on).tolist()) == sorted(train_ids.tolist())
    np.testing.assert_allclose(losses.numpy(), math.log(k), rtol=1e-6)  # never the model that saw it
    # the control: the same models on their own training records give ~0, so the test can fail
    seen = irreducible.il_losses(t, Memorizer(t.data.x(trained_on[0]), t.data.y[trained_on[0]], k), trained_on[0])
    assert float(seen.max()) < 1e-6


def test_an_il_model_trains_on_its_half_only_and_scores_centre_windows(cache_dir, tmp_path, one_thread):
    t = trainer(cache_dir, tmp_path, crop_s=1.0, crop="random")
    half, _ = irreducible.holdout_halves(t.idx["train"], t.data.y[t.idx["train"]], 0)
    seen_train, original = [], t.data.x

    def spy(ids, train=False):
        if train:
            seen_train.append(ids.clone())
        return original(ids, train)

    t.data.x = spy
    model = irreducible.train_il_model(t, half, seed=5)
    assert set(torch.cat(seen_train).tolist()) == set(half.tolist())
    assert len(torch.cat(seen_train)) == 2 * len(half)  # rho_il_epochs=2 passes over its half
    t.data.x = original
    with torch.no_grad():
        by_hand = F.cross_entropy(model(t.data.x(half[:7])), t.data.y[half[:7]], reduction="none")
    torch.testing.assert_close(irreducible.il_losses(t, model, half[:7]), by_hand)


def test_il_model_scores_with_the_weights_of_its_lowest_validation_loss(cache_dir, tmp_path, one_thread, monkeypatch):
    """The official code scores with the IL model's best validation-loss checkpoint. The validation losses
    are set by the test (0.5, 0.2, 0.9 after epochs 0-2), so the epoch to keep is known beforehand; the
    weights after each epoch are captured where the validation pass sees them."""
    t = trainer(cache_dir, tmp_path, rho_il_epochs=3)
    half, _ = irreducible.holdout_halves(t.idx["train"], t.data.y[t.idx["train"]], 0)
    val_losses, after_epoch, original = iter([0.5, 0.2, 0.9]), [], irreducible.il_losses

    def set_val_loss(tr, model, ids):
        if torch.equal(ids, t.idx["val"]):
            after_epoch.append({k: v.clone() for k, v in model.state_dict().items()})
            return torch.full((len(ids),), next(val_losses))
        return original(tr, model, ids)

    def same(state, other):
        return all(torch.equal(state[k], other[k]) for k in state)

    monkeypatch.setattr(irreducible, "il_losses", set_val_loss)
    best = irreducible.train_il_model(t, half, seed=5).state_dict()
    assert len(after_epoch) == 3 and same(best, after_epoch[1])
    assert not same(best, after_epoch[0]) and not same(best, after_epoch[2])  # the epochs' weights differ
    t.cfg.selection.rho_il_checkpoint = "last"
    last = irreducible.train_il_model(t, half, seed=5).state_dict()
    assert len(after_epoch) == 3 and same(last, after_epoch[2])  # no validation pass; the same training


def test_rho_loss_rule_keeps_the_top_fraction_of_reducible_loss():
    loss = torch.tensor([2.0, 0.3, 1.5, 0.9, 2.2, 0.1])
    il = torch.tensor([1.9, 0.0, 0.2, 0.1, 0.3, 0.0])  # reducible: 0.1 0.3 1.3 0.8 1.9 0.1
    sel = Selector(SelectionConfig(method="rho-loss", rho_keep=0.5, warmup_epochs=0, revision_epoch=5), 10)
    s = PoolScores(torch.zeros(6), torch.zeros(6, dtype=torch.bool), torch.ones(6, 1, dtype=torch.bool), loss=loss,
                   irreducible=il)
    out = sel.select(1, s.member, s, torch.Generator())
    assert out.keep.tolist() == [False, False, True, True, True, False]  # int(6 * 0.5) = 3: 1.9, 1.3, 0.8
    # the highest training loss (sample 0) is dropped: its irreducible loss says it cannot be learnt
    assert not out.keep[0]


@pytest.mark.parametrize("n, frac, expected", [(64, 0.1, 6), (320, 0.1, 32), (5, 0.1, 1), (100, 0.29, 28), (7, 1.0, 7)])
def test_rho_loss_keeps_as_many_as_the_official_code(n, frac, expected):
    """OATML/RHO-Loss @ 4c88851, MultiModels.training_step: selected_batch_size = max(1, int(batch_size *
    percent_train)), float product and all (100 x 0.29 = 28.999...: 28); the expected counts are written out."""
    from erts.selection.rules import reducible_loss_keep

    keep = reducible_loss_keep(torch.rand(n, generator=torch.Generator().manual_seed(n)), torch.zeros(n), frac)
    assert int(keep.sum()) == expected


@pytest.mark.parametrize("granularity", ["batch", "epoch"])
def test_kept_set_is_the_top_fraction_of_loss_minus_il_in_every_pool(cache_dir, tmp_path, one_thread, granularity):
    """The run's kept set against (loss - IL) computed independently: the loss is -log p of the
    logged true-class probability (plain cross-entropy), the IL losses those the checkpoint holds."""
    train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, name="r", granularity=granularity, **RHO)))
    run_dir = tmp_path / "r"
    il = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["bank"]["irreducible"].numpy()
    records = pd.read_csv(run_dir / "train_records.csv")
    assert np.isfinite(il[records["index"]]).all() and np.isnan(np.delete(il, records["index"])).all()
    log = pd.read_csv(run_dir / "log.csv")
    pool = 32 if granularity == "batch" else len(records)
    checked = 0
    for epoch, s in enumerate(selection_logs(run_dir)):
        if log.phase[epoch] != "select":
            assert s["pdd_keep"].all()
            continue
        reducible = -np.log(s["p"].astype(np.float64)) - il[s["index"]]
        for start in range(0, len(reducible), pool):
            r, kept = reducible[start:start + pool], s["pdd_keep"][start:start + pool]
            assert kept.sum() == max(1, len(r) // 2)
            assert r[kept].min() >= r[~kept].max() - 1e-4
            checked += 1
        assert (s["updated"] == s["pdd_keep"]).all()
    assert checked >= 2


def test_irreducible_phase_is_counted_once_in_the_first_epoch_and_in_the_totals(cache_dir, tmp_path, one_thread):
    t = trainer(cache_dir, tmp_path)
    t.fit()
    m = t.finish()
    c, n = m["cost"], len(t.idx["train"])
    # two models x 2 epochs x their half = 2 n training samples; every record scored once by the other model;
    # each model's validation loss after each of its 2 epochs (rho_il_checkpoint=best) on the n_val records
    n_val = len(t.idx["val"])
    assert c["forwards"]["irreducible"] == 2 * n + n + 2 * 2 * n_val and c["backwards"]["irreducible"] == 2 * n
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    assert log.forwards_irreducible.tolist() == [3 * n + 4 * n_val, 0, 0, 0] and log.backwards_irreducible[0] == 2 * n
    assert log.seconds_irreducible[0] > 0 and (log.seconds_irreducible[1:] == 0).all()
    # FLOPs measured independently: a training step (forward + backward) and a scoring forward per sample
    model = build_model(t.cfg, t.rs)
    x, y = t.data.x(t.idx["train"][:8]), t.data.y[t.idx["train"][:8]]
    with FlopCounterMode(display=False) as fwd, torch.no_grad():
        model.eval()(x)
    model.train()
    with FlopCounterMode(display=False) as step:
        F.cross_entropy(model(x), y).backward()
    expected = 2 * n * step.get_total_flops() / 8 + (n + 4 * n_val) * fwd.get_total_flops() / 8
    assert c["flops"]["irreducible"] == pytest.approx(expected, rel=1e-9)
    # in the run's totals: training seconds, CPU seconds and FLOPs
    for group in ("seconds", "cpu_seconds"):
        assert c[group]["train"] == pytest.approx(sum(c[group][p] for p in ("scoring", "gradcam", "update", "irreducible")))
    assert c["flops"]["total"] == pytest.approx(sum(c["flops"][p] for p in ("scoring", "gradcam", "update", "irreducible")))
    # effective epochs count the run's own updates only (the IL models' are in backwards_irreducible)
    assert c["effective_epochs"] * n == c["backwards"]["update"]


class Killed(Exception):
    pass


def test_resume_after_a_kill_does_not_retrain_the_il_models_and_matches_a_straight_run(cache_dir, tmp_path,
                                                                                         one_thread, monkeypatch):
    extra = dict(method="erts-rho-loss", rho_il_epochs=1, rho_keep=0.5, name="k")
    straight = train(load_config(overrides=tiny_overrides(cache_dir, tmp_path / "straight", **extra)))
    original = Trainer.run_epoch

    def dies_in_epoch_2(self, epoch):
        if epoch == 2:
            raise Killed  # after epochs 0-1 and their checkpoint, before epoch 2 wrote anything
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", dies_in_epoch_2)
    with pytest.raises(Killed):
        train(load_config(overrides=tiny_overrides(cache_dir, tmp_path / "killed", **extra)))
    monkeypatch.setattr(Trainer, "run_epoch", original)

    def must_not_run(trainer):
        raise AssertionError("the resumed run retrained its irreducible-loss models")

    monkeypatch.setattr(irreducible, "irreducible_losses", must_not_run)
    resumed = resume(tmp_path / "killed" / "k", progress=False)
    assert resumed["test"] == straight["test"] and resumed["val"] == straight["val"]
    for group in ("forwards", "backwards", "flops"):
        assert resumed["cost"][group] == straight["cost"][group]
    assert resumed["cost"]["effective_epochs"] == straight["cost"]["effective_epochs"]
    a = torch.load(tmp_path / "straight" / "k" / "checkpoints" / "last.pt", weights_only=True)["bank"]["irreducible"]
    b = torch.load(tmp_path / "killed" / "k" / "checkpoints" / "last.pt", weights_only=True)["bank"]["irreducible"]
    assert torch.equal(a.nan_to_num(-1), b.nan_to_num(-1))


def test_erts_rho_loss_filters_the_rules_candidates(cache_dir, tmp_path, one_thread):
    train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, name="e", **{**RHO, "method": "erts-rho-loss"})))
    logs = selection_logs(tmp_path / "e")
    s = logs[1]  # a select epoch with the filter (gradcam_start=1)
    for start in range(0, len(s["index"]), 32):  # per batch: the filter ranks every candidate of a pool of 2+
        cand, ranked = s["pdd_keep"][start:start + 32], s["filter_cand"][start:start + 32]
        assert (ranked == cand).all() if cand.sum() > 1 else not ranked.any()
    assert (s["erts_keep"] <= s["pdd_keep"]).all() and (s["pdd_keep"] & ~s["erts_keep"]).sum() > 0
    assert np.isfinite(s["focus"][s["filter_cand"]]).all() and not np.isfinite(s["focus"][~s["filter_cand"]]).any()


def test_rho_loss_settings_are_checked():
    with pytest.raises(ConfigError, match="rho_keep"):
        load_config(overrides={"method": "rho-loss", "rho_keep": 0})
    with pytest.raises(ConfigError, match="rho_il_epochs"):
        load_config(overrides={"method": "rho-loss", "rho_il_epochs": 0})
    assert load_config(overrides={"method": "erts-rho-loss"}).selection.granularity == "batch"


def test_own_loop_without_irreducible_losses_says_what_to_do():
    from erts.selection.dropout import DataDropout

    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    dd = DataDropout(model, "rho-loss", num_samples=10, epochs=4, warmup_epochs=0, revision_epoch=3)
    x, y, idx = torch.randn(4, 1, 8), torch.tensor([0, 1, 2, 0]), torch.arange(4)
    with pytest.raises(RuntimeError, match="set_irreducible_loss"):
        dd.select(x, y, idx, epoch=1)
    dd.set_irreducible_loss(torch.arange(10), torch.zeros(10))
    xs, ys, ids, w = dd.select(x, y, idx, epoch=1)
    assert len(ids) == 1  # max(1, int(4 * 0.1))
