"""benchmarks/publish.sh: a published sweep's runs land in git, so the sweep can resume on a new machine.

Every publish before b01f69a copied the runs into benchmarks/measured/<name>/runs/, which the top-level
``runs/`` ignore rule kept out of every commit: a new machine found the results tables and no run.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from erts.report.reliability import COUNTS_FILE, run_counts

ROOT = Path(__file__).resolve().parents[1]
SMALL_FILES = ["config.yaml", "log.csv", "metrics.json", "run.json", "predictions_test.npz"]


def fake_sweep(root: Path) -> Path:
    sweep = root / "sweep"
    run = sweep / "runs" / "seed=0,method=full"
    unfinished = sweep / "runs" / "seed=1,method=full"
    run.mkdir(parents=True)
    unfinished.mkdir(parents=True)
    (sweep / "results.csv").write_text("run,test_macro_f1\nseed=0,method=full,0.7\n")
    (sweep / "grid.yaml").write_text("name: sweep\n")
    for f in SMALL_FILES + ["checkpoint_last.pt"]:
        (run / f).write_text(f)
    # one select epoch of 4 training records: the rule drops records 0 and 2 (2 is a flipped label)
    (run / "log.csv").write_text("epoch,phase\n0,select\n")
    pd.DataFrame({"index": [0, 1, 2, 3], "record_id": ["a", "b", "c", "d"], "label": "N",
                  "noise_flipped": [False, False, True, False]}).to_csv(run / "train_records.csv", index=False)
    (run / "selection").mkdir()
    keep = np.array([False, True, False, True])
    np.savez(run / "selection" / "epoch_000.npz", index=np.arange(4), p=np.full(4, 0.5, np.float32),
             focus=np.full(4, np.nan, np.float32), pdd_keep=keep, erts_keep=keep, updated=keep)
    (unfinished / "log.csv").write_text("epoch\n0\n")  # no metrics.json: still training
    return sweep


def publish(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / "benchmarks/publish.sh"), *map(str, args)],
                          check=True, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_publish_copies_finished_runs_small_files_and_git_keeps_them(tmp_path):
    sweep = fake_sweep(tmp_path)
    dest = tmp_path / "published"
    publish(sweep, dest, "--no-report")
    published = dest / "runs" / "seed=0,method=full"
    assert sorted(p.name for p in published.iterdir()) == sorted(SMALL_FILES)  # no checkpoint, no selection log
    assert not (dest / "runs" / "seed=1,method=full").exists()
    assert (dest / "results.csv").read_text() == (sweep / "results.csv").read_text()
    # the same files under benchmarks/measured/ are not ignored by git (check-ignore exits 1 when none is)
    paths = [f"benchmarks/measured/noise-x/sym20/runs/seed=0,method=full/{f}" for f in SMALL_FILES]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT, capture_output=True, text=True)
    assert ignored.returncode == 1, f"git ignores published run files:\n{ignored.stdout}"
    # while a user's own runs/ stay ignored
    own = subprocess.run(["git", "check-ignore", "--no-index", "runs/r/metrics.json"], cwd=ROOT, capture_output=True)
    assert own.returncode == 0


def test_publish_selection_adds_what_the_drop_ratios_are_computed_from(tmp_path):
    sweep = fake_sweep(tmp_path)
    dest = tmp_path / "published"
    publish(sweep, dest, "--no-report", "--selection")
    published = dest / "runs" / "seed=0,method=full"
    assert sorted(p.name for p in published.iterdir()) == sorted(SMALL_FILES + [COUNTS_FILE, "train_records.csv"])
    with np.load(published / COUNTS_FILE) as z:  # the rule's candidates and drops of epoch 0, per record
        assert list(z["rule_index"]) == [0, 1, 2, 3] and list(z["rule_epochs"]) == [0]
        assert z["rule_cand"].ravel().tolist() == [1, 1, 1, 1] and z["rule_drop"].ravel().tolist() == [1, 0, 1, 0]
    counts = run_counts(published, "rule", truth="noise_flipped")  # read back without the logs
    assert counts.changed.tolist() == [False, False, True, False] and counts.drop.sum() == 2


def test_publish_selection_logs_copies_the_logs(tmp_path):
    sweep = fake_sweep(tmp_path)
    dest = tmp_path / "published"
    publish(sweep, dest, "--no-report", "--selection-logs")
    published = dest / "runs" / "seed=0,method=full"
    assert {"selection", "train_records.csv", COUNTS_FILE} <= {p.name for p in published.iterdir()}
    publish(sweep, dest, "--no-report", "--selection-logs")  # again: the folder is replaced, not nested
    assert sorted(p.name for p in (published / "selection").iterdir()) == ["epoch_000.npz"]


def test_publish_refuses_an_unknown_option(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as err:
        publish(fake_sweep(tmp_path), tmp_path / "published", "--selections")
    assert "unknown option --selections" in err.value.stderr


def test_publish_refuses_a_results_csv_that_lists_fewer_runs_than_finished(tmp_path):
    """noise_filter's controls are their own run_sweep, which rewrites results.csv with its runs alone."""
    sweep = fake_sweep(tmp_path)
    other = sweep / "runs" / "seed=0,method=random,budget=0.74"
    other.mkdir()
    (other / "metrics.json").write_text("{}")
    with pytest.raises(subprocess.CalledProcessError) as err:
        publish(sweep, tmp_path / "published", "--no-report")
    assert "results.csv lists 1 of its 2 finished runs" in err.value.stderr
    (sweep / "results.csv").write_text("run,test_macro_f1\nseed=0,method=full,0.7\nx,0.6\n")
    publish(sweep, tmp_path / "published", "--no-report")
