"""Report figures. Each function returns a matplotlib Figure (no pyplot state, Agg rendering).

Why ``matplotlib.figure.Figure`` instead of pyplot: figures built this way are
never registered with a GUI backend or a global figure manager, so a report of
hundreds of figures leaks nothing and works on headless machines.
"""
from __future__ import annotations

import io
import itertools

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# one colour and marker per method, the same in every figure
METHOD_STYLES = {
    "full": ("#333333", "o"),
    "dbpd": ("#1f77b4", "s"),
    "smrd": ("#2ca02c", "^"),
    "srd": ("#9467bd", "v"),
    "erts-dbpd": ("#d62728", "D"),
    "erts-smrd": ("#ff7f0e", "P"),
    "erts-srd": ("#8c564b", "X"),
}
_EXTRA = itertools.cycle([("#17becf", "h"), ("#bcbd22", "*"), ("#e377c2", "<"), ("#7f7f7f", ">")])
ECG_MAJOR, ECG_MINOR = "#f2a6a6", "#fbdcdc"  # ECG paper red grid
CAM_CMAP = "Blues"  # blue shading reads apart from the red paper grid


def method_style(method: str) -> tuple[str, str]:
    """(colour, marker) of a method; unknown methods get the next spare style, kept from then on."""
    if method not in METHOD_STYLES:
        METHOD_STYLES[method] = next(_EXTRA)
    return METHOD_STYLES[method]


def to_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)  # constrained layout already fits the labels
    return buf.getvalue()


def _finish(ax, xlabel: str, ylabel: str, title: str, legend: bool) -> None:
    if xlabel == "epoch":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="best")


