"""benchmarks/audit_bench.py's seed average: each signal averaged per record over several audits."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark


def audit_table(seed: int, n: int = 400) -> pd.DataFrame:
    """An audit table whose OOF confidence is the truth plus this seed's own noise."""
    truth = np.arange(n) % 10 == 0
    noise = np.random.default_rng(seed).normal(0, 1.5, n)
    return pd.DataFrame({"record_id": [f"r{i:04d}" for i in range(n)], "index": np.arange(n), "given_label": "N",
                         "wrong": truth, "p_oof": np.where(truth, 0.0, 1.0) + noise,
                         "cam_mass": np.full(n, 0.5), "record_s": np.full(n, 30.0)})


def test_seed_average_means_each_signal_per_record_and_ranks_better_than_one_seed():
    ab = load_benchmark("audit_bench")
    from erts.audit.metrics import ranking_metrics

    tables = [audit_table(s) for s in range(3)]
    shuffled = tables[1].sample(frac=1.0, random_state=0)  # rows in another order: aligned by index
    avg = ab.seed_average([tables[0], shuffled, tables[2]])
    expected = (tables[0]["p_oof"] + tables[1]["p_oof"] + tables[2]["p_oof"]).to_numpy() / 3
    np.testing.assert_allclose(avg["p_oof"].to_numpy(), expected)
    truth = avg["wrong"].to_numpy(bool)
    one = ranking_metrics(truth, -tables[0]["p_oof"].to_numpy())["auroc"]
    three = ranking_metrics(truth, -avg["p_oof"].to_numpy())["auroc"]
    assert three > one + 0.03  # independent noise shrinks by sqrt(3)
    # combined rebuilt from the averages: the constant signals add ties, the order is the OOF one
    assert ranking_metrics(truth, avg["combined"].to_numpy())["auroc"] == pytest.approx(three, abs=1e-9)


def test_seed_average_refuses_audits_of_different_records():
    ab = load_benchmark("audit_bench")
    other = audit_table(1)
    other.loc[3, "record_id"] = "elsewhere"
    with pytest.raises(ValueError, match="different records"):
        ab.seed_average([audit_table(0), other])


def test_evaluate_scores_a_published_ranking_again_with_the_current_metrics(tmp_path):
    ab = load_benchmark("audit_bench")
    from erts.audit import signals as sig
    from erts.audit.metrics import label_matched_auroc

    table = audit_table(0)
    table["given_label"] = np.where(np.arange(len(table)) % 20 == 0, "A", "N")  # half the wrong records are A
    for col in dict.fromkeys(s.column for s in sig.SIGNALS):
        if col not in table:
            table[col] = 0.5
    table["combined"] = sig.combined_score(table)
    table["combined_v1"] = sig.combined_score(table, sig.COMBINED_V1)
    csv = tmp_path / "audit.csv"
    table.to_csv(csv, index=False)
    ab.write_evaluated(csv, n_boot=50)
    text = (tmp_path / "evaluated.md").read_text()
    assert "| AUROC length-matched | AUROC label-matched |" in text
    row = next(line for line in text.splitlines() if line.startswith("| OOF self-confidence |"))
    expected = label_matched_auroc(table["wrong"].to_numpy(bool), -table["p_oof"].to_numpy(), table["given_label"])
    assert row.rstrip(" |").endswith(f"{expected:.3f}")
    table.drop(columns="wrong").to_csv(csv, index=False)
    with pytest.raises(SystemExit, match="no 'wrong' column"):
        ab.write_evaluated(csv, n_boot=50)
