"""Every run and report records the erts version, the git commit and the command line; resuming a
finished run says so and trains nothing; a resumed run's progress counts the epochs left."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_overrides
from erts.cli.main import main
from erts.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_version_is_the_package_version(capsys):
    import erts

    expected = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert erts.__version__ == expected
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith(f"erts {expected}")


@needs_git
def test_git_commit_of_a_checkout_dirty_mark_and_none_outside(tmp_path):
    from erts.train.runio import git_commit

    repo = tmp_path / "repo"
    pkg = repo / "src" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "one")
    head = git(repo, "log", "-1", "--format=%H")
    assert len(head) == 40 and git_commit(pkg) == head
    (repo / "notes.txt").write_text("untracked files are not changes to the code\n")
    assert git_commit(pkg) == head
    (pkg / "__init__.py").write_text("x = 2\n")
    assert git_commit(pkg) == head + "+dirty"
    # a copy of the package that git does not track (an installed erts inside some repository's folder)
    (repo / ".gitignore").write_text("site/\n")
    shutil.copytree(pkg, repo / "site" / "pkg")
    assert git_commit(repo / "site" / "pkg") is None
    plain = tmp_path / "plain" / "pkg"  # no repository at all
    shutil.copytree(pkg, plain)
    assert git_commit(plain) is None


@pytest.fixture(scope="module")
def finished_run(cache_dir, tmp_path_factory):
    """A tiny run trained through the command line in a subprocess (its own sys.argv)."""
    out = tmp_path_factory.mktemp("prov")
    args = ["train", *tiny_overrides(cache_dir, out, method="erts-dbpd", epochs=3, name="r")]
    env = {**os.environ, "ERTS_CACHE": str(cache_dir)}
    subprocess.run([sys.executable, "-m", "erts.cli.main", *args], env=env, check=True, capture_output=True)
    return out / "r", args


def test_run_records_version_commit_and_command(finished_run):
    import erts

    run, args = finished_run
    info = json.loads((run / "run.json").read_text())
    assert info["erts_version"] == erts.__version__
    assert info["command"][1:] == args and info["command"][0].endswith(os.path.join("erts", "cli", "main.py"))
    if shutil.which("git") and (ROOT / ".git").exists():
        head = git(ROOT, "rev-parse", "HEAD")
        dirty = bool(git(ROOT, "status", "--porcelain", "--untracked-files=no"))
        assert info["git_commit"] in (head, head + "+dirty")  # the tree may change while the test runs
        if dirty:
            assert info["git_commit"] == head + "+dirty"
    assert info["resumes"] == []
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["provenance"] == info
    # config.yaml is still the plain config: --resume reads it back
    cfg = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    assert cfg.selection.method == "erts-dbpd" and cfg.train.epochs == 3


def test_report_shows_provenance(finished_run, tmp_path):
    from erts.report.build import build_report

    run, args = finished_run
    html, md = build_report(run, out_dir=tmp_path, examples=0, n_boot=50)
    info = json.loads((run / "run.json").read_text())
    text = html.read_text()
    assert "Provenance" in text and info["erts_version"] in text and " ".join(args[:3]) in text
    if info["git_commit"]:
        assert info["git_commit"] in text
    assert "This report: erts" in md.read_text()


def test_resuming_a_finished_run_says_so_and_trains_nothing(finished_run, capsys):
    run, _ = finished_run
    stamps = {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}
    rc = main(["train", "--resume", str(run)])
    out = capsys.readouterr().out
    assert rc == 0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "is finished" in lines[0] and "nothing to resume" in lines[0]
    assert {p.name: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()} == stamps
    from erts.train.loop import resume

    m = resume(run, progress=False)  # the library call returns the finished run's metrics as they are
    assert m == json.loads((run / "metrics.json").read_text())


def test_resumed_run_counts_the_epochs_left(cache_dir, tmp_path, monkeypatch, capsys):
    """Stopped after epoch 1 of 0-4, the resumed run's progress counts 3 epochs (2, 3, 4), not 5; run.json
    gets the resume's provenance."""
    from erts.config import load_config
    from erts.train import loop

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="full", epochs=5, name="r"))
    real = loop.Trainer.run_epoch

    def stop_at_2(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(self, epoch)

    monkeypatch.setattr(loop.Trainer, "run_epoch", stop_at_2)
    with pytest.raises(KeyboardInterrupt):
        loop.train(cfg)
    monkeypatch.setattr(loop.Trainer, "run_epoch", real)
    assert len(pd.read_csv(tmp_path / "r" / "log.csv")) == 2
    monkeypatch.setenv("ERTS_PROGRESS", "lines")
    capsys.readouterr()
    loop.resume(tmp_path / "r", progress=True)
    cap = capsys.readouterr()
    epoch_lines = [ln for ln in cap.err.splitlines() if ln.startswith("epochs")]
    assert epoch_lines and all("/3 epoch" in ln for ln in epoch_lines), epoch_lines
    assert epoch_lines[-1].startswith("epochs 2-4 of 0-4: 3/3 epoch (100%)")
    assert "resumed    epochs 0-1 of 0-4 done; 3 to go" in cap.out
    assert len(pd.read_csv(tmp_path / "r" / "log.csv")) == 5
    info = json.loads((tmp_path / "r" / "run.json").read_text())
    assert len(info["resumes"]) == 1 and info["resumes"][0]["erts_version"] == info["erts_version"]