def pareto_frontier(cost: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (no other point is cheaper and at least as good), by cost."""
    order = np.argsort(cost, kind="stable")
    best, keep = -np.inf, []
    for i in order:
        if score[i] > best:
            keep.append(i)
            best = score[i]
    return np.array(keep, dtype=int)


def pareto_figure(summary: pd.DataFrame, title: str, time_label: str = "wall-clock time",
                  metric_label: str = "test macro-F1") -> Figure:
    """The compared metric (``metric_label``; test macro-F1 by default) against seconds per run
    (``time_label``: what they are) and against effective epochs, one point per configuration.

    summary columns: method, label, f1_mean, f1_err (CI half-width; or f1_lo, f1_hi: the CI), seconds_mean,
    seconds_std, ee_mean, ee_std. Error bars: CI of macro-F1 (vertical), std over
    seeds of the cost (horizontal). The dashed line joins the Pareto-optimal points.
    """
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (col, xlabel) in zip(axes, [("seconds", f"{time_label} per run (s)"),
                                        ("ee", "effective epochs (back-propagated samples / N)")]):
        seen = set()
        for _, r in summary.iterrows():
            color, marker = method_style(r["method"])
            label = r["label"] if r["label"] not in seen else None
            seen.add(r["label"])
            yerr = _nan0(r["f1_err"])
            if "f1_lo" in r and np.isfinite(r["f1_lo"]) and np.isfinite(r["f1_hi"]):  # clipped CIs are asymmetric
                yerr = [[r["f1_mean"] - r["f1_lo"]], [r["f1_hi"] - r["f1_mean"]]]
            ax.errorbar(r[f"{col}_mean"], r["f1_mean"], yerr=yerr, xerr=_nan0(r[f"{col}_std"]),
                        fmt=marker, color=color, ms=7, capsize=3, label=label)
        x, y = summary[f"{col}_mean"].to_numpy(float), summary["f1_mean"].to_numpy(float)
        ok = np.isfinite(x) & np.isfinite(y)
        front = np.flatnonzero(ok)[pareto_frontier(x[ok], y[ok])] if ok.any() else []
        if len(front) > 1:
            ax.plot(x[front], y[front], "--", color="#999999", lw=1, zorder=0, label="Pareto front")
        _finish(ax, xlabel, metric_label,
                f"{metric_label.removeprefix('test ')} vs {time_label if col == 'seconds' else 'effective epochs'}",
                legend=False)
    handles, labels = axes[0].get_legend_handles_labels()  # one legend below both panels: none covers a point
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=8)
    fig.suptitle(title)
    return fig


def _nan0(v: float) -> float:
    return 0.0 if v is None or not np.isfinite(v) else float(v)


def curves_figure(log: pd.DataFrame, title: str) -> Figure:
    """A single run: validation macro-F1 over cumulative wall-clock time and over effective epochs."""
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    seconds = log["seconds_epoch" if "seconds_epoch" in log.columns else "sec_epoch"].cumsum().to_numpy(float)  # sec_epoch: older runs
    best = int(log["val_macro_f1"].to_numpy(float).argmax())
    for ax, x, xlabel in [(axes[0], seconds, "cumulative wall-clock time (s)"),
                          (axes[1], log["effective_epochs"].to_numpy(float), "effective epochs")]:
        ax.plot(x, log["val_macro_f1"], "-o", ms=4, color="#1f77b4", label="validation macro-F1 per epoch")
        ax.plot(x[best], log["val_macro_f1"].iloc[best], "*", ms=14, color="#d62728",
                label=f"best epoch ({int(log['epoch'].iloc[best])})")
        _finish(ax, xlabel, "validation macro-F1", f"macro-F1 vs {xlabel.split(' (')[0]}", legend=True)
    fig.suptitle(title)
    return fig


def kept_fraction_figure(curves: list[tuple[str, str, pd.DataFrame]], title: str) -> Figure:
    """Share of training samples back-propagated per epoch.

    curves: (label, method, frame with epoch, mean, min, max over seeds); the band
    spans the seeds' min to max.
    """
    fig = Figure(figsize=(8, 4.2), layout="constrained")
    ax = fig.subplots()
    for label, method, c in curves:
        color, marker = method_style(method)
        ax.plot(c["epoch"], c["mean"], marker=marker, ms=4, color=color, label=label)
        if (c["max"] > c["min"]).any():
            ax.fill_between(c["epoch"], c["min"], c["max"], color=color, alpha=0.15, lw=0)
    ax.set_ylim(-0.02, 1.05)
    _finish(ax, "epoch", "kept fraction (updated / training samples)", title, legend=len(curves) > 1)
    return fig


def drop_rates_figure(rates: pd.DataFrame, title: str, filtered: bool = True) -> Figure:
    """Per class over the epochs: share removed by the selection rule and, for a run with a reliability
    filter (``filtered``), by the filter among the rule-kept (a rule alone gets one panel: a second one
    of zeros would read as a filter that removed nothing)."""
    panels = [("pdd_drop", "removed by the selection rule", "share of the class's samples")]
    if filtered:
        panels.append(("focus_drop", "removed by the reliability filter (of rule-kept)", "share of its rule-kept samples"))
    fig = Figure(figsize=(11 if filtered else 6, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=True))
    classes = list(dict.fromkeys(rates["label"]))
    colors = [f"C{i % 10}" for i in range(len(classes))]
    for ax, (col, name, ylabel) in zip(axes, panels):
        for cls, color in zip(classes, colors):
            r = rates[rates["label"] == cls]
            ax.plot(r["epoch"], r[col], "-o", ms=3, color=color, label=cls)
        if rates[col].isna().all():
            ax.text(0.5, 0.5, "filter inactive in this run", ha="center", va="center", transform=ax.transAxes)
        ax.set_ylim(-0.02, 1.02)
        _finish(ax, "epoch", ylabel, name, legend=len(classes) > 1)
    fig.suptitle(title)
    return fig


def focus_figure(cand: pd.DataFrame, title: str) -> Figure:
    """Focus score distributions per class and, with ground truth, per noise group."""
    has_truth = "truth" in cand.columns
    fig = Figure(figsize=(11 if has_truth else 6, 4.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, 2 if has_truth else 1))
    classes = list(dict.fromkeys(sorted(cand["label"])))
    data = [cand.loc[cand["label"] == c, "focus"].to_numpy(float) for c in classes]
    axes[0].boxplot(data, tick_labels=classes, showfliers=False, zorder=2)
    rng = np.random.default_rng(0)
    for i, v in enumerate(data, start=1):  # the points show what a box hides (few values, ties at 0 or 1)
        v = v if len(v) <= 400 else rng.choice(v, 400, replace=False)
        axes[0].scatter(i + rng.uniform(-0.18, 0.18, len(v)), v, s=6, alpha=0.35, color="C0", zorder=1)
    _finish(axes[0], "class (true label)", "focus score (0 = no positive evidence, 1 = focused)", "focus score per class", False)
    if has_truth:
        ax = axes[1]
        one = cand.drop_duplicates([c for c in ("run", "epoch", "index") if c in cand.columns])  # multi-label rows
        bins = np.linspace(0, 1, 26)
        groups = sorted(one["truth"].unique(), key=lambda g: (g != "clean", g))
        for i, g in enumerate(groups):
            v = one.loc[one["truth"] == g, "focus"].to_numpy(float)
            ax.hist(v, bins=bins, weights=np.full(len(v), 1 / max(len(v), 1)), histtype="step",
                    lw=2 if g == "clean" else 1.5, color="#333333" if g == "clean" else f"C{i}",
                    label=f"{g} (n={len(v)})")
        _finish(ax, "focus score", "share of the group's candidates", "focus score: corrupted vs clean records",
                legend=True)
    fig.suptitle(title)
    return fig


def _ecg_grid(ax, duration: float, ylim: tuple[float, float]) -> None:
    """ECG paper: 0.2 s / 0.5 mV major squares, 0.04 s / 0.1 mV minor.

    Long records and tall (standardised) signals get coarser squares (1 s; 1, 2 or
    5 units) so the grid stays a grid instead of a solid red fill.
    """
    major_t = 0.2 if duration <= 12 else 1.0
    major_a = next((a for a in (0.5, 1.0, 2.0, 5.0) if (ylim[1] - ylim[0]) / a <= 8), 10.0)
    for step, color, lw in [(major_t / 5, ECG_MINOR, 0.4), (major_t, ECG_MAJOR, 0.8)]:
        ax.vlines(np.arange(0, duration + 1e-9, step), 0, 1, transform=ax.get_xaxis_transform(),
                  colors=color, lw=lw, zorder=1)
    for step, color, lw in [(major_a / 5, ECG_MINOR, 0.4), (major_a, ECG_MAJOR, 0.8)]:
        ax.hlines(np.arange(np.ceil(ylim[0] / step) * step, ylim[1] + 1e-9, step), 0, 1,
                  transform=ax.get_yaxis_transform(), colors=color, lw=lw, zorder=1)


def ecg_strip_figure(signal: np.ndarray, fs: float, lead_names: list[str], cam: np.ndarray | None,
                     title: str, amplitude: str = "mV") -> Figure:
    """A record drawn as ECG strips (one row per lead) with the Grad-CAM map shaded behind.

    signal: (leads, T); cam: None, (T,) shared by all leads or (leads, T), values in [0, 1].
    """
    leads, n = signal.shape
    t = np.arange(n) / fs
    duration = n / fs
    width = float(np.clip(duration * 1.0, 8, 16))
    fig = Figure(figsize=(width, 0.5 + (1.4 if leads <= 4 else 1.0) * leads), layout="constrained")
    axes = np.atleast_1d(fig.subplots(leads, 1, sharex=True))
    image = None
    for i, ax in enumerate(axes):
        x = signal[i]
        pad = max(0.25, 0.1 * float(np.ptp(x)))
        ylim = (float(x.min()) - pad, float(x.max()) + pad)
        _ecg_grid(ax, duration, ylim)
        if cam is not None:
            row = cam if cam.ndim == 1 else cam[i]
            image = ax.imshow(row[None, :], extent=(0, duration, ylim[0], ylim[1]), aspect="auto",
                              cmap=CAM_CMAP, vmin=0, vmax=1, alpha=0.5, zorder=0, interpolation="bilinear")
        ax.plot(t, x, color="black", lw=0.8, zorder=3)
        ax.set_xlim(0, duration)
        ax.set_ylim(*ylim)
        ax.set_ylabel(f"{lead_names[i]}\n({amplitude})", rotation=0, ha="right", va="center", fontsize=9)
        ax.tick_params(labelsize=8)
    if cam is not None and not np.any(cam > 0):
        title += "\n(the Grad-CAM map is flat: no region stands out)"
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(title, fontsize=10)
    if image is not None:
        bar = fig.colorbar(image, ax=list(axes), fraction=0.025, pad=0.01)
        bar.set_label("Grad-CAM\n(min-max normalised)", fontsize=8)  # two short lines: fits a one-lead strip's height
        bar.ax.tick_params(labelsize=8)
    return fig
