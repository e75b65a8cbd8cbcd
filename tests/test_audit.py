"""erts audit: the metrics against scikit-learn, the signals against hand-made cases, and one tiny
audit of the synthetic set (CSV columns and ranking, metrics recomputed from the CSV, the combined
score beating chance on the planted corruption, the page, reuse of the folds, the CLI's errors)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_overrides
from sklearn.metrics import average_precision_score, roc_auc_score

from erts.audit import signals as sig
from erts.audit.metrics import (bootstrap_ranking, label_matched_auroc, length_matched_auroc, ranking_metrics,
                                weighted_metrics)
from erts.cli.main import main
from erts.errors import ConfigError


# ---------------------------------------------------------------- metrics

def random_case(seed: int, n: int = 300, ties: bool = True):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.15
    score = truth * 0.8 + rng.normal(size=n)
    return truth, np.round(score, 1) if ties else score


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_ap_match_sklearn_with_ties(seed):
    truth, score = random_case(seed)
    m = ranking_metrics(truth, score)
    assert m["auroc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    assert m["ap"] == pytest.approx(average_precision_score(truth, score), abs=1e-12)


def test_weighted_metrics_are_sklearn_with_sample_weight():
    truth, score = random_case(3)
    w = np.random.default_rng(0).multinomial(len(truth), np.full(len(truth), 1 / len(truth)), size=2).astype(float)
    m = weighted_metrics(w, truth, score)
    for b in range(2):
        assert m["auroc"][b] == pytest.approx(roc_auc_score(truth, score, sample_weight=w[b]), abs=1e-12)
        assert m["ap"][b] == pytest.approx(average_precision_score(truth, score, sample_weight=w[b]), abs=1e-12)


def test_top_precision_without_ties_is_the_share_of_wrong_records_in_the_top_k():
    truth, score = random_case(4, n=400, ties=False)
    k = 20  # ceil(0.05 * 400)
    expected = truth[np.argsort(-score)[:k]].mean()
    assert ranking_metrics(truth, score)["top_precision"] == pytest.approx(expected)


def test_top_precision_takes_the_expected_share_within_a_tie_at_the_cut():
    # 40 records, top 5 % = 2: the 9.0 (right) and one of the three tied at 5.0 (one of them wrong)
    score = np.array([9.0, 5.0, 5.0, 5.0] + [1.0] * 36)
    truth = np.array([0, 1, 0, 0] + [1] * 36, dtype=bool)
    assert ranking_metrics(truth, score)["top_precision"] == pytest.approx((0 + 1 / 3) / 2)


def test_bootstrap_interval_holds_the_point_and_is_reproducible():
    truth, score = random_case(5)
    a = bootstrap_ranking(truth, score, n_boot=300, seed=1)
    b = bootstrap_ranking(truth, score, n_boot=300, seed=1)
    assert a == b
    for k in ("auroc", "ap", "top_precision"):
        assert a[f"{k}_low"] <= a[k] <= a[f"{k}_high"]
    assert a["auroc_high"] - a["auroc_low"] > 0.02


def test_length_matched_auroc_sees_through_a_length_proxy():
    # wrong records are the short ones; a score that is only -length is perfect overall, chance within lengths
    length = np.repeat([10.0, 20.0, 30.0, 40.0], 50)
    truth = np.zeros(200, dtype=bool)
    truth[[0, 1, 2, 3, 50, 51, 100, 150]] = True
    proxy = -length
    assert ranking_metrics(truth, proxy)["auroc"] > 0.65
    assert length_matched_auroc(truth, proxy, length, bins=4) == pytest.approx(0.5)
    informative = truth.astype(float)
    assert length_matched_auroc(truth, informative, length, bins=4) == pytest.approx(1.0)


def test_label_matched_auroc_sees_through_a_score_that_only_finds_the_noisy_label():
    # 40 % of the '~' records are wrong and 5 % of the N records; a score that only says "labelled ~"
    # ranks well overall and at chance within labels; pairs weigh each label: N 5*95, ~ 8*12
    labels = np.array(["N"] * 100 + ["~"] * 20)
    truth = np.zeros(120, dtype=bool)
    truth[[0, 1, 2, 3, 4, *range(100, 108)]] = True
    rare = (labels == "~").astype(float)
    assert ranking_metrics(truth, rare)["auroc"] > 0.75
    assert label_matched_auroc(truth, rare, labels) == pytest.approx(0.5)
    within_n_only = np.where(labels == "N", truth, 0.0)  # perfect among N, a constant among ~
    expected = (1.0 * 5 * 95 + 0.5 * 8 * 12) / (5 * 95 + 8 * 12)
    assert label_matched_auroc(truth, within_n_only, labels) == pytest.approx(expected)


# ---------------------------------------------------------------- signals

def test_forgetting_counts_learned_then_wrong_and_never_learned_ranks_highest():
    correct = np.array([[0, 1, 1, 0],
                        [1, 1, 0, 0],
                        [1, 0, 1, 0],
                        [1, 1, 1, 0],
                        [0, 1, 0, 0]])  # epochs x records
    # record 0: 0,1,1,1,0 -> one event; 1: 1,1,0,1,1 -> one; 2: 1,0,1,1,0 -> two; 3: never correct -> 5
    assert sig.forgetting_events(correct).tolist() == [1, 1, 2, 5]


def test_record_quality_flags_flat_clipped_and_noisy_leads():
    t = np.arange(1000) / 100
    ecg_like = np.exp(-((t % 1.0) - 0.5) ** 2 / 0.0005)  # one sharp peak a second: very peaked
    noise = np.random.default_rng(0).normal(size=1000)
    clipped = np.clip(np.sin(2 * np.pi * t), -0.3, 0.3)
    flat = np.zeros(1000)
    q = sig.record_quality(np.stack([ecg_like, noise]))
    assert q["kurtosis"] == pytest.approx(3.0, abs=0.4)  # the noisy lead is the least peaked
    assert sig.record_quality(ecg_like[None])["kurtosis"] > 10
    assert sig.record_quality(clipped[None])["saturated_frac"] > 0.6
    assert sig.record_quality(noise[None])["saturated_frac"] < 0.05
    assert sig.record_quality(np.stack([noise, flat]))["flat_frac"] == 1.0
    assert sig.record_quality(noise[None])["flat_frac"] < 0.01


def test_combined_is_the_mean_rank_of_its_signals_oriented_to_suspicion():
    table = pd.DataFrame({"p_oof": [0.9, 0.1, 0.5], "aum": [2.0, -1.0, 0.0], "cam_mass": [0.1, 0.3, 0.2],
                          "record_s": [30.0, 30.0, 10.0], "p_noise": [0.05, 0.2, 0.9]})
    # suspicion ranks /3: p_oof low -> [1,3,2], aum low -> [1,3,2], mass high -> [1,3,2], short -> [1.5,1.5,3],
    # p_noise high -> [1,2,3]
    assert sig.combined_score(table) == pytest.approx(np.array([1 + 1 + 1 + 1.5, 3 + 2 + 3 + 1.5, 2 + 3 + 2 + 3]) / 12)
    assert sig.combined_score(table, sig.COMBINED_V1) == pytest.approx(
        np.array([1 + 1 + 1 + 1.5, 3 + 3 + 3 + 1.5, 2 + 2 + 2 + 3]) / 12)
    no_noise_class = table.assign(p_noise=np.nan)  # a dataset without one: that signal is left out
    assert sig.combined_score(no_noise_class) == pytest.approx(np.array([1 + 1 + 1.5, 3 + 3 + 1.5, 2 + 2 + 3]) / 9)


def test_noise_probability_is_no_suspicion_for_records_labelled_noise():
    probs = np.array([[0.7, 0.3], [0.2, 0.8], [0.4, 0.6]])
    assert sig.noise_probability(probs, np.array([0, 1, 0]), noise=1).tolist() == [0.3, 0.0, 0.6]
    assert np.isnan(sig.noise_probability(probs, np.array([0, 1, 0]), noise=None)).all()


# ---------------------------------------------------------------- one tiny audit of the synthetic set

def audit_overrides(cache_dir, out_dir) -> list[str]:
    return tiny_overrides(cache_dir, out_dir, n_records=360, length_s=2.0, corrupt_frac=0.3, lr=0.003, epochs=5)


@pytest.fixture(scope="module")
def tiny_audit(cache_dir, tmp_path_factory, one_thread):
    import erts

    out = tmp_path_factory.mktemp("audit")
    res = erts.audit(**dict(o.split("=", 1) for o in audit_overrides(cache_dir, out)), folds=3, top=2,
                     n_boot=200, out=out / "audit")
    return res, out


def test_csv_has_every_column_and_is_ranked(tiny_audit):
    res, _ = tiny_audit
    df = pd.read_csv(res.csv)
    for col in ["record_id", "given_label", "predicted_label", "combined", "combined_rank", "mean_p", "aum",
                "forgetting", "el2n", "p_oof", "p_oof_centre", "cleanlab_issue", "cam_topq", "cam_mass",
                "cam_entropy", "record_s", "signal_s", "flat_frac", "saturated_frac", "amplitude", "kurtosis",
                "wrong"]:
        assert col in df.columns, col
    assert df["combined_rank"].tolist() == list(range(1, len(df) + 1))
    assert df["rank"].tolist() == df["combined_rank"].tolist()  # the default ranking is the combined score
    assert np.all(np.diff(df["combined"]) <= 1e-6)  # rank 1 is the most suspicious
    assert len(df) == 252 and df["record_id"].is_unique  # the 70 % training split of 360
    assert set(df["predicted_label"]) <= {"NORM", "MI", "STTC", "CD", "HYP"}
    assert df[["mean_p", "aum", "p_oof", "cam_mass"]].notna().all().all()
    assert df["p_noise"].isna().all()  # the synthetic set has no noise class
    assert np.allclose(sig.combined_score(df), df["combined"], atol=1e-5)
    assert np.allclose(sig.combined_score(df, sig.COMBINED_V1), df["combined_v1"], atol=1e-5)


def test_metrics_agree_with_sklearn_on_the_csv(tiny_audit):
    res, _ = tiny_audit
    df = pd.read_csv(res.csv)
    m = res.metrics.set_index("signal")
    truth = df["wrong"].to_numpy(bool)
    assert truth.sum() == pytest.approx(0.3 * 252, abs=8)
    checks = {"AUM": -df["aum"], "OOF self-confidence": -df["p_oof"], "concentration mass, high": df["cam_mass"],
              "focus topq (paper), low": -df["cam_topq"], "combined": df["combined"]}
    for name, score in checks.items():
        assert m.loc[name, "auroc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-4), name
        assert m.loc[name, "ap"] == pytest.approx(average_precision_score(truth, score), abs=1e-4), name
    on_disk = pd.read_csv(res.out_dir / "audit_metrics.csv").set_index("signal")
    assert on_disk.loc["combined", "auroc"] == pytest.approx(m.loc["combined", "auroc"], abs=1e-4)


def test_combined_score_beats_chance_on_planted_corruption(tiny_audit):
    res, _ = tiny_audit
    combined = res.metrics.set_index("signal").loc["combined"]
    assert combined["auroc_low"] > 0.5, combined.to_dict()
    assert combined["ap"] > combined["base_rate"]  # a random order's AP is the base rate


def test_page_draws_the_top_suspects(tiny_audit):
    res, _ = tiny_audit
    text = res.html.read_text()
    assert text.count("data:image/png;base64") == 2
    assert "How well each signal finds the known wrong records" in text
    first = pd.read_csv(res.csv)["record_id"].iloc[0]
    assert first in text


def test_cli_reuses_the_folds_and_gives_the_same_ranking(tiny_audit, cache_dir, capsys):
    res, out = tiny_audit
    rc = main(["audit", *audit_overrides(cache_dir, out), "--out", str(out / "audit"), "--top", "0",
               "--n-boot", "50"])
    captured = capsys.readouterr()
    assert rc == 0
    assert captured.err.count("reusing") == 3
    assert "ground truth:" in captured.out and "combined" in captured.out
    again = pd.read_csv(res.csv)
    assert again["record_id"].tolist() == res.table["record_id"].tolist()
    # the next step it prints: train again without cleanlab's count of the top suspects, and that works
    flagged = int(np.nansum(again["cleanlab_issue"]))
    assert flagged > 0 and f"exclude_records={res.csv} exclude_top={flagged}" in captured.out
    top_labels = again.sort_values("combined_rank").given_label.iloc[:flagged]  # and what it would take per class
    for label, n in again.given_label.value_counts().items():
        taken = int((top_labels == label).sum())
        assert f"{label} {taken} of {n} ({taken / n:.0%})" in captured.out
    from erts.config import load_config
    from erts.data import load_dataset
    from erts.data.records import EXCLUDED

    rs = load_dataset(load_config(overrides=audit_overrides(cache_dir, out) +
                                  [f"exclude_records={res.csv}", f"exclude_top={flagged}"]).data)
    ranked = again.sort_values("combined_rank").record_id.astype(str)
    assert set(rs.record_ids[rs.indices(EXCLUDED)]) == set(ranked.iloc[:flagged])


def test_a_run_folder_is_audited_with_its_config(tiny_audit, cache_dir, capsys):
    from erts.config import dump_config, load_config

    res, out = tiny_audit
    run = out / "runs" / "some-run"
    run.mkdir(parents=True)
    cfg = load_config(overrides=audit_overrides(cache_dir, out) + ["method=erts-dbpd", "name=some-run"])
    (run / "config.yaml").write_text(dump_config(cfg))
    rc = main(["audit", str(run), "--out", str(out / "audit"), "--top", "0", "--n-boot", "20"])
    assert rc == 0
    assert capsys.readouterr().err.count("reusing") == 3  # the same folds: method and name do not matter


def test_rank_by_one_signal_orders_the_csv_page_and_next_step_by_it(tiny_audit, cache_dir, capsys):
    res, out = tiny_audit
    dest = out / "audit-p_oof"
    import shutil

    shutil.copytree(out / "audit" / "folds", dest / "folds")  # the same folds: re-ranking trains nothing
    rc = main(["audit", *audit_overrides(cache_dir, out), "--out", str(dest), "--top", "1", "--n-boot", "20",
               "--rank-by", "p_oof"])
    captured = capsys.readouterr()
    assert rc == 0 and captured.err.count("reusing") == 3
    df = pd.read_csv(dest / "audit.csv")
    # expected independently: lowest p(given label) from the held-out model first, ties in record order
    expected = df.sort_values(["p_oof", "index"], kind="stable")["record_id"].tolist()
    assert df.sort_values("rank")["record_id"].tolist() == expected == df["record_id"].tolist()
    default = pd.read_csv(res.csv).set_index("record_id")
    assert (df.set_index("record_id")["combined_rank"] == default.loc[df.record_id, "combined_rank"]).all()
    assert json.loads((dest / "audit.json").read_text())["rank_by"] == {
        "signal": "OOF self-confidence", "column": "p_oof", "suspicious": "low"}
    page = (dest / "audit.html").read_text()
    assert "ranked by one signal, OOF self-confidence (p_oof, low = suspicious" in page
    assert f"rank 1: record {expected[0]} " in page  # the one strip drawn is p_oof's first suspect
    flagged = int(np.nansum(df["cleanlab_issue"]))
    top_labels = df.set_index("record_id").loc[expected[:flagged], "given_label"]
    for label, n in df.given_label.value_counts().items():
        taken = int((top_labels == label).sum())
        assert f"{label} {taken} of {n} ({taken / n:.0%})" in captured.out
    from erts.config import load_config
    from erts.data import load_dataset
    from erts.data.records import EXCLUDED

    rs = load_dataset(load_config(overrides=audit_overrides(cache_dir, out) +
                                  [f"exclude_records={dest / 'audit.csv'}", f"exclude_top={flagged}"]).data)
    assert set(rs.record_ids[rs.indices(EXCLUDED)]) == set(expected[:flagged])


def test_ranking_signal_reads_a_column_at_its_suspicious_end():
    assert sig.ranking_signal("combined").column == "combined"
    assert sig.ranking_signal("p_oof").suspicious == "low"
    assert sig.ranking_signal("cam_topq").name == "focus topq (paper), low"  # the paper's reading first
    assert sig.ranking_signal("cam_topq:high").name == "focus topq, high"
    table = pd.DataFrame({"cam_topq": [0.2, 0.9, 0.5]})
    assert sig.ranking_signal("cam_topq:high").score(table).tolist() == [0.2, 0.9, 0.5]
    assert sig.ranking_signal("cam_topq").score(table).tolist() == [-0.2, -0.9, -0.5]
    for bad in ["nosuch", "p_oof:high", "combined:low", "p_oof:sideways"]:
        with pytest.raises(ConfigError, match="--rank-by"):
            sig.ranking_signal(bad)


def test_user_truth_csv_replaces_the_dataset_truth(tiny_audit, cache_dir, tmp_path):
    import erts

    res, out = tiny_audit
    ids = res.table["record_id"]
    listed = tmp_path / "wrong.csv"
    pd.DataFrame({"record_id": ids.iloc[:5]}).to_csv(listed, index=False)  # the top 5 suspects
    again = erts.audit(**dict(o.split("=", 1) for o in audit_overrides(cache_dir, out)), out=out / "audit", top=0,
                       n_boot=20, truth=listed)
    m = again.metrics.set_index("signal")
    assert m.loc["combined", "n_wrong"] == 5
    assert m.loc["combined", "auroc"] == pytest.approx(1.0)


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, needle", [
    (["audit", "runs/none"], "runs/none: no such run folder or config file"),
    (["audit", "empty"], "empty: not a run folder (it has no config.yaml)"),
    (["audit", "dataset=nope"], "config error: dataset='nope' is not accepted"),
    (["audit", "--folds", "1"], "config error: --folds 1: cross-training needs at least 2 folds"),
    (["audit", "epochs=0"], "config error: epochs=0 must be >= 1"),
    (["audit", "dataset=synthetic", "multilabel=true", "n_records=60"], "is multi-label"),
    (["audit", "dataset=synthetic", "n_records=60", "--noise-class", "~"], "--noise-class ~: synthetic has no such class"),
    (["audit", "dataset=synthetic", "n_records=60", "--rank-by", "nosuch"], "--rank-by nosuch: not a signal"),
    (["audit", "dataset=synthetic", "n_records=60", "--rank-by", "p_noise"],
     "--rank-by p_noise: synthetic has no noise class"),
    (["audit", "dataset=synthetic", "n_records=60", "--truth", "missing.csv"],
     "missing.csv: no such ground-truth CSV file"),
    (["audit", "dataset=synthetic", "n_records=60", "--truth", "bad.csv"], "bad.csv: needs a 'record_id' column"),
    (["audit", "dataset=synthetic", "n_records=60", "--truth", "strangers.csv"],
     "none of its records are training records"),
])
def test_cli_errors_are_one_line(args, needle, tmp_path, monkeypatch, capsys, cache_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ERTS_DEBUG", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.csv").write_text("id\nsyn00001\n")
    (tmp_path / "strangers.csv").write_text("record_id\nnobody\n")
    rc = main(args)
    line = one_line(capsys.readouterr().err)
    assert rc == 2
    assert needle in line, line
