"""erts.report.reliability: drop rates of relabelled against unchanged candidates, on run folders written by hand."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from erts.report import reliability as rel

OFFSET = 1000  # training records sit at rows OFFSET + i of the record set: the index is a row, not a position


def write_run(run_dir: Path, method: str, seed: int, changed: list[bool], epochs: list[dict],
              labels: list[str] | str = "N") -> Path:
    """A run folder as erts train writes it, reduced to what the analysis reads.

    epochs: one dict per epoch: phase, and optionally p, focus (arrays, NaN = not computed), pdd_keep,
    erts_keep, rescued (bool arrays; default all True / True / False).
    """
    n = len(changed)
    (run_dir / "selection").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"selection": {"method": method}, "train": {"seed": seed}}))
    pd.DataFrame({"index": OFFSET + np.arange(n), "record_id": [f"A{i:05d}" for i in range(n)], "label": labels,
                  "label_changed": changed}).to_csv(run_dir / "train_records.csv", index=False)
    pd.DataFrame({"epoch": range(len(epochs)), "phase": [e["phase"] for e in epochs]}).to_csv(run_dir / "log.csv",
                                                                                               index=False)
    for k, e in enumerate(epochs):
        nan = np.full(n, np.nan, np.float32)
        pdd = np.asarray(e.get("pdd_keep", np.ones(n, bool)))
        erts = np.asarray(e.get("erts_keep", pdd))
        np.savez(run_dir / "selection" / f"epoch_{k:03d}.npz", index=OFFSET + np.arange(n),
                 p=np.asarray(e.get("p", nan), np.float32), focus=np.asarray(e.get("focus", nan), np.float32),
                 pdd_keep=pdd, erts_keep=erts, rescued=np.asarray(e.get("rescued", np.zeros(n, bool))),
                 updated=erts)
    return run_dir


def section_markdown(runs, n_boot: int) -> str:
    """The report section as ``erts report`` fills it, its tables as markdown."""
    from erts.report.render import md_table

    parts: list[str] = []

    class Collect:
        def text(self, text):
            parts.append(text)

        def table(self, df, _id):
            parts.append(md_table(df))

    rel.fill_section(Collect(), runs, n_boot=n_boot)
    return "\n\n".join(parts)


def mask(n: int, idx) -> np.ndarray:
    m = np.zeros(n, bool)
    m[list(idx)] = True
    return m


N = 40  # records 0-9 relabelled, 10-39 unchanged
CHANGED = [i < 10 for i in range(N)]


def scenario_epochs(method: str, seed: int) -> list[dict]:
    """warm-up, a DBPD-only select epoch, two ERTS epochs, revision (see the counts in test_rates_by_hand)."""
    p = np.linspace(0.1, 0.9, N)
    full = {"phase": "warmup"}
    ep1 = {"phase": "select", "p": p, "pdd_keep": ~mask(N, [0, *range(25, 40)]), "rescued": mask(N, [10])}
    pdd = ~mask(N, range(30, 40))  # the rule drops unchanged 30-39 in epochs 2 and 3
    eps = [full, ep1]
    if method == "dbpd":
        eps += [{"phase": "select", "p": p, "pdd_keep": pdd}, {"phase": "select", "p": p, "pdd_keep": pdd}]
    else:
        focus = np.where(pdd, 0.5, np.nan)
        drop2 = range(0, 8 if seed == 0 else 7)  # relabelled dropped by the filter in epoch 2: 8 (seed 0) or 7
        eps.append({"phase": "select", "p": p, "focus": focus, "pdd_keep": pdd,
                    "erts_keep": pdd & ~mask(N, [*drop2, 10, 11, 12, 13])})
        focus3 = focus.copy()
        focus3[29] = np.nan  # a lone candidate: kept without a focus score, not a filter candidate
        eps.append({"phase": "select", "p": p, "focus": focus3, "pdd_keep": pdd,
                    "erts_keep": pdd & ~mask(N, [0, 1, 2, 3, 4, 5, 10, 11])})
    return eps + [{"phase": "revision"}]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for method in ("full", "dbpd", "erts-dbpd"):
        for seed in (0, 1):
            eps = [{"phase": "warmup"}] * 5 if method == "full" else scenario_epochs(method, seed)
            write_run(root / "runs" / f"method={method},seed={seed}", method, seed, CHANGED, eps)
    return root


def row(t: pd.DataFrame, method: str, which: str, scope) -> pd.Series:
    hit = t[(t["method"] == method) & (t["which"] == which) & (t["scope"].astype(str) == str(scope))]
    assert len(hit) == 1, (method, which, scope)
    return hit.iloc[0]


def test_rates_by_hand(sweep):
    t = rel.reliability_table(sorted((sweep / "runs").iterdir()), n_boot=500)
    assert set(t["method"]) == {"dbpd", "erts-dbpd"}  # full: no select epoch, no rows
    assert t[(t["method"] == "dbpd")]["which"].eq("rule").all()  # no focus scores: rule rows only
    ff = t[(t["method"] == "erts-dbpd") & (t["which"] == "focus_filter")]
    assert list(ff["scope"]) == [2, 3, "overall"]  # the ERTS epochs only
    # focus filter, epoch 2: relabelled 8 + 7 dropped of 10 + 10, unchanged 4 + 4 of 20 + 20
    r = row(t, "erts-dbpd", "focus_filter", 2)
    assert r["n_relabelled_candidates"] == 20 and r["n_unchanged_candidates"] == 40
    assert r["relabelled_drop_rate"] == pytest.approx(15 / 20) and r["unchanged_drop_rate"] == pytest.approx(8 / 40)
    assert r["ratio"] == pytest.approx((15 / 20) / (8 / 40))
    # epoch 3: record 29's focus is NaN, so 19 unchanged candidates per seed
    r = row(t, "erts-dbpd", "focus_filter", 3)
    assert r["n_unchanged_candidates"] == 38
    assert r["relabelled_drop_rate"] == pytest.approx(12 / 20) and r["unchanged_drop_rate"] == pytest.approx(4 / 38)
    # overall: pooled over both ERTS epochs and both seeds
    r = row(t, "erts-dbpd", "focus_filter", "overall")
    assert (r["relabelled_dropped"], r["n_relabelled_candidates"]) == (27, 40)
    assert (r["unchanged_dropped"], r["n_unchanged_candidates"]) == (12, 78)
    assert r["ratio"] == pytest.approx((27 / 40) / (12 / 78))
    assert r["n_runs"] == 2 and r["n_relabelled_records"] == 20  # 10 relabelled candidates x 2 seeds
    assert 1 < r["ci_low"] <= r["ratio"] <= r["ci_high"]  # the CI excludes 1
    assert rel.goal_met(r)
    # the rule, select epochs 1-3, pool of 40 scored samples: relabelled 1 + 0 + 0 of 30 dropped per seed,
    # unchanged 15 + 10 + 10 of 90 (record 10 was rescued in epoch 1: kept, not a drop)
    for method in ("dbpd", "erts-dbpd"):
        r = row(t, method, "rule", "overall")
        assert (r["relabelled_dropped"], r["n_relabelled_candidates"]) == (2, 60)
        assert (r["unchanged_dropped"], r["n_unchanged_candidates"]) == (70, 180)
        assert r["ratio"] == pytest.approx((2 / 60) / (70 / 180))
        assert r["ci_high"] < 1  # confidence alone drops the relabelled records less often
        assert list(t[(t["method"] == method) & (t["which"] == "rule")]["scope"]) == [1, 2, 3, "overall"]
        assert row(t, method, "rule", 2)["relabelled_drop_rate"] == 0


def test_sweep_folder_groups_by_method_and_is_deterministic(sweep):
    a = rel.reliability_table(sweep, n_boot=300, seed=3)
    b = rel.reliability_table(sweep, n_boot=300, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:9]) == ["method", "scope", "which", "n_relabelled_candidates", "relabelled_drop_rate",
                                   "unchanged_drop_rate", "ratio", "ci_low", "ci_high"]
    c = rel.reliability_table({"mine": [sweep / "runs" / "method=erts-dbpd,seed=0"]}, n_boot=300)
    assert set(c["method"]) == {"mine"} and set(c["which"]) == {"focus_filter", "rule"}
    assert (c["n_runs"] == 1).all()


def test_ci_includes_one_for_a_weak_difference(tmp_path):
    """4 relabelled records, 2 of them dropped twice: 50 % against 40 % (ratio 1.25); the CI straddles 1."""
    n = 24
    changed = [i < 4 for i in range(n)]
    cand = np.ones(n, bool)
    drop = mask(n, [0, 1, *range(4, 12)])
    ep = {"phase": "select", "p": np.full(n, 0.3), "focus": np.full(n, 0.5), "pdd_keep": cand, "erts_keep": ~drop}
    run = write_run(tmp_path / "r", "erts-dbpd", 0, changed, [{"phase": "warmup"}, ep, ep, {"phase": "revision"}])
    t = rel.reliability_table([run], n_boot=2000)
    r = row(t, "erts-dbpd", "focus_filter", "overall")
    assert r["relabelled_drop_rate"] == pytest.approx(4 / 8) and r["unchanged_drop_rate"] == pytest.approx(16 / 40)
    assert r["ratio"] == pytest.approx(1.25)
    assert r["ci_low"] < 1 < r["ci_high"]
    assert not rel.goal_met(r)
    md = section_markdown([run], n_boot=2000)
    assert "erts-dbpd: the reliability filter dropped 50.0% of the relabelled candidates (4 of 8 sample-epochs" in md
    assert "40.0% of the unchanged ones (16 of 40), a ratio of 1.25" in md
    assert "it does not drop relabelled candidates at >= 1.5x" in md and "the CI does not exclude 1" in md
    assert "the ratio is below 1.5" in md
    # rule rows: nothing dropped by the rule, so both rates are 0 and the ratio undefined
    r = row(t, "erts-dbpd", "rule", "overall")
    assert r["relabelled_drop_rate"] == 0 and np.isnan(r["ratio"])


def test_seed_level_of_the_bootstrap(tmp_path):
    """Records within a seed are identical, so only the resampling of seeds moves the ratio.

    Seed 0 drops every relabelled candidate, seed 1 none; every unchanged record is dropped in 1 of its 4
    ERTS epochs in both. Resampling 2 seeds: both seed 0 (p = 1/4) gives ratio 1 / 0.25 = 4, both seed 1
    (p = 1/4) gives 0, one of each gives 2. The 2.5 % and 97.5 % points are therefore 0 and 4 exactly.
    """
    n, n_rel = 13, 5
    changed = [i < n_rel for i in range(n)]
    runs = []
    for seed in (0, 1):
        eps = [{"phase": "warmup"}]
        for k in range(4):
            drop = mask(n, [i for i in range(n_rel, n) if (i - n_rel) % 4 == k] + (list(range(n_rel)) if seed == 0 else []))
            eps.append({"phase": "select", "p": np.full(n, 0.2), "focus": np.full(n, 0.4),
                        "pdd_keep": np.ones(n, bool), "erts_keep": ~drop})
        runs.append(write_run(tmp_path / f"s{seed}", "erts-dbpd", seed, changed, eps))
    r = row(rel.reliability_table(runs, n_boot=2000), "erts-dbpd", "focus_filter", "overall")
    assert r["relabelled_drop_rate"] == pytest.approx(0.5) and r["unchanged_drop_rate"] == pytest.approx(0.25)
    assert r["ratio"] == pytest.approx(2.0)
    assert (r["ci_low"], r["ci_high"]) == (pytest.approx(0.0), pytest.approx(4.0))


def test_markdown_states_the_goal_with_numbers(sweep):
    t = rel.reliability_table(sweep, n_boot=300)
    md = section_markdown(sweep, n_boot=300)
    r = row(t, "erts-dbpd", "focus_filter", "overall")
    assert "erts-dbpd: the reliability filter dropped 67.5% of the relabelled candidates (27 of 40 sample-epochs" in md
    assert f"a ratio of {r['ratio']:.2f} (95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f}, 2 seed(s))" in md
    assert "it does drop relabelled candidates at >= 1.5x the rate of unchanged ones with the CI excluding 1." in md
    assert "dbpd: the rule alone (confidence, before any reliability filter) dropped 3.3% of the relabelled" in md
    assert "| erts-dbpd | overall | reliability filter | 40 | 67.5% |" in md
    assert "Per epoch" in md


def test_runs_without_label_truth_give_no_rows(tmp_path):
    n = 6
    ep = {"phase": "select", "p": np.full(n, 0.3), "focus": np.full(n, 0.5), "erts_keep": mask(n, [0, 1, 2])}
    run = write_run(tmp_path / "r", "erts-dbpd", 0, [False] * n, [ep])
    assert not rel.has_label_truth(run)
    t = rel.reliability_table([run], n_boot=10)
    assert t.empty and list(t.columns) == rel.COLUMNS
    assert "No run here has label_changed ground truth" in section_markdown([run], n_boot=10)


# --- erts report: the section appears when the runs have label_changed ground truth ------------------------

def test_erts_report_has_the_label_noise_section(tmp_path, capsys):
    from test_report import make_run

    from erts.cli.main import main
    from erts.train.sweep import Grid, collect_results, expand

    grid = Grid(name="cinc", out_dir=str(tmp_path), base={"epochs": 6},
                grid={"method": ["full", "dbpd", "erts-dbpd"], "seed": [0, 1, 2]})
    runs = expand(grid)
    for r in runs:
        make_run(r.run_dir, method=r.values["method"], seed=r.values["seed"], f1=0.7)
        rec = pd.read_csv(r.run_dir / "train_records.csv")  # the CinC 2017 ground truth instead of synthetic's
        rec["label_changed"] = rec.pop("corruption") != "none"
        rec.drop(columns="true_class").to_csv(r.run_dir / "train_records.csv", index=False)
    collect_results(grid, runs)
    sweep_dir = grid.sweep_dir
    assert main(["report", str(sweep_dir), "--n-boot", "200", "--examples", "0"]) == 0
    md = (sweep_dir / "report.md").read_text()
    html = (sweep_dir / "report.html").read_text()
    assert f"## {rel.HEADING}" in md and 'id="label_noise"' in html and 'id="label_noise_epochs"' in html
    assert md.index("## Focus scores") < md.index(f"## {rel.HEADING}") < md.index("## Example records")
    expected = rel.reliability_table({m: [sweep_dir / "runs" / f"method={m},seed={s}" for s in range(3)]
                                      for m in ("full", "dbpd", "erts-dbpd")}, n_boot=200)
    assert set(expected["method"]) == {"dbpd", "erts-dbpd"}
    for m in ("dbpd", "erts-dbpd"):
        assert rel.verdict(expected, m) in md
    assert "Training labels of these runs: labels=current. With labels=current the relabelled records" in md
    # a single run's report has it too; a sweep without label_changed has not
    assert main(["report", str(sweep_dir / "runs" / "method=erts-dbpd,seed=0"), "--examples", "0"]) == 0
    assert f"## {rel.HEADING}" in (sweep_dir / "runs" / "method=erts-dbpd,seed=0" / "report.md").read_text()
    # published with selection_counts.npz instead of the logs: the same verdicts; the per-class drops say why not
    counts_only = tmp_path / "published"
    shutil.copytree(sweep_dir, counts_only)
    for run in (counts_only / "runs").iterdir():
        rel.write_counts(run)
        shutil.rmtree(run / "selection", ignore_errors=True)
    assert main(["report", str(counts_only), "--n-boot", "200", "--examples", "0"]) == 0
    md_counts = (counts_only / "report.md").read_text()
    for m in ("dbpd", "erts-dbpd"):
        assert rel.verdict(expected, m) in md_counts
    assert "dbpd, erts-dbpd: no selection log in the run folders" in md_counts
    assert "no selection log" not in md  # with the logs: the per-class drop figures
    for r in runs:
        rec = pd.read_csv(r.run_dir / "train_records.csv")
        rec.drop(columns="label_changed").to_csv(r.run_dir / "train_records.csv", index=False)
    assert main(["report", str(sweep_dir), "--examples", "0", "--out", str(tmp_path / "plain")]) == 0
    assert rel.HEADING not in (tmp_path / "plain" / "report.md").read_text()


def test_erts_report_reads_injected_label_noise_as_the_ground_truth(tmp_path):
    """Runs trained with label_noise= carry noise_flipped (and the synthetic set's own corruption column):
    the section counts the flipped records, says so, and drops the labels=current caveat, which is about
    CinC's relabelled records."""
    from test_report import make_run

    from erts.cli.main import main
    from erts.train.sweep import Grid, collect_results, expand

    grid = Grid(name="noisy", out_dir=str(tmp_path), base={"epochs": 6},
                grid={"method": ["full", "erts-dbpd"], "seed": [0, 1]})
    runs = expand(grid)
    for r in runs:
        make_run(r.run_dir, method=r.values["method"], seed=r.values["seed"], f1=0.7)
        rec = pd.read_csv(r.run_dir / "train_records.csv")
        rec["noise_flipped"] = rec["index"] % 5 == 0  # a different set from the synthetic corruption
        rec.to_csv(r.run_dir / "train_records.csv", index=False)
    collect_results(grid, runs)
    assert main(["report", str(grid.sweep_dir), "--n-boot", "100", "--examples", "0"]) == 0
    md = (grid.sweep_dir / "report.md").read_text()
    assert f"## {rel.HEADING}" in md and rel.TRUTH_SENTENCES["noise_flipped"] in md
    assert rel.TRUTH_SENTENCES["label_changed"] not in md  # it says what relabelled means once, for these runs
    assert "With labels=current the relabelled records" not in md
    groups = {m: [grid.sweep_dir / "runs" / f"method={m},seed={s}" for s in range(2)] for m in ("full", "erts-dbpd")}
    assert rel.truth_column(groups) == "noise_flipped"
    flipped = rel.reliability_table(groups, n_boot=100, truth="noise_flipped")
    relabelled = rel.reliability_table(groups, n_boot=100, truth="label_changed")
    assert relabelled.empty and not flipped.empty
    assert rel.verdict(flipped, "erts-dbpd") in md


def test_counts_file_replaces_the_logs(sweep, tmp_path):
    """A run published with selection_counts.npz and without its logs gives the same table, the hand counts
    of test_rates_by_hand included; a run without select epochs writes no file."""
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    for run in sorted((copy / "runs").iterdir()):
        written = rel.write_counts(run)
        assert (written is None) == run.name.startswith("method=full")
        shutil.rmtree(run / "selection")
    from_logs = rel.reliability_table(sorted((sweep / "runs").iterdir()), n_boot=300)
    from_counts = rel.reliability_table(sorted((copy / "runs").iterdir()), n_boot=300)
    pd.testing.assert_frame_equal(from_logs, from_counts)
    r = row(from_counts, "erts-dbpd", "focus_filter", "overall")
    assert (r["relabelled_dropped"], r["n_relabelled_candidates"]) == (27, 40)
    assert (r["unchanged_dropped"], r["n_unchanged_candidates"]) == (12, 78)
    with np.load(copy / "runs" / "method=dbpd,seed=0" / rel.COUNTS_FILE) as z:
        assert sorted(z.files) == ["rule_cand", "rule_drop", "rule_epochs", "rule_index"]  # no focus scores
        assert z["rule_index"][0] == OFFSET and list(z["rule_epochs"]) == [1, 2, 3]


def test_counts_file_of_the_wrong_shape_is_an_error(sweep, tmp_path):
    run = write_run(tmp_path / "r", "dbpd", 0, CHANGED, scenario_epochs("dbpd", 0))
    rel.write_counts(run)
    with np.load(run / rel.COUNTS_FILE) as z:
        arrays = dict(z)
    arrays["rule_cand"] = arrays["rule_cand"][:, :2]
    shutil.rmtree(run / "selection")
    np.savez(run / rel.COUNTS_FILE, **arrays)
    with pytest.raises(rel.DataError, match="rule counts have shape"):
        rel.run_counts(run, "rule")


def two_label_run(run_dir: Path, dropped: dict[str, tuple[int, int]]) -> Path:
    """One ERTS epoch over 70 records: label A 10 relabelled + 10 unchanged, label N 10 relabelled + 40
    unchanged; ``dropped[label]`` = (relabelled, unchanged) the filter removed."""
    groups = [("A", True, 10), ("A", False, 10), ("N", True, 10), ("N", False, 40)]
    labels, changed, drop = [], [], []
    for label, rel_, n in groups:
        k = dropped[label][0 if rel_ else 1]
        labels += [label] * n
        changed += [rel_] * n
        drop += [True] * k + [False] * (n - k)
    n = len(labels)
    epoch = {"phase": "select", "p": np.full(n, 0.5), "focus": np.full(n, 0.5), "pdd_keep": np.ones(n, bool),
             "erts_keep": ~np.array(drop)}
    return write_run(run_dir, "erts-dbpd", 0, changed, [{"phase": "warmup"}, epoch], labels)


def test_ratio_within_labels_sees_through_a_label_that_is_dropped_more(tmp_path):
    # Each label's relabelled and unchanged records are dropped alike (A 50 % / 50 %, N 10 % / 10 %), but
    # the relabelled sit more in A: pooled 6/20 against 9/50, a ratio of 1.67; within labels exactly 1.
    run = two_label_run(tmp_path / "same", {"A": (5, 5), "N": (1, 4)})
    r = row(rel.reliability_table({"f": [run]}, n_boot=300), "f", "focus_filter", "overall")
    assert r["ratio"] == pytest.approx((6 / 20) / (9 / 50))
    assert r["ratio_within_labels"] == pytest.approx(1.0)  # (5*10/20 + 1*40/50) / (5*10/20 + 4*10/50)
    assert r["within_ci_low"] < 1 < r["within_ci_high"]
    # Twice the unchanged rate in each label (A 40 % / 20 %, N 20 % / 10 %): within labels 2.
    run = two_label_run(tmp_path / "twice", {"A": (4, 2), "N": (2, 4)})
    t = rel.reliability_table({"f": [run]}, n_boot=300)
    r = row(t, "f", "focus_filter", "overall")
    assert r["ratio_within_labels"] == pytest.approx((4 * 10 / 20 + 2 * 40 / 50) / (2 * 10 / 20 + 4 * 10 / 50))
    assert r["ratio_within_labels"] == pytest.approx(2.0)
    assert np.isnan(row(t, "f", "focus_filter", 1)["ratio_within_labels"])  # overall rows only
    shown = rel.display_table(t)
    assert shown["ratio within labels [95% CI]"].iloc[0].startswith("2.00 [")
    assert "ratio within labels [95% CI]" not in rel.display_table(t[t["scope"] != "overall"], None).columns
    assert "Comparing only records that carry the same given label (Mantel-Haenszel over labels), the ratio " \
        "is 2.00" in rel.verdict(t, "f")
    by_label = rel.by_label_table({"f": [run]}).set_index(["which", "label"])
    a, n = by_label.loc[("focus_filter", "A")], by_label.loc[("focus_filter", "N")]
    assert (a.n_relabelled_candidates, a.relabelled_drop_rate, a.unchanged_drop_rate) == (10, 0.4, 0.2)
    assert (n.n_unchanged_candidates, n.relabelled_drop_rate, n.unchanged_drop_rate, n.ratio) == (40, 0.2, 0.1, 2.0)
    md = section_markdown({"f": [run]}, n_boot=50)
    assert "Per given label" in md and "| f | reliability filter | N | 20.0% of 10 | 10.0% of 40 | 2.00 |" in md


def test_the_within_labels_ratio_is_read_from_counts_too(tmp_path):
    run = two_label_run(tmp_path / "run", {"A": (4, 2), "N": (2, 4)})
    published = tmp_path / "published"
    published.mkdir()
    for f in ("config.yaml", "log.csv", "train_records.csv"):
        shutil.copy(run / f, published / f)
    rel.write_counts(run, published)
    a = rel.reliability_table({"f": [run]}, n_boot=200)
    b = rel.reliability_table({"f": [published]}, n_boot=200)
    pd.testing.assert_frame_equal(a, b)

