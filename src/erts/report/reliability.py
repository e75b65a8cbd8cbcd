"""Does the focus filter drop the records whose label was later corrected?

CinC 2017 changed the label of 294 records between its first release and the
current one (``label_changed`` in a run's ``train_records.csv``; train on the
original labels with ``labels=original-train``). Those records are real label
noise, so a reliability signal should drop them more often than the others. This
module measures that from run folders, for the focus filter and, to separate what
the filter adds from what confidence alone does, for the PDD rule itself.

Definitions (one run folder = one seed; a *sample-epoch* is one training record
in one epoch's ``selection/epoch_XXX.npz``):

- **select epoch**: ``phase == "select"`` in ``log.csv``; **ERTS epoch**: a
  select epoch in which some ``focus`` value is finite.
- **focus filter** (``which = "focus_filter"``), per ERTS epoch: candidates are
  the sample-epochs the filter ranked, ``filter_cand`` in the selection log
  (logs written before it: ``pdd_keep`` true and a finite ``focus``; a candidate
  whose focus is NaN was never ranked: a lone candidate in its pool is kept
  without Grad-CAM); dropped are the candidates with ``erts_keep`` false. A
  candidate the filter's class rescue put back has ``erts_keep`` true: kept.
  ``filter_cand`` also covers ``reliability=loss``, which computes no focus.
- **ground truth**: ``label_changed`` by default; ``truth=`` names another
  boolean column of ``train_records.csv`` (``noise_flipped``: the labels
  ``label_noise=`` flipped), "relabelled" then meaning flagged by it. The
  report section (``fill_section``) uses ``noise_flipped`` when a run has it.
- **rule** (``which = "rule"``, runs of ``rule_methods``: ``dbpd`` and
  ``erts-dbpd`` by default), per select epoch: candidates are the pool, every
  sample-epoch with a finite ``p`` (scored); dropped are those with ``pdd_keep``
  false and not ``rescued`` (for DBPD: ``p >= tau`` and not put back by class
  rescue; for ERTS-DBPD the rule's drops, before the focus filter).
- **drop rate** of a group (relabelled: ``label_changed`` true; unchanged: false)
  = dropped / candidates, pooled over the sample-epochs of the scope: one epoch
  (``scope`` = the epoch number, pooled over seeds) or every ERTS (select, for
  the rule) epoch of every seed (``scope = "overall"``).
- **ratio** = relabelled drop rate / unchanged drop rate (inf when only the
  unchanged rate is 0, NaN when both are).
- **ratio within labels** (overall rows): the Mantel-Haenszel risk ratio over the records' given
  (training) labels, sum_k a_k n0_k / N_k over sum_k b_k n1_k / N_k (per label k: a_k and b_k the
  relabelled and unchanged drops, n1_k and n0_k their candidates, N_k = n1_k + n0_k). Why: noise is
  rarely spread evenly over the given labels (20 % symmetric flips land most in the rare labels, whose
  records a filter drops more anyway), so the pooled ratio mixes "drops wrong labels" with "drops
  this label"; within labels it compares records that carry the same label. NaN without labels.
- **95 % CI** of the ratio: percentile bootstrap, two-level and clustered. Each
  resample draws the runs (seeds) with replacement, then within each drawn run
  its records with replacement, a record with all its epochs (so repeated
  decisions about one record are never treated as independent), relabelled and
  unchanged records separately (each side keeps its number of records). The
  clusters are the run's training records that were candidates at least once in
  any of its epochs of that kind (the same clusters for every scope). Resamples whose ratio is NaN are left out. Deterministic:
  ``numpy.random.default_rng`` seeded from ``seed``, the group's name and
  ``which``.

The issue's goal: the filter drops relabelled candidates at >= 1.5 times the rate
of unchanged ones, with the CI of the ratio excluding 1 (``ci_low > 1``).
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from erts.data.truth import as_bool
from erts.errors import DataError
from erts.fileio import atomic_write
from erts.report.selection import load_selection_log, load_train_records

GOAL_RATIO = 1.5
WHICH = ("focus_filter", "rule")
COUNTS_FILE = "selection_counts.npz"  # write_counts: the drop ratios' inputs without the logs
RULE_METHODS = ("dbpd", "erts-dbpd")
COLUMNS = ["method", "scope", "which", "n_relabelled_candidates", "relabelled_drop_rate", "unchanged_drop_rate",
           "ratio", "ci_low", "ci_high", "n_unchanged_candidates", "relabelled_dropped", "unchanged_dropped",
           "n_relabelled_records", "n_unchanged_records", "n_runs",
           "ratio_within_labels", "within_ci_low", "within_ci_high"]
_CHUNK = 256  # bootstrap resamples per vectorised block


# --- reading run folders -----------------------------------------------------------------

def run_method(run_dir: str | Path) -> str | None:
    """The run's ``selection.method`` from its config.yaml (None when the file or key is missing)."""
    p = Path(run_dir) / "config.yaml"
    if not p.exists():
        return None
    raw = yaml.safe_load(p.read_text()) or {}
    sel = raw.get("selection") if isinstance(raw, dict) else None
    return str(sel["method"]) if isinstance(sel, dict) and "method" in sel else None


