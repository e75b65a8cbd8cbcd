"""Semantics of the PDD rules, the ERTS filter and their schedule (METHOD.md sec. 1-2)."""
import math

import pytest
import torch

from erts.config import SelectionConfig
from erts.selection import PoolScores, Selector
from erts.selection.rules import (class_rescue, dbpd_keep, filter_count, focus_rank_keep, focus_threshold_keep,
                                  random_keep, srd_count)
from erts.selection.schedule import resolve_schedule


def onehot(y, k):
    return torch.nn.functional.one_hot(torch.tensor(y), k).bool()


def scores(p, y, k=3, correct=None, focus=None):
    p = torch.tensor(p, dtype=torch.float32)
    correct = torch.tensor(correct) if correct is not None else p > 0.5
    return PoolScores(p, correct, onehot(y, k), focus=None if focus is None else torch.tensor(focus, dtype=torch.float32))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_dbpd_keeps_exactly_p_below_tau():
    p = torch.tensor([0.1, 0.29, 0.3, 0.31, 0.9])
    assert dbpd_keep(p, p > 0.5, 0.3).tolist() == [True, True, False, False, False]


def test_dbpd_tau_zero_keeps_misclassified():
    p = torch.tensor([0.1, 0.4, 0.6, 0.45])
    correct = torch.tensor([False, True, True, False])  # multi-class: p=0.4 can be the argmax
    assert dbpd_keep(p, correct, 0.0).tolist() == [True, False, False, True]


def test_smrd_keeps_as_many_as_dbpd():
    cfg = SelectionConfig(method="smrd", warmup_epochs=0, class_rescue="off")
    sel = Selector(cfg, epochs=10)
    s = scores([0.1, 0.2, 0.5, 0.9, 0.05, 0.7, 0.25, 0.8], [0, 1, 2, 0, 1, 2, 0, 1])
    n_dbpd = int((s.p < 0.3).sum())
    keeps = [sel.pdd_candidates(1, s.member, s, gen(i))[0] for i in range(20)]
    assert all(int(k.sum()) == n_dbpd for k in keeps)
    assert len({tuple(k.tolist()) for k in keeps}) > 1  # random, not DBPD's own choice


# ceil(0.9^epoch * 200): 200; 180; 0.9^7 * 200 = 95.66 -> 96; 0.9^30 * 200 = 8.48 -> 9
@pytest.mark.parametrize("epoch, expected", [(0, 200), (1, 180), (7, 96), (30, 9)])
def test_srd_fraction_follows_gamma(epoch, expected):
    n, gamma = 200, 0.9
    assert srd_count(n, gamma, epoch) == expected
    cfg = SelectionConfig(method="srd", warmup_epochs=0, gamma=gamma)
    sel = Selector(cfg, epochs=100)
    keep, _ = sel.pdd_candidates(epoch, onehot([i % 3 for i in range(n)], 3), None, gen())
    assert int(keep.sum()) == expected


def test_warmup_and_revision_train_on_everything():
    cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=3, revision_epoch=6, gradcam_start=6)
    sel = Selector(cfg, epochs=10)
    assert [sel.phase(e) for e in range(10)] == ["warmup"] * 3 + ["select"] * 3 + ["revision"] * 4
    assert not any(sel.needs_scores(e) for e in (0, 1, 2, 6, 9))
    s = scores([0.9, 0.9, 0.9], [0, 1, 2])
    for e in (0, 2, 6, 9):
        assert sel.pdd_candidates(e, s.member, s, gen())[0].all()
    assert [sel.erts_active(e) for e in range(10)] == [False] * 10  # Grad-CAM start 6 == revision
    sel2 = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=1, gradcam_start=2, revision_epoch=5), 10)
    assert [sel2.erts_active(e) for e in range(6)] == [False, False, True, True, True, False]


@pytest.mark.parametrize("epochs, expected", [
    # (warm-up, Grad-CAM start, revision): 5 %, 8 %, 50 % rounded up, each phase at least one epoch
    (100, (5, 8, 50)),   # the published 5 / 8 / 50
    (30, (2, 3, 15)),    # 1.5 -> 2, 2.4 -> 3, 15
    (20, (1, 2, 10)),    # 1, 1.6 -> 2, 10
    (12, (1, 2, 6)),     # the old defaults (5, 8, 6) left no ERTS epoch here
    (4, (1, 2, 3)),      # 0.2 -> 1, then one epoch each
])
def test_default_schedule_follows_published_proportions(epochs, expected):
    sel = Selector(SelectionConfig(method="erts-dbpd"), epochs=epochs)
    assert (sel.warmup_epochs, sel.gradcam_start, sel.revision_epoch) == expected
    w, g, r = expected
    assert [e for e in range(epochs) if sel.erts_active(e)] == list(range(g, r))
    assert [sel.phase(e) for e in range(epochs)] == ["warmup"] * w + ["select"] * (r - w) + ["revision"] * (epochs - r)


