"""The literature's rules (InfoBatch, Selective-Backprop's loss-topk, EL2N), the score bank, score_source."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import tiny_overrides
from erts.config import SelectionConfig, load_config
from erts.selection import PoolScores, Selector
from erts.selection.rules import infobatch_keep, loss_percentile_keep, top_fraction_keep
from erts.train.loop import el2n, resume, train


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_infobatch_rescaling_is_unbiased():
    """On a fixed model, the expected sum of rescaled per-sample gradients over InfoBatch's random
    pruning equals the full-data sum: E[sum_kept w_i g_i] = sum_i g_i."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    model = nn.Linear(5, 3)
    per_sample = nn.functional.cross_entropy(model(x), y, reduction="none")
    grads = torch.stack([torch.autograd.grad(l, model.weight, retain_graph=True)[0].flatten() for l in per_sample])
    full = grads.sum(0)
    loss = per_sample.detach()
    mean, r, draws = float(loss.mean()), 0.5, 4000
    acc = torch.zeros_like(full)
    g = gen(1)
    for _ in range(draws):
        keep, weight, hard = infobatch_keep(loss, mean, r, g)
        acc += (weight[keep, None] * grads[keep]).sum(0)
    # every draw keeps all above-mean samples and about half of the others, with weight 2
    torch.testing.assert_close(acc / draws, full, atol=0.05 * float(full.abs().max()), rtol=0)
    keep, weight, hard = infobatch_keep(loss, mean, r, gen(2))
    assert hard.tolist() == (loss >= mean).tolist() and keep[hard].all()
    assert set(weight[keep & ~hard].tolist()) <= {2.0} and (weight[hard] == 1).all()


def test_loss_percentile_keep_follows_the_cdf():
    """The official percentile_of_score: the share of the history strictly below the loss."""
    history = torch.arange(1.0, 101.0)                     # losses 1..100
    loss = torch.tensor([100.0, 50.0, 0.5, 101.0])         # 99, 49, 0 and 100 of the 100 below
    rates = torch.stack([loss_percentile_keep(loss, history, 1.0, gen(i)) for i in range(4000)]).float().mean(0)
    assert rates[2] == 0.0 and rates[3] == 1.0
    assert abs(float(rates[0]) - 0.99) < 0.01 and abs(float(rates[1]) - 0.49) < 0.03
    rates2 = torch.stack([loss_percentile_keep(loss, history, 2.0, gen(i)) for i in range(4000)]).float().mean(0)
    assert abs(float(rates2[1]) - 0.49 ** 2) < 0.03        # beta = 2


def test_el2n_and_its_top_fraction():
    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))
    y = torch.tensor([0, 0])
    # ||(0.7-1, 0.2, 0.1)|| = sqrt(0.09 + 0.04 + 0.01); ||(0.1-1, 0.1, 0.8)|| = sqrt(0.81 + 0.01 + 0.64)
    torch.testing.assert_close(el2n(logits, y, False), torch.tensor([math.sqrt(0.14), math.sqrt(1.46)]))
    assert top_fraction_keep(torch.tensor([0.1, 0.9, 0.5, 0.7]), 0.5).tolist() == [False, True, False, True]


def test_erts_on_infobatch_filters_only_the_above_mean_samples():
    sel = Selector(SelectionConfig(method="erts-infobatch", warmup_epochs=0, gradcam_start=0, phi=0.5,
                                   infobatch_r=0.0), 10)
    loss = torch.tensor([0.1, 0.2, 2.0, 3.0, 4.0, 5.0])   # mean 2.383: samples 3, 4, 5 are hard
    p = torch.tensor([0.9, 0.9, 0.5, 0.2, 0.2, 0.2])
    member = torch.nn.functional.one_hot(torch.zeros(6, dtype=torch.long), 1).bool()
    s = PoolScores(p, p > 0.5, member, loss=loss, loss_mean=float(loss.mean()))

    def focus_fn(cand):
        assert cand.tolist() == [False, False, False, True, True, True]
        s.focus = torch.tensor([float("nan")] * 3 + [0.9, 0.1, 0.5])

    out = sel.select(1, member, s, gen(), focus_fn=focus_fn)
    # r = 0: every below-mean sample kept (weight 1/(1-0) = 1); of the 3 hard ones int(0.5 * 3) = 1 by
    # (1 - p) * focus = .72 .08 .40 -> sample 3, then class rescue keeps nothing more (class covered)
    assert out.keep.tolist() == [True, True, True, True, False, False]


