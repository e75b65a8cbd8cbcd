"""Was the machine's time trustworthy? Shared cores and speed drift between runs.

Why apart from the tables: a CPU time is only a cost of the method when the machine
did nothing else and ran at one speed. Two things break that on a shared VM: other work
on the same cores (both the wall clock and the CPU time inflate), and the host itself
getting slower or faster between runs (another tenant, a migration): then the CPU time of
the same work changes by up to 3x between runs (measured on this project's CinC sweep),
which no within-run check sees. The validation pass is the probe for the second: every
run of a sweep evaluates the same records with the same model every epoch, so its CPU
time changes only with the machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from erts.report.folders import read_log, read_metrics
from erts.report.provenance import read_config

SHARED_BELOW = 0.8  # an epoch whose CPU time is below this share of wall clock x threads ran on shared cores
SHARED_EPOCHS_WARN = 0.1  # warn when more than this share of a run's epochs did
STALL_CPU = 1.2  # a low-share epoch whose CPU time is within this factor of its phase's median was paused


def run_threads(run_dir: Path) -> int:
    """The torch threads per process the run asked for (``num_threads``; 0 when left to torch's default,
    which this cannot know afterwards)."""
    return int((read_config(run_dir) or {}).get("train.num_threads") or 0)


def epoch_shares(run_dir: Path) -> pd.DataFrame | None:
    """The run's epochs with timing: ``phase``, ``cpu`` (CPU s), ``capacity`` (wall clock x threads),
    ``share`` (cpu / capacity). None when the run's thread count is unknown (``num_threads=0``), it ran on a GPU, or its
    log has no CPU time."""
    threads = run_threads(run_dir)
    log = read_log(run_dir)
    device = read_metrics(run_dir).get("device", "cpu") if (run_dir / "metrics.json").exists() else "cpu"
    if not threads or log is None or "cpu_seconds_epoch" not in log.columns or not str(device).startswith("cpu"):
        return None
    log = log.drop_duplicates("epoch", keep="last")
    log = log[log["seconds_epoch"].to_numpy(float) > 0]
    wall, cpu = log["seconds_epoch"].to_numpy(float), log["cpu_seconds_epoch"].to_numpy(float)
    phase = log["phase"].astype(str).to_numpy() if "phase" in log.columns else np.full(len(log), "")
    return pd.DataFrame({"phase": phase, "cpu": cpu, "capacity": wall * threads, "share": cpu / (wall * threads)})


def _shared(e: pd.DataFrame | None) -> tuple[int, int, float]:
    if e is None or e.empty:
        return 0, 0, float("nan")
    return int((e["share"] < SHARED_BELOW).sum()), len(e), float(e["cpu"].sum() / e["capacity"].sum())


def _paused(e: pd.DataFrame | None) -> int:
    if e is None or e.empty:
        return 0
    low = e["share"] < SHARED_BELOW
    n = 0
    for i in np.flatnonzero(low.to_numpy()):
        peers = e[(e["phase"] == e["phase"].iloc[i]) & ~low]
        if len(peers) and e["cpu"].iloc[i] <= STALL_CPU * peers["cpu"].median():
            n += 1
    return n


def shared_epochs(run_dir: Path) -> tuple[int, int, float]:
    """(epochs that ran on shared cores, epochs with timing, the whole run's CPU time / (wall clock x
    threads)) of one CPU run.

    Why: a run whose cores are also busy with other work gets fewer cycles *and* burns more CPU time
    (its threads spin while they wait for each other), so both its wall clock and its CPU time
    overstate its cost, and its time ratios are unreliable. Such an epoch shows as CPU time well below
    wall clock x threads (an epoch alone on its cores uses ~1.0 of them); a run paused or starved for
    a long stretch inside one epoch shows in the whole run's share. (0, 0, nan) when epoch_shares has
    nothing to read."""
    return _shared(epoch_shares(run_dir))


def paused_epochs(run_dir: Path) -> int:
    """Of the epochs below SHARED_BELOW, those whose CPU time is no more than STALL_CPU x the median of
    the run's other epochs of the same phase: the process waited (SIGSTOP, a suspended machine) instead
    of competing for the cores, so only its wall clock grew and its CPU time still measures its cost."""
    return _paused(epoch_shares(run_dir))


def shared_warning(label: str, run_dirs: list[Path]) -> str | None:
    """The shared-cores warnings (shared_cores_warnings) of one configuration, joined; None when every
    run had its cores to itself."""
    return " ".join(shared_cores_warnings([(label, run_dirs)])) or None


def shared_cores_warnings(groups: list[tuple[str, list[Path]]]) -> list[str]:
    """Up to two warnings over every (label, run folders) group: one naming the runs that shared their
    cores with other work (wall clock and CPU time overstated), one naming the runs that were only
    paused or stalled (paused_epochs: wall clock overstated, CPU time not)."""
    shared, paused = [], []
    for label, run_dirs in groups:
        s_runs, p_runs = [], []
        for d in run_dirs:
            e = epoch_shares(d)  # read once for both checks
            n, total, overall = _shared(e)
            if not total or (n / total <= SHARED_EPOCHS_WARN and overall >= SHARED_BELOW):
                continue
            what = f"{d.name} ({n} of {total} epochs; {overall:.0%} of wall clock x threads over the run)"
            (p_runs if n and _paused(e) == n else s_runs).append(what)
        shared += [f"{label}: {', '.join(s_runs)}"] if s_runs else []
        paused += [f"{label}: {', '.join(p_runs)}"] if p_runs else []
    out = []
    if shared:
        one = len(shared) == 1 and shared[0].count(" epochs; ") == 1
        its = "its" if one else "their"
        out.append(f"Other work shared the cores during {'; '.join(shared)} (CPU time below {SHARED_BELOW:.0%} of wall "
                   f"clock x threads): {its} wall-clock and CPU times overstate {its} cost, so {its} time ratios are "
                   "unreliable. FLOPs / full does not depend on the machine.")
    if paused:
        out.append(f"Paused or stalled: {'; '.join(paused)} (wall clock well above CPU time / threads in epochs that "
                   f"used no more CPU time than the run's other epochs of their phase): wall-clock ratios overstate "
                   "the cost; CPU times do not.")
    return out


SPEED_SPREAD_LIMIT = 0.30  # validation-pass CPU time, slowest run over fastest minus 1, above this is flagged


def eval_cpu_per_epoch(run_dir: Path) -> float:
    """Mean CPU seconds of the run's per-epoch validation pass: the machine's speed during the run.

    The mean, not the median: a run that resumed on a slower machine ran some epochs at each speed,
    and its total CPU time is the sum over both (total / this mean then puts the run at one speed).
    NaN when the log has no such column or the run never validated."""
    log = read_log(run_dir)
    if log is None or "cpu_seconds_eval" not in log.columns:
        return float("nan")
    x = log.drop_duplicates("epoch", keep="last")["cpu_seconds_eval"].to_numpy(float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(x.mean()) if len(x) else float("nan")


def speed_columns(results: pd.DataFrame, runs_dir: Path, group_keys: list[str]) -> pd.DataFrame:
    """``results`` with ``eval_cpu_per_epoch`` (each run's probe, read from ``runs_dir/<run>``) and
    ``cpu_seconds_total_norm``: the run's CPU time at the median probe of its group (the runs with the
    same ``group_keys``, which share the validation work), i.e. as if every run had found the machine at
    one speed. Unchanged when the results have no CPU time."""
    if "cpu_seconds_total" not in results.columns:
        return results
    return normalise_cpu(with_probe(results, runs_dir), group_keys)


def with_probe(results: pd.DataFrame, runs_dir: Path) -> pd.DataFrame:
    """``results`` with each run's ``eval_cpu_per_epoch``, read from ``runs_dir/<run>``."""
    return results.assign(eval_cpu_per_epoch=[eval_cpu_per_epoch(runs_dir / str(r)) for r in results["run"]])


