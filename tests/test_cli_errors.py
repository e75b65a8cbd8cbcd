"""Every command fails clearly: one line naming the setting or path and the reason, exit code 2,
no traceback (ERTS_DEBUG=1 shows it); Ctrl-C and SIGTERM stop `erts train` with a resume hint."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_wfdb import write_cinc2017, write_wfdb_folder

from erts.cli.main import main
from erts.errors import DataError


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    err = capsys.readouterr().err
    return rc, err


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {err!r}"
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def places(tmp_path, monkeypatch):
    """A working folder with an empty folder, a file that is not a zip and a broken CinC set."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ERTS_QUIET", "1")
    monkeypatch.delenv("ERTS_DEBUG", raising=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notzip.zip").write_text("not a zip")
    broken = write_cinc2017(tmp_path / "broken", {"A00001": "N", "A00002": "A"}, seconds={"A00001": 9, "A00002": 9})
    for mat in broken.glob("*.mat"):
        mat.unlink()  # every record unusable
    return tmp_path


@pytest.mark.parametrize("args, needle", [
    (["train", "dataset=cinc2017", "root=missing"], "dataset root missing does not exist"),
    (["train", "dataset=cinc2017", "root=empty"], "empty: no REFERENCE.csv found"),
    (["train", "dataset=cinc2017", "root=notzip.zip"], "notzip.zip is a file but not a zip archive"),
    (["train", "dataset=cinc2017"], "cinc2017 needs root="),
    (["train", "dataset=wfdb-folder", "root=empty"], "empty: no labels.csv"),
    (["train", "dataset=mitbih", "root=empty"], "no .hea files under empty"),
    (["train", "dataset=cinc2017", "root=broken"], "cinc2017: no usable records in broken (2 skipped"),
    (["train", "dataset=nope"], "config error: dataset='nope' is not accepted"),
    (["train", "model=nope"], "config error: model='nope' is not accepted"),
    (["train", "--config", "missing.yaml"], "--config missing.yaml: no such file"),
    (["train", "--resume", "runs/none"], "--resume runs/none: no such run folder"),
    (["train", "--resume", "empty"], "--resume empty: not a run folder (no config.yaml)"),
    (["sweep", "missing.yaml"], "missing.yaml: No such file or directory"),
    (["report", "runs/none"], "runs/none"),
    (["data", "info", "cinc2017", "--root", "notzip.zip"], "notzip.zip is a file but not a zip archive"),
    (["data", "prepare", "cinc2017", "--root", "broken"], "no usable records"),
    (["data", "info", "synthetic", "length_s=1", "cache_dir=c"], "config error: synthetic: fs=100.0 Hz and length_s=1.0"),
    (["data", "info", "synthetic", "n_records=5", "cache_dir=c"], "config error: synthetic: n_records=5 is too small"),
])
def test_one_line_exit_2(places, capsys, args, needle):
    rc, err = run_cli(args, capsys)
    assert rc == 2
    line = one_line(err)
    assert line.startswith("erts: ") and needle in line, line


def test_empty_splits_are_said_at_info_and_stop_training_before_its_folder(places, capsys, tmp_path):
    """A small multi-label wfdb-folder (each record's rarest label on 2 records) got empty val and
    test splits without a word at `erts data info`; the training run then failed after writing
    runs/<name>/{config.yaml,run.json}. Now info warns in one line and train stops before the folder."""
    write_wfdb_folder(tmp_path / "ml", {f"r{i:02d}": f"n;c{i % 5}" for i in range(10)}, seconds=2)
    rc, err = run_cli(["data", "info", "wfdb-folder", "--root", "ml", "cache_dir=c"], capsys)
    assert rc == 0
    assert one_line(err).startswith("erts: warning: wfdb-folder: the val and test splits are empty "
                                    "(10 train, 0 val, 0 test records); ")
    rc, err = run_cli(["train", "dataset=wfdb-folder", "root=ml", "cache_dir=c", "out_dir=runs", "name=ml"], capsys)
    assert rc == 2
    assert one_line(err).startswith("erts: error: wfdb-folder: the val and test splits are empty")
    assert not (tmp_path / "runs").exists()


def test_explain_missing_run_is_exit_2(places, capsys):
    rc, err = run_cli(["explain", "runs/none", "--record", "x"], capsys)
    assert rc == 2 and "Traceback" not in err
    assert "runs/none" in err.splitlines()[-1] and err.splitlines()[-1].startswith("erts: ")


def test_explain_of_a_missing_run_is_one_line(places, capsys):
    """It printed the run's (empty) keep/filter history on stdout, then the error."""
    rc = main(["explain", "runs/nosuchrun", "--record", "1"])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert one_line(err) == "erts: error: runs/nosuchrun: no such run folder"


@pytest.mark.parametrize("args", [["data", "info", "nosuchdataset"], ["data", "prepare", "nosuchdataset"],
                                  ["data", "download", "nosuchdataset", "--root", "x"]])
def test_unknown_dataset_at_erts_data_is_one_line(places, capsys, args):
    """argparse printed its usage text before the error."""
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert one_line(err).startswith("erts: config error: dataset='nosuchdataset' ")
    assert "available: synthetic, ptbxl" in err or "downloadable: ptbxl" in err


@pytest.mark.parametrize("setting, needle", [
    ("fs=0", "fs=0.0 must be > 0"),
    ("length_s=-1", "length_s=-1.0 must be > 0"),
    ("bandpass=[40,1]", "bandpass=[40.0, 1.0]: low_hz must be > 0 and below high_hz"),
    ("bandpass=[0,40]", "low_hz must be > 0"),
])
def test_data_settings_are_validated(places, capsys, setting, needle):
    rc, err = run_cli(["train", setting], capsys)
    assert rc == 2 and needle in one_line(err)


def test_crop_longer_than_records(places, capsys, tmp_path):
    rc, err = run_cli(["train", "crop_s=5", "length_s=2"], capsys)
    assert rc == 2 and "crop_s=5.0 is longer than the records (length_s=2.0)" in one_line(err)
    # without length_s the record length is known only once prepared: a stated warning
    from erts.config import DataConfig
    from erts.data import load_dataset

    folder = write_cinc2017(tmp_path / "cinc", {f"A{i:05d}": "NA"[i % 2] for i in range(1, 11)},
                            seconds={f"A{i:05d}": 12 for i in range(1, 11)})
    rs = load_dataset(DataConfig(dataset="cinc2017", root=str(folder), length_s=10, crop_s=10,
                                 cache_dir=str(tmp_path / "c")))
    assert rs.length == 3000 and capsys.readouterr().err == ""  # crop_s == the record length: fine
    load_dataset(DataConfig(dataset="cinc2017", root=str(folder), crop_s=40, cache_dir=str(tmp_path / "c")))
    assert one_line(capsys.readouterr().err) == (
        "erts: warning: crop_s=40 s is longer than the prepared cinc2017 records (30 s); training uses the whole "
        "records (set crop_s <= 30 or a longer length_s)")


def test_bandpass_above_the_signal_band_is_a_data_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ERTS_QUIET", "1")
    folder = write_cinc2017(tmp_path, {"A00001": "N", "A00002": "A"}, seconds={"A00001": 9, "A00002": 9})
    rc, err = run_cli(["data", "prepare", "cinc2017", "--root", str(folder), f"cache_dir={tmp_path / 'c'}",
                       "bandpass=[200,300]"], capsys)
    assert rc == 2
    assert "bandpass=[200, 300] cannot be applied at 300 Hz" in one_line(err) and "135 Hz" in err


def test_debug_shows_the_traceback(places, monkeypatch):
    monkeypatch.setenv("ERTS_DEBUG", "1")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["train", "dataset=cinc2017", "root=missing"])
    with pytest.raises(DataError, match="not a zip"):
        main(["data", "info", "cinc2017", "--root", "notzip.zip"])