def run(cache_dir, out, **extra):
    return train(load_config(overrides=tiny_overrides(cache_dir, out, **extra)))


@pytest.mark.parametrize("method, granularity", [
    ("infobatch", "batch"), ("erts-infobatch", "epoch"), ("erts-infobatch", "batch"),
    ("loss-topk", "batch"), ("erts-loss-topk", "epoch"), ("el2n", "epoch"), ("erts-el2n", "batch"),
])
def test_each_literature_rule_runs_end_to_end(cache_dir, tmp_path, method, granularity):
    m = run(cache_dir, tmp_path, method=method, granularity=granularity, epochs=4, name="r")
    log = pd.read_csv(tmp_path / "r" / "log.csv")
    sel = [dict(np.load(tmp_path / "r" / "selection" / f"epoch_{e:03d}.npz")) for e in range(4)]
    select = [e for e in range(4) if log.phase[e] == "select"]
    assert select and any(sel[e]["updated"].sum() < len(sel[e]["updated"]) for e in select)
    rule = method.removeprefix("erts-")
    c = m["cost"]
    if rule == "infobatch":  # scores from the training forward: no scoring pass at all
        assert c["forwards"]["scoring"] == 0
        e = select[-1]
        w = sel[e]["weight"][sel[e]["updated"]]
        assert set(np.round(w, 6).tolist()) <= {1.0, 2.0} and (w == 2.0).any()
    elif rule == "el2n":  # a static score: one pass, at the first select epoch
        assert log.forwards_scoring[select[0]] == log.n_train[0]
        assert log.forwards_scoring.sum() == log.n_train[0]
    else:
        assert (log.forwards_scoring[select] > 0).all()
    if method.startswith("erts"):
        assert any((sel[e]["pdd_keep"] & ~sel[e]["erts_keep"]).any() for e in select)


def test_score_bank_keeps_unseen_scores_and_rescoring_refreshes_them(cache_dir, tmp_path):
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="infobatch", epochs=6,
                                               granularity="epoch"))
    t = Trainer(cfg, load_dataset(cfg.data), tmp_path / "r", progress=False)
    t.run_epoch(0)
    before = t.bank.loss.clone()
    t.run_epoch(1)
    log = dict(np.load(tmp_path / "r" / "selection" / "epoch_001.npz"))
    pruned = torch.from_numpy(log["index"][~log["updated"]])
    trained = torch.from_numpy(log["index"][log["updated"]])
    assert len(pruned) > 0
    assert torch.equal(t.bank.loss[pruned], before[pruned])          # pruned samples keep their old score
    assert not torch.equal(t.bank.loss[trained], before[trained])    # trained ones were refreshed
    assert (t.bank.seen_epoch[pruned] == 0).all() and (t.bank.seen_epoch[trained] == 1).all()
    # rescore_every=1: a scoring pass over every sample at each select epoch refreshes the whole bank
    cfg2 = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="infobatch", epochs=6,
                                                granularity="epoch", rescore_every=1))
    t2 = Trainer(cfg2, load_dataset(cfg2.data), tmp_path / "r2", progress=False)
    t2.run_epoch(0)
    t2.run_epoch(1)
    assert (t2.bank.seen_epoch[t2.idx["train"]] == 1).all()
    assert t2.cost.forwards["scoring"] == len(t2.idx["train"])