def test_explicit_schedule_values_win():
    s = resolve_schedule("erts-dbpd", 12, 3, None, 9)
    assert (s.warmup, s.gradcam_start, s.revision) == (3, 4, 9)  # Grad-CAM: max(warm-up + 1, ceil(0.96))
    assert resolve_schedule("dbpd", 100, None, None, 70).revision == 70
    assert resolve_schedule("erts-dbpd", 30, None, None, None).describe() == \
        "warm-up 0-1, select 2-14, ERTS 3-14, revision 15-29"
    assert resolve_schedule("dbpd", 20, None, None, None).describe() == "warm-up 0, select 1-9, revision 10-19"


def test_config_rejects_a_schedule_without_erts_epochs():
    from erts.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"no ERTS epoch: epochs=12, warmup_epochs=5, gradcam_start=8, revision_epoch=6"):
        load_config(overrides=["method=erts-dbpd", "epochs=12", "warmup_epochs=5", "gradcam_start=8",
                               "revision_epoch=6"])
    with pytest.raises(ConfigError, match="selects in no epoch"):
        load_config(overrides=["method=dbpd", "epochs=10", "warmup_epochs=10"])
    load_config(overrides=["method=erts-dbpd"])  # the defaults run ERTS
    load_config(overrides=["method=full", "epochs=1"])  # full needs no schedule


def test_full_never_selects():
    sel = Selector(SelectionConfig(method="full"), epochs=10)
    assert not any(sel.needs_scores(e) or sel.erts_active(e) for e in range(10))


def test_class_rescue_keeps_most_useful_sample_of_wiped_class():
    # class 2 is entirely confident -> DBPD drops it; rescue keeps its lowest-p sample
    cfg = SelectionConfig(method="dbpd", warmup_epochs=0)
    sel = Selector(cfg, epochs=10)
    s = scores([0.1, 0.2, 0.95, 0.8, 0.2], [0, 1, 2, 2, 0])
    keep, rescued = sel.pdd_candidates(1, s.member, s, gen())
    assert keep.tolist() == [True, True, False, True, True]
    assert rescued.tolist() == [False, False, False, True, False]
    sel_off = Selector(SelectionConfig(method="dbpd", warmup_epochs=0, class_rescue="off"), 10)
    assert sel_off.pdd_candidates(1, s.member, s, gen())[0].tolist() == [True, True, False, False, True]


def test_published_rescue_semantics_per_rule():
    """xai-ecg-dropout @133e7b9: a pool whose rule keeps nobody is skipped (no rescue); only plain DBPD
    rescues at the rule; SMRD and SRD never; ERTS rescues among the hard candidates only."""
    easy = scores([0.9, 0.8, 0.95, 0.7], [0, 1, 2, 2])               # nobody below tau = 0.3
    for method in ("dbpd", "smrd", "erts-dbpd", "erts-smrd"):
        sel = Selector(SelectionConfig(method=method, warmup_epochs=0), 10)
        keep, rescued = sel.pdd_candidates(1, easy.member, easy, gen())
        assert not keep.any() and not rescued.any(), method
        assert not sel.select(1, easy.member, easy, gen(), focus_fn=None).keep.any(), method
    # erts 0.1 behaviour, kept as class_rescue=always: every class present is rescued anyway
    always = Selector(SelectionConfig(method="dbpd", warmup_epochs=0, class_rescue="always"), 10)
    assert always.pdd_candidates(1, easy.member, easy, gen())[0].tolist() == [True, True, False, True]
    # one hard sample of class 0: plain DBPD rescues classes 1 and 2, ERTS-DBPD's candidates are not rescued
    mixed = scores([0.1, 0.8, 0.95, 0.7], [0, 1, 2, 2])
    dbpd = Selector(SelectionConfig(method="dbpd", warmup_epochs=0), 10)
    assert dbpd.pdd_candidates(1, mixed.member, mixed, gen())[0].tolist() == [True, True, False, True]
    erts = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=0, gradcam_start=5), 10)
    assert erts.pdd_candidates(1, mixed.member, mixed, gen())[0].tolist() == [True, False, False, False]
    srd = Selector(SelectionConfig(method="srd", warmup_epochs=0, gamma=0.5), 10)
    member = onehot([0, 0, 0, 0, 1, 1, 1, 1], 2)
    counts = {int(srd.pdd_candidates(1, member, None, gen(i))[0].sum()) for i in range(10)}
    assert counts == {4}  # ceil(0.5 * 8) = 4, even when a class is wiped out


