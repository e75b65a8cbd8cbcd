"""Metric values against scikit-learn and hand-made cases."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from erts.eval.metrics import compute_metrics, tune_thresholds


def test_single_label_hand_case():
    y = np.array([0, 0, 1, 1, 2, 2])
    probs = np.array([[.8, .1, .1], [.2, .7, .1], [.1, .8, .1], [.1, .8, .1], [.1, .1, .8], [.6, .2, .2]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    # predictions 0 1 1 1 2 0 -> F1 a=0.5, b=0.8, c=2/3
    assert m["per_class_f1"] == pytest.approx({"a": 0.5, "b": 0.8, "c": 2 / 3})
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), average="macro"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"))


def test_absent_class_is_undefined_not_zero_and_is_skipped_in_auroc():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[.9, .05, .05], [.6, .3, .1], [.2, .7, .1], [.3, .3, .4]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    # predictions 0 0 1 2: a tp=2 -> 1; b tp=1 fn=1 -> 2/3; c has no true record -> undefined (it was predicted once)
    assert m["per_class_f1"]["a"] == pytest.approx(1.0)
    assert m["per_class_f1"]["b"] == pytest.approx(2 / 3)
    assert np.isnan(m["per_class_f1"]["c"])
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)  # not (1 + 2/3 + 0) / 3
    expected_auc = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 1)])
    assert m["macro_auroc"] == pytest.approx(expected_auc)


def test_class_neither_true_nor_predicted_does_not_count():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    m = compute_metrics(y, np.eye(3)[pred] * 0.8 + 0.05, ["a", "b", "c"])
    # a: tp=1 fn=1 -> 2/3; b: tp=2 fp=1 -> 4/5; c: nothing -> NaN
    assert m["per_class_f1"]["a"] == pytest.approx(2 / 3) and m["per_class_f1"]["b"] == pytest.approx(4 / 5)
    assert np.isnan(m["per_class_f1"]["c"])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert m["macro_f1"] == pytest.approx(11 / 15)


def test_present_class_never_predicted_still_scores_zero():
    y = np.array([0, 1, 2])
    m = compute_metrics(y, np.tile([.8, .1, .1], (3, 1)), ["a", "b", "c"])  # everything predicted 'a'
    # a: tp=1 fp=2 -> 2/4; b and c are present but never predicted -> 0 (sklearn semantics)
    assert m["per_class_f1"] == pytest.approx({"a": 0.5, "b": 0.0, "c": 0.0})
    assert m["macro_f1"] == pytest.approx(0.5 / 3)


def test_multilabel_absent_class_is_nan():
    y = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    probs = np.array([[.9, .1, .7], [.2, .8, .1], [.6, .3, .2]])
    m = compute_metrics(y, probs, ["a", "b", "c"], multilabel=True)  # thresholds 0.5
    # pred: [1,0,1], [0,1,0], [1,0,0]; a: tp=2 -> 1; b: tp=1 fn=1 -> 2/3; c: no positive (predicted once) -> NaN
    assert m["per_class_f1"]["a"] == pytest.approx(1.0) and m["per_class_f1"]["b"] == pytest.approx(2 / 3)
    assert np.isnan(m["per_class_f1"]["c"])
    assert m["macro_f1"] == pytest.approx(5 / 6)
    none = compute_metrics(np.zeros((2, 3)), probs[:2], ["a", "b", "c"], multilabel=True)
    assert np.isnan(none["macro_f1"])  # no class present at all: undefined


def test_cinc2017_score_is_mean_f1_over_nao():
    y = np.array([0, 1, 2, 3, 0, 2])
    probs = np.eye(4)[[0, 1, 2, 0, 0, 1]] * 0.9 + 0.025
    m = compute_metrics(y, probs, ["N", "A", "O", "~"])
    pc = m["per_class_f1"]
    assert m["f1_nao"] == pytest.approx((pc["N"] + pc["A"] + pc["O"]) / 3)
    # no AF record in the split: the score averages N and O only
    y2 = np.array([0, 0, 2, 2, 3])
    m2 = compute_metrics(y2, np.eye(4)[[0, 2, 2, 2, 3]] * 0.9 + 0.025, ["N", "A", "O", "~"])
    # N: tp=1 fn=1 -> 2/3; O: tp=2 fp=1 -> 4/5
    assert np.isnan(m2["per_class_f1"]["A"])
    assert m2["f1_nao"] == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_multilabel_thresholds_tuned_then_applied():
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < 0.3).astype(float)
    probs = np.clip(0.25 * y + rng.random((200, 3)) * 0.6, 0, 1)  # positives score higher but below 0.5 often
    th = tune_thresholds(y, probs)
    for c in range(3):  # tuned F1 is at least that of any other candidate threshold
        best = f1_score(y[:, c], probs[:, c] >= th[c])
        for t in (0.2, 0.3, 0.4, 0.5, 0.6):
            assert best >= f1_score(y[:, c], probs[:, c] >= t, zero_division=0) - 1e-12
    m = compute_metrics(y, probs, ["a", "b", "c"], multilabel=True, thresholds=th)
    pred = probs >= th
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["accuracy"] == pytest.approx(np.mean((pred == y).all(1)))
    assert m["macro_auroc"] == pytest.approx(roc_auc_score(y, probs, average="macro"))
