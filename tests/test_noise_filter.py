"""benchmarks/noise_filter.py's summary of test F1: each filter against its rule, CPU at one speed."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from conftest import load_benchmark


def test_f1_lines_pair_each_filter_with_its_rule_and_take_the_machine_speed_out():
    nf = load_benchmark("noise_filter")
    f1 = {"full": [0.70, 0.72, 0.71], "dbpd": [0.66, 0.69, 0.65], "erts-dbpd+diffuse": [0.68, 0.70, 0.69],
          "full@": [0.67, 0.68, 0.66]}
    work = {"full": 100.0, "dbpd": 60.0, "erts-dbpd+diffuse": 62.0, "full@": 60.0}  # CPU s at speed 1
    ee = {"full": 30.0, "dbpd": 18.0, "erts-dbpd+diffuse": 18.6, "full@": 18.0}
    flops = {"full": 3e14, "dbpd": 2.4e14, "erts-dbpd+diffuse": 2.7e14, "full@": 1.8e14}  # scoring, Grad-CAM on top
    speed = {"full": [1.0, 1.0, 2.0], "dbpd": [1.0, 3.0, 1.0], "erts-dbpd+diffuse": [1.0, 1.0, 1.0],
             "full@": [1.0, 1.0, 1.0]}  # the machine was 3x slower during dbpd's seed 1
    rows = []
    for m in f1:
        for seed in range(3):
            rows.append({"run": f"{m}-{seed}", "dataset": "cinc2017", "model": "resnet18_1d",
                         "method": "full" if m == "full@" else m, "budget": 0.6 if m == "full@" else np.nan,
                         "seed": seed, "epochs": 30, "effective_epochs": ee[m], "test_macro_f1": f1[m][seed],
                         "cpu_seconds_train": work[m] * speed[m][seed], "eval_cpu_per_epoch": speed[m][seed]})
    lines = nf.f1_lines(pd.DataFrame(rows), ["full", "dbpd", "erts-dbpd+diffuse"])
    by_name: dict[str, str] = {}
    for line in lines:  # the first line of each configuration: its F1 and cost
        if line.startswith("  "):
            by_name.setdefault(line.split()[0], line)
    assert by_name["dbpd"].endswith("CPU x0.600")  # raw: (60 + 180 + 60) / 3 over (100 + 100 + 200) / 3 -> 0.750
    assert by_name["erts-dbpd+diffuse"].endswith("CPU x0.620") and by_name["full@cheapest"].endswith("CPU x0.600")
    assert any(line.startswith("The machine changed speed between runs") for line in lines)
    i = lines.index("Each filter against its unfiltered rule (paired by seed; Holm over these rows):")
    d = np.subtract(f1["erts-dbpd+diffuse"], f1["dbpd"])
    assert lines[i + 1].split()[:3] == ["erts-dbpd+diffuse", "vs", "dbpd"]
    assert f"{d.mean():+.4f}" in lines[i + 1]
    assert f"p={sps.ttest_rel(f1['erts-dbpd+diffuse'], f1['dbpd']).pvalue:.3f}" in lines[i + 1]


def test_f1_lines_pair_filters_and_controls_over_the_test_records_too(tmp_path):
    """With each run's test predictions, the summary ends with the record-paired families: the filter
    against its rule and the configurations against the controls at the cheapest share, each
    difference the mean over seeds of scikit-learn's macro-F1 differences."""
    from sklearn.metrics import f1_score

    nf = load_benchmark("noise_filter")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    quality = {"full": 2.0, "dbpd": 1.2, "erts-dbpd+diffuse": 1.5, "full@": 1.4}
    ee = {"full": 30.0, "dbpd": 18.0, "erts-dbpd+diffuse": 18.6, "full@": 18.0}
    flops = {"full": 3e14, "dbpd": 2.4e14, "erts-dbpd+diffuse": 2.7e14, "full@": 1.8e14}  # scoring, Grad-CAM on top
    rows, f1 = [], {}
    for m in quality:
        for seed in range(3):
            logits = rng.normal(0, 1, (400, 4)) + quality[m] * np.eye(4)[y]
            run = tmp_path / f"{m}{seed}"
            run.mkdir()
            np.savez(run / "predictions_test.npz", y_true=y, probs=np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
            f1[m, seed] = f1_score(y, logits.argmax(1), average="macro")
            rows.append({"run": run.name, "run_dir": str(run), "dataset": "cinc2017", "model": "resnet18_1d",
                         "method": "full" if m == "full@" else m, "budget": 0.6 if m == "full@" else np.nan,
                         "seed": seed, "epochs": 30, "effective_epochs": ee[m], "test_macro_f1": f1[m, seed],
                         "flops_total": flops[m]})
    lines = nf.f1_lines(pd.DataFrame(rows), ["full", "dbpd", "erts-dbpd+diffuse"])
    row = {line.split()[0]: line for line in lines if line.startswith("  ") and "FLOPs" in line}
    assert "share 0.600  FLOPs x0.800" in row["dbpd"] and "share 0.620  FLOPs x0.900" in row["erts-dbpd+diffuse"]
    assert "share 0.600  FLOPs x0.600" in row["full@cheapest"]  # the control's budget is all it spends
    i = next(k for k, line in enumerate(lines) if line.startswith("Paired over test records and seeds (macro_f1"))
    assert lines[i + 1] == "  each filter against its unfiltered rule:"
    d = np.mean([f1["erts-dbpd+diffuse", s] - f1["dbpd", s] for s in range(3)])
    assert lines[i + 2].split()[:3] == ["erts-dbpd+diffuse", "vs", "dbpd"] and f"{d:+.4f}" in lines[i + 2]
    assert lines[i + 3] == "  against the equal-budget controls:"
    ctrl = [line.split()[:3] for line in lines[i + 4:]]
    assert ["dbpd", "vs", "full@cheapest"] in ctrl and ["erts-dbpd+diffuse", "vs", "full@cheapest"] in ctrl


def test_summary_rewrites_the_main_results_with_the_controls(tmp_path, monkeypatch):
    """Each run_sweep call writes only its own grid's runs to results.csv, so after the controls ran the
    setting's results.csv held the controls alone (publish.sh then reported on them only): the summary
    rewrites it from the run folders, the main grid's runs and the controls."""
    from test_report import make_run

    nf = load_benchmark("noise_filter")
    main_dir = tmp_path / "nf-sym20" / "runs"
    names = ["seed=0,method=full", "seed=0,method=dbpd", "seed=0,method=full,budget=0.6"]
    for name in names:
        make_run(main_dir / name, method="dbpd" if "dbpd" in name else "full", seed=0, f1=0.7,
                 config={"budget": 0.6} if "budget" in name else None)
    pd.DataFrame({"run": [names[2]]}).to_csv(tmp_path / "nf-sym20" / "results.csv", index=False)  # the stale one
    monkeypatch.setattr("sys.argv", ["noise_filter.py", "--dataset", "synthetic", "--settings", "sym20", "--seeds", "1",
                                     "--out", str(tmp_path), "--name", "nf", "--summary-only", "--n-boot", "20"])
    nf.main()
    assert sorted(pd.read_csv(tmp_path / "nf-sym20" / "results.csv")["run"]) == sorted(names)


def test_audit_retrain_fixes_k_from_cleanlab_and_draws_its_control_from_the_audited_records(tmp_path):
    ar = load_benchmark("audit_retrain")
    audit = pd.DataFrame({"record_id": [f"A{i:05d}" for i in range(50)],
                          "cleanlab_issue": [1.0] * 7 + [0.0] * 40 + [np.nan] * 3})
    assert ar.suspects_count(audit, None) == 7 and ar.suspects_count(audit, 12) == 12
    a = pd.read_csv(ar.random_list(audit, 7, 0, tmp_path / "r.csv"), dtype=str).record_id
    b = pd.read_csv(ar.random_list(audit, 7, 0, tmp_path / "s.csv"), dtype=str).record_id
    c = pd.read_csv(ar.random_list(audit, 7, 1, tmp_path / "t.csv"), dtype=str).record_id
    assert len(set(a)) == 7 and set(a) <= set(audit.record_id) and list(a) == list(b) and list(a) != list(c)


def test_audit_retrain_ranks_by_a_signal_in_its_suspicious_direction(tmp_path):
    ar = load_benchmark("audit_retrain")
    audit = pd.DataFrame({"record_id": ["a", "b", "c", "d"], "p_oof": [0.9, 0.1, 0.5, 0.05],
                          "el2n": [0.2, 1.1, 0.3, 0.9]})
    low = pd.read_csv(ar.signal_list(audit, "p_oof", 2, tmp_path / "p.csv")).record_id.tolist()
    high = pd.read_csv(ar.signal_list(audit, "el2n", 2, tmp_path / "e.csv")).record_id.tolist()
    assert low == ["d", "b"] and high == ["b", "d"]  # p_oof: low is suspicious; EL2N: high
    with pytest.raises(SystemExit, match="given_label: not a signal of the audit"):
        ar.signal_list(audit, "given_label", 2, tmp_path / "x.csv")


def test_markdown_table_is_the_docs_table_of_drop_rates_f1_over_seeds_and_flops():
    nf = load_benchmark("noise_filter")
    f1 = {"full": [0.70, 0.72, 0.71], "dbpd": [0.66, 0.69, 0.67], "erts-dbpd+loss": [0.68],  # the filter: 1 seed so far
          "full@": [0.67, 0.68, 0.66]}
    flops = {"full": 4e14, "dbpd": 3.6e14, "erts-dbpd+loss": 3.4e14, "full@": 2.4e14}
    ee = {"full": 30.0, "dbpd": 18.0, "erts-dbpd+loss": 18.6, "full@": 18.0}
    rows = [{"run": f"{m}-{seed}", "dataset": "cinc2017", "model": "resnet18_1d", "method": "full" if m == "full@" else m,
             "budget": 0.6 if m == "full@" else np.nan, "seed": seed, "epochs": 30, "effective_epochs": ee[m],
             "test_macro_f1": v, "flops_total": flops[m]}
            for m, values in f1.items() for seed, v in enumerate(values)]
    drops = pd.DataFrame({"which": ["rule", "focus_filter"], "relabelled_drop_rate": [0.112, 0.525],
                          "unchanged_drop_rate": [0.552, 0.107], "ratio": [0.2029, 4.92], "ci_low": [0.18, 4.49],
                          "ci_high": [0.23, 5.43], "ratio_within_labels": [0.371, 2.84],
                          "within_ci_low": [0.34, 2.66], "within_ci_high": [0.40, 3.01]},
                         index=pd.Index(["dbpd", "erts-dbpd+loss"], name="method"))
    table = nf.markdown_table(drops, nf.f1_table(pd.DataFrame(rows), ["full", "dbpd", "erts-dbpd+loss"]),
                              "noise_flipped")
    assert table[0].startswith("| configuration | flipped / clean dropped | ratio [95 % CI] | within labels [95 % CI] "
                               "| test macro-F1")
    by_name = {line.split(" | ")[0].strip("| "): line for line in table[2:]}
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(f1["dbpd"]), scale=sps.sem(f1["dbpd"]))
    assert by_name["dbpd"] == (f"| dbpd | 11.2% / 55.2% | 0.20 [0.18, 0.23] | 0.37 [0.34, 0.40] "
                               f"| 0.673 [{lo:.3f}, {hi:.3f}] | 3 | 0.90 |")
    assert by_name["erts-dbpd+loss"] == ("| erts-dbpd+loss | 52.5% / 10.7% | 4.92 [4.49, 5.43] | 2.84 [2.66, 3.01] "
                                         "| 0.680 | 1 | 0.85 |")
    assert by_name["full"].startswith("| full |  |  |  | 0.710 [") and by_name["full"].endswith("| 3 | 1.00 |")
    control = next(v for k, v in by_name.items() if k.startswith("full@"))  # named after the method it matches
    assert control.endswith("|  |  |  | 0.670 [0.645, 0.695] | 3 | 0.60 |")