def test_filter_keeps_int_phi_n_at_least_one():
    # published: k = max(1, int(len * cam_keep_frac)); with 3 candidates and phi = 0.7 one is dropped
    assert [filter_count(n, 0.7) for n in range(0, 8)] == [0, 1, 1, 2, 2, 3, 4, 4]
    assert [filter_count(n, 0.7, "ceil") for n in range(0, 8)] == [0, 1, 2, 3, 3, 4, 5, 5]
    assert filter_count(10, 0.7) == 7 and filter_count(10, 0.9) == 9 and filter_count(20, 0.5) == 10
    cand = torch.tensor([True, True, True])
    keep = focus_rank_keep(cand, torch.tensor([0.1, 0.2, 0.0]), torch.tensor([0.5, 0.9, 0.1]), 0.7)
    assert keep.tolist() == [True, True, False]  # (1-p)*focus = .45 .72 .10 -> top 2


def test_single_candidate_is_kept_without_gradcam():
    sel = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=0, gradcam_start=0), 10)
    s = scores([0.1, 0.9, 0.9], [0, 1, 1], k=2)
    calls = []
    out = sel.select(1, s.member, s, gen(), focus_fn=calls.append)
    assert out.keep.tolist() == [True, False, False] and calls == []


def test_smrd_matches_dbpds_final_count_including_rescue():
    # DBPD: sample 0 is hard; classes 1 and 2 are wiped and rescued -> 3 kept. SMRD keeps 3, not 1,
    # and adds no rescue of its own (its size must stay matched)
    s = scores([0.1, 0.8, 0.95, 0.7, 0.6, 0.9], [0, 1, 2, 2, 1, 0])
    dbpd = Selector(SelectionConfig(method="dbpd", warmup_epochs=0), 10)
    assert int(dbpd.pdd_candidates(1, s.member, s, gen())[0].sum()) == 3
    smrd = Selector(SelectionConfig(method="smrd", warmup_epochs=0), 10)
    for i in range(20):
        keep, rescued = smrd.pdd_candidates(1, s.member, s, gen(i))
        assert int(keep.sum()) == 3 and not rescued.any()
    # erts-smrd matches erts-dbpd's candidates, which are not rescued: 1
    esmrd = Selector(SelectionConfig(method="erts-smrd", warmup_epochs=0, gradcam_start=5), 10)
    assert int(esmrd.pdd_candidates(1, s.member, s, gen())[0].sum()) == 1
    # a replayed count wins
    assert int(smrd.pdd_candidates(1, s.member, s, gen(), count=5)[0].sum()) == 5


def test_class_rescue_ignores_absent_classes_and_multilabel():
    member = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=torch.bool)  # class 2 absent
    keep = torch.tensor([False, False, False])
    out = class_rescue(keep, member, torch.tensor([0.1, 0.5, 0.9]))
    # class 0 -> sample 1 (0.5 > 0.1), class 1 -> sample 2 (0.9)
    assert out.tolist() == [False, True, True]


def test_phi_keeps_right_count_by_rank():
    cand = torch.tensor([True, True, True, True, False, True])
    p = torch.tensor([0.1, 0.1, 0.2, 0.0, 0.0, 0.1])
    focus = torch.tensor([0.9, 0.1, 0.5, 0.3, 1.0, 0.8])
    # (1-p)*focus = .81 .09 .40 .30 (not cand) .72 -> top ceil(0.6*5)=3: idx 0, 5, 2
    keep = focus_rank_keep(cand, p, focus, 0.6)
    assert keep.tolist() == [True, False, True, False, False, True]
    # int(phi * 5), at least one
    assert [int(focus_rank_keep(cand, p, focus, phi).sum()) for phi in (0.1, 0.5, 0.7, 0.9, 1.0)] == [1, 2, 3, 4, 5]
    assert not focus_rank_keep(torch.zeros(6, dtype=torch.bool), p, focus, 0.7).any()


def test_focus_threshold_mode():
    cand = torch.tensor([True, True, False])
    assert focus_threshold_keep(cand, torch.tensor([0.6, 0.4, 0.9]), 0.5).tolist() == [True, False, False]


