"""Reading run and sweep folders: which is which, and their log and final metrics.

Why one place: runs written before the cost columns were renamed are read through
the same translation (erts.train.costnames) by every section.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from erts.report.provenance import read_config
from erts.train.costnames import legacy_log_columns, normalize_cost


def is_run_dir(d: Path) -> bool:
    return (d / "metrics.json").exists() or (d / "log.csv").exists()


def is_sweep_dir(d: Path) -> bool:
    return (d / "results.csv").exists()


def read_log(run_dir: Path) -> pd.DataFrame | None:
    """log.csv, with the cost columns of runs written before the naming scheme renamed to it."""
    p = run_dir / "log.csv"
    if not p.exists():
        return None
    df = pd.read_csv(p)
    return df.rename(columns=legacy_log_columns(df.columns))


def read_metrics(run_dir: Path) -> dict:
    p = run_dir / "metrics.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: missing; the run has not finished (resume it with erts train --resume {run_dir})")
    m = json.loads(p.read_text())
    if isinstance(m.get("cost"), dict):
        m["cost"] = normalize_cost(m["cost"])
    return m


SHARED_BELOW = 0.8  # an epoch whose CPU time is below this share of wall clock x threads ran on shared cores
SHARED_EPOCHS_WARN = 0.1  # warn when more than this share of a run's epochs did


def run_threads(run_dir: Path) -> int:
    """The torch threads per process the run asked for (``num_threads``; 0 when left to torch's default,
    which this cannot know afterwards)."""
    return int((read_config(run_dir) or {}).get("train.num_threads") or 0)


def shared_epochs(run_dir: Path) -> tuple[int, int, float]:
    """(epochs that ran on shared cores, epochs with timing, the whole run's CPU time / (wall clock x
    threads)) of one CPU run.

    Why: a run whose cores are also busy with other work gets fewer cycles *and* burns more CPU time
    (its threads spin while they wait for each other), so both its wall clock and its CPU time
    overstate its cost, and its time ratios are unreliable. Such an epoch shows as CPU time well below
    wall clock x threads (an epoch alone on its cores uses ~1.0 of them); a run paused or starved for
    a long stretch inside one epoch shows in the whole run's share. (0, 0, nan) when the run's thread
    count is unknown (``num_threads=0``), it ran on a GPU, or its log has no CPU time."""
    threads = run_threads(run_dir)
    log = read_log(run_dir)
    device = read_metrics(run_dir).get("device", "cpu") if (run_dir / "metrics.json").exists() else "cpu"
    if not threads or log is None or "cpu_seconds_epoch" not in log.columns or not str(device).startswith("cpu"):
        return 0, 0, float("nan")
    log = log.drop_duplicates("epoch", keep="last")
    wall, cpu = log["seconds_epoch"].to_numpy(float), log["cpu_seconds_epoch"].to_numpy(float)
    ok = wall > 0
    share = cpu[ok] / (wall[ok] * threads)
    overall = float(cpu[ok].sum() / (wall[ok].sum() * threads)) if ok.any() else float("nan")
    return int((share < SHARED_BELOW).sum()), int(ok.sum()), overall


def shared_warning(label: str, run_dirs: list[Path]) -> str | None:
    """One warning for a configuration whose runs had more than SHARED_EPOCHS_WARN of their epochs on
    shared cores, or whose CPU time came to less than SHARED_BELOW of wall clock x threads over the
    whole run, naming the runs; None when every run had its cores to itself."""
    hit = []
    for d in run_dirs:
        n, total, overall = shared_epochs(d)
        if total and (n / total > SHARED_EPOCHS_WARN or overall < SHARED_BELOW):
            hit.append(f"{d.name} ({n} of {total} epochs; {overall:.0%} of wall clock x threads over the run)")
    if not hit:
        return None
    return (f"{label}: other work shared the cores during {', '.join(hit)} (CPU time below {SHARED_BELOW:.0%} of wall "
            "clock x threads): its wall-clock and CPU times overstate its cost, so its time ratios are unreliable. "
            "FLOPs / full does not depend on the machine.")
