"""erts sweep: grid files, run naming, resumption, the results table, failures; one real killed-and-resumed sweep."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import tiny_overrides
from erts.cli.main import main
from erts.config import ConfigError
from erts.train import sweep
from erts.train.sweep import (Grid, collect_results, expand, gpu_slots, load_grid, run_state, run_sweep,
                              train_command, visible_gpus)

# Stands in for `erts train` in the orchestration tests: writes a finished run folder in a
# fraction of a second (no torch), fails for the run named in $FAKE_FAIL, records resumes.
FAKE_TRAINER = r'''
import json, os, sys, pathlib, time
args = sys.argv[1:]
if args[0] == "--resume":
    d, values = pathlib.Path(args[1]), {}
else:
    values = dict(a.split("=", 1) for a in args)
    d = pathlib.Path(values["out_dir"]) / values["name"]
if d.name == os.environ.get("FAKE_FAIL"):
    print("loading dataset ...\nValueError: boom, record X is broken")
    sys.exit(3)
d.mkdir(parents=True, exist_ok=True)
(d / "cuda_visible_devices.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "(unset)"))
if os.environ.get("FAKE_LOCKS"):  # FileExistsError (exit 1) if two runs hold the same GPUs at once
    lock = pathlib.Path(os.environ["FAKE_LOCKS"]) / os.environ.get("CUDA_VISIBLE_DEVICES", "none")
    lock.open("x").close()
    time.sleep(0.15)
    lock.unlink()
cfg = d / "config.yaml"
if not cfg.exists() or values:
    cfg.write_text(json.dumps({"selection": {"method": values.get("method", "full")},
                               "train": {"seed": int(values.get("seed", 0)), "num_threads": values.get("num_threads")},
                               "data": {"dataset": "synthetic"}, "model": {"model": "resnet18_1d"}}))
seed = json.loads(cfg.read_text())["train"]["seed"]
# written atomically like erts train does (runio): the sweep polls other runs' folders meanwhile
(d / "metrics.tmp").write_text(json.dumps({
    "run": d.name, "seed": seed, "method": json.loads(cfg.read_text())["selection"]["method"],
    "best_epoch": 1, "epochs": 2, "resumed": args[0] == "--resume",
    "val": {"macro_f1": 0.5}, "test": {"macro_f1": 0.6 + seed / 100, "accuracy": 0.7, "per_class_f1": {"A": 0.6}},
    "cost": {"effective_epochs": 1.5, "seconds": {"update": 1.0, "total": 2.0}, "flops": {"total": 1e9},
             "forwards": {"update": 10}, "backwards": {"update": 10}}}))
os.replace(d / "metrics.tmp", d / "metrics.json")
'''


def tiny_base(cache_dir: Path, tmp_path: Path, n_records: int) -> dict:
    """A grid's ``base``: the seconds-long real run of conftest, 2 epochs, without the keys a sweep sets itself."""
    base = dict(a.split("=", 1) for a in tiny_overrides(cache_dir, tmp_path, n_records=n_records, epochs=2,
                                                        revision_epoch=2))
    for k in ("out_dir", "quiet"):
        base.pop(k)
    return base


def write_grid(path: Path, **kw) -> Path:
    path.write_text(yaml.safe_dump(kw, sort_keys=False))
    return path


def test_load_grid_checks_its_keys(tmp_path):
    g = load_grid(write_grid(tmp_path / "g.yaml", name="x", base={"epochs": 2}, grid={"method": ["full"], "seed": [0, 1]}))
    assert (g.out_dir, g.workers, g.sweep_dir) == ("sweeps", 1, Path("sweeps/x"))
    bad = [({"grid": {"seed": [0]}}, "'name'"),
           ({"name": "x", "grids": {}}, "unknown grid file keys"),
           ({"name": "x", "grid": {"seed": 3}}, "non-empty list"),
           ({"name": "x", "base": {"seed": 1}, "grid": {"train.seed": [0]}}, "both in 'base' and in 'grid'"),
           ({"name": "x", "grid": {"phi": [0.5], "selection.phi": [0.7]}}, "twice in 'grid'"),
           ({"name": "x", "workers": 0}, "workers=0")]
    for raw, msg in bad:
        with pytest.raises(ConfigError, match=msg):
            load_grid(write_grid(tmp_path / "b.yaml", **raw))