def has_label_truth(run_dir: str | Path, truth: str = "label_changed") -> bool:
    """True when the run's train_records.csv has a ``truth`` column with at least one flagged record."""
    p = Path(run_dir) / "train_records.csv"
    if not p.exists():
        return False
    head = pd.read_csv(p, nrows=0)
    if truth not in head.columns:
        return False
    return bool(as_bool(pd.read_csv(p, usecols=[truth])[truth]).any())


def _phases(run_dir: Path, sel: pd.DataFrame) -> dict[int, str]:
    """epoch -> phase from log.csv; without a phase column, epochs with a finite p count as select."""
    log = run_dir / "log.csv"
    if log.exists():
        df = pd.read_csv(log)
        if "phase" in df.columns:
            df = df.drop_duplicates("epoch", keep="last")  # a resumed run may repeat an epoch
            return dict(zip(df["epoch"].astype(int), df["phase"].astype(str)))
    scored = sel.groupby("epoch")["p"].apply(lambda p: bool(np.isfinite(p.to_numpy(dtype=float)).any()))
    return {int(e): ("select" if s else "full") for e, s in scored.items()}


@dataclass
class RunCounts:
    """Per record (rows) and epoch (columns) of one run: candidates and drops, for one ``which``."""

    run: str
    epochs: list[int]
    changed: np.ndarray  # (n_records,) bool: relabelled
    cand: np.ndarray     # (n_records, n_epochs) int
    drop: np.ndarray     # (n_records, n_epochs) int
    label: np.ndarray | None = None  # (n_records,) str: the given (training) label; None: unknown


def _log_counts(run_dir: Path, sel: pd.DataFrame,
                which: str) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray] | None:
    """From the run's selection logs ``sel``: (record index, epochs, candidates, drops) per record and
    epoch, or None."""
    if sel.empty:
        return None
    phases = _phases(run_dir, sel)
    select = sel["epoch"].map(phases).eq("select").to_numpy()
    focus = np.isfinite(sel["focus"].to_numpy(dtype=float))
    pdd = sel["pdd_keep"].to_numpy(bool)
    if which == "focus_filter":
        ranked = sel["filter_cand"].to_numpy(bool) if "filter_cand" in sel.columns else np.zeros(len(sel), bool)
        ranked = ranked | (pdd & focus)  # logs written before filter_cand: the candidates with a focus
        erts_epochs = set(sel.loc[select & ranked, "epoch"].unique())
        is_cand = select & sel["epoch"].isin(erts_epochs).to_numpy() & pdd & ranked
        is_drop = is_cand & ~sel["erts_keep"].to_numpy(bool)
    else:
        rescued = sel["rescued"].to_numpy(bool) if "rescued" in sel.columns else np.zeros(len(sel), bool)
        is_cand = select & np.isfinite(sel["p"].to_numpy(dtype=float))
        is_drop = is_cand & ~pdd & ~rescued
    if not is_cand.any():
        return None
    c = pd.DataFrame({"epoch": sel["epoch"].to_numpy()[is_cand], "index": sel["index"].to_numpy()[is_cand],
                      "drop": is_drop[is_cand].astype(np.int64)})
    g = c.groupby(["index", "epoch"])["drop"].agg(["size", "sum"]).unstack("epoch", fill_value=0)
    return (g.index.to_numpy(np.int64), [int(e) for e in g["size"].columns],
            g["size"].to_numpy(np.int64), g["sum"].to_numpy(np.int64))