def test_erts_filter_rescues_class_among_candidates():
    cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=0, phi=0.5)
    sel = Selector(cfg, 10)
    s = scores([0.1, 0.1, 0.1, 0.1, 0.9], [0, 0, 0, 1, 1], k=2, focus=[0.9, 0.8, 0.7, 0.1, 0.9])
    cand = torch.tensor([True, True, True, True, False])
    keep, rescued = sel.focus_filter(cand, s)
    # top int(0.5 * 4) = 2 by (1-p)*focus, then class 1 rescued among the candidates (sample 3, not
    # the confident non-candidate 4)
    assert keep.tolist() == [True, True, False, True, False]
    assert rescued.tolist() == [False, False, False, True, False]


def test_multilabel_rescue_ranks_by_the_class_own_probability():
    """Class 1 is wiped out; sample 0 has the lower overall p (another label unlearned) but sample 1
    is the one whose class-1 probability is lowest, so sample 1 is rescued."""
    member = torch.tensor([[1, 1], [0, 1], [1, 0]], dtype=torch.bool)
    p_label = torch.tensor([[0.05, 0.6], [0.9, 0.5], [0.1, 0.9]])   # prob. of each class's correct label
    p = p_label.min(1).values                                         # 0.05, 0.5, 0.1
    s = PoolScores(p, p_label.gt(0.5).all(1), member, p_label=p_label)
    keep = torch.tensor([False, False, True])                         # class 0 covered by sample 2
    assert class_rescue(keep, member, s.usefulness()).tolist() == [False, True, True]
    assert class_rescue(keep, member, 1 - p).tolist() == [True, False, True]  # by overall p: sample 0


def test_random_keep_is_seeded():
    a = random_keep(50, 10, gen(3))
    b = random_keep(50, 10, gen(3))
    assert torch.equal(a, b) and int(a.sum()) == 10


def test_class_prior_weights_restore_each_class_share_of_the_update():
    from erts.selection.rules import class_prior_weights

    # pool: 2 of class 0 (share 1/4), 6 of class 1 (3/4); kept: 2 of each (1/2 each)
    keep = torch.tensor([1, 1, 1, 0, 0, 0, 0, 1], dtype=torch.bool)
    member = onehot([0, 0, 1, 1, 1, 1, 1, 1], 2)
    w = class_prior_weights(keep, member)
    # class 0: (1/4) / (1/2) = 0.5; class 1: (3/4) / (1/2) = 1.5
    assert w[keep].tolist() == [0.5, 0.5, 1.5, 1.5]
    assert float(w[keep].sum()) == 4.0                 # shares: 2 * 0.5 / 4 = 1/4, 2 * 1.5 / 4 = 3/4
    sel = Selector(SelectionConfig(method="dbpd", warmup_epochs=0, kept_weighting="prior", class_rescue="off"), 10)
    s = scores([0.1, 0.2, 0.1, 0.9, 0.9, 0.9, 0.9, 0.2], [0, 0, 1, 1, 1, 1, 1, 1], k=2)
    out = sel.select(1, s.member, s, gen())
    assert out.keep.tolist() == keep.tolist() and out.weight[out.keep].tolist() == [0.5, 0.5, 1.5, 1.5]
    assert sel.reweights(1)


def test_easy_keep_keeps_dropped_samples_at_rate_q_with_weight_1_over_q():
    sel = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=0, gradcam_start=5, easy_keep=0.25), 10)
    n = 4000
    p = torch.cat([torch.full((1000,), 0.1), torch.full((3000,), 0.9)])  # 1,000 hard, 3,000 easy
    s = PoolScores(p, p > 0.5, onehot([0] * n, 1))
    out = sel.select(1, s.member, s, gen())
    hard, easy = out.keep[:1000], out.keep[1000:]
    assert hard.all() and abs(float(easy.float().mean()) - 0.25) < 0.03
    assert (out.weight[:1000] == 1).all() and (out.weight[1000:][easy] == 4.0).all()
    # the weighted count estimates the pool: 1,000 + 4 * (about 750) = about 4,000
    assert abs(float(out.weight[out.keep].sum()) - n) < 200
    assert sel.importance_weighted and sel.reweights(1)


# ---------------------------------------------------------------- reliability: what the filter drops
def filtered(reliability, focus_filter="rank", p=None, focus=None, loss=None, **extra):
    """The focus filter's keep-mask on a hand-made pool of 6 (candidates 0-4; 5 is not a candidate)."""
    cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=0, gradcam_start=0, reliability=reliability,
                          focus_filter=focus_filter, class_rescue="off", phi=0.6, **extra)
    s = PoolScores(torch.tensor(p or [0.1] * 6), torch.zeros(6, dtype=torch.bool), onehot([0] * 6, 2),
                   focus=None if focus is None else torch.tensor(focus),
                   loss=None if loss is None else torch.tensor(loss))
    cand = torch.tensor([True, True, True, True, True, False])
    return Selector(cfg, 10).focus_filter(cand, s)[0].tolist()