def test_expand_names_overrides_and_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "default_threads", lambda workers: 8 // workers)
    g = Grid(name="s", out_dir=str(tmp_path), workers=2, base={"epochs": 6, "bandpass": [0.5, 40]},
             grid={"method": ["full", "erts-dbpd"], "selection.phi": [0.5], "seed": [0, 1]})
    runs = expand(g)
    assert [r.name for r in runs] == ["method=full,phi=0.5,seed=0", "method=full,phi=0.5,seed=1",
                                      "method=erts-dbpd,phi=0.5,seed=0", "method=erts-dbpd,phi=0.5,seed=1"]
    r = runs[2]
    assert r.run_dir == tmp_path / "s" / "runs" / r.name
    assert r.overrides == {"epochs": 6, "bandpass": [0.5, 40], "method": "erts-dbpd", "selection.phi": 0.5, "seed": 0,
                           "name": r.name, "out_dir": str(tmp_path / "s" / "runs"), "quiet": True, "num_threads": 4}
    cmd = train_command(r, resume=False)
    assert cmd[:4] == [sys.executable, "-m", "erts.cli.main", "train"]
    assert "bandpass=[0.5, 40]" in cmd and "quiet=true" in cmd and f"name={r.name}" in cmd
    assert train_command(r, resume=True)[4:] == ["--resume", str(r.run_dir)]
    assert expand(g, workers=4)[0].overrides["num_threads"] == 2
    # a base num_threads is the user's choice and stays
    assert expand(Grid(name="s", base={"num_threads": 1}, grid={"seed": [0]}))[0].overrides["num_threads"] == 1
    with pytest.raises(ConfigError, match="same name"):
        expand(Grid(name="s", grid={"root": ["data/a", "data_a"]}))
    sweep.validate_runs(runs)
    with pytest.raises(ConfigError, match="run method=full,seed=0: .*tau"):
        sweep.validate_runs(expand(Grid(name="s", base={"tau": 2.0}, grid={"method": ["full"], "seed": [0]})))


def test_load_grid_checks_gpus_and_procs_per_run(tmp_path):
    g = load_grid(write_grid(tmp_path / "g.yaml", name="x", grid={"seed": [0]}))
    assert (g.gpus_per_run, g.procs_per_run) == (0, 1)
    g = load_grid(write_grid(tmp_path / "g.yaml", name="x", gpus_per_run=2, procs_per_run=2, grid={"seed": [0]}))
    assert (g.gpus_per_run, g.procs_per_run) == (2, 2)
    path = tmp_path / "bad.yaml"
    for raw, msg in [({"gpus_per_run": -1}, "gpus_per_run=-1 must be an int >= 0"),
                     ({"procs_per_run": 0}, "procs_per_run=0 must be an int >= 1"),
                     ({"gpus_per_run": "2"}, "gpus_per_run='2'"),
                     ({"procs_per_run": True}, "procs_per_run=True"),
                     ({"gpus_per_run": 2, "procs_per_run": 4}, "procs_per_run=4 exceeds gpus_per_run=2")]:
        with pytest.raises(ConfigError, match=msg) as e:
            load_grid(write_grid(path, name="x", grid={"seed": [0]}, **raw))
        assert str(path) in str(e.value)
    # command-line overrides are checked the same way
    with pytest.raises(ConfigError, match="--procs-per-run.*procs_per_run=0"):
        expand(Grid(name="s", grid={"seed": [0]}), procs_per_run=0)
    with pytest.raises(ConfigError, match="--gpus-per-run.*gpus_per_run=-1"):
        run_sweep(Grid(name="s", out_dir=str(tmp_path), grid={"seed": [0]}), gpus_per_run=-1)
    assert not (tmp_path / "s").exists()


