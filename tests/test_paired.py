"""The paired two-level bootstrap (erts.eval.paired): its AUROC against scikit-learn's, its point
estimate against per-seed differences computed independently, and that pairing is what it claims."""
import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from erts.eval.paired import paired_bootstrap, weighted_auroc
from erts.eval.bootstrap import bootstrap_macro_auroc


def _logits(rng, y, quality: float, n_seeds: int) -> list[np.ndarray]:
    """Logits that track the labels by ``quality``, one noisy run per seed."""
    return [quality * (2 * y - 1) + rng.normal(0, 1, y.shape) for _ in range(n_seeds)]


def _runs(rng, y, quality: float, n_seeds: int) -> list[np.ndarray]:
    return [(1 / (1 + np.exp(-z))).round(2) for z in _logits(rng, y, quality, n_seeds)]


def test_weighted_auroc_is_scikit_learns_on_the_resample_it_stands_for():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    scores = rng.integers(0, 20, 300) / 20  # many ties
    assert weighted_auroc(y, scores, np.ones((1, 300)))[0] == pytest.approx(roc_auc_score(y, scores))
    w = rng.multinomial(300, np.full(300, 1 / 300), size=4).astype(float)
    got = weighted_auroc(y, scores, w)
    for b in range(4):
        idx = np.repeat(np.arange(300), w[b].astype(int))
        assert got[b] == pytest.approx(roc_auc_score(y[idx], scores[idx]))
    assert np.isnan(weighted_auroc(np.zeros(300, bool), scores, np.ones((1, 300))))[0]


def test_the_point_is_the_mean_over_seeds_of_each_seeds_difference():
    rng = np.random.default_rng(1)
    y = (rng.random((500, 4)) < [0.4, 0.2, 0.1, 0.3]).astype(int)
    a, b = _runs(rng, y, 0.5, 3), _runs(rng, y, 0.4, 3)
    r = paired_bootstrap(y, a, b, n_boot=400)
    want = np.mean([roc_auc_score(y, pa, average="macro") - roc_auc_score(y, pb, average="macro")
                    for pa, pb in zip(a, b)])
    assert r["diff"] == pytest.approx(want)
    assert r["ci_low"] < r["diff"] < r["ci_high"] and r["n_seeds"] == 3 and r["n_boot"] == 400
    th = [np.full(4, 0.4)] * 3
    f = paired_bootstrap(y, a, b, metric="macro_f1", thresholds_a=th, thresholds_b=th, n_boot=200)
    want_f1 = np.mean([f1_score(y, pa >= 0.4, average="macro") - f1_score(y, pb >= 0.4, average="macro")
                       for pa, pb in zip(a, b)])
    assert f["diff"] == pytest.approx(want_f1)


def test_identical_configurations_differ_by_nothing():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 400)
    probs = [rng.dirichlet(np.ones(3), 400) for _ in range(2)]
    r = paired_bootstrap(y, probs, probs, n_boot=300)
    assert (r["diff"], r["ci_low"], r["ci_high"], r["p"]) == (0.0, 0.0, 0.0, 1.0)


LIFT = 0.05


def test_pairing_finds_a_small_gain_that_two_separate_intervals_cannot():
    """A is B plus a small lift on the positives of every record: each run's own interval overlaps the
    other's by far, the paired interval excludes zero (the records hard for both cancel)."""
    rng = np.random.default_rng(3)
    y = (rng.random((800, 3)) < [0.3, 0.2, 0.15]).astype(int)
    z = _logits(rng, y, 0.35, 3)
    b = [1 / (1 + np.exp(-v)) for v in z]
    a = [1 / (1 + np.exp(-(v + LIFT * y))) for v in z]
    r = paired_bootstrap(y, a, b, n_boot=500)
    assert r["ci_low"] > 0 and r["p"] < 0.01
    one_a, one_b = bootstrap_macro_auroc(y, a[0], n_boot=300), bootstrap_macro_auroc(y, b[0], n_boot=300)
    assert one_a["ci_low"] < one_b["ci_high"]  # unpaired, the two runs' intervals overlap
    # and two configurations of the same quality are not told apart
    same = paired_bootstrap(y, _runs(rng, y, 0.35, 3), _runs(rng, y, 0.35, 3), n_boot=500)
    assert same["ci_low"] < 0 < same["ci_high"] and same["p"] > 0.05


def test_runs_tested_on_other_records_are_refused():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, (100, 2))
    with pytest.raises(ValueError, match="same records"):
        paired_bootstrap(y, [rng.random((100, 2))], [rng.random((90, 2))])
    with pytest.raises(ValueError, match="one of each per seed"):
        paired_bootstrap(y, [rng.random((100, 2))] * 2, [rng.random((100, 2))])