def test_audit_retrain_summarises_several_seeds_paired_over_seeds_and_records(tmp_path):
    """--summary-seeds: each arm's seeds in one row (mean [t-interval], each seed's value) and the
    differences as means over the seeds of each seed's macro-F1 difference on the same test records."""
    from sklearn.metrics import f1_score
    from test_report import make_run

    from erts.eval.paired import load_predictions
    from erts.train.sweep import run_row

    ar = load_benchmark("audit_retrain")
    audit = pd.DataFrame({"record_id": [f"syn{i:05d}" for i in range(60)], "wrong": [i % 5 == 0 for i in range(60)]})
    arms: dict[str, list] = {}
    for seed in (0, 1, 2):
        for arm, f1 in (("full", 0.70), ("pruned", 0.66), ("random", 0.68)):
            run = tmp_path / f"{arm}-s{seed}"
            make_run(run, method="full", seed=seed * 3 + len(arm), f1=f1 + 0.01 * seed ** 2)
            if arm != "full":  # pruned: records 0-4, random: 10-14; one wrong in each (i % 5 == 0)
                left = [f"syn{i:05d}" for i in (range(5) if arm == "pruned" else range(10, 15))]
                pd.DataFrame({"record_id": left}).to_csv(run / "excluded_records.csv", index=False)
            arms.setdefault(arm, []).append(run)
    text = ar.summary(arms, audit, {"folds": 3, "epochs": 12}, "noise_flipped", 5, n_boot=200)
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    f1 = [run_row(r, ["method"])["test_macro_f1"] for r in arms["pruned"]]
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(f1), scale=sps.sem(f1))
    assert f"| pruned | 5 | 1 (20.0%) | {np.mean(f1):.3f} [{lo:.3f}, {hi:.3f}] ({f1[0]:.3f}, {f1[1]:.3f}, {f1[2]:.3f})" \
        in rows["pruned"]
    assert "| random | 5 | 1 (20.0%) |" in rows["random"] and "| full | 0 |  |" in rows["full"]
    assert "3 seeds: two-level bootstrap over the seeds and the test records" in text

    def macro_f1(run):
        y, p, _ = load_predictions(run)
        return f1_score(y, p.argmax(1), average="macro")

    d = np.mean([macro_f1(a) - macro_f1(b) for a, b in zip(arms["pruned"], arms["full"])])
    assert f"- pruned - full: {d:+.3f} [" in text