def _file_counts(path: Path, which: str) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray] | None:
    """The same from a ``selection_counts.npz`` (``write_counts``), or None when it has no such epochs."""
    with np.load(path, allow_pickle=False) as z:
        if f"{which}_index" not in z.files:
            return None
        index, epochs = z[f"{which}_index"], z[f"{which}_epochs"]
        cand, drop = z[f"{which}_cand"].astype(np.int64), z[f"{which}_drop"].astype(np.int64)
    if cand.shape != (len(index), len(epochs)) or drop.shape != cand.shape:
        raise DataError(f"{path}: {which} counts have shape {cand.shape} / {drop.shape}, "
                        f"expected ({len(index)}, {len(epochs)})")
    return index.astype(np.int64), [int(e) for e in epochs], cand, drop


def run_counts(run_dir: str | Path, which: str, truth: str = "label_changed") -> RunCounts | None:
    """One run's candidate and drop counts per record and epoch (None: no such epoch, or no label truth).

    Rows are the training records that were candidates at least once (the bootstrap's clusters);
    ``truth`` is the ground-truth column of train_records.csv. Read from the selection logs, or,
    in a run folder published without them, from its ``selection_counts.npz`` (``write_counts``).
    """
    if which not in WHICH:
        raise ValueError(f"which={which!r}; expected one of {WHICH}")
    run_dir = Path(run_dir)
    if not has_label_truth(run_dir, truth):
        return None
    if (run_dir / "selection").is_dir():
        found = _log_counts(run_dir, load_selection_log(run_dir), which)
    elif (run_dir / COUNTS_FILE).exists():
        found = _file_counts(run_dir / COUNTS_FILE, which)
    else:
        return None
    if found is None:
        return None
    index, epochs, cand, drop = found
    records = load_train_records(run_dir)
    missing = np.setdiff1d(index, records.index.to_numpy())
    if len(missing):
        raise DataError(f"{run_dir}: selection log rows {missing[:5].tolist()} are not in train_records.csv")
    changed = as_bool(records.loc[index, truth]).to_numpy()
    label = records.loc[index, "label"].astype(str).to_numpy() if "label" in records.columns else None
    return RunCounts(run=run_dir.name, epochs=epochs, changed=changed, cand=cand, drop=drop, label=label)


def write_counts(run_dir: str | Path, dest: str | Path | None = None) -> Path | None:
    """Saves what the drop ratios need from a run's selection logs, ``selection_counts.npz``.

    Per ``which``: the candidate records' indices, the epochs, and candidates and drops per record
    and epoch (uint8). About 1/20 of the logs' size, so a published sweep can keep it for every run;
    ``run_counts`` reads it when the run folder has no selection logs. ``dest``: the folder to write
    it to (default: the run's own). Returns the file, or None when the run has no select epoch.
    """
    run_dir = Path(run_dir)
    sel = load_selection_log(run_dir)  # empty without a selection folder
    arrays: dict[str, np.ndarray] = {}
    for which in WHICH:
        found = _log_counts(run_dir, sel, which)
        if found is None:
            continue
        index, epochs, cand, drop = found
        if cand.max(initial=0) > np.iinfo(np.uint8).max:
            raise DataError(f"{run_dir}: a record was a {which} candidate over 255 times in one epoch")
        arrays |= {f"{which}_index": index, f"{which}_epochs": np.asarray(epochs, np.int64),
                   f"{which}_cand": cand.astype(np.uint8), f"{which}_drop": drop.astype(np.uint8)}
    if not arrays:
        return None
    path = Path(dest or run_dir) / COUNTS_FILE
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return path


# --- statistics --------------------------------------------------------------------------

def _aligned(runs: list[RunCounts]) -> tuple[list[int], list[RunCounts]]:
    """Every run's counts over the union of the runs' epochs (an epoch a run lacks: zeros)."""
    epochs = sorted({e for r in runs for e in r.epochs})
    out = []
    for r in runs:
        cols = [epochs.index(e) for e in r.epochs]
        cand = np.zeros((len(r.changed), len(epochs)), np.int64)
        drop = np.zeros_like(cand)
        cand[:, cols], drop[:, cols] = r.cand, r.drop
        out.append(RunCounts(r.run, epochs, r.changed, cand, drop, r.label))
    return epochs, out


