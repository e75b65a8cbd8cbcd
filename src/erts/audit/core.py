"""``erts.audit``: one call, one ranked answer — which training records to re-read first.

For a run folder (its config.yaml) or a config, every training record is scored by k-fold
cross-training (erts.audit.crossfit), the signals are gathered into one table
(erts.audit.signals), ranked by the fixed combined score (or one chosen signal), written as a CSV and an HTML page
of the top suspects, and, where ground truth exists, evaluated (erts.audit.metrics).
"""
from __future__ import annotations

import errno
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from erts.audit import signals as sig
from erts.audit.crossfit import FoldScores, fold_assignment, train_fold
from erts.audit.metrics import TOP_FRAC, bootstrap_ranking, label_matched_auroc, length_matched_auroc, metrics_markdown
from erts.config import Config, ConfigError, apply_dict, load_config, validate
from erts.data.records import RecordSet
from erts.data.truth import ground_truth, truth_description
from erts.errors import DataError, warn
from erts.train import runio

# datasets with a class for recordings too noisy to classify: the audit's noise-class signal
NOISE_CLASSES = {"cinc2017": "~"}


@dataclass
class AuditResult:
    """The ranked table (one row per training record, rank 1 first), the evaluation table (None
    without ground truth) and the files written."""

    table: pd.DataFrame
    metrics: pd.DataFrame | None
    out_dir: Path
    csv: Path
    html: Path


def resolve_config(target: str | Path | None, overrides: dict[str, Any] | list[str] | None) -> tuple[Config, Path | None]:
    """The config to audit and the run folder it came from (None for a config file or settings)."""
    from erts.train.loop import load_config_from_run

    if target is None:
        return load_config(overrides=overrides or {}), None
    path = Path(target)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "no such run folder or config file", str(path))
    if path.is_dir():
        if not (path / "config.yaml").exists():
            raise FileNotFoundError(errno.ENOENT, "not a run folder (it has no config.yaml)", str(path))
        cfg = load_config_from_run(path)
        if overrides:
            from erts.config import parse_overrides

            apply_dict(cfg, parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides))
            validate(cfg)
        return cfg, path
    return load_config(path, overrides or {}), None