def test_torchrun_command_for_procs_per_run(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "default_threads", lambda workers: 8 // workers)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "erts",
                "train"]
    g = Grid(name="s", out_dir=str(tmp_path), workers=2, procs_per_run=2, base={"epochs": 2}, grid={"seed": [0, 1]})
    r = expand(g)[1]
    assert r.procs == 2 and r.overrides["num_threads"] == 2  # 8 cores / (2 workers x 2 processes)
    cmd = train_command(r, resume=False)
    assert cmd[:8] == torchrun and cmd[8:] == [f"{k}={sweep._arg(v)}" for k, v in r.overrides.items()]
    assert train_command(r, resume=True) == torchrun + ["--resume", str(r.run_dir)]
    # the default is the plain one-process command, unchanged
    plain = expand(Grid(name="s", out_dir=str(tmp_path), workers=2, grid={"seed": [0]}))[0]
    assert plain.procs == 1 and plain.overrides["num_threads"] == 4
    assert train_command(plain, resume=False)[:4] == [sys.executable, "-m", "erts.cli.main", "train"]
    assert train_command(plain, resume=True) == [sys.executable, "-m", "erts.cli.main", "train", "--resume",
                                                 str(plain.run_dir)]
    # gpus_per_run alone: one process per GPU; a single GPU stays a plain run; overrides beat the file
    assert expand(Grid(name="s", gpus_per_run=2, grid={"seed": [0]}))[0].procs == 2
    assert expand(Grid(name="s", gpus_per_run=1, grid={"seed": [0]}))[0].procs == 1
    assert expand(g, procs_per_run=3)[0].procs == 3 and expand(g, procs_per_run=1)[0].procs == 1
    assert expand(g, gpus_per_run=4, procs_per_run=1)[0].procs == 4
    with pytest.raises(ConfigError, match="exceeds gpus_per_run=2"):
        expand(g, gpus_per_run=2, procs_per_run=3)


