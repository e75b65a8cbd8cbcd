"""`erts demo` (make demo): full against erts-dbpd on the built-in data, one table, one report."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from erts.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["n_records=200", "corrupt_frac=0.2", "length_s=2", "crop_s=1", "epochs=4", "batch_size=32", "num_threads=1",
        "score_batch_size=64"]


@pytest.fixture(scope="module")
def demo(cache_dir, tmp_path_factory):
    """One tiny demo (seconds), run through the command line in this process."""
    import os

    out = tmp_path_factory.mktemp("demo")
    os.environ["ERTS_PROGRESS"] = "off"
    try:
        from contextlib import redirect_stdout
        from io import StringIO

        buf = StringIO()
        with redirect_stdout(buf):
            rc = main(["demo", *TINY, "--out-dir", str(out), "--name", "d"])
    finally:
        os.environ.pop("ERTS_PROGRESS", None)
    return rc, buf.getvalue(), out / "d"


def table_row(text: str, method: str) -> list[str]:
    line = next(ln for ln in text.splitlines() if ln.startswith(method + " "))
    return line.split()


def test_demo_trains_both_methods_and_prints_one_table(demo):
    rc, out, d = demo
    assert rc == 0, out
    runs = {m: d / "runs" / f"method={m}" for m in ("full", "erts-dbpd")}
    metrics = {m: json.loads((r / "metrics.json").read_text()) for m, r in runs.items()}
    assert {m["method"] for m in metrics.values()} == {"full", "erts-dbpd"}
    # the same data and seed: the two runs saw the same training records
    recs = {m: pd.read_csv(r / "train_records.csv")["record_id"].tolist() for m, r in runs.items()}
    assert recs["full"] == recs["erts-dbpd"]
    # the default schedule, proportional to the 4 epochs, runs ERTS in epoch 2, and was printed
    assert "ERTS 2" in out and out.count("schedule ") == 2
    full, erts = table_row(out, "full"), table_row(out, "erts-dbpd")
    assert full[1] == f"{metrics['full']['test']['macro_f1']:.4f}" and full[2] == "4.00"   # full: 4 effective epochs
    assert erts[1] == f"{metrics['erts-dbpd']['test']['macro_f1']:.4f}"
    # ratios to full, by hand from the two metrics.json files
    fl = {m: x["cost"]["flops"]["scoring"] + x["cost"]["flops"]["gradcam"] + x["cost"]["flops"]["update"]
          for m, x in metrics.items()}
    sec = {m: sum(x["cost"]["seconds"][p] for p in ("scoring", "gradcam", "update", "eval", "other"))
           for m, x in metrics.items()}
    assert f"{fl['erts-dbpd'] / fl['full']:.2f}" in erts and f"{sec['erts-dbpd'] / sec['full']:.2f}" in erts
    assert full.count("1.00") >= 3 and full[-2:] == ["-", "-"]  # the baseline: ratios 1, no focus filter


def test_demo_reports_what_the_focus_filter_removed_by_ground_truth(demo):
    _, out, d = demo
    run = d / "runs" / "method=erts-dbpd"
    truth = pd.read_csv(run / "train_records.csv").set_index("index")["corruption"].fillna("none")
    cand, removed, epochs = {True: 0, False: 0}, {True: 0, False: 0}, set()
    for f in sorted((run / "selection").glob("epoch_*.npz")):
        z = np.load(f)
        scored = np.isfinite(z["focus"])
        corrupted = truth.loc[z["index"]].to_numpy() != "none"
        gone = z["pdd_keep"] & ~z["erts_keep"] & scored
        if gone.any():
            epochs.add(int(f.stem.split("_")[1]))
        for c in (True, False):
            cand[c] += int((scored & (corrupted == c)).sum())
            removed[c] += int((gone & (corrupted == c)).sum())
    assert epochs, "the focus filter removed no candidate: the demo did not really run ERTS"
    log = pd.read_csv(run / "log.csv")
    assert set(log.epoch[log.n_erts_kept < log.n_pdd_kept]) == epochs
    row = " ".join(table_row(out, "erts-dbpd"))
    assert f"{removed[True] / cand[True]:.1%} of {cand[True]}" in row
    assert f"{removed[False] / cand[False]:.1%} of {cand[False]}" in row
    assert f"removed candidates in epochs {', '.join(map(str, sorted(epochs)))}" in out


def test_demo_writes_the_report_of_both_runs_and_a_results_table(demo):
    _, out, d = demo
    html = d / "report.html"
    assert f"report: {html}" in out and html.exists()
    text = html.read_text()
    assert "erts-dbpd" in text and "full" in text and "Provenance" in text
    results = pd.read_csv(d / "results.csv")
    assert sorted(results["method"]) == ["erts-dbpd", "full"]
    # each configuration's optimiser steps, from its runs' logs, in the results and the report's table
    for run, steps in zip(results["run"], results["optimizer_steps"]):
        assert steps == pd.read_csv(d / "runs" / run / "log.csv")["n_steps"].sum()
    assert "optimiser steps" in (d / "report.md").read_text()
    grid = yaml.safe_load((d / "grid.yaml").read_text())
    assert grid["grid"] == {"method": ["full", "erts-dbpd"]} and grid["base"]["n_records"] in (200, "200")


def test_demo_never_overwrites_a_demo_folder(demo, capsys):
    _, _, d = demo
    before = {p: p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()}
    rc = main(["demo", *TINY, "--out-dir", str(d.parent), "--name", d.name])
    err = capsys.readouterr().err
    assert rc == 2 and "already exists" in err and "Traceback" not in err
    assert {p: p.stat().st_mtime_ns for p in d.rglob("*") if p.is_file()} == before


def test_resuming_a_finished_demo_trains_nothing(demo, capsys):
    _, _, d = demo
    metrics = d / "runs" / "method=full" / "metrics.json"
    mtime = metrics.stat().st_mtime_ns
    assert main(["demo", "--resume", str(d), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert out.count("already finished") == 2 and metrics.stat().st_mtime_ns == mtime


def test_demo_default_folder_is_time_stamped_and_bad_settings_fail_first(tmp_path, capsys):
    rc = main(["demo", "phii=1", "--out-dir", str(tmp_path)])
    assert rc == 2 and "unknown config key 'phii'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written
    rc = main(["demo", "method=dbpd", "--out-dir", str(tmp_path)])
    assert rc == 2 and "--methods" in capsys.readouterr().err


def test_make_demo_runs_erts_demo_with_the_settings_of_configs_demo_yaml():
    from erts.cli.demo_cmd import DEMO

    make = (ROOT / "Makefile").read_text()
    demo_rule = make[make.index("\ndemo:"):].split("\n\n")[0]
    assert "erts demo" in demo_rule
    assert yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text()) == DEMO
