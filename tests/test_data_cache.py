"""The dataset cache: empty record sets fail at prepare time, entries are listed and removed by
`erts data cache`, folders follow the umask."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
from fixtures_wfdb import write_cinc2017, write_wfdb_folder

from erts.cli.main import main
from erts.data.cache import cached, entry_path, list_entries, save_recordset
from erts.data.records import RecordSet
from erts.errors import DataError


def empty_set() -> RecordSet:
    return RecordSet(name="x", signals=np.zeros((0, 1, 10), np.float32), labels=np.zeros(0, np.int64),
                     split=np.array([], dtype="U5"), record_ids=np.array([], dtype=str), class_names=["a"],
                     fs=100.0, lead_names=["I"], skipped=[("r1", "flat lead(s) I (constant signal)")])


def test_zero_records_is_an_error_not_an_empty_entry(tmp_path):
    with pytest.raises(DataError, match=r"^x: no usable records \(1 skipped, first: r1: flat lead\(s\) I"):
        cached("x", {"k": 1}, empty_set, str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary folder


def test_an_old_empty_entry_is_rebuilt(tmp_path):
    folder = entry_path("x", {"k": 2}, str(tmp_path))
    save_recordset(empty_set(), folder)  # as an older erts left it
    with pytest.raises(DataError, match="no usable records"):
        cached("x", {"k": 2}, empty_set, str(tmp_path))
    assert not folder.exists()


def test_cache_folders_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        root = write_wfdb_folder(tmp_path / "ecg", {f"r{i}": "xy"[i % 2] for i in range(10)}, n_leads=1, seconds=2.0)
        os.environ["ERTS_QUIET"] = "1"
        assert main(["data", "prepare", "wfdb-folder", "--root", str(root), f"cache_dir={tmp_path / 'c'}"]) == 0
    finally:
        os.umask(old)
        os.environ.pop("ERTS_QUIET", None)
    (entry,) = [p for p in (tmp_path / "c").iterdir() if p.is_dir()]
    assert entry.stat().st_mode & 0o777 == 0o750  # mkdtemp alone gives 0700
    assert (entry / "signals.npy").stat().st_mode & 0o777 == 0o640


def _entry(tmp_path, rid_count: int, name: str, age_days: float):
    cache = tmp_path / "c"
    rs = RecordSet(name=name, signals=np.zeros((rid_count, 1, 1000), np.float32), labels=np.zeros(rid_count, np.int64),
                   split=np.array(["train"] * rid_count, dtype="U5"),
                   record_ids=np.array([f"r{i}" for i in range(rid_count)]), class_names=["a"], fs=100.0,
                   lead_names=["I"])
    folder = entry_path(name, {"n": rid_count}, str(cache))
    save_recordset(rs, folder)
    (folder.with_name(folder.name + ".split.csv")).write_text("record,split\n")
    t = time.time() - age_days * 86400
    os.utime(folder / "info.json", (t, t))
    return folder


def test_cache_lists_sizes_and_removes_old_entries(tmp_path, capsys):
    old = _entry(tmp_path, 50, "cinc2017", age_days=40)
    new = _entry(tmp_path, 20, "mitbih", age_days=1)
    (tmp_path / "c" / "uv").mkdir()  # not an entry (env.sh keeps its package cache here): never touched
    (tmp_path / "c" / "notes.txt").write_text("mine")
    killed = tmp_path / "c" / (old.name.replace("cinc2017", "ptbxl") + ".tmp-abc123")
    killed.mkdir()
    (killed / "signals.npy").write_bytes(b"\0" * 100)
    t = time.time() - 3 * 86400
    os.utime(killed, (t, t))

    entries = {e.path.name: e for e in list_entries(tmp_path / "c")}
    assert set(entries) == {old.name, new.name, killed.name}
    expected = sum(p.stat().st_size for p in old.iterdir()) + len("record,split\n")
    assert entries[old.name].size == expected and entries[old.name].records == 50
    assert not entries[killed.name].complete and entries[killed.name].size == 100
    assert 39.9 < entries[old.name].age_days < 40.1

    assert main(["data", "cache", f"cache_dir={tmp_path / 'c'}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["entry", "size", "records", "last", "used"]
    rows = {ln.split()[0]: ln.split()[1:] for ln in out[1:-1]}
    assert rows[old.name][:3] == [f"{expected / 1000:.1f}", "KB", "50"] and rows[old.name][3] == "40.0"
    assert rows[killed.name][2] == "partial"
    assert out[-1].startswith("3 entries, ")

    assert main(["data", "cache", f"cache_dir={tmp_path / 'c'}", "--remove-older-than", "30"]) == 0
    assert "removed 1 of 3 cache entries" in capsys.readouterr().out
    assert not old.exists() and not old.with_name(old.name + ".split.csv").exists() and new.exists()
    assert main(["data", "cache", "--remove-older-than", "2", f"cache_dir={tmp_path / 'c'}"]) == 0
    assert not killed.exists() and new.exists()
    assert main(["data", "cache", "--clear", f"cache_dir={tmp_path / 'c'}"]) == 0
    assert "removed 1 of 1" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["notes.txt", "uv"]


def test_cache_loading_marks_the_entry_used(tmp_path):
    folder = _entry(tmp_path, 5, "x", age_days=10)
    rs = cached("x", {"n": 5}, lambda: pytest.fail("must load, not build"), str(tmp_path / "c"))
    assert rs.fresh is False and time.time() - (folder / "info.json").stat().st_mtime < 60


def test_cache_bad_options(tmp_path, capsys):
    assert main(["data", "cache", "--clear", "--remove-older-than", "1", f"cache_dir={tmp_path}"]) == 2
    assert "not both" in capsys.readouterr().err


def test_info_all_lists_every_skipped_record(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ERTS_QUIET", "1")
    labels = {f"A{i:05d}": "NAO~"[i % 4] for i in range(1, 21)}
    folder = write_cinc2017(tmp_path, labels, seconds={r: 9 for r in labels})
    missing = sorted(labels)[:8]
    for rid in missing:
        (folder / f"{rid}.mat").unlink()
    args = ["data", "info", "cinc2017", "--root", str(folder), f"cache_dir={tmp_path / 'c'}", "length_s=9"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "skipped (8; first 5, --all lists every one):" in out
    assert sum(ln.startswith("  A000") for ln in out.splitlines()) == 5
    assert main(args + ["--all"]) == 0
    out = capsys.readouterr().out
    assert "skipped (8):" in out
    listed = [ln.split(":")[0].strip() for ln in out.splitlines() if ln.startswith("  A000")]
    assert listed == missing
