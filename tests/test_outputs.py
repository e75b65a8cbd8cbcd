"""Outputs: files written with the user's umask; progress as plain lines when stderr is not a terminal."""
from __future__ import annotations

import io
import os

import pytest
from fixtures_wfdb import write_wfdb_folder

from erts.cli.main import main
from erts.progress import LineProgress, progress
from erts.train import runio


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_atomic_files_follow_the_umask(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        runio.write_text(tmp_path / "a.txt", "x")
        runio.write_json(tmp_path / "m.json", {"a": 1})
        runio.save_checkpoint(tmp_path / "ck" / "last.pt", {"epoch": 1})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")  # what an ordinary open() gives: the reference
    finally:
        os.umask(old)
    assert plain.stat().st_mode & 0o777 == mode
    for p in (tmp_path / "a.txt", tmp_path / "m.json", tmp_path / "ck" / "last.pt"):
        assert p.stat().st_mode & 0o777 == mode, p
    assert runio.current_umask() == old


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_every_n_items(monkeypatch):
    monkeypatch.delenv("ERTS_PROGRESS", raising=False)
    monkeypatch.delenv("ERTS_QUIET", raising=False)
    out = io.StringIO()
    items = list(progress(range(25), "prep", unit="rec", every=10, stream=out))
    assert items == list(range(25))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [ln.split(",")[0] for ln in lines] == ["prep: 10/25 rec (40%)", "prep: 20/25 rec (80%)",
                                                  "prep: 25/25 rec (100%)"]
    assert lines[0].endswith("s left") and lines[-1].endswith(", done")


def test_default_every_is_a_tenth_and_postfix_is_shown(monkeypatch):
    monkeypatch.delenv("ERTS_PROGRESS", raising=False)
    out = io.StringIO()
    bar = progress(range(3), "epochs", unit="epoch", every=1, stream=out, disable=False)
    for epoch in bar:
        bar.set_postfix(val_f1=f"{0.5 + epoch / 10:.3f}")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[1].startswith("epochs: 2/3 epoch (67%)") and lines[1].endswith("[val_f1=0.600]")
    out = io.StringIO()
    list(progress(range(100), "b", stream=out, disable=False))
    assert len(out.getvalue().splitlines()) == 10


def test_tty_gets_tqdm_and_quiet_gets_nothing(monkeypatch):
    from tqdm import tqdm

    monkeypatch.delenv("ERTS_PROGRESS", raising=False)
    monkeypatch.delenv("ERTS_QUIET", raising=False)
    tty = FakeTTY()
    bar = progress(range(3), "x", stream=tty)
    assert isinstance(bar, tqdm)
    list(bar)
    monkeypatch.setenv("ERTS_QUIET", "1")
    out = io.StringIO()
    assert list(progress(range(3), "x", stream=out)) == [0, 1, 2] and out.getvalue() == ""
    monkeypatch.delenv("ERTS_QUIET")
    monkeypatch.setenv("ERTS_PROGRESS", "lines")
    assert isinstance(progress(range(3), "x", stream=tty), LineProgress)


def test_every_zero_prints_by_time_only(monkeypatch):
    import erts.progress as pr

    clock = iter(range(0, 1000, 10))  # each call: 10 s later
    monkeypatch.setattr(pr.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    list(progress(range(10), "long", every=0, interval=25, stream=out, disable=False))
    lines = [ln.split(",")[0] for ln in out.getvalue().splitlines()]
    assert lines == ["long: 3/10 it (30%)", "long: 6/10 it (60%)", "long: 9/10 it (90%)", "long: 10/10 it (100%)"]


def test_unknown_total_and_early_stop(monkeypatch):
    monkeypatch.delenv("ERTS_PROGRESS", raising=False)
    out = io.StringIO()
    list(progress((i for i in range(250)), "gen", stream=out, disable=False))
    assert [ln.split(",")[0] for ln in out.getvalue().splitlines()] == ["gen: 100 it", "gen: 200 it", "gen: 250 it"]
    out = io.StringIO()
    for i in progress(range(10), "stop", stream=out, every=100, disable=False):
        if i == 3:
            break
    (line,) = out.getvalue().splitlines()  # one line at close: where it stopped, not "done"
    assert line.startswith("stop: 3/10 it (30%)") and "done" not in line


def test_dataset_preparation_logs_plain_lines(tmp_path, capfd, monkeypatch):
    """Not a terminal (as in CI or `2> log`): the loaders print lines, not carriage-return bars."""
    monkeypatch.delenv("ERTS_QUIET", raising=False)
    monkeypatch.delenv("ERTS_PROGRESS", raising=False)
    root = write_wfdb_folder(tmp_path / "ecg", {f"r{i}": "xy"[i % 2] for i in range(20)}, n_leads=1, seconds=2.0)
    assert main(["data", "prepare", "wfdb-folder", "--root", str(root), f"cache_dir={tmp_path / 'c'}"]) == 0
    err = capfd.readouterr().err
    assert "\r" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("wfdb-folder: ")]
    assert lines[0].startswith("wfdb-folder: 2/20 rec (10%)") and lines[-1].startswith("wfdb-folder: 20/20 rec (100%)")
    assert len(lines) == 10