def read_truth_csv(path: str | Path, record_ids: np.ndarray) -> np.ndarray:
    """A user's list of records known to be wrong -> (N,) bool over ``record_ids``. The CSV has a
    ``record_id`` column and, optionally, ``wrong`` (1/0, true/false); without it every listed
    record is wrong and every other one right."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such ground-truth CSV file", str(path))
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    if "record_id" not in df.columns:
        raise DataError(f"{path}: needs a 'record_id' column (found: {', '.join(df.columns) or 'none'})")
    ids = df["record_id"].str.strip()
    if "wrong" in df.columns:
        flag = df["wrong"].str.strip().str.lower()
        bad = sorted(set(flag) - {"1", "0", "true", "false"})
        if bad:
            raise DataError(f"{path}: column 'wrong' must be 1/0 or true/false, found {bad[:3]}")
        ids = ids[flag.isin(["1", "true"])]
    known = set(record_ids.astype(str))
    unknown = sorted(set(ids) - known)
    if unknown and len(unknown) == len(set(ids)):
        raise DataError(f"{path}: none of its records are training records of this dataset "
                        f"(e.g. {unknown[0]!r}; ids look like {', '.join(map(str, record_ids[:3]))})")
    if unknown:
        warn(f"{path}: {len(unknown)} listed records are not training records here (e.g. {unknown[0]!r}); ignored")
    return np.isin(record_ids.astype(str), list(set(ids)))


def dataset_truth(rs: RecordSet, ids: np.ndarray) -> tuple[np.ndarray, str] | None:
    """Ground truth the dataset carries (erts.data.truth): labels flipped by ``label_noise=``, CinC
    2017's relabelled records (labels that changed between releases), the synthetic set's corrupted
    records; None for other datasets."""
    meta = rs.meta.iloc[ids]
    gt = ground_truth(meta)
    if gt is None:
        return None
    return (gt != "clean").to_numpy(), truth_description(meta)


def resolve_noise_class(rs: RecordSet, name: str) -> int | None:
    """The noise class's index: ``auto`` = the dataset's own (NOISE_CLASSES), ``none`` = no such
    class, else a class name of the dataset."""
    if name == "none":
        return None
    if name == "auto":
        own = NOISE_CLASSES.get(rs.name)
        return rs.class_names.index(own) if own in rs.class_names else None
    if name not in rs.class_names:
        raise ConfigError(f"--noise-class {name}: {rs.name} has no such class (classes: {', '.join(rs.class_names)})")
    return rs.class_names.index(name)


def build_table(rs: RecordSet, ids: np.ndarray, folds: list[FoldScores], warn_fn: Callable[[str], None],
                noise: int | None = None, rank_by: sig.Signal | None = None) -> pd.DataFrame:
    """One row per audited record: given and predicted label, every signal, the combined score
    and its rank ``combined_rank``, and ``rank``, the order of ``rank_by`` (default: the combined
    score; 1 = most suspicious), sorted by ``rank``."""
    names = np.array(rs.class_names)
    labels = rs.labels[ids]
    whole, centre = sig.oof_probs(folds)
    table = pd.DataFrame({"record_id": rs.record_ids[ids].astype(str), "index": ids, "given_label": names[labels],
                          "predicted_label": names[whole.argmax(1)],
                          "p_predicted": whole.max(1)})
    cl = sig.cleanlab_signals(labels, whole, warn_fn)
    centre_p = centre[np.arange(len(ids)), labels]
    for k, v in {**sig.dynamics_signals(folds), **cl, "p_oof_centre": centre_p,
                 "p_noise": sig.noise_probability(whole, labels, noise), **sig.quality_features(rs, ids)}.items():
        table[k] = v
    table["combined"] = sig.combined_score(table)
    table["combined_v1"] = sig.combined_score(table, sig.COMBINED_V1)
    table["combined_rank"] = suspicion_rank(table["combined"].to_numpy(dtype=float))
    rank_by = rank_by or sig.ranking_signal("combined")
    score = rank_by.score(table)
    if not np.isfinite(score).any():
        raise ConfigError(f"--rank-by {rank_by.column}: no record of this audit has a value of it")
    table["rank"] = suspicion_rank(score)
    return table.sort_values("rank", kind="stable").reset_index(drop=True)


def suspicion_rank(score: np.ndarray) -> np.ndarray:
    """1 = most suspicious; ties in record order; no value (NaN) ranks last."""
    return pd.Series(-score).rank(method="first", na_option="bottom").astype(int).to_numpy()


def taken_by_class(table: pd.DataFrame, k: int) -> pd.DataFrame:
    """What the top ``k`` of the ranking (``rank``) would take from each given label: training records, taken, share.

    Why: pruning by a ranking can empty a rare class of its genuine hard records (CinC 2017, pair20: the
    combined top K took 251 of 516 A records, none of them wrong), so look before training without them.
    """
    top = table.nsmallest(k, "rank")["given_label"].value_counts()
    out = table["given_label"].value_counts().rename("records").to_frame()
    out["taken"] = top.reindex(out.index, fill_value=0)
    out["share"] = out["taken"] / out["records"]
    return out.rename_axis("given_label").reset_index()


def evaluate(table: pd.DataFrame, truth_col: str = "wrong", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Each signal (and the combined score) against the ground truth: AUROC, AP and top-5 %
    precision with bootstrap 95 % intervals (the same resamples for every signal), the
    length-matched and the label-matched AUROC, and the base rate the precisions compare with.
    Records are taken in dataset order, so the resamples do not depend on the ranking."""
    table = table.sort_values("index", kind="stable")
    truth = table[truth_col].to_numpy(dtype=bool)
    length = table["record_s"].to_numpy(dtype=float)
    given = table["given_label"].to_numpy(dtype=str)
    rows = []
    for s in [*sig.SIGNALS, *sig.combined_signals()]:
        score = s.score(table)
        if not np.isfinite(score).any():
            continue
        m = bootstrap_ranking(truth, score, n_boot=n_boot, seed=seed)
        rows.append({"signal": s.name, "family": s.family, "suspicious": s.suspicious, **m,
                     "auroc_length_matched": length_matched_auroc(truth, score, length),
                     "auroc_label_matched": label_matched_auroc(truth, score, given)})
    out = pd.DataFrame(rows)
    out["base_rate"] = truth.mean()
    out["n_wrong"] = int(truth.sum())
    out["n"] = len(truth)
    return out