def normalise_cpu(results: pd.DataFrame, group_keys: list[str], column: str = "cpu_seconds_total") -> pd.DataFrame:
    """``<column>_norm`` = the CPU time x (median probe of the group / the run's probe); NaN for a run
    without a probe. Ratios of it to ``full`` do not depend on which reference the group takes."""
    out = results.copy()
    keys = [k for k in group_keys if k in out.columns]
    probe = out["eval_cpu_per_epoch"].astype(float)
    ref = probe.groupby([out[k].astype(str) for k in keys]).transform("median") if keys else probe.median()
    out[f"{column}_norm"] = out[column].astype(float) * ref / probe
    return out


def speed_warning(results: pd.DataFrame, group_keys: list[str]) -> str | None:
    """One warning when the validation pass (the same work in every run of a group) took more than
    SPEED_SPREAD_LIMIT longer in the slowest run than in the fastest: the machine changed speed between
    runs, so raw CPU ratios mix the method with the machine. None when it did not, or nothing was probed."""
    if "eval_cpu_per_epoch" not in results.columns:
        return None
    keys = [k for k in group_keys if k in results.columns]
    hits = []
    groups = results.groupby([results[k].astype(str) for k in keys]) if keys else [((), results)]
    for key, g in groups:
        x = g["eval_cpu_per_epoch"].to_numpy(float)
        x = x[np.isfinite(x) & (x > 0)]
        if len(x) > 1 and x.max() / x.min() - 1 > SPEED_SPREAD_LIMIT:
            label = ", ".join(f"{k}={v}" for k, v in zip(keys, key if isinstance(key, tuple) else (key,)))
            slow = g.loc[g["eval_cpu_per_epoch"].idxmax(), "run"]
            hits.append(f"{label + ': ' if label else ''}{x.min():.2f}-{x.max():.2f} CPU s per validation pass "
                        f"({x.max() / x.min() - 1:.0%} apart; slowest {slow})")
    if not hits:
        return None
    return ("The machine changed speed between runs: the validation pass, the same work in every run, took "
            f"{'; '.join(hits)}. Raw CPU / full mixes the method with the machine; read CPU / full at one speed "
            "(each run's CPU time scaled by the median validation pass over its own), effective epochs and "
            "FLOPs / full.")
