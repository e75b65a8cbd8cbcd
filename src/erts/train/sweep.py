"""Experiment grids: every combination of a few settings, each run in a worker process.

Why subprocesses: a run that crashes or is killed takes only itself down, torch
threads are set per worker, and a killed sweep resumes by looking at the run
folders alone: a run with ``metrics.json`` is finished, a started run
(``config.yaml``) is continued from ``checkpoints/last.pt`` with
``erts train --resume``, anything else starts from scratch.

Grid file (YAML)::

    name: tiny             # sweep folder: <out_dir>/<name>
    out_dir: sweeps        # default "sweeps"
    workers: 2             # parallel worker processes, default 1
    gpus_per_run: 0        # GPUs of each worker slot (CUDA_VISIBLE_DEVICES), default 0: none assigned
    procs_per_run: 1       # > 1: each run is a torchrun DDP job of that many processes
                           # (default 1; gpus_per_run > 1 alone means one process per GPU)
    base: {dataset: synthetic, epochs: 3}   # applied to every run
    grid: {method: [full, erts-dbpd], seed: [0, 1, 2]}  # the product is the sweep
"""
from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from tqdm import tqdm

from erts.config import load_config
from erts.errors import ConfigError
from erts.train import runio
from erts.train.costnames import flatten_cost

GRID_KEYS = {"name", "out_dir", "workers", "gpus_per_run", "procs_per_run", "base", "grid"}
# columns that identify a run's configuration even when the grid does not vary them
ALWAYS_KEYS = ["dataset", "model", "method"]
LOG_TAIL_LINES = 25


@dataclass
class Grid:
    name: str
    out_dir: str = "sweeps"
    workers: int = 1
    gpus_per_run: int = 0
    procs_per_run: int = 1
    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def sweep_dir(self) -> Path:
        return Path(self.out_dir) / self.name


@dataclass
class Run:
    name: str
    values: dict[str, Any]  # the grid's values for this run (leaf key -> value)
    overrides: dict[str, Any]  # every key=value passed to `erts train`
    run_dir: Path
    procs: int = 1  # processes of this run; > 1: launched with torchrun (DDP)


@dataclass
class SweepResult:
    sweep_dir: Path
    results_csv: Path
    finished: list[str] = field(default_factory=list)  # finished during this call
    skipped: list[str] = field(default_factory=list)  # already finished before this call
    resumed: list[str] = field(default_factory=list)  # continued from checkpoints/last.pt
    failed: dict[str, str] = field(default_factory=dict)  # run -> log tail
    not_started: list[str] = field(default_factory=list)  # left for a later call (max_runs)