def audit(target: str | Path | None = None, overrides: dict[str, Any] | list[str] | None = None, *,
          folds: int = 3, out: str | Path | None = None, truth: str | Path | None = None,
          top: int = 12, n_boot: int = 1000, noise_class: str = "auto", rank_by: str = "combined",
          log: Callable[[str], None] | None = None) -> AuditResult:
    """Scores every training record of a run folder or config and ranks them, most suspicious first.

    ``target``: a run folder (its config.yaml), a config YAML, or None (``overrides`` alone);
    ``folds``: k of the cross-training, each fold trained for the config's ``epochs``;
    ``truth``: a CSV of records known to be wrong (else the dataset's own ground truth, if any);
    ``noise_class``: the class meaning "too noisy to classify" (``auto``: the dataset's, CinC's ~);
    ``rank_by``: the ranking, ``combined`` or one signal column (``p_oof`` for label flips between
    classes; ``column:high|low`` picks the suspicious end; erts.audit.signals.ranking_signal).
    Writes ``audit.csv``, ``audit.html`` (``top`` suspects drawn), ``audit.json`` and, with ground
    truth, ``audit_metrics.csv``/``.md`` into ``out`` (default: <run>/audit, or
    <out_dir>/audit-<dataset>-<model>-s<seed>)."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-training needs at least 2 folds")
    if top < 0 or n_boot < 0:
        raise ConfigError("--top and --n-boot must be >= 0")
    ranking = sig.ranking_signal(rank_by)
    cfg, run_dir = resolve_config(target, overrides)
    from erts.data import load_dataset

    rs = load_dataset(cfg.data)
    if rs.multilabel:
        raise DataError(f"{rs.name}: erts audit ranks single-label records; this dataset is multi-label")
    noise = resolve_noise_class(rs, noise_class)
    if ranking.column == "p_noise" and noise is None:
        raise ConfigError(f"--rank-by {rank_by}: {rs.name} has no noise class (--noise-class names one)")
    ids = rs.indices("train")
    known = read_truth_csv(truth, rs.record_ids[ids]) if truth else None
    if len(ids) < 2 * folds:
        raise DataError(f"{rs.name}: {len(ids)} training records are too few for {folds} folds")
    out_dir = Path(out) if out else (run_dir / "audit" if run_dir else
                                     Path(cfg.train.out_dir) / f"audit-{cfg.data.dataset}-{cfg.model.model}-s{cfg.train.seed}")
    epochs = cfg.train.epochs
    assignment = fold_assignment(rs.labels[ids], folds, cfg.train.seed)
    started = time.perf_counter()
    results = [train_fold(cfg, rs, ids, assignment, f, out_dir / "folds", epochs, log) for f in range(folds)]
    table = build_table(rs, ids, results, warn, noise, ranking)
    truth_what = attach_truth(table, rs, ids, known, truth)
    metrics = evaluate(table, n_boot=n_boot, seed=cfg.train.seed) if truth_what else None
    csv_path = out_dir / "audit.csv"
    runio.write_text(csv_path, table.to_csv(index=False))  # full precision: ranks recomputed from it agree
    summary = {"config": cfg.to_dict(), "run": str(run_dir) if run_dir else None, "folds": folds, "epochs": epochs,
               "records": len(ids), "truth": truth_what, "combined": list(sig.COMBINED),
               "rank_by": {"signal": ranking.name, "column": ranking.column, "suspicious": ranking.suspicious},
               "noise_class": None if noise is None else rs.class_names[noise], "top_frac": TOP_FRAC,
               "fold_seconds": [r.seconds for r in results], "fold_cpu_seconds": [r.cpu_seconds for r in results],
               "best_epochs": [r.best_epoch for r in results], "seconds": time.perf_counter() - started,
               "cleanlab_flagged": int(np.nansum(table["cleanlab_issue"])),
               "provenance": runio.provenance()}
    if metrics is not None:
        runio.write_text(out_dir / "audit_metrics.csv", metrics.to_csv(index=False, float_format="%.4f"))
        runio.write_text(out_dir / "audit_metrics.md", metrics_markdown(metrics, truth_what))
        summary["metrics"] = metrics.to_dict(orient="records")
    runio.write_json(out_dir / "audit.json", summary)
    from erts.audit.page import write_page

    html_path = write_page(out_dir, cfg, rs, table, metrics, results, summary, top)
    return AuditResult(table, metrics, out_dir, csv_path, html_path)


def attach_truth(table: pd.DataFrame, rs: RecordSet, ids: np.ndarray, known: np.ndarray | None,
                 truth: str | Path | None) -> str | None:
    """Adds the ground-truth column ``wrong`` (the user's list, else the dataset's own) to the
    ranked table; returns what it means, or None when there is none."""
    found = (known, f"listed in {truth}") if known is not None else dataset_truth(rs, ids)
    if found is None:
        return None
    table["wrong"] = pd.Series(found[0], index=ids).loc[table["index"]].to_numpy(dtype=bool)
    return found[1]
