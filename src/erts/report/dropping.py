"""What data dropout did: kept fraction per epoch, who was dropped, the focus filter's scores.

Why apart: the sweep and the run report draw the same three sections from the
runs' log.csv and selection logs, and add the label-noise section
(erts.report.reliability) where the runs know which labels are wrong.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from erts.report import plots, reliability
from erts.report.folders import read_log
from erts.report.format import Section, fmt, slug
from erts.report.selection import (drop_rates, filter_by_truth, filter_candidates, load_selection_log,
                                   load_train_records, truth_contrast)
from erts.report.tables import BASELINE

FOCUS_SAMPLE = 20000  # focus-score rows per run drawn into the distribution plots


def kept_curves(runs: list[Path]) -> pd.DataFrame | None:
    """Mean/min/max kept fraction per epoch over a configuration's seeds."""
    logs = [lg[["epoch", "kept_frac"]] for lg in map(read_log, runs) if lg is not None]
    if not logs:
        return None
    g = pd.concat(logs).groupby("epoch")["kept_frac"]
    return pd.DataFrame({"mean": g.mean(), "min": g.min(), "max": g.max()}).reset_index()


def run_selection(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if not (run_dir / "selection").is_dir() or not (run_dir / "train_records.csv").exists():
        return None
    sel = load_selection_log(run_dir)
    return (sel, load_train_records(run_dir)) if len(sel) else None


def selection_sections(groups: list[tuple[str, str, list[Path]]], scope: str,
                       kept: Section, drops: Section, focus: Section) -> None:
    """Fills the kept-fraction, drop-rate and focus sections for configurations of one dataset.

    groups: (label, method, run dirs of the configuration's seeds).
    """
    curves = [(label, method, c) for label, method, runs in groups if (c := kept_curves(runs)) is not None]
    if curves:
        kept.figure(f"kept_{scope}", plots.kept_fraction_figure(curves, f"kept fraction per epoch ({scope})"),
                    "Share of the training samples that got a gradient update in each epoch (mean over seeds; "
                    "band: min to max). Warm-up and revision epochs train on everything (1.0).")
    else:
        kept.text(f"{scope}: no log.csv found, so no kept fractions.")
    cand_frames, truth_rows, n_drop_figs, unlogged = [], [], 0, []
    for label, method, runs in groups:
        if method == BASELINE:  # drops nothing by definition
            continue
        logs = [x for x in map(run_selection, runs) if x is not None]
        if not logs:
            if any(reliability.run_method(r) != BASELINE for r in runs):  # a budgeted full run selects nothing
                unlogged.append(label)
            continue
        rates = pd.concat([drop_rates(sel, rec) for sel, rec in logs])
        rates = rates.groupby(["epoch", "label"], as_index=False)[["pdd_drop", "focus_drop"]].mean()
        filtered = any(not filter_candidates(sel, rec).empty for sel, rec in logs)
        drops.figure(f"drops_{scope}_{label}",
                     plots.drop_rates_figure(rates, f"{label} ({scope}): who is dropped", filtered),
                     f"{label}: per class, the share of its training samples the selection rule removed each epoch"
                     + (" (left) and the share of the rule-kept ones the reliability filter then removed (right)"
                        if filtered else " (no reliability filter in this configuration)") + "; mean over seeds.")
        n_drop_figs += 1
        for k, (sel, rec) in enumerate(logs):
            cand = filter_candidates(sel, rec)
            cand = cand[cand["focus"].notna()]  # this section is about focus scores (a loss filter has none)
            if cand.empty:
                continue
            cand = cand.assign(config=label, run=runs[k].name)
            t = filter_by_truth(cand)
            if not t.empty:
                truth_rows.append(t.assign(config=label, run=runs[k].name))
            cand_frames.append(cand.sample(min(len(cand), FOCUS_SAMPLE), random_state=0))
    if unlogged:  # e.g. a published benchmark's runs: selection_counts.npz only (the label-noise section reads it)
        drops.text(f"{scope}: {', '.join(unlogged)}: no selection log in the run folders (or no train_records.csv), "
                   "so no per-class drop rates; a run published with selection_counts.npz alone still has its "
                   "label-noise drop ratios below.")
    elif not n_drop_figs:
        drops.text(f"{scope}: no run with data dropout and a selection log (only the full baseline, "
                   "which drops nothing).")
    if cand_frames:
        cand = pd.concat(cand_frames, ignore_index=True)
        configs = ", ".join(dict.fromkeys(cand["config"]))
        focus.figure(f"focus_{scope}", plots.focus_figure(cand, f"focus scores of the filter's candidates ({scope})"),
                     f"Focus score of every candidate the focus filter ranked (all epochs; {configs}). "
                     "Left: per true class. Right: records with known label noise against clean records.")
        if truth_rows:
            t = pd.concat(truth_rows)
            tot = t.assign(dropped=t["filter_drop"] * t["candidates"], fsum=t["mean_focus"] * t["candidates"],
                           zeros=t["zero_focus"] * t["candidates"])
            agg = tot.groupby(["config", "truth"], as_index=False, sort=False)[
                ["candidates", "dropped", "fsum", "zeros"]].sum()
            focus.table(pd.DataFrame({
                "configuration": agg["config"], "ground truth": agg["truth"],
                "candidates (sample-epochs)": agg["candidates"].astype(int),
                "mean focus": [fmt(v, 3) for v in agg["fsum"] / agg["candidates"]],
                "focus 0 (no positive evidence)": [f"{v:.1%}" for v in agg["zeros"] / agg["candidates"]],
                "removed by focus filter": [f"{v:.1%}" for v in agg["dropped"] / agg["candidates"]],
            }), f"focus_truth_{slug(scope)}")
            focus.text("What the table shows: each row counts the filter's candidates (records the PDD rule kept, "
                       "once per epoch) of one ground-truth group, their mean focus score, the share whose focus "
                       "was 0 (the Grad-CAM map of the true class was flat: no positive evidence for the label "
                       "anywhere in the record), and the share the focus filter removed. The filter does what it "
                       "claims when it removes a larger share of the corrupted records than of the clean ones.")
            for config, g in agg.groupby("config", sort=False):
                focus.text(focus_verdict(config, g))
    else:
        focus.text(f"{scope}: no focus scores (no ERTS method in these runs, its filter never started, or it "
                   "filters by the loss, reliability=loss, which needs no Grad-CAM).")


def focus_verdict(config: str, agg: pd.DataFrame) -> str:
    """One configuration's focus-filter result in words, with the numbers (agg: truth, candidates, dropped)."""
    c = truth_contrast(agg)
    if c is None:
        missing = "clean" if (agg["truth"] != "clean").all() else "corrupted"
        return f"{config}: no {missing} candidates, so no comparison of corrupted with clean records."
    groups = ", ".join(f"{r.truth} {r.dropped / r.candidates:.1%} of {int(r.candidates)}"
                       for r in agg.itertuples() if r.truth != "clean")
    head = (f"{config}: the focus filter removed {c['removed_corrupted']:.1%} of the corrupted candidates "
            f"({groups}) and {c['removed_clean']:.1%} of the {c['n_clean']} clean ones")
    ratio = c["ratio"]
    if not np.isfinite(ratio):
        return head + ("; it removed corrupted records and no clean one." if c["removed_corrupted"] > 0
                       else "; it removed nothing.")
    if ratio > 1:
        return head + (f": corrupted records were removed {ratio:.2f} times as often as clean ones, so the filter "
                       "does remove corrupted records more than clean ones here.")
    return head + (f": corrupted records were removed {ratio:.2f} times as often as clean ones, so the filter does "
                   "not remove corrupted records more than clean ones here.")


def with_label_noise(sections: list[Section], groups: list[tuple[str, list[Path]]], n_boot: int) -> list[Section]:
    """The sections plus, after "Focus scores", the label-noise section (erts.report.reliability) when a
    run has label ground truth (CinC 2017's label_changed, or noise_flipped from label_noise=); groups:
    (configuration label, its seeds' run folders)."""
    if not any(reliability.has_label_truth(r, c) for _, runs in groups for r in runs for c in reliability.TRUTH_COLUMNS):
        return sections
    s = Section(reliability.HEADING)
    reliability.fill_section(s, {label: runs for label, runs in groups}, n_boot=n_boot)
    at = next((i + 1 for i, x in enumerate(sections) if x.heading == "Focus scores"), len(sections))
    return sections[:at] + [s] + sections[at:]
