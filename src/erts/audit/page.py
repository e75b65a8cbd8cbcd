"""The audit's HTML page: what was measured, how well each signal finds the known wrong records,
and the top suspects drawn as ECG strips with the Grad-CAM map of their given label.

Built from the report's parts (``Report``/``Section``, the ECG strip of ``erts explain``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from erts.audit import signals as sig
from erts.audit.crossfit import FoldScores
from erts.config import Config
from erts.data.records import RecordSet
from erts.train import runio

SUSPECT_COLUMNS = ["rank", "record_id", "given_label", "predicted_label", "p_oof", "p_noise", "cam_mass",
                   "record_s", "combined"]


def write_page(out_dir: Path, cfg: Config, rs: RecordSet, table: pd.DataFrame, metrics: pd.DataFrame | None,
               folds: list[FoldScores], summary: dict, top: int) -> Path:
    """Writes audit.html (and audit.md with its figures) into ``out_dir``; returns the HTML path."""
    from erts.audit.metrics import metrics_view
    from erts.report.build import Report, Section, render_html, render_markdown

    k, epochs = summary["folds"], summary["epochs"]
    cpu = sum(summary["fold_cpu_seconds"])
    intro = (f"{len(table)} training records of {rs.name} ({cfg.model.model}), scored by {k}-fold cross-training "
             f"({epochs} epochs per fold, {cpu:.0f} CPU s in all) and ranked by {ranking_text(summary)}. "
             "Rank 1 is the record to re-read first.")
    sections = []
    if metrics is not None:
        s = Section("How well each signal finds the known wrong records")
        s.text(f"Ground truth: {int(metrics['n_wrong'].iloc[0])} records {summary['truth']} "
               f"(base rate {metrics['base_rate'].iloc[0]:.3f}, the top-5 % precision of a random order). "
               "Intervals: percentile bootstrap over records. 'AUROC length-matched' compares only records of "
               "about the same length: a signal that is only a proxy for record length drops to 0.5 there; "
               "'AUROC label-matched' only records with the same given label: a signal that only finds the "
               "label where the errors sit drops to 0.5 there.")
        s.table(metrics_view(metrics), "metrics")
        sections.append(s)
    s = Section("Top suspects")
    chosen = summary["rank_by"]["signal"]
    s.text(f"The most suspicious records by {'the combined score' if chosen == 'combined' else chosen}. "
           "p_oof: the held-out model's probability of the given label; p_noise: its probability of the noise "
           "class; cam_mass: map concentration; record_s: seconds recorded. The full ranked table is audit.csv.")
    columns = dict.fromkeys(SUSPECT_COLUMNS[:4] + [summary["rank_by"]["column"]] + SUSPECT_COLUMNS[4:] + ["wrong"])
    shown = table.head(max(top, 20))[[c for c in columns if c in table.columns and table[c].notna().any()]]
    s.table(shown.round(3), "suspects")
    sections.append(s)
    if top:
        sections.append(strips_section(cfg, rs, table.head(top), folds, out_dir))
    rep = Report(f"erts audit: {rs.name}", intro, sections)
    html_path = out_dir / "audit.html"
    runio.write_text(html_path, render_html(rep))
    runio.write_text(out_dir / "audit.md", render_markdown(rep, out_dir / "audit_files"))
    return html_path


def ranking_text(summary: dict) -> str:
    """What the ranking is: the combined score's parts, or the one signal chosen with --rank-by."""
    chosen = summary["rank_by"]
    if chosen["column"] == "combined":
        return (f"the combined score: the mean rank of {', '.join(sig.COMBINED)} (equal weights, nothing fitted; "
                "docs/audit.md says how it was chosen and what each signal finds)")
    return f"one signal, {chosen['signal']} ({chosen['column']}, {chosen['suspicious']} = suspicious; --rank-by)"


def strips_section(cfg: Config, rs: RecordSet, rows: pd.DataFrame, folds: list[FoldScores], out_dir: Path):
    """Each top suspect drawn whole, with the Grad-CAM map of its given label from the model that
    held it out (the one whose prediction the table shows)."""
    from erts.report.build import Section
    from erts.report.explain import amplitude_unit, record_cam
    from erts.report.plots import ecg_strip_figure
    from erts.report.selection import truth_text
    from erts.train.builders import build_model

    s = Section("Top suspects drawn")
    s.text("Each record's whole real signal (its zero padding left out) with the Grad-CAM map of its given "
           "label (last stage) from the fold model that held it out, shaded behind; at most the first 3 leads.")
    models = {}
    pos = {int(i): j for j, i in enumerate(rs.indices("train"))}
    names = list(rs.class_names)
    for r in rows.itertuples(index=False):
        i = int(r.index)
        f = next(n for n, fold in enumerate(folds) if fold.held_out[pos[i]])
        if f not in models:
            model = build_model(cfg, rs)
            model.load_state_dict(runio.load_checkpoint(out_dir / "folds" / f"fold_{f}" / "best.pt")["model"])
            models[f] = model.eval()
        mean, std = folds[f].scale
        real = max(int(rs.signal_lengths[i]), 2)  # the recording, not the zero padding after it
        x = (np.asarray(rs.signals[i][:, :real], dtype=np.float32) - mean) / std
        cam, _ = record_cam(models[f], x, names.index(r.given_label))
        leads = min(3, x.shape[0])
        truth = truth_text(rs.meta.iloc[i]) if len(rs.meta) else ""
        title = (f"#{r.rank} {r.record_id}: given {r.given_label}, held-out model predicts "
                 f"{r.predicted_label} ({r.p_predicted:.2f}), p(given) {r.p_oof:.2f}\n"
                 f"AUM {r.aum:.2f}, mass {r.cam_mass:.2f}, {r.record_s:.1f} s recorded" + (f"; {truth}" if truth else ""))
        fig = ecg_strip_figure(x[:leads], rs.fs, list(rs.lead_names)[:leads],
                               cam[:leads] if cam.ndim == 2 else cam, title, amplitude_unit(cfg))
        s.figure(f"suspect_{r.rank:03d}_{r.record_id}", fig,
                 f"rank {r.rank}: record {r.record_id} (given {r.given_label})")
    return s
