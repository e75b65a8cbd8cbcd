"""Example records: kept and filtered training records drawn as ECG strips with their Grad-CAM maps.

Why apart: the only section that loads a trained model and its dataset (lazily,
so a report without examples never imports torch's model code).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from erts.data.records import names_text
from erts.report import plots
from erts.report.dropping import run_selection
from erts.report.format import Section, fmt
from erts.report.tables import BASELINE


def pick_example_run(sweep_dir: Path, results: pd.DataFrame) -> Path | None:
    """An ERTS run if there is one (it has kept and filtered samples), else a PDD run, else any; lowest seed."""
    order = results.assign(_rank=[0 if str(m).startswith("erts") else (2 if m == BASELINE else 1)
                                  for m in results["method"]]).sort_values(["_rank", "seed"])
    for run in order["run"]:
        if (sweep_dir / "runs" / run / "checkpoints" / "best.pt").exists():
            return sweep_dir / "runs" / run
    return None


def pick_examples(sel: pd.DataFrame, k: int) -> tuple[int, pd.DataFrame, pd.DataFrame, str]:
    """(epoch, kept rows, filtered rows, what 'filtered' means) from the last epoch that filtered anything."""
    has_focus = sel["focus"].notna() & (sel["pdd_keep"] & ~sel["erts_keep"])
    if has_focus.any():
        epoch = int(sel.loc[has_focus, "epoch"].max())
        e = sel[sel["epoch"] == epoch]
        kept = e[e["erts_keep"] & e["focus"].notna()].sort_values("focus", ascending=False).head(k)
        filt = e[e["pdd_keep"] & ~e["erts_keep"]].sort_values("focus").head(k)
        return epoch, kept, filt, "removed by the focus filter (lowest focus scores)"
    dropped = ~sel["pdd_keep"]
    epoch = int(sel.loc[dropped, "epoch"].max()) if dropped.any() else int(sel["epoch"].max())
    e = sel[sel["epoch"] == epoch]
    kept = e[e["updated"]].sort_values("p").head(k)  # the hardest kept samples
    filt = e[~e["pdd_keep"]].sort_values("p", ascending=False).head(k)  # the most confident dropped ones
    return epoch, kept, filt, "dropped by the PDD rule (most confident)"


def add_examples(s: Section, run_dir: Path | None, k: int, max_leads: int) -> None:
    if k <= 0:
        s.text("Example records were not requested (--examples 0).")
        return
    if run_dir is None or not (run_dir / "checkpoints" / "best.pt").exists():
        s.text("No run with a checkpoints/best.pt, so no example records (they need the trained model).")
        return
    logs = run_selection(run_dir)
    if logs is None:
        s.text(f"{run_dir.name}: no selection log, so no kept or filtered samples to show.")
        return
    try:
        from erts.report.explain import amplitude_unit, record_cam
        from erts.train.loop import load_run

        cfg, model, rs = load_run(run_dir, which="best")
    except (ImportError, FileNotFoundError, ValueError) as e:
        s.text(f"Example records unavailable: could not load the model and dataset of {run_dir.name} ({e}).")
        return
    sel, records = logs
    epoch, kept, filt, filt_what = pick_examples(sel, k)
    layer = cfg.selection.gradcam_layer
    s.text(f"Training records of run {run_dir.name} at epoch {epoch}, drawn as ECG strips (first {max_leads} "
           f"leads) with the Grad-CAM map of the true class (layer '{layer}', best checkpoint) shaded behind. "
           "The maps come from the final model, not the one that made the epoch's decision.")
    names = np.array(rs.class_names)
    for kind, rows, what in [("kept", kept, "kept (got a gradient update)"), ("filtered", filt, filt_what)]:
        if rows.empty:
            s.text(f"No {kind} samples in epoch {epoch}.")
            continue
        for _, r in rows.iterrows():
            i = int(r["index"])
            x = np.asarray(rs.signals[i], dtype=np.float32)
            target = rs.labels[i].astype(np.float32) if rs.multilabel else int(rs.labels[i])
            cam, _ = record_cam(model, x, target, layer)
            leads = min(max_leads, x.shape[0])
            label = names_text(names[rs.labels[i] > 0.5]) if rs.multilabel else names[rs.labels[i]]
            focus_txt = fmt(float(r["focus"]), 2) + (" (no positive evidence)" if float(r["focus"]) == 0 else "")
            title = (f"{kind}: record {rs.record_ids[i]}, label {label} - p(true) {fmt(float(r['p']), 2)}, "
                     f"focus {focus_txt} (epoch {epoch})")
            fig = plots.ecg_strip_figure(x[:leads], rs.fs, list(rs.lead_names)[:leads],
                                         cam[:leads] if cam.ndim == 2 else cam, title, amplitude_unit(cfg))
            s.figure(f"example_{kind}_{rs.record_ids[i]}", fig, f"{what}: record {rs.record_ids[i]} ({label}).")
