"""`erts data list|info|prepare|download` on fixtures."""
from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_wfdb import write_cinc2017, write_wfdb_folder, zip_folder

from erts.cli.main import main
from erts.data import list_datasets


@pytest.fixture(scope="module")
def cinc_zip(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-cinc")
    folder = write_cinc2017(root, {f"A{i:05d}": "NAO~"[i % 4] for i in range(1, 21)})
    (folder / "A00003.mat").unlink()
    return zip_folder(folder, root / "training2017.zip")


def test_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name, desc in list_datasets().items():
        assert name in out and desc in out


def test_info_shows_counts_skipped_and_cache(cinc_zip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ERTS_QUIET", "0")  # --quiet sets it; monkeypatch restores it afterwards
    rc = main(["data", "info", "cinc2017", "--root", str(cinc_zip), f"cache_dir={tmp_path}", "length_s=10", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "records: 19 kept, 1 skipped" in out
    assert "1 lead(s) (ECG), 300 Hz, 3000 samples (10 s)" in out
    assert "A00003: signal file A00003.mat not found" in out
    table = {ln.split()[0]: ln.split()[1:] for ln in out.splitlines() if ln.split()[:1] in (["train"], ["val"], ["test"])}
    assert sum(int(v[-1]) for v in table.values()) == 19
    cache = next(ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("cache: "))
    split_file = next(ln.split(": ", 1)[1] for ln in out.splitlines() if ln.startswith("split file: "))
    assert Path(cache).parent == tmp_path and (Path(cache) / "signals.npy").exists() and Path(split_file).exists()


def test_prepare_builds_then_hits_the_cache(tmp_path, capsys):
    root = write_wfdb_folder(tmp_path / "ecg", {f"r{i}": "xy"[i % 2] for i in range(10)}, n_leads=1, seconds=2.0)
    args = ["data", "prepare", "wfdb-folder", "--root", str(root), f"cache_dir={tmp_path / 'c'}", "split_seed=2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "wfdb-folder: 10 records prepared in" in first and "cache: " in first
    assert main(args) == 0
    assert "already cached" in capsys.readouterr().out


def test_errors_are_reported_not_raised(tmp_path, capsys):
    # bad paths and data exit 2 like config errors, as every other command does (erts.errors)
    assert main(["data", "info", "cinc2017", "--root", str(tmp_path / "nope"), f"cache_dir={tmp_path}"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["data", "info", "cinc2017", "--root", str(tmp_path), "no_such_key=1"]) == 2
    assert "unknown config key 'no_such_key'" in capsys.readouterr().err


def test_download_calls_the_downloader(tmp_path, capsys, monkeypatch):
    import erts.data.download as dl

    calls = []

    def fake(dataset, root, *, base_url=None, quiet=False):
        calls.append((dataset, root, base_url, quiet))
        return root / "training2017.zip"

    monkeypatch.setattr(dl, "download", fake)
    assert main(["data", "download", "cinc2017", "--root", str(tmp_path), "--base-url", "http://mirror/x", "--quiet"]) == 0
    assert calls == [("cinc2017", tmp_path, "http://mirror/x", True)]
    assert f"erts data prepare cinc2017 --root {tmp_path / 'training2017.zip'}" in capsys.readouterr().out


def test_class_names_with_commas_are_quoted_in_info(tmp_path, capsys, monkeypatch):
    """The class list was joined with ', ' although a class name may hold a comma: two classes
    'AF' and 'AV block, 1st degree' read as three."""
    monkeypatch.setenv("ERTS_QUIET", "1")
    labels = {f"r{i:02d}": ['"AV block, 1st degree";AF', "AF", '"AV block; 2nd degree"'][i % 3] for i in range(12)}
    root = write_wfdb_folder(tmp_path / "ecg", labels, n_leads=1, seconds=2.0)
    assert main(["data", "info", "wfdb-folder", "--root", str(root), f"cache_dir={tmp_path / 'c'}"]) == 0
    out = capsys.readouterr().out
    assert 'labels: multi-label, 3 classes (AF, "AV block, 1st degree", "AV block; 2nd degree")' in out


def test_cached_load_imports_no_signal_processing(cinc_zip, tmp_path):
    """A load from the cache took 2.2 s, 1.4 s of it importing scipy.signal, which only preparing needs
    (issue 25). In a fresh interpreter, `erts data info` on a prepared entry imports neither scipy.signal
    nor scipy.io nor wfdb."""
    import subprocess
    import sys

    args = ["data", "info", "cinc2017", "--root", str(cinc_zip), f"cache_dir={tmp_path}", "--quiet"]
    assert main(args) == 0  # prepares the entry (here scipy is imported, in this process)
    probe = ("import sys\nfrom erts.cli.main import main\nrc = main(sys.argv[1:])\n"
             "print(rc, *[m for m in ('scipy.signal', 'scipy.io', 'wfdb') if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[-1] == "0"  # 0: exit code, then the modules imported (none)