MASS = [0.95, 0.15, 0.60, 0.30, 0.80, 0.05]  # concentration of each map (focus_measure=mass)


def test_reliability_focus_keeps_the_most_focused_candidates():
    # (1 - p) * focus with p = 0.1 everywhere: the int(0.6 * 5) = 3 highest focus among 0-4: 0, 4, 2
    assert filtered("focus", focus=MASS) == [True, False, True, False, True, False]
    assert filtered("focus", "threshold", focus=MASS, focus_threshold=0.6) == [True, False, True, False, True, False]


def test_reliability_diffuse_drops_the_maps_locked_onto_one_spot():
    # (1 - p) * (1 - mass): the 3 least concentrated maps 1, 3, 2 are kept; 0 and 4 (mass .95, .80) dropped
    assert filtered("diffuse", focus=MASS, focus_measure="mass") == [False, True, True, True, False, False]
    # threshold: drop every candidate whose mass reaches 0.6
    assert filtered("diffuse", "threshold", focus=MASS, focus_measure="mass",
                    focus_threshold=0.6) == [False, True, False, True, False, False]
    # the confidence still weighs: a candidate the model is sure of (p = 0.95) loses its place
    assert filtered("diffuse", focus=MASS, focus_measure="mass",
                    p=[0.1, 0.95, 0.1, 0.1, 0.1, 0.1]) == [False, False, True, True, True, False]


def test_reliability_loss_drops_the_highest_losses_without_gradcam():
    loss = [3.0, 0.4, 2.2, 1.0, 0.7, 9.0]
    # rank: the 3 lowest losses among the candidates (1, 4, 3); the non-candidate's 9.0 plays no part
    assert filtered("loss", loss=loss) == [False, True, False, True, True, False]
    # threshold: the pool's 0.5 quantile (all six losses: (1.0 + 2.2) / 2 = 1.6) is the bar
    assert filtered("loss", "threshold", loss=loss, loss_quantile=0.5) == [False, True, False, True, True, False]
    # q = 0.9 of the pool: 3.0 + 0.5 * (9.0 - 3.0) = 6.0, every candidate stays
    assert filtered("loss", "threshold", loss=loss, loss_quantile=0.9) == [True] * 5 + [False]
    sel = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=0, gradcam_start=0, reliability="loss"), 10)
    s = scores([0.1, 0.2, 0.25, 0.9], [0, 0, 1, 1], k=2)
    s.loss = torch.tensor([2.3, 1.6, 1.2, 0.1])
    calls = []
    out = sel.select(1, s.member, s, gen(), focus_fn=calls.append)
    assert calls == [] and not sel.cam_active(1)       # no Grad-CAM at all
    assert out.ranked.tolist() == [True, True, True, False]
    assert out.keep.tolist() == [False, True, True, False]  # int(0.7 * 3) = 2 lowest losses: 1.6 and 1.2


def test_filter_rescue_follows_the_reliability_ranking():
    # the filter wipes out one class (focus, loss: class 1 = samples 3, 4; diffuse: class 0 = samples 0-2);
    # its rescue is that class's candidate the setting ranks highest (diffuse: the least concentrated map)
    s = PoolScores(torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1]), torch.zeros(5, dtype=torch.bool), onehot([0, 0, 0, 1, 1], 2),
                   focus=torch.tensor([0.9, 0.8, 0.7, 0.2, 0.1]), loss=torch.tensor([0.1, 0.2, 0.3, 2.0, 1.0]))
    cand = torch.ones(5, dtype=torch.bool)
    for reliability, extra, rescued in (("focus", {}, 3), ("diffuse", {"focus_measure": "mass"}, 2), ("loss", {}, 4)):
        cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=0, phi=0.4, reliability=reliability, **extra)
        keep, res = Selector(cfg, 10).focus_filter(cand, s)
        assert res.tolist() == [i == rescued for i in range(5)], reliability


def test_diffuse_needs_a_concentration_measure():
    from erts.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="focus_measure=mass"):
        load_config(overrides={"method": "erts-dbpd", "reliability": "diffuse"})
    assert load_config(overrides={"method": "erts-dbpd", "reliability": "diffuse",
                                  "focus_measure": "entropy"}).selection.reliability == "diffuse"
