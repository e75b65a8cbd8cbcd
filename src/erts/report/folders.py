"""Reading run and sweep folders: which is which, and their log and final metrics.

Why one place: runs written before the cost columns were renamed are read through
the same translation (erts.train.costnames) by every section.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

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