def load_grid(path: str | Path) -> Grid:
    """Reads and checks a grid file; errors name the file and the offending key."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a grid file is a mapping with keys {sorted(GRID_KEYS)}")
    unknown = set(raw) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown grid file keys {sorted(unknown)}; accepted: {sorted(GRID_KEYS)}")
    if not raw.get("name"):
        raise ConfigError(f"{path}: 'name' (the sweep folder name) is required")
    grid = raw.get("grid") or {}
    base = raw.get("base") or {}
    if not isinstance(grid, dict) or not isinstance(base, dict):
        raise ConfigError(f"{path}: 'base' and 'grid' must be mappings of config keys")
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{path}: grid key {k!r} needs a non-empty list of values, got {v!r}")
    leaves = [_leaf(k) for k in grid]
    for k in {k for k in leaves if leaves.count(k) > 1}:
        raise ConfigError(f"{path}: {k!r} is twice in 'grid' (flat and dotted names are the same key)")
    for k in set(leaves) & set(map(_leaf, base)):
        raise ConfigError(f"{path}: {k!r} is both in 'base' and in 'grid'")
    workers = raw.get("workers", 1)
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"{path}: workers={workers!r} must be an int >= 1")
    gpus = _check_count(str(path), "gpus_per_run", raw.get("gpus_per_run", 0), 0)
    procs = _check_count(str(path), "procs_per_run", raw.get("procs_per_run", 1), 1)
    run_procs(gpus, procs, where=str(path))
    return Grid(name=str(raw["name"]), out_dir=str(raw.get("out_dir") or "sweeps"), workers=workers,
                gpus_per_run=gpus, procs_per_run=procs, base=dict(base), grid=dict(grid))


def _check_count(where: str, key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: {key}={value!r} must be an int >= {minimum}")
    return value


def run_procs(gpus_per_run: int, procs_per_run: int, where: str = "sweep") -> int:
    """Processes per run: procs_per_run, or one per GPU when only gpus_per_run is set.

    Under torchrun each process takes the GPU of its local rank, so a run cannot have
    more processes than GPUs once GPUs are assigned.
    """
    procs = procs_per_run if procs_per_run > 1 else max(1, gpus_per_run)
    if gpus_per_run and procs > gpus_per_run:
        raise ConfigError(f"{where}: procs_per_run={procs_per_run} exceeds gpus_per_run={gpus_per_run}; "
                          "each process of a run needs a GPU of its own")
    return procs


def resolve_resources(grid: Grid, workers: int | None = None, gpus_per_run: int | None = None,
                      procs_per_run: int | None = None) -> tuple[int, int, int]:
    """(workers, gpus per run, processes per run): the command line's values over the file's, checked."""
    workers = _check_count("--workers", "workers", workers, 1) if workers is not None else grid.workers
    gpus = (_check_count("--gpus-per-run", "gpus_per_run", gpus_per_run, 0) if gpus_per_run is not None
            else grid.gpus_per_run)
    procs = (_check_count("--procs-per-run", "procs_per_run", procs_per_run, 1) if procs_per_run is not None
             else grid.procs_per_run)
    return workers, gpus, run_procs(gpus, procs, where=f"grid {grid.name!r}")


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """The GPUs this process may hand out: the CUDA_VISIBLE_DEVICES list when set, else torch's count."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return [d.strip() for d in env["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    import torch  # only when GPUs are asked for: the sweep itself never needs torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_slots(workers: int, gpus_per_run: int, visible: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each worker slot: slot w gets visible[w*g:(w+1)*g], e.g. ["0,1", "2,3"].

    Entries of ``visible`` are what the child's CUDA_VISIBLE_DEVICES must name (an existing
    CUDA_VISIBLE_DEVICES list is indexed into, not renumbered). No GPUs asked for: [].
    """
    if gpus_per_run <= 0:
        return []
    need = workers * gpus_per_run
    if need > len(visible):
        raise ConfigError(f"workers={workers} x gpus_per_run={gpus_per_run} needs {need} GPUs, but "
                          f"{len(visible)} are visible ({','.join(visible) or 'none'}); "
                          "lower workers or gpus_per_run")
    return [",".join(visible[w * gpus_per_run:(w + 1) * gpus_per_run]) for w in range(workers)]


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _slug(value: Any) -> str:
    """Folder-safe text of a grid value (lists become a-b-c)."""
    if isinstance(value, (list, tuple)):
        return "-".join(_slug(v) for v in value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", str(value))


def default_threads(workers: int) -> int:
    """Torch threads per process: the cores this process may use, shared evenly by ``workers``
    processes (the sweep passes workers x processes per run)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // workers)


def expand(grid: Grid, workers: int | None = None, *, gpus_per_run: int | None = None,
           procs_per_run: int | None = None) -> list[Run]:
    """The grid's runs in a stable order; run names come from the varying values."""
    workers, _, procs = resolve_resources(grid, workers or None, gpus_per_run, procs_per_run)
    keys = list(grid.grid)
    runs_dir = grid.sweep_dir / "runs"
    runs, seen = [], {}
    for combo in itertools.product(*(grid.grid[k] for k in keys)):
        values = {_leaf(k): v for k, v in zip(keys, combo)}
        name = ",".join(f"{k}={_slug(v)}" for k, v in values.items()) or grid.name
        if name in seen:
            raise ConfigError(f"grid {grid.name!r}: runs {seen[name]} and {values} get the same name {name!r}")
        seen[name] = values
        overrides = {**grid.base, **dict(zip(keys, combo)), "name": name, "out_dir": str(runs_dir), "quiet": True}
        if "num_threads" not in {_leaf(k) for k in overrides}:
            overrides["num_threads"] = default_threads(workers * procs)
        runs.append(Run(name=name, values=values, overrides=overrides, run_dir=runs_dir / name, procs=procs))
    return runs


