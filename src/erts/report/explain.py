"""One record, drawn as an ECG strip with the model's Grad-CAM map shaded behind it.

Used by ``erts explain`` and by the report's example records. For 2-D backbones
the map keeps its lead-row axis (``maps_2d``), so each lead gets its own shading;
1-D backbones give one map over time, shared by all leads.
"""
from __future__ import annotations

from erts.errors import DataError

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from erts.report.plots import ecg_strip_figure, to_png


def normalise(a: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] over the whole map (a constant map becomes zeros), as the focus score does."""
    lo, hi = float(np.min(a)), float(np.max(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def cam_for_plot(maps: torch.Tensor, maps_2d: torch.Tensor | None, length: int, leads: int,
                 lead_rows: int) -> np.ndarray:
    """One sample's Grad-CAM at signal resolution: (leads, T) from maps_2d, else (T,).

    maps: (T',); maps_2d: (H', T') over the lead image, whose first ``leads`` of
    ``lead_rows`` rows are the leads (zero rows below), so the rows are stretched
    back to lead_rows and the lead rows kept.
    """
    if maps_2d is not None and maps_2d.shape[0] > 1:
        full = F.interpolate(maps_2d[None, None].float(), size=(lead_rows, length), mode="bilinear",
                             align_corners=False)[0, 0, :leads]
        return normalise(full.cpu().numpy())
    m = maps_2d.mean(0) if maps_2d is not None else maps
    m = F.interpolate(m[None, None].float(), size=length, mode="linear", align_corners=False)[0, 0]
    return normalise(m.cpu().numpy())


def record_cam(model: torch.nn.Module, x: np.ndarray, target, layer: str = "last"
               ) -> tuple[np.ndarray, np.ndarray]:
    """(cam at signal resolution, class probabilities) of one record (leads, T) for ``target``.

    target: class index (single-label) or (K,) multi-hot vector (multi-label: the
    sum of the positive classes' logits).
    """
    from erts.explain.gradcam import gradcam

    xt = torch.tensor(np.asarray(x, dtype=np.float32))[None]  # a copy: cached signals are read-only
    t = torch.as_tensor(np.asarray(target))
    t = t[None] if t.ndim == 0 else t[None].float()
    res = gradcam(model, xt, t.long() if t.ndim == 1 else t, layer=layer)
    multilabel = t.ndim == 2
    probs = torch.sigmoid(res.logits) if multilabel else torch.softmax(res.logits, 1)
    maps_2d = res.maps_2d[0] if res.maps_2d is not None else None
    cam = cam_for_plot(res.maps[0], maps_2d, x.shape[-1], x.shape[0], getattr(model, "lead_rows", x.shape[0]))
    return cam, probs[0].detach().cpu().numpy()


def amplitude_unit(cfg) -> str:
    return "std. units" if cfg.data.standardize != "none" else "mV"


def explain_record(run_dir: str | Path, record_id: str, *, out: str | Path | None = None, layer: str | None = None,
                   max_leads: int | None = None, which: str = "best", target: str = "pred") -> Path:
    """Draws record ``record_id`` of a run's dataset with the Grad-CAM map of the run's model.

    target: "pred" (map of the predicted class) or "true" (of the true label, what
    the focus filter scores). Returns the PNG path (default <run_dir>/explain/<id>.png).
    """
    from erts.train.loop import load_run

    run_dir = Path(run_dir)
    cfg, model, rs = load_run(run_dir, which=which)
    hits = np.flatnonzero(rs.record_ids.astype(str) == str(record_id))
    if len(hits) == 0:
        raise DataError(f"record {record_id!r} is not in dataset {rs.name} of run {run_dir} "
                         f"(ids look like {', '.join(map(str, rs.record_ids[:3]))})")
    i = int(hits[0])
    x = np.asarray(rs.signals[i], dtype=np.float32)
    names = np.array(rs.class_names)
    layer = layer or cfg.selection.gradcam_layer
    _, probs = record_cam(model, x, _first_target(rs, i), layer)
    if rs.multilabel:
        true = names[rs.labels[i] > 0.5]
        pred_mask = probs >= 0.5
        tgt = rs.labels[i] if target == "true" else pred_mask.astype(np.float32)
        pred_txt = ", ".join(f"{n} ({p:.2f})" for n, p in zip(names[pred_mask], probs[pred_mask])) or "none"
        label_txt = f"true: {', '.join(true) or 'none'} | predicted: {pred_txt}"
        map_of = "true labels" if target == "true" else "predicted labels"
    else:
        pred = int(probs.argmax())
        tgt = int(rs.labels[i]) if target == "true" else pred
        label_txt = (f"true: {names[rs.labels[i]]} | predicted: {names[pred]} (p={probs[pred]:.2f}; "
                     f"p(true)={probs[rs.labels[i]]:.2f})")
        map_of = f"class {names[tgt]}"
    cam, _ = record_cam(model, x, tgt, layer)
    leads = x.shape[0] if max_leads is None else min(max_leads, x.shape[0])
    cam = cam[:leads] if cam.ndim == 2 else cam
    title = (f"record {record_id} ({rs.split[i]} split) - {label_txt}\n"
             f"Grad-CAM of {map_of} at layer '{layer}', {which} checkpoint of {run_dir.name}"
             + (f"\n{t}" if (t := training_line(run_dir, record_id)) else ""))
    fig = ecg_strip_figure(x[:leads], rs.fs, list(rs.lead_names)[:leads], cam, title, amplitude_unit(cfg))
    out = Path(out) if out else run_dir / "explain" / f"{record_id}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(to_png(fig))
    return out


def training_line(run_dir: Path, record_id: str) -> str:
    """Title lines: the record's ground truth and keep/filter history ('' if not a training record)."""
    from erts.report.selection import history_parts, record_history, truth_text

    try:
        row, h = record_history(run_dir, record_id)
    except (KeyError, FileNotFoundError):
        return ""
    counts, focus = history_parts(h)
    return "\n".join(x for x in (f"training record; {counts}", "; ".join(y for y in (truth_text(row), focus) if y)) if x)


def _first_target(rs, i: int):
    """Any valid target for the first pass (only the probabilities are used from it)."""
    return rs.labels[i].astype(np.float32) if rs.multilabel else int(rs.labels[i])