def _ratio(rel_drop, rel_cand, unc_drop, unc_cand):
    """Rates and ratio, elementwise; rate NaN with no candidates, ratio inf when only the unchanged rate is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r_rel = np.where(rel_cand > 0, rel_drop / np.maximum(rel_cand, 1), np.nan)
        r_unc = np.where(unc_cand > 0, unc_drop / np.maximum(unc_cand, 1), np.nan)
        ratio = np.where(r_unc > 0, r_rel / np.where(r_unc > 0, r_unc, 1),
                         np.where(r_rel > 0, np.inf, np.nan))
        ratio = np.where(np.isnan(r_rel) | np.isnan(r_unc), np.nan, ratio)
    return r_rel, r_unc, ratio


def _percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the finite-or-inf values (NaN resamples left out); NaN when under half remain."""
    v = values[~np.isnan(values)]
    if len(v) < max(1, len(values) // 2):
        return float("nan"), float("nan")
    big = np.finfo(float).max
    q = np.quantile(np.where(np.isinf(v), big, v), [(1 - level) / 2, (1 + level) / 2])
    return tuple(float(np.inf) if x >= big / 2 else float(x) for x in q)


def label_onehot(runs: list[RunCounts]) -> tuple[list[str], list[np.ndarray]] | None:
    """The group's given labels, and per run (n_records, n_labels) 0/1 of its records' labels over them;
    None when a run does not know its labels."""
    if any(r.label is None for r in runs):
        return None
    labels = sorted({str(v) for r in runs for v in r.label})
    return labels, [(r.label[:, None] == np.array(labels)[None, :]).astype(float) for r in runs]


def label_totals(runs: list[RunCounts], onehot: list[np.ndarray]) -> list[np.ndarray]:
    """Over all epochs, per given label: relabelled drops, relabelled candidates, unchanged drops,
    unchanged candidates (``within_labels_ratio``'s arguments)."""
    out = []
    for relabelled in (True, False):
        for counts in ("drop", "cand"):
            out.append(sum((getattr(r, counts).sum(1) * (r.changed == relabelled)) @ h for r, h in zip(runs, onehot)))
    return out


def within_labels_ratio(rel_drop, rel_cand, unc_drop, unc_cand) -> np.ndarray:
    """Mantel-Haenszel risk ratio over labels (last axis): sum a n0 / N over sum b n1 / N; inf when only
    the denominator is 0, NaN when both are."""
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.maximum(rel_cand + unc_cand, 1)
        num = (rel_drop * unc_cand / n).sum(-1)
        den = (unc_drop * rel_cand / n).sum(-1)
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.where(num > 0, np.inf, np.nan))


