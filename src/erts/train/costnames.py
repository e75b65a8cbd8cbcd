"""The one naming scheme of cost quantities (torch-free: the sweep driver and reports use it).

``<group>_<phase>`` in log.csv (per epoch, plus ``seconds_epoch`` / ``cpu_seconds_epoch``) and in
results.csv (per run, plus the ``train`` and ``total`` sums), and ``{"<group>": {"<phase>": v}}`` in
metrics.json's cost block, so the same quantity has the same name everywhere (docs/training.md).

Groups: ``seconds`` (wall clock), ``cpu_seconds`` (process CPU time, all threads), ``forwards`` and
``backwards`` (samples through a forward / backward pass), ``flops``. Phases: scoring, gradcam,
update, irreducible (rho-loss: training the irreducible-loss models and scoring with them, once, in
the first epoch's row), eval, other (untimed work, so the phases add up to the wall clock).
"""
from __future__ import annotations

PHASES = ("scoring", "gradcam", "update", "irreducible", "eval", "other")
TRAINING_PHASES = ("scoring", "gradcam", "update", "irreducible")  # the ``train`` sums; FLOPs' ``total``
FORWARD_PHASES = TRAINING_PHASES   # sample-forwards counted (eval's are timed only)
BACKWARD_PHASES = ("gradcam", "update", "irreducible")
FLOP_PHASES = TRAINING_PHASES
COST_GROUPS = ("seconds", "cpu_seconds", "forwards", "backwards", "flops")

# names of runs written before one scheme served log.csv, metrics.json and results.csv (issue 17)
_LEGACY_LOG = {"sec_epoch": "seconds_epoch", "cpu_epoch": "cpu_seconds_epoch",
               **{f"sec_{p}": f"seconds_{p}" for p in PHASES},
               **{f"fwd_{p}": f"forwards_{p}" for p in PHASES}, **{f"bwd_{p}": f"backwards_{p}" for p in PHASES}}
_LEGACY_GROUPS = {"sample_forwards": "forwards", "sample_backwards": "backwards"}
# results.csv of runs written before the scheme (erts <= 0.2: CPU time per run)
_LEGACY_RESULTS = {"cpu_train": "cpu_seconds_train", "cpu_total": "cpu_seconds_total"}


def legacy_log_columns(columns) -> dict[str, str]:
    """Old log.csv column -> its current name, for the old columns present in ``columns`` (runs written
    before the scheme); a reader renames with it (``df.rename(columns=legacy_log_columns(df.columns))``)."""
    return {c: _LEGACY_LOG[c] for c in columns if c in _LEGACY_LOG and _LEGACY_LOG[c] not in columns}


def legacy_result_columns(columns) -> dict[str, str]:
    """Old results.csv column -> its current name (log.csv's renames too), for those in ``columns``."""
    old = {**_LEGACY_LOG, **_LEGACY_RESULTS}
    return {c: old[c] for c in columns if c in old and old[c] not in columns}


def normalize_cost(cost: dict) -> dict:
    """A metrics.json cost block with the current group names (older runs wrote sample_forwards /
    sample_backwards)."""
    out = dict(cost or {})
    for old, new in _LEGACY_GROUPS.items():
        if old in out and new not in out:
            out[new] = out.pop(old)
    return out


def flatten_cost(cost: dict) -> dict[str, float]:
    """A metrics.json cost block as flat columns: ``effective_epochs`` and ``<group>_<phase>``."""
    cost = normalize_cost(cost)
    row: dict[str, float] = {}
    if "effective_epochs" in cost:
        row["effective_epochs"] = cost["effective_epochs"]
    for group in COST_GROUPS:
        for phase, v in (cost.get(group) or {}).items():
            row[f"{group}_{phase}"] = v
    return row