def test_a_bug_keeps_its_traceback(places, monkeypatch):
    import erts.cli.data_cmd as data_cmd

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(data_cmd, "run_list", broken)  # the parser is built per call: it binds the stand-in
    with pytest.raises(ZeroDivisionError):
        main(["data", "list"])


# ------------------------------------------------------------------ interrupts

def _fake_train(kind: str, completed: int | None):
    """A stand-in for erts.train.loop.train: writes a run folder with ``completed`` epochs
    checkpointed, then is interrupted mid-way through the next epoch."""
    def train(cfg, **kw):
        from erts.train import runio
        from erts.train.loop import run_dir_for

        run_dir = run_dir_for(cfg)
        runio.write_text(run_dir / "config.yaml", "train: {epochs: 5}\n")
        if completed is not None:
            runio.write_csv(run_dir / "log.csv", [{"epoch": e, "train_loss": 1.0} for e in range(completed + 1)])
            runio.save_checkpoint(run_dir / "checkpoints" / "last.pt", {"epoch": completed})
        if kind == "term":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
            raise AssertionError("SIGTERM did not interrupt")
        raise KeyboardInterrupt
    return train


@pytest.mark.parametrize("kind, code", [("int", 130), ("term", 143)])
def test_interrupt_prints_where_to_resume(places, capsys, monkeypatch, kind, code):
    import erts.train.loop as loop

    monkeypatch.setattr(loop, "train", _fake_train(kind, completed=2))
    before = signal.getsignal(signal.SIGTERM)
    rc, err = run_cli(["train", "name=r1", "out_dir=runs"], capsys)
    assert rc == code
    assert one_line(err) == ("erts: interrupted during epoch 3 (epoch 2 completed and checkpointed); "
                             "resume with `erts train --resume runs/r1`")
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is only installed while training