def bootstrap_totals(runs: list[RunCounts], n_boot: int, rng: np.random.Generator,
                     onehot: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Resampled totals per epoch, (n_boot, n_epochs) each: rel_cand, rel_drop, unc_cand, unc_drop; and
    with the runs' ``onehot`` labels (``label_onehot``), over all epochs per given label, (n_boot, n_labels)
    each: the same keys with ``_by_label``.

    Two levels: runs with replacement, then within each drawn run its relabelled and its
    unchanged records with replacement (a record with all its epochs).
    """
    n_runs, n_ep = len(runs), runs[0].cand.shape[1]
    tot = {k: np.zeros((n_boot, n_ep)) for k in ("rel_cand", "rel_drop", "unc_cand", "unc_drop")}
    if onehot is not None:
        tot |= {f"{k}_by_label": np.zeros((n_boot, onehot[0].shape[1])) for k in ("rel_cand", "rel_drop", "unc_cand", "unc_drop")}
    picks = rng.integers(0, n_runs, size=(n_boot, n_runs))
    for slot in range(n_runs):
        for j, run in enumerate(runs):
            rows = np.flatnonzero(picks[:, slot] == j)
            for side, mask in (("rel", run.changed), ("unc", ~run.changed)):
                n = int(mask.sum())
                if n == 0 or len(rows) == 0:
                    continue
                cand = run.cand[mask].astype(float)
                drop = run.drop[mask].astype(float)
                for start in range(0, len(rows), _CHUNK):
                    block = rows[start:start + _CHUNK]
                    idx = rng.integers(0, n, size=(len(block), n))
                    w = np.bincount((np.arange(len(block))[:, None] * n + idx).ravel(),
                                    minlength=len(block) * n).reshape(len(block), n).astype(float)
                    tot[f"{side}_cand"][block] += w @ cand
                    tot[f"{side}_drop"][block] += w @ drop
                    if onehot is not None:
                        tot[f"{side}_cand_by_label"][block] += w @ (cand.sum(1)[:, None] * onehot[j][mask])
                        tot[f"{side}_drop_by_label"][block] += w @ (drop.sum(1)[:, None] * onehot[j][mask])
    return tot


def _group_seed(seed: int, name: str, which: str) -> list[int]:
    return [int(seed), zlib.crc32(name.encode()), WHICH.index(which)]


def group_rows(name: str, runs: list[RunCounts], which: str, n_boot: int = 2000, seed: int = 0) -> list[dict]:
    """The table rows (each epoch, then overall) of one group of runs (the seeds of one method)."""
    epochs, runs = _aligned(runs)
    ch = [r.changed for r in runs]
    rel_cand = sum(r.cand[c].sum(0) for r, c in zip(runs, ch))
    rel_drop = sum(r.drop[c].sum(0) for r, c in zip(runs, ch))
    unc_cand = sum(r.cand[~c].sum(0) for r, c in zip(runs, ch))
    unc_drop = sum(r.drop[~c].sum(0) for r, c in zip(runs, ch))
    n_rel_rec = [int(sum(((r.cand[:, k] > 0) & c).sum() for r, c in zip(runs, ch))) for k in range(len(epochs))]
    n_unc_rec = [int(sum(((r.cand[:, k] > 0) & ~c).sum() for r, c in zip(runs, ch))) for k in range(len(epochs))]
    labelled = label_onehot(runs)
    onehot = labelled[1] if labelled is not None else None
    rng = np.random.default_rng(_group_seed(seed, name, which))
    boot = bootstrap_totals(runs, n_boot, rng, onehot) if n_boot > 0 else None
    within, within_ci = float("nan"), (float("nan"), float("nan"))
    if onehot is not None:  # per label, over all epochs: relabelled and unchanged drops and candidates
        within = float(within_labels_ratio(*label_totals(runs, onehot)))
        if boot is not None:
            within_ci = _percentile_ci(within_labels_ratio(*(boot[f"{k}_by_label"] for k in
                                                            ("rel_drop", "rel_cand", "unc_drop", "unc_cand"))))
    rows = []
    scopes = [(e, k) for k, e in enumerate(epochs)] + [("overall", None)]
    for scope, k in scopes:
        if k is None:
            pt = [float(a.sum()) for a in (rel_drop, rel_cand, unc_drop, unc_cand)]
            bt = None if boot is None else [boot[x].sum(1) for x in ("rel_drop", "rel_cand", "unc_drop", "unc_cand")]
            n_rel, n_unc = int(sum(c.sum() for c in ch)), int(sum((~c).sum() for c in ch))
        else:
            pt = [float(a[k]) for a in (rel_drop, rel_cand, unc_drop, unc_cand)]
            bt = None if boot is None else [boot[x][:, k] for x in ("rel_drop", "rel_cand", "unc_drop", "unc_cand")]
            n_rel, n_unc = n_rel_rec[k], n_unc_rec[k]
        r_rel, r_unc, ratio = (float(v) for v in _ratio(*map(np.asarray, pt)))
        lo, hi = _percentile_ci(_ratio(*bt)[2]) if bt is not None else (np.nan, np.nan)
        rows.append({"method": name, "scope": scope, "which": which, "n_relabelled_candidates": int(pt[1]),
                     "relabelled_drop_rate": r_rel, "unchanged_drop_rate": r_unc, "ratio": ratio,
                     "ci_low": lo, "ci_high": hi, "n_unchanged_candidates": int(pt[3]),
                     "relabelled_dropped": int(pt[0]), "unchanged_dropped": int(pt[2]),
                     "n_relabelled_records": n_rel, "n_unchanged_records": n_unc, "n_runs": len(runs),
                     "ratio_within_labels": within if k is None else float("nan"),
                     "within_ci_low": within_ci[0] if k is None else float("nan"),
                     "within_ci_high": within_ci[1] if k is None else float("nan")})
    return rows


def _groups(runs) -> dict[str, list[Path]]:
    if isinstance(runs, Mapping):
        return {str(k): [Path(p) for p in v] for k, v in runs.items()}
    if isinstance(runs, (str, Path)):
        runs = sweep_runs(runs)
    out: dict[str, list[Path]] = {}
    for p in runs:
        out.setdefault(run_method(p) or Path(p).name, []).append(Path(p))
    return out


def sweep_runs(directory: str | Path) -> list[Path]:
    """The run folders of a sweep (``DIR/runs/*`` listed in results.csv when it exists), or DIR itself for a run."""
    d = Path(directory)
    if (d / "results.csv").exists():
        res = pd.read_csv(d / "results.csv")
        if "run" in res.columns:
            return [d / "runs" / str(r) for r in res["run"]]
    if (d / "runs").is_dir():
        return sorted(p for p in (d / "runs").iterdir() if p.is_dir())
    return [d]


def reliability_table(runs: str | Path | Sequence[str | Path] | Mapping[str, Sequence[str | Path]], *,
                      n_boot: int = 2000, seed: int = 0,
                      rule_methods: Sequence[str] = RULE_METHODS, truth: str = "label_changed") -> pd.DataFrame:
    """The tidy table: per group, ``which`` (focus_filter, rule) and scope (each epoch, then "overall").

    ``runs``: a sweep folder, a list of run folders (grouped by ``selection.method`` from
    each config.yaml), or a mapping group name -> run folders (the seeds of one configuration).
    Focus-filter rows come for every group with ERTS epochs, rule rows for groups whose runs'
    method is in ``rule_methods``. Runs without ``truth`` ground truth (``label_changed``) are left out;
    a group without any gives no rows. Columns: ``COLUMNS``.
    """
    return counts_table(list(group_counts(runs, rule_methods, truth)), n_boot=n_boot, seed=seed)


def counts_table(groups: list[tuple[str, str, list[RunCounts]]], *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """``reliability_table`` of counts already read (``group_counts``)."""
    rows = []
    for name, which, counts in groups:
        rows += group_rows(name, counts, which, n_boot=n_boot, seed=seed)
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.astype({"scope": object})


def group_counts(runs, rule_methods: Sequence[str] = RULE_METHODS, truth: str = "label_changed"):
    """(group name, which, its runs' counts) for every group and ``which`` that has any."""
    for name, dirs in _groups(runs).items():
        for which in WHICH:
            if which == "rule" and not any(run_method(d) in rule_methods for d in dirs):
                continue
            counts = [c for d in dirs if (c := run_counts(d, which, truth)) is not None]
            if counts:
                yield name, which, counts


def by_label_table(runs, rule_methods: Sequence[str] = RULE_METHODS, truth: str = "label_changed") -> pd.DataFrame:
    """Per group, ``which`` and given label, over all epochs and seeds: relabelled and unchanged candidates,
    their drop rates and ratio; what the ratio within labels pools, to see which labels a filter drops."""
    return label_table(list(group_counts(runs, rule_methods, truth)))


def label_table(groups: list[tuple[str, str, list[RunCounts]]]) -> pd.DataFrame:
    """``by_label_table`` of counts already read (``group_counts``)."""
    rows = []
    for name, which, counts in groups:
        labelled = label_onehot(counts)
        if labelled is None:
            continue
        labels, onehot = labelled
        rel_drop, rel_cand, unc_drop, unc_cand = label_totals(counts, onehot)
        r_rel, r_unc, ratio = _ratio(rel_drop, rel_cand, unc_drop, unc_cand)
        for k, label in enumerate(labels):
            rows.append({"method": name, "which": which, "label": label, "n_relabelled_candidates": int(rel_cand[k]),
                         "relabelled_drop_rate": r_rel[k], "n_unchanged_candidates": int(unc_cand[k]),
                         "unchanged_drop_rate": r_unc[k], "ratio": ratio[k]})
    return pd.DataFrame(rows, columns=["method", "which", "label", "n_relabelled_candidates", "relabelled_drop_rate",
                                       "n_unchanged_candidates", "unchanged_drop_rate", "ratio"])


# --- in words ----------------------------------------------------------------------------

def goal_met(row) -> bool:
    """The issue's goal: ratio >= 1.5 and the CI of the ratio above 1."""
    return bool(np.isfinite(row["ci_low"]) and row["ratio"] >= GOAL_RATIO and row["ci_low"] > 1)


def _pct(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.1%}"


def _num(v: float) -> str:
    return "n/a" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.2f}")


def _ci(row) -> str:
    return f"95% CI {_num(row['ci_low'])} to {_num(row['ci_high'])}"


def verdict(table: pd.DataFrame, method: str) -> str:
    """One sentence on a group's overall focus-filter row against the goal, with the numbers
    (plus one on the rule's own drops when the table has them)."""
    t = table[(table["method"] == method) & (table["scope"] == "overall")]
    f = t[t["which"] == "focus_filter"]
    rule = t[t["which"] == "rule"]
    out = []
    if len(f):
        r = f.iloc[0]
        met = goal_met(r)
        short = [w for w, bad in (("the ratio is below 1.5", not r["ratio"] >= GOAL_RATIO),
                                  ("the CI does not exclude 1", not (np.isfinite(r["ci_low"]) and r["ci_low"] > 1)))
                 if bad]
        why = f" ({'; '.join(short)})" if short else ""
        out.append(f"{method}: the reliability filter dropped {_pct(r['relabelled_drop_rate'])} of the relabelled candidates "
                   f"({r['relabelled_dropped']} of {r['n_relabelled_candidates']} sample-epochs, "
                   f"{r['n_relabelled_records']} records x seeds) and {_pct(r['unchanged_drop_rate'])} of the unchanged "
                   f"ones ({r['unchanged_dropped']} of {r['n_unchanged_candidates']}), a ratio of {_num(r['ratio'])} "
                   f"({_ci(r)}, {r['n_runs']} seed(s)): it {'does' if met else 'does not'} drop relabelled "
                   f"candidates at >= 1.5x the rate of unchanged ones with the CI excluding 1{why}."
                   + within_sentence(r))
    if len(rule):
        r = rule.iloc[0]
        out.append(f"{method}: the rule alone (confidence, before any reliability filter) dropped "
                   f"{_pct(r['relabelled_drop_rate'])} of the relabelled samples it scored and "
                   f"{_pct(r['unchanged_drop_rate'])} of the unchanged ones, a ratio of {_num(r['ratio'])} ({_ci(r)})."
                   + within_sentence(r))
    return " ".join(out)


def within_sentence(row) -> str:
    """The within-labels ratio in words, or '' without one."""
    if np.isnan(row["ratio_within_labels"]):
        return ""
    return (f" Comparing only records that carry the same given label (Mantel-Haenszel over labels), the ratio is "
            f"{_num(row['ratio_within_labels'])} (95% CI {_num(row['within_ci_low'])} to {_num(row['within_ci_high'])}).")


def display_table(table: pd.DataFrame, scope: str | None = "overall") -> pd.DataFrame:
    """The table with formatted cells (rates as %, ratio and CI to 2 decimals), one scope or all."""
    t = table if scope is None else table[table["scope"].astype(str) == scope]
    shown = pd.DataFrame({
        "method": t["method"], "scope": t["scope"].astype(str),
        "which": t["which"].map({"focus_filter": "reliability filter", "rule": "rule (confidence)"}),
        "relabelled candidates": t["n_relabelled_candidates"],
        "relabelled dropped": [_pct(v) for v in t["relabelled_drop_rate"]],
        "unchanged candidates": t["n_unchanged_candidates"],
        "unchanged dropped": [_pct(v) for v in t["unchanged_drop_rate"]],
        "ratio": [_num(v) for v in t["ratio"]],
        "95% CI": [f"{_num(a)} to {_num(b)}" for a, b in zip(t["ci_low"], t["ci_high"])],
        "ratio within labels [95% CI]": [within_text(r) for _, r in t.iterrows()],
    }).reset_index(drop=True)
    within = "ratio within labels [95% CI]"
    return shown if shown[within].astype(bool).any() else shown.drop(columns=within)  # per-epoch rows have none


def within_text(row) -> str:
    """'1.42 [1.36, 1.48]', '' where there is none (per-epoch rows, runs without labels)."""
    if np.isnan(row["ratio_within_labels"]):
        return ""
    return f"{_num(row['ratio_within_labels'])} [{_num(row['within_ci_low'])}, {_num(row['within_ci_high'])}]"


TRUTH_SENTENCES = {  # what "relabelled" means, by the ground truth the runs carry
    "label_changed": "Relabelled: training records whose label changed between the first and the current release "
                     "(label_changed).",
    "noise_flipped": "Relabelled here means flipped on purpose: training records whose label ``label_noise=`` "
                     "changed (noise_flipped); validation and test keep their labels.",
}
EXPLANATION = (
    "Reliability filter (erts-<rule>'s: the paper's focus, or the signal the run set with reliability=): "
    "among its candidates (kept by the rule, scored by the filter) in ERTS epochs, the share it removed. Rule: among every scored sample in select epochs, the share the rule "
    "dropped (pdd_keep false, not rescued), so confidence alone can be told from what the filter adds. "
    "Rates pool sample-epochs over epochs and seeds; ratio = relabelled rate / unchanged rate; 95% CI: "
    "percentile bootstrap resampling seeds, then records within each seed (a record with all its epochs). "
    "Ratio within labels: the same comparison made among records of one given label at a time and pooled "
    "(Mantel-Haenszel risk ratio), because noise is seldom spread evenly over the labels and a filter may "
    "simply drop one label's records more (random flips land most in the rare labels). "
    "Goal: ratio >= 1.5 with the CI above 1.")


HEADING = "Label noise: what gets dropped"


def labels_note(runs) -> str:
    """Which ``data.labels`` the runs trained on, and what that means for the analysis ('' when unknown)."""
    settings = set()
    for dirs in _groups(runs).values():
        for d in dirs:
            p = Path(d) / "config.yaml"
            raw = yaml.safe_load(p.read_text()) if p.exists() else None
            data = raw.get("data") if isinstance(raw, dict) else None
            if isinstance(data, dict) and "labels" in data:
                settings.add(str(data["labels"]))
    if not settings:
        return ""
    text = f"Training labels of these runs: labels={', '.join(sorted(settings))}."
    if "current" in settings:
        text += (" With labels=current the relabelled records are trained on their corrected labels, so they are "
                 "not label noise there; train with labels=original-train to measure what the filter does with the "
                 "noise.")
    return text


TRUTH_COLUMNS = ("noise_flipped", "label_changed")  # preferred first: flipped on purpose, else relabelled


def truth_column(runs) -> str:
    """The ground truth the runs carry: ``noise_flipped`` when any run's labels were flipped on purpose
    (it is then what the run trained on), else ``label_changed`` (CinC 2017's relabelled records)."""
    dirs = [d for group in _groups(runs).values() for d in group]
    return next((c for c in TRUTH_COLUMNS if any(has_label_truth(d, c) for d in dirs)), "label_changed")


def fill_section(section, runs, *, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Fills a report section (anything with ``text(str)`` and ``table(df, id)``, like erts.report.build.Section)
    with the overall table, one verdict per group and the per-epoch table; returns the tidy table.
    The ground truth is the runs' own (``truth_column``)."""
    truth = truth_column(runs)
    groups = list(group_counts(runs, truth=truth))  # the selection logs are read once for both tables
    t = counts_table(groups, n_boot=n_boot, seed=seed)
    if t.empty:
        section.text(f"No run here has {truth} ground truth and a selection log with select epochs "
                     "(runs of an ERTS method, dbpd or erts-dbpd, on CinC 2017 or with label_noise=), so there "
                     "is nothing to measure.")
        return t
    section.text(f"{TRUTH_SENTENCES[truth]} {EXPLANATION} Bootstrap: {n_boot} resamples.")
    if truth == "label_changed" and (note := labels_note(runs)):
        section.text(note)
    section.table(display_table(t), "label_noise")
    for m in dict.fromkeys(t["method"]):
        if v := verdict(t, m):
            section.text(v)
    labels = label_table(groups)
    if not labels.empty:
        section.text("Per given label (over the epochs and seeds): which labels' records are dropped, and whether "
                     "the relabelled ones among them more than the unchanged (the ratio within labels pools these):")
        section.table(pd.DataFrame({
            "method": labels["method"],
            "which": labels["which"].map({"focus_filter": "reliability filter", "rule": "rule (confidence)"}),
            "given label": labels["label"],
            "relabelled dropped": [f"{_pct(r)} of {n}" for r, n in zip(labels["relabelled_drop_rate"],
                                                                        labels["n_relabelled_candidates"])],
            "unchanged dropped": [f"{_pct(r)} of {n}" for r, n in zip(labels["unchanged_drop_rate"],
                                                                       labels["n_unchanged_candidates"])],
            "ratio": [_num(v) for v in labels["ratio"]]}), "label_noise_by_label")
    section.text("Per epoch (pooled over seeds):")
    section.table(display_table(t[t["scope"] != "overall"], None), "label_noise_epochs")
    return t
