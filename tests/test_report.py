"""erts report / explain: run folders fabricated in the training loop's exact format, and one real run."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import load_benchmark, tiny_overrides
from erts.config import Config, dump_config, set_value
from erts.report.build import RUN_SECTIONS, SWEEP_SECTIONS, build_report, pick_examples
from erts.report.selection import drop_rates, filter_by_truth, filter_candidates, load_selection_log, load_train_records
from erts.train.sweep import Grid, collect_results, expand

CLASSES = ["NORM", "MI", "STTC"]
PNG = "<img src=\"data:image/png;base64,"


def make_run(run_dir: Path, *, method: str, seed: int, f1: float, epochs: int = 6, n_train: int = 60,
             n_test: int = 40, seconds: float = 10.0, flops: float = 4.001e9, config: dict | None = None) -> None:
    """A finished run folder as erts.train.loop writes it (no checkpoints: no example records)."""
    rng = np.random.default_rng(seed * 10 + len(method))
    (run_dir / "selection").mkdir(parents=True)
    cfg = Config()
    for k, v in dict(method=method, seed=seed, epochs=epochs, name=run_dir.name, out_dir=str(run_dir.parent),
                     warmup_epochs=2, revision_epoch=5, gradcam_start=3, **(config or {})).items():
        set_value(cfg, k, v)
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    labels = np.array(CLASSES)[np.arange(n_train) % 3]
    corruption = np.where(np.arange(n_train) % 5 == 0, "label_flip", "none")
    pd.DataFrame({"index": np.arange(n_train) * 2, "record_id": [f"syn{i:05d}" for i in range(n_train)],
                  "label": labels, "corruption": corruption, "true_class": labels}).to_csv(
        run_dir / "train_records.csv", index=False)
    rows, ee = [], 0.0
    for e in range(epochs):
        phase = "full" if method == "full" else ("warmup" if e < 2 else ("revision" if e >= 5 else "select"))
        p = rng.random(n_train).astype(np.float32)
        pdd = np.ones(n_train, bool) if phase != "select" else p < 0.5
        pdd[np.arange(n_train) % 3 == 0] |= phase == "select" and e == 3  # NORM kept in epoch 3
        focus = np.full(n_train, np.nan, np.float32)
        erts = pdd.copy()
        if method.startswith("erts") and phase == "select" and e >= 3:
            focus[pdd] = np.clip(rng.random(pdd.sum()) - 0.4 * (corruption[pdd] != "none"), 0, 1)
            erts = pdd & ~(focus < 0.3)
        if phase in ("warmup", "revision", "full"):
            p[:] = np.nan
        np.savez(run_dir / "selection" / f"epoch_{e:03d}.npz", index=np.arange(n_train, dtype=np.int64) * 2,
                 p=p, focus=focus, pdd_keep=pdd, erts_keep=erts, updated=erts)
        ee += erts.mean()
        rows.append({"epoch": e, "phase": phase, "lr": 1e-3, "train_loss": 1.0, "val_loss": 1.0,
                     "val_macro_f1": f1 * (e + 1) / epochs, "val_accuracy": 0.5, "val_macro_auroc": 0.7,
                     "n_train": n_train, "n_scored": n_train, "n_pdd_kept": int(pdd.sum()),
                     "n_erts_kept": int(erts.sum()), "n_updated": int(erts.sum()), "kept_frac": erts.mean(),
                     "effective_epochs": ee, "seconds_epoch": seconds / epochs})
    pd.DataFrame(rows).to_csv(run_dir / "log.csv", index=False)
    y = np.arange(n_test) % 3
    probs = rng.random((n_test, 3)).astype(np.float32)
    probs[np.arange(n_test), y] += 0.7
    np.savez(run_dir / "predictions_test.npz", record_ids=np.array([f"t{i}" for i in range(n_test)]),
             y_true=y, probs=probs / probs.sum(1, keepdims=True))
    metrics = {"run": run_dir.name, "dataset": "synthetic", "model": "resnet18_1d", "method": method, "seed": seed,
               "class_names": CLASSES, "multilabel": False, "best_epoch": epochs - 1, "epochs": epochs,
               "val": {"macro_f1": f1 + 0.01, "accuracy": 0.6, "macro_auroc": 0.8},
               "test": {"macro_f1": f1, "accuracy": f1 + 0.05, "macro_auroc": 0.85,
                        "per_class_f1": {c: f1 for c in CLASSES}, "confusion": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
               "cost": {"effective_epochs": ee,
                        "seconds": {"scoring": 1.0, "gradcam": 0.5, "update": seconds - 2.5, "eval": 1.0,
                                    "total": seconds},
                        "cpu_seconds": {"scoring": 1.5, "update": 2 * seconds - 4.0, "other": 0.5,
                                        "total": 2 * seconds - 2.0},
                        "forwards": {"scoring": 100, "gradcam": 10, "update": 200},
                        "backwards": {"gradcam": 0, "update": 200},
                        "flops": {"scoring": 1e9, "gradcam": 1e6, "update": flops - 1.001e9, "total": flops}}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))


F1 = {("full", 0): 0.70, ("full", 1): 0.72, ("full", 2): 0.71,
      ("dbpd", 0): 0.69, ("dbpd", 1): 0.70, ("dbpd", 2): 0.72,
      ("erts-dbpd", 0): 0.72, ("erts-dbpd", 1): 0.75, ("erts-dbpd", 2): 0.73}
SECONDS = {"full": 20.0, "dbpd": 14.0, "erts-dbpd": 15.0}
FLOPS = {"full": 8e9, "dbpd": 6e9, "erts-dbpd": 4e9}


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweeps")
    grid = Grid(name="fake", out_dir=str(out), base={"epochs": 6},
                grid={"method": ["full", "dbpd", "erts-dbpd"], "seed": [0, 1, 2]})
    runs = expand(grid)
    for r in runs:
        make_run(r.run_dir, method=r.values["method"], seed=r.values["seed"], f1=F1[r.values["method"], r.values["seed"]],
                 seconds=SECONDS[r.values["method"]], flops=FLOPS[r.values["method"]])
    collect_results(grid, runs)
    return grid.sweep_dir


def table_rows(html: str, table_id: str) -> list[list[str]]:
    body = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S).group(0)
    rows = [re.findall(r"<td>(.*?)</td>", tr, re.S) for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
    return [r for r in rows if r]  # the header row has <th> cells only


def table_dicts(html: str, table_id: str) -> list[dict[str, str]]:
    """Rows of an HTML table as {header: cell}."""
    body = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S).group(0)
    head = [html_unescape(h) for h in re.findall(r"<th>(.*?)</th>", body, re.S)]
    return [dict(zip(head, map(html_unescape, r))) for r in table_rows(html, table_id)]


def html_escape(s: str) -> str:
    import html as h

    return h.escape(s)


def html_unescape(s: str) -> str:
    import html as h

    return h.unescape(s.strip())


def check_images(html: str, md: str, files: Path) -> int:
    """Every embedded image is a real PNG and the Markdown links the same number of saved files."""
    blobs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(blobs) == html.count(PNG)
    for b in blobs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    links = re.findall(r"!\[[^\]]*\]\((report_files/[^)]+\.png)\)", md)
    assert len(links) == len(blobs) == len(list(files.glob("*.png")))
    assert all((files.parent / link).exists() for link in links)
    assert "src=\"http" not in html and "<link" not in html  # self-contained
    return len(blobs)


def test_selection_log_and_drop_rates(fake_sweep):
    run = fake_sweep / "runs" / "method=erts-dbpd,seed=0"
    sel = load_selection_log(run)
    rec = load_train_records(run)
    assert list(sel.columns) == ["epoch", "index", "p", "focus", "pdd_keep", "erts_keep", "updated"]
    assert len(sel) == 6 * 60 and sorted(sel.epoch.unique()) == list(range(6))
    rates = drop_rates(sel, rec)
    # hand check one cell: MI (rows 1, 4, 7, ...) in epoch 2
    e2 = sel[(sel.epoch == 2) & ((sel["index"] // 2) % 3 == 1)]
    mi = rates[(rates.epoch == 2) & (rates.label == "MI")].iloc[0]
    assert mi["n"] == 20 and mi["pdd_drop"] == pytest.approx((~e2.pdd_keep).mean())
    e4 = sel[(sel.epoch == 4) & ((sel["index"] // 2) % 3 == 1) & sel.pdd_keep]
    mi4 = rates[(rates.epoch == 4) & (rates.label == "MI")].iloc[0]
    assert mi4["focus_drop"] == pytest.approx((~e4.erts_keep).mean())
    # warm-up epochs drop nothing
    assert (rates[rates.epoch < 2][["pdd_drop", "focus_drop"]] == 0).all().all()
    cand = filter_candidates(sel, rec)
    assert len(cand) == int(sel.focus.notna().sum())
    t = filter_by_truth(cand).set_index("truth")
    flips = cand[cand.truth == "label_flip"]
    assert t.loc["label_flip", "candidates"] == len(flips)
    assert t.loc["label_flip", "filter_drop"] == pytest.approx(1 - flips.erts_keep.mean())
    # the fabricated focus is lower for corrupted records, so the filter removes more of them
    assert t.loc["label_flip", "filter_drop"] > t.loc["clean", "filter_drop"]
    epoch, kept, filt, what = pick_examples(sel, 2)
    assert epoch == 4 and len(kept) == 2 and len(filt) == 2 and "focus filter" in what
    assert kept.erts_keep.all() and (filt.pdd_keep & ~filt.erts_keep).all()
    assert kept.focus.min() >= filt.focus.max()


def test_selection_log_errors(tmp_path):
    (tmp_path / "selection").mkdir()
    np.savez(tmp_path / "selection" / "epoch_000.npz", index=np.arange(3), p=np.zeros(3))
    with pytest.raises(ValueError, match="lacks arrays"):
        load_selection_log(tmp_path)
    with pytest.raises(FileNotFoundError, match="train_records.csv"):
        load_train_records(tmp_path)
    assert load_selection_log(tmp_path / "nothing").empty


def test_sweep_report_renders_every_section(fake_sweep):
    html_path, md_path = build_report(fake_sweep)
    html, md = html_path.read_text(), md_path.read_text()
    for h in SWEEP_SECTIONS:
        assert re.search(rf"<h2 id='[^']+'>{re.escape(h)}</h2>", html), h
        assert f"## {h}" in md
    # 2 forest plots (against full, erts-X against X), pareto, kept fraction, drop rates of dbpd and erts-dbpd, focus
    assert check_images(html, md, fake_sweep / "report_files") == 7
    assert "no example records" in html  # fabricated runs have no checkpoints, and the report says so
    assert "against CPU time per run" in md  # every run recorded CPU seconds: the cost axis less skewed by load
    # the results table holds the numbers of results.csv
    rows = {r["method"]: r for r in table_dicts(html, "results")}
    assert set(rows) == {"full", "dbpd", "erts-dbpd"}
    means = {"full": (0.70 + 0.72 + 0.71) / 3, "dbpd": (0.69 + 0.70 + 0.72) / 3, "erts-dbpd": (0.72 + 0.75 + 0.73) / 3}
    for method, row in rows.items():
        assert row["n seeds"] == "3"
        assert float(row["test macro-F1 (mean)"]) == pytest.approx(means[method], abs=5e-5)
        lo, hi = map(float, row["95% CI"].strip("[]").split(", "))
        assert lo < means[method] < hi
        assert row["time / full"] == {"full": "1.00", "dbpd": "0.70", "erts-dbpd": "0.75"}[method]  # 14/20, 15/20
        assert row["FLOPs / full"] == {"full": "1.00", "dbpd": "0.75", "erts-dbpd": "0.50"}[method]  # 6e9/8e9, 4e9/8e9
        assert row["CPU / full"] == {"full": "1.00", "dbpd": "0.68", "erts-dbpd": "0.74"}[method]  # 26/38, 28/38
        assert row["time spread"] == "0%"
    # paired comparisons: every method against full on the same seeds, one Holm family
    comp = {r["method"]: r for r in table_dicts(html, "comparisons")}
    assert set(comp) == {"dbpd", "erts-dbpd"} and {r["against"] for r in comp.values()} == {"full"}
    assert float(comp["erts-dbpd"]["Δ macro-F1 (mean)"]) == pytest.approx(np.mean([0.02, 0.03, 0.02]), abs=5e-5)
    # the paper's claim: erts-dbpd against dbpd, a family of its own
    erts = table_dicts(html, "erts_comparisons")
    assert [(r["method"], r["against"], r["pairs"]) for r in erts] == [("erts-dbpd", "dbpd", "3")]
    d = [0.72 - 0.69, 0.75 - 0.70, 0.73 - 0.72]
    assert float(erts[0]["Δ macro-F1 (mean)"]) == pytest.approx(0.03, abs=5e-5)
    # 3 pairs: p of the paired t-test, t = mean / (sd / sqrt 3) with 2 dof; one comparison, so Holm leaves it
    t = np.mean(d) / (np.std(d, ddof=1) / np.sqrt(3))
    from scipy.stats import t as t_dist
    assert float(erts[0]["p (Holm)"]) == pytest.approx(2 * t_dist.sf(t, 2), abs=5e-4)
    assert float(comp["erts-dbpd"]["p (Holm)"]) != pytest.approx(float(comp["erts-dbpd"]["p (paired t)"]))  # 2 tests
    assert "Holm family: every method against full." in html
    assert "Holm family: every ERTS method against its rule (erts-X against X)" in html
    assert "over the 1 comparison of this table and no others" in html
    assert "over the 2 comparisons of this table and no others" in html
    assert "| erts-dbpd |" in md
    assert "id='warnings'" not in html  # 3 seeds, steady wall clock: nothing to warn about
    # the same families paired over the test records too: macro-F1 recomputed from each run's predictions
    from sklearn.metrics import f1_score

    def f1_of(method: str, seed: int) -> float:
        with np.load(fake_sweep / "runs" / f"method={method},seed={seed}" / "predictions_test.npz") as z:
            return f1_score(z["y_true"], z["probs"].argmax(1), average="macro")

    paired = {(r["family"], r["method"], r["against"]): r for r in table_dicts(html, "record_paired")}
    assert set(paired) == {("against full", "dbpd", "full"), ("against full", "erts-dbpd", "full"),
                           ("ERTS against its rule", "erts-dbpd", "dbpd")}
    want = np.mean([f1_of("erts-dbpd", s) - f1_of("dbpd", s) for s in range(3)])
    assert float(paired["ERTS against its rule", "erts-dbpd", "dbpd"]["Δ macro-F1"]) == pytest.approx(want, abs=5e-5)
    assert all(r["seeds"] == "3" for r in paired.values())


def test_run_report_of_fabricated_run(fake_sweep, tmp_path):
    run = fake_sweep / "runs" / "method=dbpd,seed=1"
    html_path, md_path = build_report(run, out_dir=tmp_path, n_boot=500)
    html, md = html_path.read_text(), md_path.read_text()
    for h in RUN_SECTIONS:
        assert f">{h}</h2>" in html and f"## {h}" in md
    # curves, kept fraction, drop rates; no focus scores (dbpd has no focus filter)
    assert check_images(html, md, tmp_path / "report_files") == 3
    assert "no focus scores" in html
    assert "dbpd: per class, the share of its training samples the selection rule removed each epoch " \
        "(no reliability filter in this configuration)" in html  # one panel, not a second one of zeros
    rows = {r[0]: r for r in table_rows(html, "results")}
    assert float(rows["test macro-F1"][1]) == pytest.approx(0.70)
    lo, hi = map(float, rows["test macro-F1"][2].strip("[]").split(", "))
    assert lo < hi


def test_report_rejects_other_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a run folder"):
        build_report(tmp_path)


@pytest.mark.slow
def test_report_and_explain_of_a_real_run(cache_dir, tmp_path, capsys):
    """A real tiny ERTS run: the report draws example records with Grad-CAM; explain draws one record."""
    from erts.cli.main import main
    from erts.config import load_config
    from erts.train.loop import train

    m = train(load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", epochs=3,
                                                     n_records=60, name="r")))
    run = tmp_path / "r"
    html_path, md_path = build_report(run, n_boot=300)
    html, md = html_path.read_text(), md_path.read_text()
    for h in RUN_SECTIONS:
        assert f">{h}</h2>" in html
    # curves, kept fraction, drop rates, focus, 2 kept + 2 filtered example records
    assert check_images(html, md, run / "report_files") == 8
    assert len(re.findall(r"<figure id='example_(kept|filtered)_", html)) == 4
    rows = {r[0]: r for r in table_rows(html, "results")}
    assert rows["test macro-F1"][1] == f"{m['test']['macro_f1']:.4f}"
    rid = pd.read_csv(run / "train_records.csv").record_id.iloc[0]
    out = tmp_path / "one.png"
    assert main(["explain", str(run), "--record", rid, "--out", str(out), "--leads", "4"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    capsys.readouterr()
    assert main(["explain", str(run), "--record", "nope"]) == 2      # one line, exit 2 (not a traceback)
    assert "not in dataset" in capsys.readouterr().err


def test_cam_for_plot_maps_lead_rows_back_to_leads():
    import torch

    from erts.report.explain import cam_for_plot

    maps_2d = torch.zeros(4, 10)
    maps_2d[0, 2] = 1.0  # top image row = first lead (leads sit in the top rows, zero padding below)
    maps_2d[3, 7] = 5.0  # a padding row: not a lead, never drawn
    cam = cam_for_plot(maps_2d.mean(0), maps_2d, length=100, leads=3, lead_rows=4)
    assert cam.shape == (3, 100) and cam.min() == 0 and cam.max() == pytest.approx(1)
    assert cam[0].argmax() // 10 == 2 and cam[2].max() == 0
    # 32 lead rows seen through 4 map rows: the top map row covers the first 8 image rows
    cam32 = cam_for_plot(maps_2d.mean(0), maps_2d, length=100, leads=3, lead_rows=32)
    assert np.allclose(cam32[0], cam32[2]) and cam32[0].argmax() // 10 == 2
    one = cam_for_plot(torch.tensor([0.0, 2.0, 1.0]), None, length=30, leads=12, lead_rows=32)
    assert one.shape == (30,) and one.max() == pytest.approx(1) and one[0] == 0


def _labels_ok(fig) -> None:
    """Every data axes has x and y labels (or shares its row's) and a title or figure title; legends where >1 series."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert fig.get_suptitle() or any(ax.get_title() for ax in axes)
    for ax in axes:
        assert ax.get_xlabel() or ax is not axes[-1] and ax.get_shared_x_axes().joined(ax, axes[-1])
        assert ax.get_ylabel()
        if len([line for line in ax.get_lines() if not line.get_label().startswith("_")]) > 1:
            assert ax.get_legend() is not None


def test_every_figure_is_labelled(fake_sweep):
    from erts.report import plots

    run = fake_sweep / "runs" / "method=erts-dbpd,seed=0"
    sel, rec = load_selection_log(run), load_train_records(run)
    log = pd.read_csv(run / "log.csv")
    summary = pd.DataFrame({"method": ["full", "dbpd"], "label": ["full", "dbpd"], "f1_mean": [0.7, 0.69],
                            "f1_err": [0.01, 0.02], "seconds_mean": [20, 14], "seconds_std": [1, 1],
                            "ee_mean": [6, 4], "ee_std": [0, 0.1]})
    curve = log.rename(columns={"kept_frac": "mean"}).assign(min=lambda d: d["mean"], max=lambda d: d["mean"])
    figs = [plots.pareto_figure(summary, "t"), plots.curves_figure(log, "t"),
            plots.kept_fraction_figure([("a", "full", curve), ("b", "dbpd", curve)], "t"),
            plots.drop_rates_figure(drop_rates(sel, rec), "t"),
            plots.focus_figure(filter_candidates(sel, rec).assign(run="r"), "t"),
            plots.ecg_strip_figure(np.random.default_rng(0).normal(size=(3, 500)), 100.0, ["I", "II", "V1"],
                                   np.linspace(0, 1, 500), "record", "mV")]
    rule_only = plots.drop_rates_figure(drop_rates(sel, rec), "t", filtered=False)
    assert len(figs[3].axes) == 2 and len(rule_only.axes) == 1
    for fig in figs + [rule_only]:
        _labels_ok(fig)
        assert plots.to_png(fig)[:4] == b"\x89PNG"
    strip = figs[-1]
    assert [ax.get_ylabel() for ax in strip.axes[:3]] == ["I\n(mV)", "II\n(mV)", "V1\n(mV)"]
    assert strip.axes[2].get_xlabel() == "time (s)"
    assert any(ax.get_label() == "<colorbar>" and "Grad-CAM" in ax.get_ylabel() for ax in strip.axes)
    assert plots.pareto_frontier(np.array([3.0, 1.0, 2.0, 4.0]), np.array([0.8, 0.6, 0.7, 0.75])).tolist() == [1, 2, 0]


def test_a_one_lead_strip_shows_its_whole_colour_bar_label():
    """A one-lead strip (CinC 2017, the audit's suspects) is short: its colour bar's label must fit in the
    figure's height, not run off it (it did: 'd-CAM (min-max normalise' was all that showed)."""
    from erts.report import plots

    fig = plots.ecg_strip_figure(np.zeros((1, 3000)) + np.sin(np.arange(3000) / 9), 100.0, ["ECG"],
                                 np.linspace(0, 1, 3000), "record\nsecond title line", "std. units")
    fig.draw_without_rendering()  # the layout is final, at the figure's own dpi
    bar = next(ax for ax in fig.axes if ax.get_label() == "<colorbar>")
    label = bar.yaxis.label.get_window_extent()
    page = fig.bbox
    assert "Grad-CAM" in bar.get_ylabel()
    assert page.y0 <= label.y0 and label.y1 <= page.y1 and label.x1 <= page.x1, (label, page)


def test_pareto_cost_axis_prefers_cpu_at_one_speed_and_its_legend_covers_no_point():
    from erts.report import plots
    from erts.report.tables import pareto_time

    both = pd.DataFrame({"seconds_total_mean": [20.0, 14.0], "cpu_seconds_total_mean": [40.0, 30.0],
                         "cpu_seconds_total_norm_mean": [40.0, 22.0]})
    assert pareto_time(both) == "cpu_seconds_total_norm"
    assert pareto_time(both.assign(cpu_seconds_total_norm_mean=[40.0, np.nan])) == "cpu_seconds_total"
    assert pareto_time(both.drop(columns=["cpu_seconds_total_mean", "cpu_seconds_total_norm_mean"])) == "seconds_total"
    summary = pd.DataFrame({"method": ["full", "dbpd"], "label": ["full", "dbpd"], "f1_mean": [0.7, 0.69],
                            "f1_err": [0.01, 0.02], "seconds_mean": [20, 14], "seconds_std": [1, 1],
                            "ee_mean": [6, 4], "ee_std": [0, 0.1]})
    fig = plots.pareto_figure(summary, "t", "CPU time at one speed")
    assert all(ax.get_legend() is None for ax in fig.axes)  # no legend inside a panel, over the points
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == ["Pareto front", "dbpd", "full"]
    assert fig.axes[0].get_xlabel() == "CPU time at one speed per run (s)"


def test_record_cam_per_lead_for_2d_backbones():
    import torch

    from erts.models import create_model
    from erts.report.explain import record_cam

    torch.manual_seed(0)
    x = np.random.default_rng(0).normal(size=(12, 400)).astype(np.float32)
    m2d = create_model("resnet18", in_channels=12, num_classes=5).eval()
    cam, probs = record_cam(m2d, x, 2, layer="layer3")  # 32 lead rows -> 2 map rows: per-lead shading
    assert cam.shape == (12, 400) and cam.min() == 0 and cam.max() == pytest.approx(1)
    assert probs.shape == (5,) and probs.sum() == pytest.approx(1, abs=1e-5)
    assert record_cam(m2d, x, 2, layer="last")[0].shape == (400,)  # one map row left: shared by the leads
    m1d = create_model("resnet18_1d", in_channels=12, num_classes=5).eval()
    cam, probs = record_cam(m1d, x, np.array([1, 0, 1, 0, 0], np.float32))  # multi-label target
    assert cam.shape == (400,) and 0 <= probs.min() and probs.max() <= 1 and probs.sum() != pytest.approx(1)


# --- warnings, clipped CIs, undefined runs, resolved config -------------------------------

SMALL_F1 = {("full", 0): 0.90, ("full", 1): 0.98, ("full", 2): np.nan,  # seed 2 undefined: n = 2
            ("dbpd", 0): 0.80, ("dbpd", 1): 0.82, ("dbpd", 2): 0.81,
            ("erts-dbpd", 0): 0.85, ("erts-dbpd", 1): 0.84, ("erts-dbpd", 2): 0.86}
SMALL_SECONDS = {("full", s): 20.0 for s in range(3)} | {
    ("dbpd", 0): 14.0, ("dbpd", 1): 15.0, ("dbpd", 2): 16.8,  # slowest / fastest = 1.2: 20 %, not flagged
    ("erts-dbpd", 0): 15.0, ("erts-dbpd", 1): 15.0, ("erts-dbpd", 2): 21.0}  # 21 / 15 = 1.4: 40 %, flagged


@pytest.fixture(scope="module")
def small_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    grid = Grid(name="small", out_dir=str(out), base={"epochs": 6},
                grid={"method": ["full", "dbpd", "erts-dbpd"], "seed": [0, 1, 2]})
    runs = expand(grid)
    for r in runs:
        key = (r.values["method"], r.values["seed"])
        # one erts-dbpd seed ran with another thread count: a setting that differs within a configuration
        extra = {"phi": 0.5, "num_threads": 2 if key == ("erts-dbpd", 1) else 1}
        make_run(r.run_dir, method=key[0], seed=key[1], f1=SMALL_F1[key], seconds=SMALL_SECONDS[key], config=extra)
    collect_results(grid, runs)
    return grid.sweep_dir


def test_sweep_report_warns_clips_and_counts_defined_runs(small_sweep, tmp_path, capsys):
    from erts.cli.main import main

    warned: list[str] = []
    html_path, md_path = build_report(small_sweep, out_dir=tmp_path, warn=warned.append)
    html, md = html_path.read_text(), md_path.read_text()
    rows = {r["method"]: r for r in table_dicts(html, "results")}
    # full: the NaN run is no seed and no zero: n = 2 of 3 runs, mean (0.90 + 0.98) / 2
    assert rows["full"]["n seeds"] == "2 (of 3 runs)" and rows["dbpd"]["n seeds"] == "3"
    assert rows["full"]["test macro-F1 (mean)"] == "0.9400"
    # hand: sd = 0.0565685, sem = 0.04, t(0.975, 1) = 12.7062047 -> 0.94 -+ 0.508248 -> [0.431752, 1.448248],
    # clipped to [0, 1] because macro-F1 cannot exceed 1
    assert rows["full"]["95% CI"] == "[0.4318, 1.0000]"
    assert rows["dbpd"]["time spread"] == "20%"
    assert rows["erts-dbpd"]["time spread"] == "40% (noisy)"
    assert rows["full"]["time spread"] == "0%"
    assert len(warned) == 2
    assert warned[0].startswith("full: 2 seeds with a test macro-F1 (fewer than 3)")
    assert warned[1].startswith("erts-dbpd: wall clock differs across seeds by 40%")
    for w in warned:
        assert f"<li>{html_escape(w)}</li>" in html
        assert f"> **Warning:** {w}" in md
    # pairs only where both runs are defined: seed 2 of full is NaN
    comp = {r["method"]: r for r in table_dicts(html, "comparisons")}
    assert comp["dbpd"]["pairs"] == "2" and comp["erts-dbpd"]["pairs"] == "2"
    assert "fewer than 3 paired seeds" in html
    # the difference CI of erts-dbpd vs full (d = -0.05, -0.14) stays inside [-1, 1]:
    # hand: mean -0.095, sd 0.0636396, sem 0.045, half 12.7062 * 0.045 = 0.571779 -> [-0.666779, 0.476779]
    assert comp["erts-dbpd"]["95% CI of Δ"] == "[-0.6668, 0.4768]"
    # the command line prints the same warnings
    assert main(["report", str(small_sweep), "--out", str(tmp_path / "cli")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 2 and "fewer than 3" in err and "machine noise" in err


def test_sweep_report_shows_the_resolved_config(small_sweep, tmp_path):
    html_path, _ = build_report(small_sweep, out_dir=tmp_path, warn=None)
    html = html_path.read_text()
    shared = {r["setting"]: r["value (every run)"] for r in table_dicts(html, "config_shared")}
    # set by make_run for every run: shown once
    assert shared["train.epochs"] == "6" and shared["selection.phi"] == "0.5"
    assert shared["selection.warmup_epochs"] == "2" and shared["data.dataset"] == "synthetic"
    assert shared["data.bandpass"] == "null" and shared["data.standardize"] == "record"
    # per-run by construction, or varying: not among the shared settings
    for k in ("train.seed", "train.name", "train.out_dir", "selection.method", "train.num_threads"):
        assert k not in shared, k
    varying = {r["configuration"]: r for r in table_dicts(html, "config_varying")}
    assert set(varying) == {"full", "dbpd", "erts-dbpd"}
    assert set(next(iter(varying.values()))) == {"configuration", "selection.method", "train.num_threads"}
    assert varying["dbpd"]["selection.method"] == "dbpd" and varying["dbpd"]["train.num_threads"] == "1"
    assert varying["erts-dbpd"]["train.num_threads"] == "1 | 2 (differs between seeds)"


def test_run_report_shows_the_whole_config(fake_sweep, tmp_path):
    html_path, _ = build_report(fake_sweep / "runs" / "method=dbpd,seed=1", out_dir=tmp_path, n_boot=50)
    cfg = {r["setting"]: r["value"] for r in table_dicts(html_path.read_text(), "config")}
    assert cfg["selection.method"] == "dbpd" and cfg["train.seed"] == "1" and cfg["selection.revision_epoch"] == "5"
    assert cfg["train.name"] == "method=dbpd,seed=1"


def test_noisy_wall_clocks_are_one_warning_naming_each_configuration():
    from erts.report.tables import summary_warnings

    summary = pd.DataFrame({"method": ["full", "dbpd", "erts-dbpd"], "n": [3, 3, 3],
                            "seconds_total_spread": [0.10, 0.57, 3.11]})
    (w,) = summary_warnings(summary, ["method"])
    assert w.startswith("Wall clock differs across seeds in 2 of 3 configurations (dbpd 57%, erts-dbpd 311%) "
                        "(slowest against fastest, more than 30%): machine noise; their time ratios")
    assert summary_warnings(summary.iloc[:1], ["method"]) == []


def test_time_spread_threshold():
    from erts.report.build import TIME_SPREAD_LIMIT, time_spread

    assert TIME_SPREAD_LIMIT == 0.30
    assert time_spread([10.0, 13.0]) == pytest.approx(0.30)  # exactly 30 %: not more than 30 %
    assert time_spread([10.0, 12.0, np.nan, 14.0]) == pytest.approx(0.40)
    assert np.isnan(time_spread([10.0])) and np.isnan(time_spread([np.nan, 3.0]))


def test_focus_table_in_words_with_the_numbers(fake_sweep):
    html_path, _ = build_report(fake_sweep, warn=None)
    html = html_path.read_text()
    # count by hand from the raw selection logs of the three erts-dbpd seeds
    n = {"clean": 0, "bad": 0}
    removed = {"clean": 0, "bad": 0}
    zeros = {"clean": 0, "bad": 0}
    for seed in range(3):
        for f in sorted((fake_sweep / "runs" / f"method=erts-dbpd,seed={seed}" / "selection").glob("*.npz")):
            z = np.load(f)
            cand = np.isfinite(z["focus"])
            bad = (z["index"] // 2) % 5 == 0  # make_run corrupts every fifth record (label_flip)
            for g, m in (("clean", cand & ~bad), ("bad", cand & bad)):
                n[g] += int(m.sum())
                removed[g] += int((m & ~z["erts_keep"]).sum())
                zeros[g] += int((m & (z["focus"] == 0)).sum())
    r_bad, r_clean = removed["bad"] / n["bad"], removed["clean"] / n["clean"]
    assert r_bad > r_clean  # the fabricated focus is lower for corrupted records
    text = (f"erts-dbpd: the focus filter removed {r_bad:.1%} of the corrupted candidates "
            f"(label_flip {r_bad:.1%} of {n['bad']}) and {r_clean:.1%} of the {n['clean']} clean ones: "
            f"corrupted records were removed {r_bad / r_clean:.2f} times as often as clean ones, so the filter "
            "does remove corrupted records more than clean ones here.")
    assert text in html
    rows = {r["ground truth"]: r for r in table_dicts(html, "focus_truth_synthetic")}
    assert rows["label_flip"]["focus 0 (no positive evidence)"] == f"{zeros['bad'] / n['bad']:.1%}"
    assert rows["clean"]["focus 0 (no positive evidence)"] == f"{zeros['clean'] / n['clean']:.1%}"
    assert zeros["bad"] > 0  # make_run clips corrupted focus at 0: the column has something to show
    assert "diffuse" not in html


def test_focus_verdict_when_the_filter_does_not_single_out_corrupted_records():
    from erts.report.build import focus_verdict

    agg = pd.DataFrame({"truth": ["clean", "noise", "label_flip"], "candidates": [200, 50, 50],
                        "dropped": [60, 10, 15]})
    # corrupted: 25 of 100 = 25 %; clean: 60 of 200 = 30 %; 25 / 30 = 0.83
    assert focus_verdict("erts-srd", agg) == (
        "erts-srd: the focus filter removed 25.0% of the corrupted candidates (noise 20.0% of 50, label_flip "
        "30.0% of 50) and 30.0% of the 200 clean ones: corrupted records were removed 0.83 times as often as clean "
        "ones, so the filter does not remove corrupted records more than clean ones here.")
    assert "no clean candidates" in focus_verdict("x", agg[agg.truth != "clean"])
    assert "no corrupted candidates" in focus_verdict("x", agg[agg.truth == "clean"])


# --- erts explain: one record's keep/filter history ---------------------------------------

def make_history_run(run_dir: Path) -> None:
    """Three training records, five epochs, arrays written by hand; 'rescued' only in the last two epochs."""
    (run_dir / "selection").mkdir(parents=True)
    pd.DataFrame({"index": [0, 1, 2], "record_id": ["r0", "r1", "r2"], "label": ["N", "A", "N"],
                  "corruption": ["none", "label_flip", "none"], "true_class": ["N", "N", "N"]}).to_csv(
        run_dir / "train_records.csv", index=False)
    nan = np.nan
    epochs = [  # per epoch: p, focus, pdd_keep, erts_keep, updated, rescued (None: field absent)
        dict(p=[nan] * 3, focus=[nan] * 3, pdd=[1, 1, 1], erts=[1, 1, 1], upd=[1, 1, 1], resc=None),
        dict(p=[.9, .1, .2], focus=[nan] * 3, pdd=[0, 1, 1], erts=[0, 1, 1], upd=[0, 1, 1], resc=None),
        dict(p=[.9, .2, .1], focus=[nan, 0.0, .8], pdd=[0, 1, 1], erts=[0, 0, 1], upd=[0, 0, 1], resc=None),
        dict(p=[.95, .15, .3], focus=[nan, 0.4, .6], pdd=[1, 1, 1], erts=[1, 0, 1], upd=[1, 0, 1], resc=[1, 0, 0]),
        dict(p=[.9, .1, .2], focus=[nan, .3, .7], pdd=[0, 1, 1], erts=[0, 1, 1], upd=[0, 0, 1], resc=[0, 0, 0]),
    ]
    for e, a in enumerate(epochs):
        arrays = dict(index=np.arange(3), p=np.array(a["p"], np.float32), focus=np.array(a["focus"], np.float32),
                      pdd_keep=np.array(a["pdd"], bool), erts_keep=np.array(a["erts"], bool),
                      updated=np.array(a["upd"], bool))
        if a["resc"] is not None:
            arrays["rescued"] = np.array(a["resc"], bool)
        np.savez(run_dir / "selection" / f"epoch_{e:03d}.npz", **arrays)
    pd.DataFrame({"epoch": range(5), "phase": ["warmup", "select", "select", "select", "select"]}).to_csv(
        run_dir / "log.csv", index=False)


def test_record_history_per_epoch(tmp_path):
    from erts.report.selection import format_history, history_text, load_selection_log, record_history

    make_history_run(tmp_path)
    sel = load_selection_log(tmp_path)
    assert "rescued" in sel.columns and not sel.loc[sel.epoch < 3, "rescued"].any()  # absent field reads False
    row, h = record_history(tmp_path, "r1")
    assert list(h["epoch"]) == [0, 1, 2, 3, 4] and list(h["phase"]) == ["warmup"] + ["select"] * 4
    assert list(h["status"]) == [
        "trained on (no selection this epoch)",
        "kept by the PDD rule",
        "removed by the focus filter (focus 0: no positive evidence)",
        "removed by the focus filter",
        "kept by the focus filter; no update (its batch was skipped)",
    ]
    _, h0 = record_history(tmp_path, "r0")
    assert list(h0["status"]) == ["trained on (no selection this epoch)", "dropped by the PDD rule",
                                  "dropped by the PDD rule", "rescued (class rescue)", "dropped by the PDD rule"]
    text = format_history(row, h)
    lines = text.splitlines()
    assert lines[0] == "record r1 (training record, index 1), label A"
    assert lines[1] == "ground truth: label_flip (true_class=N)"
    # r1: updated in epochs 0, 1; never PDD-dropped; filtered in 2, 3; focus scored 0.0, 0.4, 0.3
    assert lines[2] == ("updated in 2 of 5 epochs; dropped by the PDD rule in 0; removed by the focus filter in 2; "
                        "rescued in 0; focus scored in 3 epochs, mean 0.23, last 0.30")
    assert lines[3] == "per epoch:"
    assert lines[6] == "  epoch   2  select    p=0.200  focus=0.000  removed by the focus filter (focus 0: no positive evidence)"
    assert "not a training record" in history_text(tmp_path, "t9")
    with pytest.raises(KeyError, match="not a training record"):
        record_history(tmp_path, "t9")


def test_explain_history_only_on_the_command_line(tmp_path, capsys):
    from erts.cli.main import main

    make_history_run(tmp_path)
    assert main(["explain", str(tmp_path), "--record", "r2", "--history-only"]) == 0
    out = capsys.readouterr().out
    assert "ground truth: clean (true_class=N)" in out
    # r2: kept in every epoch, focus 0.8, 0.6, 0.7
    assert "updated in 5 of 5 epochs; dropped by the PDD rule in 0; removed by the focus filter in 0; rescued in 0; " \
           "focus scored in 3 epochs, mean 0.70, last 0.70" in out
    assert out.count("kept by the focus filter") == 3


def test_end_to_end_benchmark_summary_compares_erts_with_its_rule():
    e2e = load_benchmark("end_to_end")
    rows = []
    f1 = {"full": [0.70, 0.72, 0.71], "dbpd": [0.60, 0.64, 0.61], "erts-dbpd": [0.62, 0.65, 0.65],
          "smrd": [0.66, 0.66, 0.69]}
    for m, vals in f1.items():
        for seed, v in enumerate(vals):
            rows.append({"run": f"{m}-{seed}", "dataset": "d", "model": "m", "method": m, "seed": seed,
                         "test_macro_f1": v, "effective_epochs": 3.0, "seconds_scoring": 1.0, "seconds_gradcam": 0.0,
                         "seconds_update": 4.0, "seconds_total": 6.0})
    lines = e2e.summary_lines(pd.DataFrame(rows), list(f1), "t")
    i = lines.index("ERTS against the rule it filters (paired by seed; Holm over these rows only, not with the rows above):")
    assert len(lines) == i + 2  # smrd has no erts-smrd: one comparison
    # d = 0.02, 0.01, 0.04: mean 0.0233, sd 0.0152753, sem 0.0088192, t 2.6458, 2 dof -> p 0.1181
    assert lines[i + 1].startswith("  erts-dbpd  vs dbpd     +0.0233 [")
    assert lines[i + 1].endswith("3 pairs, p=0.118, p(Holm)=0.118")


def test_run_report_shows_undefined_f1_as_na(tmp_path):
    run = tmp_path / "r"
    make_run(run, method="full", seed=0, f1=0.65)
    m = json.loads((run / "metrics.json").read_text())
    m["test"]["per_class_f1"] = {"NORM": 0.7, "MI": float("nan"), "STTC": 0.6}  # no MI record in the test split
    (run / "metrics.json").write_text(json.dumps(m))
    html = build_report(run, out_dir=tmp_path / "out", n_boot=50)[0].read_text()
    cells = {r["class"]: r["test F1"] for r in table_dicts(html, "per_class")}
    assert cells == {"NORM": "0.7000", "MI": "n/a", "STTC": "0.6000"}
    assert "MI has no record in the test split" in html


def test_sweep_report_pairs_each_method_with_its_equal_budget_controls(tmp_path):
    """dbpd and its controls (full and random at dbpd's own effective epochs, per seed): the report labels
    the controls full@dbpd / random@dbpd, shows them over their seeds, and tests dbpd against each."""
    from scipy import stats as sps

    from erts.train.sweep import run_row

    runs = tmp_path / "ctl" / "runs"
    f1 = {"full": [0.80, 0.82, 0.81], "dbpd": [0.78, 0.80, 0.79], "full@dbpd": [0.79, 0.80, 0.81],
          "random@dbpd": [0.70, 0.74, 0.72]}
    rows = []
    for seed in range(3):
        for m in ("full", "dbpd"):
            make_run(runs / f"{m}-s{seed}", method=m, seed=seed, f1=f1[m][seed])
            rows.append(run_row(runs / f"{m}-s{seed}", ["dataset", "model", "method", "budget"]))
        ee = json.loads((runs / f"dbpd-s{seed}" / "metrics.json").read_text())["cost"]["effective_epochs"]
        for c in ("full", "random"):
            d = runs / f"{c}-budget-s{seed}"
            make_run(d, method=c, seed=seed, f1=f1[f"{c}@dbpd"][seed], config={"budget": round(ee / 6, 2)})
            rows.append(run_row(d, ["dataset", "model", "method", "budget"]))
    pd.DataFrame(rows).to_csv(tmp_path / "ctl" / "results.csv", index=False)
    html_path, md_path = build_report(tmp_path / "ctl", out_dir=tmp_path / "out", warn=None)
    html = html_path.read_text()
    results = {r["method"]: r for r in table_dicts(html, "results")}
    assert set(results) == {"full", "dbpd", "full@dbpd", "random@dbpd"}
    assert results["random@dbpd"]["n seeds"] == "3" and results["random@dbpd"]["test macro-F1 (mean)"] == "0.7200"
    table = {(r["method"], r["against"]): r for r in table_dicts(html, "equal_budget")}
    assert set(table) == {("dbpd", "full@dbpd"), ("dbpd", "random@dbpd")}
    for c in ("full@dbpd", "random@dbpd"):
        d = np.array(f1["dbpd"]) - np.array(f1[c])
        assert table[("dbpd", c)]["Δ macro-F1 (mean)"] == f"{d.mean():.4f}"
        assert table[("dbpd", c)]["p (paired t)"] == f"{sps.ttest_rel(f1['dbpd'], f1[c]).pvalue:.3f}"
    # the controls are not compared with full in the baseline family
    assert {r["method"] for r in table_dicts(html, "comparisons")} == {"dbpd"}


def test_sweep_report_compares_the_chosen_metric_auroc_for_multilabel_runs(tmp_path, capsys):
    """Multi-label runs (PTB-XL) are compared by test macro-AUROC unless --metric says otherwise; the
    table, the paired differences and the warnings all name it, and its numbers are the AUROCs'."""
    from erts.cli.main import main

    auroc = {("full", 0): 0.930, ("full", 1): 0.932, ("full", 2): 0.929,
             ("dbpd", 0): 0.921, ("dbpd", 1): 0.925, ("dbpd", 2): 0.920}
    grid = Grid(name="ml", out_dir=str(tmp_path), base={"epochs": 6}, grid={"method": ["full", "dbpd"], "seed": [0, 1, 2]})
    runs = expand(grid)
    for r in runs:
        m, s = r.values["method"], r.values["seed"]
        make_run(r.run_dir, method=m, seed=s, f1=F1[m, s])
        metrics = json.loads((r.run_dir / "metrics.json").read_text())
        metrics["multilabel"] = True
        metrics["test"]["macro_auroc"] = auroc[m, s]
        (r.run_dir / "metrics.json").write_text(json.dumps(metrics))
    collect_results(grid, runs)
    assert main(["report", str(grid.sweep_dir), "--n-boot", "50", "--examples", "0"]) == 0
    html = (grid.sweep_dir / "report.html").read_text()
    md = (grid.sweep_dir / "report.md").read_text()
    res = {r["method"]: r for r in table_dicts(html, "results")}
    assert float(res["full"]["test macro-AUROC (mean)"]) == pytest.approx(np.mean([0.930, 0.932, 0.929]), abs=1e-4)
    assert float(res["dbpd"]["test macro-F1"]) == pytest.approx(np.mean([F1["dbpd", s] for s in range(3)]), abs=1e-4)
    diff = np.mean([auroc["dbpd", s] - auroc["full", s] for s in range(3)])
    comp = table_dicts(html, "comparisons")[0]
    assert float(comp["Δ macro-AUROC (mean)"]) == pytest.approx(diff, abs=1e-4)
    assert "Compared metric: test macro-AUROC" in md and "Mean paired difference in test macro-AUROC against full" in md
    # the same sweep by macro-F1 when asked
    assert main(["report", str(grid.sweep_dir), "--n-boot", "50", "--examples", "0", "--metric", "test_macro_f1"]) == 0
    comp = table_dicts((grid.sweep_dir / "report.html").read_text(), "comparisons")[0]
    assert float(comp["Δ macro-F1 (mean)"]) == pytest.approx(np.mean([F1["dbpd", s] - F1["full", s] for s in range(3)]),
                                                              abs=1e-4)
    assert main(["report", str(grid.sweep_dir), "--metric", "test_nonsense"]) != 0
    assert "no column 'test_nonsense'" in capsys.readouterr().err


def test_epochs_on_shared_cores_are_found_and_warned_about(tmp_path):
    """An epoch alone on its cores uses about all of them (CPU time ~ wall clock x threads); one that
    shared them gets less. The report names the runs where that was more than a tenth of the epochs."""
    from erts.report.machine import paused_epochs, shared_epochs, shared_warning

    run = tmp_path / "r"
    make_run(run, method="full", seed=0, f1=0.7, epochs=10, config={"num_threads": 2})
    log = pd.read_csv(run / "log.csv")
    # shared epochs take longer and burn more CPU time for the same work (waiting threads spin)
    log["seconds_epoch"] = [10.0, 10.0, 10.0, 40.0, 25.0, 10.0, 10.0, 10.0, 30.0, 10.0]
    log["cpu_seconds_epoch"] = [19.8, 20.0, 19.5, 36.0, 30.0, 16.5, 19.9, 20.1, 33.0, 19.0]  # 0.45, 0.6, 0.55 of 2
    log.to_csv(run / "log.csv", index=False)
    n, total, overall = shared_epochs(run)
    assert (n, total) == (3, 10) and overall == pytest.approx(233.8 / 330)
    assert paused_epochs(run) == 0  # 36, 30, 33 CPU s against a median of 19.8: contention, not a pause
    w = shared_warning("full", [run])
    assert w is not None and "r (3 of 10 epochs; 71% of wall clock x threads over the run)" in w
    html, md = build_report(run, out_dir=tmp_path / "shared", n_boot=50, examples=0, warn=None)
    assert "Other work shared the cores during this run: r (3 of 10 epochs;" in md.read_text()
    log["seconds_epoch"] = 10.0
    log["cpu_seconds_epoch"] = 19.0
    log.to_csv(run / "log.csv", index=False)
    assert shared_epochs(run)[:2] == (0, 10) and shared_warning("full", [run]) is None
    log.loc[4, "seconds_epoch"] = 300.0  # one long stall (a paused run): one epoch, most of the wall clock
    log.to_csv(run / "log.csv", index=False)
    assert shared_epochs(run)[:2] == (1, 10) and paused_epochs(run) == 1  # its CPU time: the others' 19
    w = shared_warning("full", [run])
    assert w.startswith("Paused or stalled: full: r (1 of 10 epochs; 24% of wall clock") and "CPU times do not" in w
    log.loc[4, "seconds_epoch"] = 10.0
    log.to_csv(run / "log.csv", index=False)
    # threads unknown (torch's default): no claim either way
    make_run(tmp_path / "d", method="full", seed=0, f1=0.7, epochs=3)
    assert shared_epochs(tmp_path / "d")[:2] == (0, 0)
    html, md = build_report(run, out_dir=tmp_path / "rep", n_boot=50, examples=0, warn=None)
    assert "shared the cores" not in md.read_text()


def test_end_to_end_results_list_every_finished_control_also_mid_sweep(tmp_path):
    """A running sweep's results.csv is rewritten by each run_sweep call with that grid's runs only (a
    new seed's grid drops the last seed's controls); the summary reads the run folders instead."""
    e2e = load_benchmark("end_to_end")
    grid = Grid(name="e2e", out_dir=str(tmp_path), base={"epochs": 6}, grid={"seed": [0, 1], "method": ["full", "dbpd"]})
    for r in expand(grid):
        if r.values["seed"] == 0 or r.values["method"] == "full":  # seed 1's dbpd still running
            make_run(r.run_dir, method=r.values["method"], seed=r.values["seed"], f1=0.7)
    for method in ("full", "random"):
        make_run(grid.sweep_dir / "runs" / f"seed=0,method={method},budget=0.61", method=method, seed=0, f1=0.6,
                 config={"budget": 0.61})
    (grid.sweep_dir / "runs" / "seed=0,method=random,budget=0.64").mkdir()  # started, not finished
    collect_results(grid, expand(grid))  # what run_sweep leaves: the grid's own runs
    assert len(pd.read_csv(grid.sweep_dir / "results.csv")) == 3
    df = pd.read_csv(e2e.write_all_results(grid))
    assert len(df) == 5 and sorted(df["budget"].dropna()) == [0.61, 0.61]
    assert set(df.loc[df["budget"].notna(), "method"]) == {"full", "random"}


def test_cpu_ratio_at_one_speed_cancels_a_machine_that_changed_speed(tmp_path):
    """The same work costs more CPU time when the host is slower. Each run's validation pass (the same
    work in every run of the sweep) measures the machine's speed during it; scaling each run's CPU time
    by it recovers the methods' true ratio (dbpd does 60 % of full's work here), which the raw ratio of
    CPU times misses, and the report says that the machine changed speed."""
    from erts.report.machine import normalise_cpu, speed_warning, with_probe
    from erts.train.sweep import run_row

    work = {"full": 100.0, "dbpd": 60.0}  # CPU seconds at speed 1
    speed = {("full", 0): 1.0, ("dbpd", 0): 1.0, ("full", 1): 1.0, ("dbpd", 1): 3.0, ("full", 2): 2.0, ("dbpd", 2): 1.0}
    runs, rows = tmp_path / "sw" / "runs", []
    for (m, seed), s in speed.items():
        d = runs / f"{m}-s{seed}"
        make_run(d, method=m, seed=seed, f1=0.7)
        log = pd.read_csv(d / "log.csv")
        log["cpu_seconds_eval"] = s * np.array([0.9, 1.1, 1.0, 1.0, 0.95, 1.05])  # mean s: per-epoch noise
        log.to_csv(d / "log.csv", index=False)
        metrics = json.loads((d / "metrics.json").read_text())
        metrics["cost"]["cpu_seconds"] = {"update": s * work[m] - 1.0, "other": 1.0, "total": s * work[m]}
        (d / "metrics.json").write_text(json.dumps(metrics))
        rows.append(run_row(d, ["dataset", "model", "method"]))
    results = pd.DataFrame(rows)
    results.to_csv(tmp_path / "sw" / "results.csv", index=False)
    raw = results.groupby("method")["cpu_seconds_total"].mean()
    assert raw["dbpd"] / raw["full"] == pytest.approx(300 / 400)  # (60 + 180 + 60) / (100 + 100 + 200)

    probed = with_probe(results, runs)
    assert probed.set_index("run")["eval_cpu_per_epoch"].to_dict() == pytest.approx(
        {f"{m}-s{seed}": s for (m, seed), s in speed.items()})
    norm = normalise_cpu(probed, ["dataset", "model"]).groupby("method")["cpu_seconds_total_norm"].mean()
    assert norm["dbpd"] / norm["full"] == pytest.approx(0.6)
    assert "1.00-3.00 CPU s per validation pass (200% apart; slowest dbpd-s1)" in speed_warning(probed, ["model"])
    assert speed_warning(probed[probed["seed"] == 0], ["model"]) is None

    html_path, md_path = build_report(tmp_path / "sw", out_dir=tmp_path / "out", warn=None)
    table = {r["method"]: r for r in table_dicts(html_path.read_text(), "results")}
    assert table["dbpd"]["CPU / full at one speed"] == "0.60" and table["dbpd"]["CPU / full"] == "0.75"
    assert "The machine changed speed between runs" in md_path.read_text()

    e2e = load_benchmark("end_to_end")
    df = normalise_cpu(probed.assign(cpu_seconds_train=probed["cpu_seconds_total"]), ["dataset", "model"])
    lines = e2e.summary_lines(df, ["full", "dbpd"], "t")
    assert lines[3].startswith("dbpd") and lines[3].endswith("x0.600")
    assert any(line.startswith("The machine changed speed between runs") for line in lines)


def test_end_to_end_summary_mid_sweep_shows_what_finished_with_f1_beside_auroc():
    """--summary-only while a sweep runs: methods without a finished run are left out (not a KeyError),
    and a sweep compared by macro-AUROC (PTB-XL) shows macro-F1 beside it."""
    e2e = load_benchmark("end_to_end")
    row = {"run": "full-0", "dataset": "ptbxl", "model": "resnet1d_wang", "method": "full", "seed": 0,
           "test_macro_auroc": 0.9317, "test_macro_f1": 0.7586, "effective_epochs": 30.0, "seconds_update": 10.0,
           "seconds_total": 12.0}
    lines = e2e.summary_lines(pd.DataFrame([row]), ["full", "dbpd", "erts-dbpd"], "t", "test_macro_auroc")
    assert "macro-F1" in lines[1] and lines[2].startswith("full       0.9317 [nan, nan]   0.7586  30.00")
    assert not any(line.startswith("dbpd") for line in lines)
    assert "  none finished yet (or --controls none)" in lines
    only_dbpd = e2e.summary_lines(pd.DataFrame([{**row, "method": "dbpd"}]), ["full", "dbpd"], "t")
    assert only_dbpd == ["t", "  no finished full run yet: nothing to compare with"]


def test_end_to_end_pairs_each_comparison_over_test_records_and_seeds(tmp_path):
    """The record-paired section: every family, each row's difference the mean over seeds of the
    per-seed macro-AUROC differences (scikit-learn, computed here), the controls at the cheapest
    method's budget paired with every method."""
    from sklearn.metrics import roc_auc_score

    e2e = load_benchmark("end_to_end")
    rng = np.random.default_rng(0)
    y = (rng.random((300, 3)) < 0.3).astype(np.int8)
    quality = {"full": 1.0, "dbpd": 0.8, "erts-dbpd": 0.7, "full@": 0.9, "random@": 0.85}
    ee = {"full": 30.0, "dbpd": 19.0, "erts-dbpd": 18.6, "full@": 18.6, "random@": 18.6}
    rows, probs = [], {}
    for m in quality:
        for seed in range(3):
            p = 1 / (1 + np.exp(-(quality[m] * (2 * y - 1) + rng.normal(0, 1, y.shape))))
            run = tmp_path / "runs" / f"{m}{seed}"
            run.mkdir(parents=True)
            np.savez(run / "predictions_test.npz", y_true=y, probs=p, thresholds=np.full(3, 0.5))
            probs[m, seed] = p
            rows.append({"run": run.name, "run_dir": str(run), "dataset": "ptbxl", "model": "m",
                         "method": m.rstrip("@"), "budget": 0.62 if m.endswith("@") else np.nan, "seed": seed,
                         "epochs": 30, "effective_epochs": ee[m], "test_macro_auroc": roc_auc_score(y, p)})
    lines = e2e.record_paired_lines(pd.DataFrame(rows), ["full", "dbpd", "erts-dbpd"], "test_macro_auroc", n_boot=200)
    assert lines[0].startswith("Paired over test records and seeds (macro_auroc")
    fam = {line.strip().rstrip(":"): i for i, line in enumerate(lines) if line.endswith(":") and line.startswith("  ")}
    assert list(fam) == ["against full", "against the equal-budget controls", "ERTS against its rule"]

    def mean_diff(a: str, b: str) -> float:
        return np.mean([roc_auc_score(y, probs[a, s]) - roc_auc_score(y, probs[b, s]) for s in range(3)])

    row = {tuple(line.split()[:3]): line for line in lines if line.startswith("    ")}
    assert f"{mean_diff('dbpd', 'full'):+.4f}" in row["dbpd", "vs", "full"]
    assert f"{mean_diff('erts-dbpd', 'dbpd'):+.4f}" in row["erts-dbpd", "vs", "dbpd"]
    assert f"{mean_diff('dbpd', 'random@'):+.4f}" in row["dbpd", "vs", "random@cheapest"]
    assert all(", 3 seeds," in line for line in row.values()) and len(row) == 2 + 4 + 1
    assert e2e.record_paired_lines(pd.DataFrame(rows), ["full"], "test_accuracy") == []
    only_full = pd.DataFrame([r for r in rows if r["method"] == "full"])  # mid-sweep: nothing to pair yet
    assert e2e.record_paired_lines(only_full, ["full", "dbpd"], "test_macro_auroc", n_boot=50)[1:] == [
        "  none yet: a pair needs both configurations finished in a seed"]


def test_running_the_controls_leaves_a_results_csv_with_every_finished_run(tmp_path):
    """run_sweep rewrites results.csv with its own grid's runs: after the controls it held them alone, and
    publishing such a sweep reported on the controls only. run_budget_controls rewrites it whole."""
    e2e = load_benchmark("end_to_end")
    grid = Grid(name="e2e", out_dir=str(tmp_path), base={"epochs": 6}, grid={"seed": [0], "method": ["full", "dbpd"]})
    for r in expand(grid):
        make_run(r.run_dir, method=r.values["method"], seed=0, f1=0.7)
    for method in ("full", "random"):  # finished already: run_sweep skips them and writes results.csv of its grid
        make_run(grid.sweep_dir / "runs" / f"seed=0,method={method},budget=0.61", method=method, seed=0, f1=0.6,
                 config={"budget": 0.61})
    e2e.run_budget_controls(grid, 0, [0.61], workers=1)
    assert sorted(pd.read_csv(grid.sweep_dir / "results.csv")["run"]) == [
        "seed=0,method=dbpd", "seed=0,method=full", "seed=0,method=full,budget=0.61",
        "seed=0,method=random,budget=0.61"]


def test_markdown_figures_folder_holds_only_what_the_latest_render_draws(tmp_path):
    import matplotlib.pyplot as plt

    from erts.report.format import Report, Section
    from erts.report.render import render_markdown

    def report(*names):
        s = Section("figures")
        for name in names:
            fig, ax = plt.subplots()
            ax.plot([0, 1])
            s.figure(name, fig, name)
        return Report("t", "intro", [s])

    files = tmp_path / "report_files"
    render_markdown(report("suspect_001_a", "curves"), files)
    (files / "notes.txt").write_text("a user's file")  # not a figure: left alone
    md = render_markdown(report("suspect_001_b", "curves"), files)  # e.g. the audit ranked again
    assert sorted(p.name for p in files.glob("*.png")) == ["curves.png", "suspect_001_b.png"]
    assert "report_files/suspect_001_b.png" in md and (files / "notes.txt").exists()
