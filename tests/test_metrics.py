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


def test_absent_class_counts_zero_f1_and_is_skipped_in_auroc():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[.9, .05, .05], [.6, .3, .1], [.2, .7, .1], [.3, .3, .4]])
    m = compute_metrics(y, probs, ["a", "b", "c"])
    assert m["per_class_f1"]["c"] == 0.0
    assert m["macro_f1"] == pytest.approx(f1_score(y, probs.argmax(1), labels=[0, 1, 2], average="macro",
                                                   zero_division=0))
    expected_auc = np.mean([roc_auc_score(y == c, probs[:, c]) for c in (0, 1)])
    assert m["macro_auroc"] == pytest.approx(expected_auc)


def test_cinc2017_score_is_mean_f1_over_nao():
    y = np.array([0, 1, 2, 3, 0, 2])
    probs = np.eye(4)[[0, 1, 2, 0, 0, 1]] * 0.9 + 0.025
    m = compute_metrics(y, probs, ["N", "A", "O", "~"])
    pc = m["per_class_f1"]
    assert m["f1_nao"] == pytest.approx((pc["N"] + pc["A"] + pc["O"]) / 3)


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
