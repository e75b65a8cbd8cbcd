"""benchmarks/publish.sh: a published sweep's runs land in git, so the sweep can resume on a new machine.

Every publish before b01f69a copied the runs into benchmarks/measured/<name>/runs/, which the top-level
``runs/`` ignore rule kept out of every commit: a new machine found the results tables and no run.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
    for f in SMALL_FILES + ["checkpoint_last.pt", "train_records.csv"]:
        (run / f).write_text(f)
    (run / "selection").mkdir()
    (run / "selection" / "epoch_000.npz").write_text("log")
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
    assert sorted(p.name for p in published.iterdir()) == sorted(SMALL_FILES + ["selection", "train_records.csv"])
    assert (published / "selection" / "epoch_000.npz").read_text() == "log"
    publish(sweep, dest, "--no-report", "--selection")  # again: the folder is replaced, not nested
    assert sorted(p.name for p in (published / "selection").iterdir()) == ["epoch_000.npz"]


def test_publish_refuses_an_unknown_option(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as err:
        publish(fake_sweep(tmp_path), tmp_path / "published", "--selections")
    assert "unknown option --selections" in err.value.stderr