def test_resume_restores_the_score_bank_exactly(cache_dir, tmp_path, monkeypatch):
    """A run interrupted after epoch 1 and resumed equals an uninterrupted one (InfoBatch's decisions
    depend on the bank: a bank lost on resume would change them)."""
    from erts.train.loop import Trainer

    extra = dict(method="infobatch", epochs=5, name="k")
    straight = run(cache_dir, tmp_path / "a", **extra)
    original = Trainer.run_epoch

    def interrupted(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "run_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(cache_dir, tmp_path / "b", **extra)
    monkeypatch.setattr(Trainer, "run_epoch", original)
    resumed = resume(tmp_path / "b" / "k", progress=False)
    assert resumed["test"] == straight["test"] and resumed["cost"]["effective_epochs"] == straight["cost"]["effective_epochs"]
    for e in range(5):
        a = np.load(tmp_path / "a" / "k" / "selection" / f"epoch_{e:03d}.npz")
        b = np.load(tmp_path / "b" / "k" / "selection" / f"epoch_{e:03d}.npz")
        np.testing.assert_array_equal(a["updated"], b["updated"])


class NoNormNet(nn.Module):
    """A plain 1-D CNN without BatchNorm or dropout: train and eval mode compute the same function."""

    def __init__(self, leads: int, k: int):
        super().__init__()
        from erts.models.heads import ClassifierHead

        self.backbone = nn.Sequential(nn.Conv1d(leads, 16, 7, padding=3), nn.ReLU(), nn.Conv1d(16, 16, 5, stride=2), nn.ReLU())
        self.head = ClassifierHead(16, k)
        self.num_classes, self.is_2d = k, False

    def forward_features(self, x):
        return self.backbone(x)

    def forward_head(self, f):
        return self.head(f)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def get_layer(self, name):
        return self.backbone[2]


def test_score_source_update_equals_an_eval_pass_without_batchnorm(cache_dir, tmp_path):
    """p, loss and fast-path focus taken from the update's own forward equal a separate eval-mode
    scoring pass on the same weights (no BatchNorm, no dropout: the modes compute the same)."""
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", score_source="update"))
    rs = load_dataset(cfg.data)
    t = Trainer(cfg, rs, tmp_path / "r", progress=False)
    t.model = NoNormNet(rs.num_leads, rs.num_classes)
    t.dd.set_model(t.model)
    t.opt = torch.optim.SGD(t.model.parameters(), lr=0.1)
    ids = t.idx["train"][:48]
    x = t.data.x(ids)
    ref = t.score(ids, want_focus=True, x=x)                  # eval-mode pass (writes the bank too)
    t.bank.p.zero_()
    t.bank.focus.fill_(float("nan"))
    t.update(ids, x, epoch=3)                                  # the bank now holds the update's values
    torch.testing.assert_close(t.bank.p[ids], ref.p)
    torch.testing.assert_close(t.bank.loss[ids], ref.loss)
    torch.testing.assert_close(t.bank.focus[ids], ref.focus_all)
    assert (t.bank.seen_epoch[ids] == 3).all()


def test_candidates_without_a_banked_focus_get_one_computed(cache_dir, tmp_path):
    """erts-infobatch with no warm-up: at its first epoch the bank has no focus yet, so the filter's
    candidates are explained on the spot (at the last stage: a forward, no backward) instead of
    being ranked by NaN."""
    run(cache_dir, tmp_path, method="erts-infobatch", warmup_epochs=0, gradcam_start=0, epochs=3, name="r")
    s = np.load(tmp_path / "r" / "selection" / "epoch_000.npz")
    dropped = s["pdd_keep"] & ~s["erts_keep"]
    assert dropped.any() and np.isfinite(s["focus"]).sum() > dropped.sum()
    assert np.isfinite(s["focus"][dropped]).all()       # every drop was ranked on a real focus score