def test_gpu_slots():
    assert gpu_slots(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_slots(1, 2, ["0", "1", "2", "3"]) == ["0,1"]  # the rest stay unused
    visible = visible_gpus({"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
    assert visible == ["4", "5", "6", "7"]
    assert gpu_slots(2, 2, visible) == ["4,5", "6,7"]
    assert gpu_slots(4, 1, visible) == ["4", "5", "6", "7"]
    assert gpu_slots(3, 0, visible) == []  # no GPUs asked for: nothing assigned
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-a1, GPU-b2"}) == ["GPU-a1", "GPU-b2"]
    with pytest.raises(ConfigError, match="workers=3 x gpus_per_run=2 needs 6 GPUs, but 4 are visible"):
        gpu_slots(3, 2, visible)
    with pytest.raises(ConfigError, match="needs 1 GPUs, but 0 are visible"):
        gpu_slots(1, 1, [])


def test_visible_gpus_counts_torch_devices_without_cuda_visible_devices(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert visible_gpus({}) == ["0", "1", "2"]


def test_run_state(tmp_path):
    assert run_state(tmp_path / "r") == "new"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.yaml").write_text("{}")
    assert run_state(tmp_path / "r") == "resume"
    (tmp_path / "r" / "metrics.json").write_text("{}")
    assert run_state(tmp_path / "r") == "done"


def test_collect_results_reads_fabricated_runs(tmp_path):
    from test_report import make_run

    g = Grid(name="c", out_dir=str(tmp_path), grid={"method": ["full", "dbpd"], "seed": [0, 1]})
    runs = expand(g)
    for r in runs[:3]:
        make_run(r.run_dir, method=r.values["method"], seed=r.values["seed"], f1=0.5 + r.values["seed"] / 10)
    df = collect_results(g, runs)
    assert list(df.columns[:5]) == ["run", "dataset", "model", "method", "seed"]
    assert list(df.run) == [r.name for r in runs[:3]]
    m = json.loads((runs[1].run_dir / "metrics.json").read_text())
    row = df.iloc[1]
    assert row.test_macro_f1 == m["test"]["macro_f1"] and row.seconds_total == m["cost"]["seconds"]["total"]
    assert row.effective_epochs == pytest.approx(m["cost"]["effective_epochs"])
    assert row.test_f1_MI == m["test"]["per_class_f1"]["MI"] and row.flops_total == m["cost"]["flops"]["total"]
    assert row.forwards_scoring == 100 and row.best_epoch == m["best_epoch"] and row.val_macro_f1 == m["val"]["macro_f1"]
    assert sorted(p.name for p in g.sweep_dir.iterdir()) == ["results.csv", "runs"]  # no temp file left behind


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAINER)
    real = sweep.train_command
    def fake(run, resume):  # the arguments after `train`, plain or torchrun form alike
        cmd = real(run, resume)
        return [sys.executable, str(script), *cmd[cmd.index("train") + 1:]]

    monkeypatch.setattr(sweep, "train_command", fake)
    return script


def test_sweep_resumes_and_reports_failures(tmp_path, fake_trainer, monkeypatch, capsys):
    path = write_grid(tmp_path / "g.yaml", name="fake", out_dir=str(tmp_path / "sweeps"), workers=2,
                      base={"epochs": 2}, grid={"method": ["full", "dbpd"], "seed": [0, 1]})
    g = load_grid(path)
    names = [r.name for r in expand(g)]
    res = run_sweep(g, max_runs=2, poll_s=0.02)
    assert sorted(res.finished) == names[:2] and res.not_started == names[2:] and not res.failed  # 2 workers: any order
    assert list(pd.read_csv(res.results_csv).run) == names[:2]
    # a run killed after it started (config.yaml, no metrics) is resumed, a broken one fails by name
    started = g.sweep_dir / "runs" / names[2]
    started.mkdir(parents=True)
    (started / "config.yaml").write_text(json.dumps({"selection": {"method": "dbpd"}, "train": {"seed": 0}}))
    monkeypatch.setenv("FAKE_FAIL", names[3])
    res = run_sweep(g, poll_s=0.02)
    assert res.skipped == names[:2] and res.resumed == [names[2]] and res.finished == [names[2]]
    assert list(res.failed) == [names[3]] and "boom, record X is broken" in res.failed[names[3]]
    assert f"FAILED {names[3]}" in capsys.readouterr().err
    assert json.loads((started / "metrics.json").read_text())["resumed"] is True
    assert list(pd.read_csv(res.results_csv).run) == names[:3]
    assert main(["sweep", str(path)]) == 1  # still failing: the command exits non-zero
    monkeypatch.delenv("FAKE_FAIL")
    assert main(["sweep", str(path)]) == 0
    df = pd.read_csv(res.results_csv)
    assert list(df.run) == names and df.run.is_unique
    assert list(df.seed) == [0, 1, 0, 1] and list(df.method) == ["full", "full", "dbpd", "dbpd"]
    assert df.test_macro_f1.tolist() == pytest.approx([0.6, 0.61, 0.6, 0.61])
    # workers share the cores; the run got its thread count as a setting
    cfg = json.loads((g.sweep_dir / "runs" / names[0] / "config.yaml").read_text())
    assert int(cfg["train"]["num_threads"]) == sweep.default_threads(2)
    assert "$ " in (g.sweep_dir / "logs" / f"{names[3]}.log").read_text()  # the log starts with the command


def test_sweep_gives_each_worker_its_gpus(tmp_path, fake_trainer, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    (tmp_path / "locks").mkdir()
    monkeypatch.setenv("FAKE_LOCKS", str(tmp_path / "locks"))
    path = write_grid(tmp_path / "g.yaml", name="gpu", out_dir=str(tmp_path / "sweeps"), workers=2, gpus_per_run=1,
                      base={"epochs": 2}, grid={"seed": [0, 1, 2, 3, 4]})
    g = load_grid(path)
    res = run_sweep(g, poll_s=0.02)
    assert not res.failed and len(res.finished) == 5  # a slot is never held by two runs at once (FAKE_LOCKS)
    seen = {r.name: (r.run_dir / "cuda_visible_devices.txt").read_text() for r in expand(g)}
    assert set(seen.values()) == {"4", "5"}  # two slots, reused as runs finish; GPUs 6 and 7 untouched
    for name, cvd in seen.items():
        assert (g.sweep_dir / "logs" / f"{name}.log").read_text().startswith(f"$ CUDA_VISIBLE_DEVICES={cvd} ")
    # more GPUs than visible: refused before anything starts, from the file or the command line
    with pytest.raises(ConfigError, match="needs 6 GPUs, but 4 are visible"):
        run_sweep(Grid(name="big", out_dir=str(tmp_path / "sweeps"), workers=3, gpus_per_run=2, grid={"seed": [0]}))
    assert not (tmp_path / "sweeps" / "big").exists()
    assert main(["sweep", str(path), "--gpus-per-run", "3"]) == 2  # 2 workers x 3 > 4: a config error
    # no GPUs asked for: CUDA_VISIBLE_DEVICES is passed on untouched
    path = write_grid(tmp_path / "g0.yaml", name="cpu", out_dir=str(tmp_path / "sweeps"), workers=2,
                      base={"epochs": 2}, grid={"seed": [0, 1]})
    monkeypatch.delenv("FAKE_LOCKS")
    assert main(["sweep", str(path)]) == 0
    assert {(r.run_dir / "cuda_visible_devices.txt").read_text() for r in expand(load_grid(path))} == {"4,5,6,7"}
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert main(["sweep", str(path), "--gpus-per-run", "0"]) == 0  # all done already; nothing new
    path = write_grid(tmp_path / "g1.yaml", name="unset", out_dir=str(tmp_path / "sweeps"), grid={"seed": [0]})
    assert main(["sweep", str(path)]) == 0
    assert (expand(load_grid(path))[0].run_dir / "cuda_visible_devices.txt").read_text() == "(unset)"


@pytest.mark.slow
@pytest.mark.skipif(not __import__("torch").distributed.is_available()
                    or not __import__("torch").distributed.is_gloo_available(), reason="torch.distributed with gloo")
def test_real_sweep_run_through_torchrun(cache_dir, tmp_path):
    """One tiny run with procs_per_run=2 on CPU: torchrun starts 2 gloo processes, the run lands in results.csv."""
    base = tiny_base(cache_dir, tmp_path, n_records=120)
    path = write_grid(tmp_path / "ddp.yaml", name="ddp", out_dir=str(tmp_path / "sweeps"), procs_per_run=2,
                      base=base, grid={"seed": [0]})
    g = load_grid(path)
    res = run_sweep(g)
    (run,) = expand(g)
    log = (g.sweep_dir / "logs" / f"{run.name}.log").read_text()
    assert not res.failed, log
    assert res.finished == [run.name]
    assert log.startswith(f"$ {sys.executable} -m torch.distributed.run --standalone --nproc_per_node=2 -m erts train ")
    m = json.loads((run.run_dir / "metrics.json").read_text())
    assert m["world_size"] == 2
    df = pd.read_csv(res.results_csv)
    assert list(df.run) == [run.name] and df.test_macro_f1[0] == pytest.approx(m["test"]["macro_f1"])


@pytest.mark.slow
def test_real_sweep_killed_and_resumed(cache_dir, tmp_path):
    """Two methods x two seeds of real training; the sweep is killed inside its second run, then resumed."""
    base = tiny_base(cache_dir, tmp_path, n_records=60)
    path = write_grid(tmp_path / "tiny.yaml", name="tiny", out_dir=str(tmp_path / "sweeps"), workers=1,
                      base=base, grid={"method": ["full", "erts-dbpd"], "seed": [0, 1]})
    g = load_grid(path)
    runs = expand(g)
    proc = subprocess.Popen([sys.executable, "-m", "erts.cli.main", "sweep", str(path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    second = runs[1].run_dir / "checkpoints" / "last.pt"
    deadline = time.time() + 400
    while not second.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # the sweep and its worker, as a scheduler would
    proc.wait(timeout=60)
    assert run_state(runs[0].run_dir) == "done"
    assert run_state(runs[1].run_dir) == "resume"  # killed after its first epoch
    assert list(pd.read_csv(g.sweep_dir / "results.csv").run) == [runs[0].name]

    res = run_sweep(load_grid(path))
    assert not res.failed and res.skipped == [runs[0].name] and res.resumed == [runs[1].name]
    assert res.finished == [r.name for r in runs[1:]]
    df = pd.read_csv(res.results_csv)
    assert list(df.run) == [r.name for r in runs] and df.run.is_unique
    for r, (_, row) in zip(runs, df.iterrows()):
        m = json.loads((r.run_dir / "metrics.json").read_text())
        assert (row.method, row.seed) == (r.values["method"], r.values["seed"]) == (m["method"], m["seed"])
        assert row.test_macro_f1 == pytest.approx(m["test"]["macro_f1"])
        assert row.effective_epochs == pytest.approx(m["cost"]["effective_epochs"])
    assert (df.loc[df.method == "full", "effective_epochs"] == 2).all()
    assert (df.loc[df.method == "erts-dbpd", "effective_epochs"] < 2).all()


SWEEP_FILES = sorted((Path(__file__).resolve().parents[1] / "configs" / "sweeps").glob("*.yaml"))


def test_shipped_sweep_files_exist():
    assert "tiny.yaml" in [p.name for p in SWEEP_FILES]  # README.md and docs/report.md run it


@pytest.mark.parametrize("path", SWEEP_FILES, ids=[p.name for p in SWEEP_FILES])
def test_shipped_sweep_files_expand_to_valid_grids(path, tmp_path):
    """Every grid under configs/sweeps/ loads, expands and passes config validation; nothing is trained."""
    from erts.config import load_config

    g = load_grid(path)
    g.out_dir = str(tmp_path)  # expand() touches nothing, but keep any path away from the repository
    runs = expand(g)
    assert runs and len({r.name for r in runs}) == len(runs)
    sweep.validate_runs(runs)  # raises ConfigError on a bad key or value
    methods = {r.values.get("method", g.base.get("method", "full")) for r in runs}
    seeds = {r.values.get("seed", g.base.get("seed", 0)) for r in runs}
    assert "full" in methods, "the report compares every method with full: put it in the grid"
    assert len(seeds) >= 3, "the report warns below 3 seeds per configuration"
    for r in runs:
        cfg = load_config(overrides=dict(r.overrides))
        assert cfg.train.name == r.name and Path(cfg.train.out_dir) == tmp_path / g.name / "runs"


def test_tiny_sweep_has_select_and_erts_epochs():
    from erts.config import load_config

    g = load_grid(Path(__file__).resolve().parents[1] / "configs" / "sweeps" / "tiny.yaml")
    runs = expand(g)
    assert sorted({(r.values["method"], r.values["seed"]) for r in runs}) == sorted(
        (m, s) for m in ("full", "dbpd", "erts-dbpd") for s in (0, 1, 2))
    assert g.base["dataset"] == "synthetic"
    cfg = load_config(overrides=dict(runs[-1].overrides))
    s, epochs = cfg.selection, cfg.train.epochs
    # 0-based epochs: warm-up e < warmup_epochs, select warmup_epochs <= e < revision_epoch,
    # focus filter in select epochs >= gradcam_start (docs/selection.md)
    select = [e for e in range(epochs) if s.warmup_epochs <= e < s.revision_epoch]
    erts = [e for e in select if e >= s.gradcam_start]
    assert (epochs, select, erts) == (6, [1, 2, 3], [2, 3])