def test_interrupt_before_any_epoch(places, capsys, monkeypatch):
    import erts.train.loop as loop

    monkeypatch.setattr(loop, "train", _fake_train("int", completed=None))
    rc, err = run_cli(["train", "name=r2", "out_dir=runs"], capsys)
    assert rc == 130
    assert "interrupted during epoch 0 (no epoch completed); resume with `erts train --resume runs/r2`" in one_line(err)


def test_interrupt_reads_the_checkpoint_not_a_newer_log(places, capsys, monkeypatch):
    """Killed between writing log.csv and last.pt: the checkpoint's epoch is the consistent one."""
    import erts.train.loop as loop
    from erts.train import runio

    def train(cfg, **kw):
        run_dir = Path("runs/r3")
        runio.write_text(run_dir / "config.yaml", "train: {epochs: 5}\n")
        runio.write_csv(run_dir / "log.csv", [{"epoch": e} for e in range(3)])  # epoch 2 logged...
        runio.save_checkpoint(run_dir / "checkpoints" / "last.pt", {"epoch": 1})  # ...but not checkpointed
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "train", train)
    rc, err = run_cli(["train", "name=r3", "out_dir=runs"], capsys)
    assert rc == 130 and "interrupted during epoch 2 (epoch 1 completed and checkpointed)" in err


STOP_WHILE_CACHING = """
import os, signal, sys, time
import numpy as np
real = np.save
def save(*a, **kw):  # SIGTERM after the first array of the entry is written into its .tmp- folder
    real(*a, **kw)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)
np.save = save
from erts.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_while_preparing_leaves_no_partial_entry(tmp_path):
    """SIGTERM (a scheduler's stop) during `erts data prepare` killed it on the spot: the partial
    <entry>.tmp-* folder stayed and nothing was said. Now it stops as Ctrl-C does: one line, exit 143,
    no partial entry."""
    cache = tmp_path / "c"
    env = {**os.environ, "ERTS_QUIET": "1"}
    env.pop("ERTS_DEBUG", None)
    res = subprocess.run([sys.executable, "-c", STOP_WHILE_CACHING, "data", "prepare", "synthetic",
                          "n_records=40", "length_s=2", f"cache_dir={cache}"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 143, res.stderr
    assert one_line(res.stderr) == "erts: stopped by SIGTERM"
    assert cache.is_dir() and not list(cache.iterdir())  # neither the partial entry nor a finished one


@pytest.mark.slow
def test_sigterm_stops_a_real_run_that_then_resumes(tmp_path, cache_dir):
    """A real `erts train` process: SIGTERM mid-run -> exit 143, the message names the checkpointed
    epoch, and --resume finishes the run from there."""
    out = tmp_path / "runs"
    args = [f"cache_dir={cache_dir}", f"out_dir={out}", "name=t", "n_records=120", "length_s=2.0", "epochs=400",
            "batch_size=32", "num_threads=1", "quiet=true", "model=resnet18_1d", "score_batch_size=64"]
    env = {**os.environ, "ERTS_QUIET": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "erts.cli.main", "train", *args], stderr=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    log = out / "t" / "log.csv"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:  # header + 2 epochs
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    from erts.cli.train_cmd import last_completed_epoch

    done = last_completed_epoch(out / "t")
    assert done is not None and done >= 0  # log.csv may be one epoch ahead of last.pt at the signal
    assert f"interrupted during epoch {done + 1} (epoch {done} completed and checkpointed); resume with " \
           f"`erts train --resume {out / 't'}`" in err
    import yaml

    cfg_path = out / "t" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["train"]["epochs"] = done + 2  # finish quickly: one more epoch
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = subprocess.run([sys.executable, "-m", "erts.cli.main", "train", "--resume", str(out / "t")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (out / "t" / "metrics.json").exists()
    epochs = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert epochs == list(range(done + 2))