def validate_runs(runs: list[Run]) -> None:
    """Builds every run's config before anything starts, so a typo fails in a second, not after hours."""
    for r in runs:
        try:
            load_config(overrides={k: v for k, v in r.overrides.items()})
        except ConfigError as e:
            raise ConfigError(f"run {r.name}: {e}") from None


def run_state(run_dir: Path) -> str:
    """'done' (metrics.json), 'resume' (the run started: config.yaml) or 'new'.

    A started run without checkpoints/last.pt (killed in its first epoch) is
    also 'resume': ``erts train --resume`` then trains it from the start.
    """
    if (run_dir / "metrics.json").exists():
        return "done"
    if (run_dir / "config.yaml").exists():
        return "resume"
    return "new"


def _arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


def train_command(run: Run, resume: bool) -> list[str]:
    """The `erts train` command line of one run (fresh start or --resume); torchrun when run.procs > 1."""
    if run.procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={run.procs}",
               "-m", "erts", "train"]
    else:
        cmd = [sys.executable, "-m", "erts.cli.main", "train"]
    if resume:
        return cmd + ["--resume", str(run.run_dir)]
    return cmd + [f"{k}={_arg(v)}" for k, v in run.overrides.items()]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- results table ----------------------------------------------------------------------

def flatten_metrics(m: dict[str, Any]) -> dict[str, Any]:
    """One results-table row from a run's metrics.json (scalars only; per-class F1 as test_f1_<class>)."""
    row: dict[str, Any] = {}
    for split in ("test", "val"):
        for k, v in (m.get(split) or {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                row[f"{split}_{k}"] = v
            elif k == "per_class_f1" and isinstance(v, dict):
                row.update({f"{split}_f1_{c}": f for c, f in v.items()})
    cost = m.get("cost") or {}
    row["best_epoch"] = m.get("best_epoch")
    row["epochs"] = m.get("epochs")
    row["reference_epochs"] = m.get("reference_epochs", m.get("epochs"))  # budgeted full trains fewer than these
    row["effective_epochs"] = cost.get("effective_epochs")
    row["optimizer_steps"] = m.get("optimizer_steps")  # None before erts counted them
    row.update(flatten_cost(cost))  # <group>_<phase>: the names log.csv and metrics.json use (erts.train.cost)
    return row


def run_row(run_dir: Path, keys: list[str]) -> dict[str, Any]:
    """Results row of a finished run: name, configuration keys (resolved config), seed, metrics."""
    m = json.loads((run_dir / "metrics.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else {}
    flat = {leaf: v for section in (cfg or {}).values() if isinstance(section, dict) for leaf, v in section.items()}
    flat.update({k: m[k] for k in ("dataset", "model", "method", "seed") if k in m})
    row: dict[str, Any] = {"run": run_dir.name}
    for k in keys:
        v = flat.get(k)
        row[k] = _slug(v) if isinstance(v, (list, tuple)) else v
    row["seed"] = flat.get("seed", 0)
    row.update(flatten_metrics(m))
    return row


def config_keys(grid: Grid) -> list[str]:
    """Columns that identify a configuration (everything but the seed)."""
    keys = list(ALWAYS_KEYS)
    keys += [k for k in map(_leaf, grid.grid) if k not in keys and k != "seed"]
    return keys


def collect_results(grid: Grid, runs: list[Run]) -> pd.DataFrame:
    """results.csv: one row per finished run of the grid, in grid order, exactly once."""
    keys = config_keys(grid)
    rows = [run_row(r.run_dir, keys) for r in runs if run_state(r.run_dir) == "done"]
    df = pd.DataFrame(rows, columns=None if rows else ["run", *keys, "seed"])
    runio.write_text(grid.sweep_dir / "results.csv", df.to_csv(index=False))  # readers never see half a table
    return df


# --- running ----------------------------------------------------------------------------

def run_sweep(grid: Grid, *, workers: int | None = None, max_runs: int | None = None,
              validate: bool = True, poll_s: float = 0.2, gpus_per_run: int | None = None,
              procs_per_run: int | None = None) -> SweepResult:
    """Runs (or resumes) every unfinished run of the grid; failures are collected, not raised.

    max_runs: start at most this many runs in this call (the rest stay for the
    next call), e.g. to fit a sweep into time-limited jobs.
    gpus_per_run, procs_per_run: override the grid file's (None: the file's).
    Worker slot w runs with CUDA_VISIBLE_DEVICES = GPUs [w*g, (w+1)*g) of the visible
    ones; a finished run frees its slot for the next. Too few GPUs: ConfigError, before
    anything starts.
    """
    workers, gpus, procs = resolve_resources(grid, workers or None, gpus_per_run, procs_per_run)
    env = dict(os.environ)
    slot_gpus = gpu_slots(workers, gpus, visible_gpus(env)) if gpus else []
    runs = expand(grid, workers, gpus_per_run=gpus, procs_per_run=procs)
    if validate:
        validate_runs(runs)
    sweep_dir = grid.sweep_dir
    (sweep_dir / "logs").mkdir(parents=True, exist_ok=True)
    (sweep_dir / "grid.yaml").write_text(yaml.safe_dump(
        {"name": grid.name, "out_dir": grid.out_dir, "workers": grid.workers, "gpus_per_run": grid.gpus_per_run,
         "procs_per_run": grid.procs_per_run, "base": grid.base, "grid": grid.grid},
        sort_keys=False))
    res = SweepResult(sweep_dir=sweep_dir, results_csv=sweep_dir / "results.csv")
    todo = deque(r for r in runs if run_state(r.run_dir) != "done")
    res.skipped = [r.name for r in runs if run_state(r.run_dir) == "done"]
    collect_results(grid, runs)
    if max_runs is not None:
        res.not_started = [r.name for r in list(todo)[max_runs:]]
        todo = deque(list(todo)[:max_runs])
    running: dict[subprocess.Popen, tuple[Run, float, int]] = {}
    free_slots = list(range(workers))  # worker slot -> its GPUs (slot_gpus[slot]) while a run holds it
    bar = tqdm(total=len(todo), desc=f"sweep {grid.name}", unit="run", disable=not todo)
    try:
        while todo or running:
            while todo and len(running) < workers:
                run = todo.popleft()
                resume = run_state(run.run_dir) == "resume"
                if resume:
                    res.resumed.append(run.name)
                threads = str({_leaf(k): v for k, v in run.overrides.items()}["num_threads"])
                slot = free_slots.pop(0)
                child_env = {**env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
                prefix = ""
                if slot_gpus:
                    child_env["CUDA_VISIBLE_DEVICES"] = slot_gpus[slot]
                    prefix = f"CUDA_VISIBLE_DEVICES={slot_gpus[slot]} "
                cmd = train_command(run, resume)
                log = open(sweep_dir / "logs" / f"{run.name}.log", "a")
                log.write(f"$ {prefix}{' '.join(cmd)}\n")
                log.flush()
                try:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)
                finally:
                    log.close()  # the child holds its own handle
                running[proc] = (run, time.time(), slot)
            time.sleep(poll_s)
            for proc in [p for p in running if p.poll() is not None]:
                run, t0, slot = running.pop(proc)
                free_slots.append(slot)
                free_slots.sort()
                _finish(run, proc.returncode, time.time() - t0, sweep_dir, res)
                collect_results(grid, runs)
                bar.update(1)
    finally:
        for proc in running:  # interrupted (Ctrl-C, SIGTERM): leave no orphan trainers behind
            proc.terminate()
        for proc in running:
            proc.wait()
        bar.close()
    collect_results(grid, runs)
    return res


def _finish(run: Run, returncode: int, seconds: float, sweep_dir: Path, res: SweepResult) -> None:
    log = sweep_dir / "logs" / f"{run.name}.log"
    if returncode == 0 and run_state(run.run_dir) == "done":
        res.finished.append(run.name)
        f1 = json.loads((run.run_dir / "metrics.json").read_text()).get("test", {}).get("macro_f1")
        tqdm.write(f"done   {run.name}  ({seconds:.1f} s, test macro-F1 {f1:.4f})" if f1 is not None
                   else f"done   {run.name}  ({seconds:.1f} s)")
        return
    why = f"exit code {returncode}" if returncode != 0 else "exited 0 but wrote no metrics.json"
    res.failed[run.name] = log_tail(log)
    tqdm.write(f"FAILED {run.name}: {why}; log {log}\n{res.failed[run.name]}", file=sys.stderr)
