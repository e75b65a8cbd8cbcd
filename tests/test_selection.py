"""Semantics of the PDD rules, the ERTS filter and their schedule (METHOD.md sec. 1-2)."""
import math

import pytest
import torch

from erts.config import SelectionConfig
from erts.selection import PoolScores, Selector
from erts.selection.rules import (class_rescue, dbpd_keep, focus_rank_keep, focus_threshold_keep, random_keep,
                                  srd_count)


def onehot(y, k):
    return torch.nn.functional.one_hot(torch.tensor(y), k).bool()


def scores(p, y, k=3, correct=None, focus=None):
    p = torch.tensor(p, dtype=torch.float32)
    correct = torch.tensor(correct) if correct is not None else p > 0.5
    return PoolScores(p, correct, onehot(y, k), None if focus is None else torch.tensor(focus, dtype=torch.float32))


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
    cfg = SelectionConfig(method="smrd", warmup_epochs=0, class_rescue=False)
    sel = Selector(cfg, epochs=10)
    s = scores([0.1, 0.2, 0.5, 0.9, 0.05, 0.7, 0.25, 0.8], [0, 1, 2, 0, 1, 2, 0, 1])
    n_dbpd = int((s.p < 0.3).sum())
    keeps = [sel.pdd_candidates(1, s.member, s, gen(i)) for i in range(20)]
    assert all(int(k.sum()) == n_dbpd for k in keeps)
    assert len({tuple(k.tolist()) for k in keeps}) > 1  # random, not DBPD's own choice


@pytest.mark.parametrize("epoch", [0, 1, 7, 30])
def test_srd_fraction_follows_gamma(epoch):
    n, gamma = 200, 0.9
    assert srd_count(n, gamma, epoch) == math.ceil(gamma ** epoch * n - 1e-9)
    cfg = SelectionConfig(method="srd", warmup_epochs=0, gamma=gamma, class_rescue=False)
    sel = Selector(cfg, epochs=100)
    keep = sel.pdd_candidates(epoch, onehot([i % 3 for i in range(n)], 3), None, gen())
    assert int(keep.sum()) == math.ceil(gamma ** epoch * n - 1e-9)


def test_warmup_and_revision_train_on_everything():
    cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=3, revision_epoch=6)
    sel = Selector(cfg, epochs=10)
    assert [sel.phase(e) for e in range(10)] == ["warmup"] * 3 + ["select"] * 3 + ["revision"] * 4
    assert not any(sel.needs_scores(e) for e in (0, 1, 2, 6, 9))
    s = scores([0.9, 0.9, 0.9], [0, 1, 2])
    for e in (0, 2, 6, 9):
        assert sel.pdd_candidates(e, s.member, s, gen()).all()
    # Grad-CAM from warmup + 3 by default, but only in select epochs
    assert Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=5), 100).gradcam_start == 8
    assert [sel.erts_active(e) for e in range(10)] == [False] * 6 + [False] * 4  # start 6 == revision
    sel2 = Selector(SelectionConfig(method="erts-dbpd", warmup_epochs=1, gradcam_start=2, revision_epoch=5), 10)
    assert [sel2.erts_active(e) for e in range(6)] == [False, False, True, True, True, False]


def test_revision_defaults_to_half_the_epochs():
    assert Selector(SelectionConfig(method="dbpd"), epochs=100).revision_epoch == 50


def test_full_never_selects():
    sel = Selector(SelectionConfig(method="full"), epochs=10)
    assert not any(sel.needs_scores(e) or sel.erts_active(e) for e in range(10))


def test_class_rescue_keeps_most_useful_sample_of_wiped_class():
    # class 2 is entirely confident -> DBPD drops it; rescue keeps its lowest-p sample
    cfg = SelectionConfig(method="dbpd", warmup_epochs=0, class_rescue=True)
    sel = Selector(cfg, epochs=10)
    s = scores([0.1, 0.2, 0.95, 0.8, 0.2], [0, 1, 2, 2, 0])
    keep = sel.pdd_candidates(1, s.member, s, gen())
    assert keep.tolist() == [True, True, False, True, True]
    sel_off = Selector(SelectionConfig(method="dbpd", warmup_epochs=0, class_rescue=False), 10)
    assert sel_off.pdd_candidates(1, s.member, s, gen()).tolist() == [True, True, False, False, True]


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
    for phi in (0.1, 0.5, 0.7, 0.9, 1.0):
        assert int(focus_rank_keep(cand, p, focus, phi).sum()) == math.ceil(phi * 5 - 1e-9)
    assert not focus_rank_keep(torch.zeros(6, dtype=torch.bool), p, focus, 0.7).any()


def test_focus_threshold_mode():
    cand = torch.tensor([True, True, False])
    assert focus_threshold_keep(cand, torch.tensor([0.6, 0.4, 0.9]), 0.5).tolist() == [True, False, False]


def test_erts_filter_rescues_class_among_candidates():
    cfg = SelectionConfig(method="erts-dbpd", warmup_epochs=0, phi=0.5)
    sel = Selector(cfg, 10)
    s = scores([0.1, 0.1, 0.1, 0.1], [0, 0, 0, 1], k=2, focus=[0.9, 0.8, 0.7, 0.1])
    cand = torch.tensor([True, True, True, True])
    keep = sel.focus_filter(cand, s)
    assert keep.tolist() == [True, True, False, True]  # class 1 rescued beyond the phi count


def test_random_keep_is_seeded():
    a = random_keep(50, 10, gen(3))
    b = random_keep(50, 10, gen(3))
    assert torch.equal(a, b) and int(a.sum()) == 10
