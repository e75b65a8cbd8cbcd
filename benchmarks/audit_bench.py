"""Audit benchmark: how well each `erts audit` signal finds the records known to be wrong.

CinC 2017 (default): 100 Hz, 30-s records, random 5-s training windows, resnet18_1d, trained on the
labels first released (labels=original-train); ground truth = the 208 training records whose label
changed in the current release. synthetic: the built-in set, ground truth = its corrupted records.
Each seed is one `erts audit` (3-fold cross-training, --epochs per fold); per seed the signals x
AUROC / AP / top-5 % precision table with bootstrap intervals is written, then the mean over seeds,
and with several seeds the table of each signal averaged per record over the seeds (seed_average.md;
`--average-only` makes it from the audits already in --out).
Resumable: a finished fold is reused (its dynamics.npz), so rerun the same command to continue.

    nice -n 19 python benchmarks/audit_bench.py --out ~/erts-audit                    # CinC 2017, seed 0
    nice -n 19 python benchmarks/audit_bench.py --out ~/erts-audit --seeds 0,1,2
    nice -n 19 python benchmarks/audit_bench.py --dataset synthetic --out ~/erts-audit
    python benchmarks/audit_bench.py --out ~/erts-audit --seeds 0,1,2 --average-only
    python benchmarks/audit_bench.py --evaluate benchmarks/measured/audit-cinc2017-sym20/audit.csv

``--evaluate`` scores a published ranking (an audit.csv with its ``wrong`` column) again with this
checkout's metrics, nothing retrained, into evaluated.md beside it: a metric added later (the
label-matched AUROC) reaches the published audits.
"""
from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {
    "cinc2017": {"dataset": "cinc2017", "root": str(ROOT.parent / "shared/data/training2017.zip"), "fs": 100.0,
                 "length_s": 30.0, "crop_s": 5.0, "crop": "random", "labels": "original-train"},
    "synthetic": {"dataset": "synthetic", "crop_s": 2.5, "crop": "random"},
}
COMMON = {"model": "resnet18_1d", "batch_size": 64, "lr": 1e-3, "num_threads": 1, "quiet": True}
EPOCHS = {"cinc2017": 12, "synthetic": 8}


# the variants of the combined score tried on CinC 2017 seed 0 (docs/audit.md, "How it was chosen")
VARIANTS = {
    "v1: OOF, AUM, mass, length (fixed before evaluation)": ("OOF self-confidence", "AUM", "concentration mass, high",
                                                             "record length (short)"),
    "OOF, mass, length": ("OOF self-confidence", "concentration mass, high", "record length (short)"),
    "shipped: OOF, p(noise), mass, length": ("OOF self-confidence", "OOF p(noise class)", "concentration mass, high",
                                             "record length (short)"),
    "p(noise) alone": ("OOF p(noise class)",),
}


def within_label(table: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    """The variant that ranks each signal within the records of each given label."""
    from erts.audit import signals as sig

    out = np.zeros(len(table))
    for name in names:
        score = sig.by_name(name).score(table)
        for idx in table.groupby("given_label").indices.values():
            out[idx] += sig.rank01(score[idx]) / len(names)
    return out


def halves(table: pd.DataFrame) -> pd.DataFrame:
    """AUROC and top-5 % precision of each variant on two halves of the records (split by a CRC32
    of the record id): one half to choose on, the other to see how much the choice flatters."""
    from erts.audit import signals as sig
    from erts.audit.metrics import ranking_metrics

    half = np.array([zlib.crc32(r.encode()) % 2 for r in table["record_id"]])
    truth = table["wrong"].to_numpy(bool)
    scores = {k: sig.combined_score(table, v) for k, v in VARIANTS.items()}
    scores["OOF, mass, length, ranked within each given label"] = within_label(
        table, ("OOF self-confidence", "concentration mass, high", "record length (short)"))
    rows = []
    for name, s in scores.items():
        row = {"variant": name}
        for h in (0, 1):
            m = ranking_metrics(truth[half == h], s[half == h])
            row[f"half {h} AUROC"], row[f"half {h} top-5%"] = round(m["auroc"], 3), round(m["top_precision"], 3)
        rows.append(row)
    return pd.DataFrame(rows)


def seed_average(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """One audit table from several seeds' audits of the same records: each signal averaged per
    record over the seeds (an ensemble of the fold models, at the seeds' summed cost), the combined
    scores rebuilt from the averages. Answers whether retraining the folds with other seeds pays."""
    from erts.audit import signals as sig

    aligned = [t.sort_values("index", kind="stable").reset_index(drop=True) for t in tables]
    first = aligned[0]
    if any(not np.array_equal(t["record_id"], first["record_id"]) for t in aligned[1:]):
        raise ValueError("seed_average: the audits cover different records")
    out = first[["record_id", "index", "given_label", "wrong"]].copy()
    for col in dict.fromkeys(s.column for s in sig.SIGNALS):
        if col in first:
            out[col] = np.mean([t[col].to_numpy(float) for t in aligned], axis=0)
    out["combined"] = sig.combined_score(out)
    out["combined_v1"] = sig.combined_score(out, sig.COMBINED_V1)
    return out


def write_seed_average(csvs: list[Path], measured: Path, label: str, n_boot: int) -> None:
    """seed_average.md from the seeds' audit.csv files (the audits themselves are not rerun)."""
    from erts.audit.core import evaluate
    from erts.audit.metrics import metrics_markdown
    from erts.train import runio

    averaged = evaluate(seed_average([pd.read_csv(p) for p in csvs]), n_boot=n_boot)
    runio.write_text(measured / "seed_average.md", f"# erts audit, {label}: each signal averaged per record over "
                     f"the seeds ({len(csvs)}x the cost of one audit)\n\n" + metrics_markdown(averaged, "wrong"))
    print((measured / "seed_average.md").read_text())


def write_evaluated(csv: Path, n_boot: int) -> None:
    """evaluated.md beside a published audit.csv: its ranking scored with this checkout's metrics."""
    from erts.audit.core import evaluate
    from erts.audit.metrics import metrics_markdown
    from erts.train import runio

    table = pd.read_csv(csv, dtype={"record_id": str})
    if "wrong" not in table.columns:
        raise SystemExit(f"{csv}: no 'wrong' column (ground truth), nothing to evaluate against")
    path = csv.parent / "evaluated.md"
    runio.write_text(path, f"# {csv.name} scored again with the current metrics (nothing retrained)\n\n"
                     f"{runio.provenance().get('git_commit') or 'erts'}, {n_boot} bootstrap resamples.\n\n"
                     + metrics_markdown(evaluate(table, n_boot=n_boot), "wrong"))
    print(path.read_text())


def summarise(per_seed: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds of each metric and interval bound (one seed: that seed's values)."""
    cols = [c for c in per_seed.columns if c.startswith(("auroc", "ap", "top_precision"))]
    g = per_seed.groupby(["signal", "family", "suspicious"], sort=False)
    out = g[cols].mean().reset_index()
    out["seeds"] = g.size().to_numpy()
    return out


def main() -> None:
    from erts.audit.core import audit
    from erts.audit.metrics import metrics_markdown
    from erts.train import runio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="extra erts config key=value")
    ap.add_argument("--dataset", default="cinc2017", choices=sorted(DATASETS))
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--epochs", type=int, help="epochs per fold (default: 12 CinC, 8 synthetic)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", default=str(Path.home() / "erts-audit"), help="where the audits (fold models) go")
    ap.add_argument("--measured", help="where the tables go (default benchmarks/measured/audit-<dataset>)")
    ap.add_argument("--average-only", action="store_true",
                    help="only seed_average.md, from the seeds' audit.csv already in --out (nothing retrained)")
    ap.add_argument("--evaluate", metavar="AUDIT_CSV",
                    help="only score this published audit.csv again (evaluated.md beside it; nothing retrained)")
    args = ap.parse_args()
    if args.evaluate:
        write_evaluated(Path(args.evaluate), args.n_boot)
        return
    settings = {**DATASETS[args.dataset], **COMMON,
                **dict(o.split("=", 1) for o in args.overrides)}
    epochs = args.epochs or EPOCHS[args.dataset]
    measured = Path(args.measured or ROOT / "benchmarks" / "measured" / f"audit-{args.dataset}")
    seeds = [int(s) for s in args.seeds.split(",")]
    outs = [Path(args.out) / f"audit-{args.dataset}-e{epochs}-s{seed}" for seed in seeds]
    label = f"{args.dataset}, seeds {args.seeds}, {args.folds} folds x {epochs} epochs"
    if args.average_only:
        write_seed_average([o / "audit.csv" for o in outs], measured, label, args.n_boot)
        return
    frames = []
    for seed, out in zip(seeds, outs):
        res = audit(None, {**settings, "seed": seed, "epochs": epochs}, folds=args.folds, out=out, n_boot=args.n_boot)
        m = res.metrics.assign(seed=seed)
        runio.write_text(measured / f"seed{seed}.md", f"# erts audit, {args.dataset}, seed {seed}, {args.folds} folds x "
                         f"{epochs} epochs\n\n" + metrics_markdown(res.metrics, "wrong"))
        frames.append(m)
        if args.dataset == "cinc2017":
            from erts.report.build import md_table

            runio.write_text(measured / f"variants_seed{seed}.md", "# Variants of the combined score, two halves of "
                             f"the records, seed {seed}\n\n" + md_table(halves(res.table)) + "\n")
        print(f"seed {seed}: {res.csv}", flush=True)
    per_seed = pd.concat(frames, ignore_index=True)
    runio.write_text(measured / "per_seed.csv", per_seed.to_csv(index=False, float_format="%.4f"))
    mean = summarise(per_seed)
    runio.write_text(measured / "summary.csv", mean.to_csv(index=False, float_format="%.4f"))
    mean["auroc_length_matched"] = per_seed.groupby("signal", sort=False)["auroc_length_matched"].mean().to_numpy()
    for col in ("base_rate", "n_wrong", "n"):
        mean[col] = per_seed[col].iloc[0]
    runio.write_text(measured / "summary.md", f"# erts audit, {args.dataset}, seeds {args.seeds} (mean over seeds), "
                     f"{args.folds} folds x {epochs} epochs\n\nEach value and each interval bound is the mean of "
                     "the seeds' (bootstrap over records, per seed: seed<N>.md).\n\n" + metrics_markdown(mean, "wrong"))
    print((measured / "summary.md").read_text())
    if len(seeds) > 1:
        write_seed_average([o / "audit.csv" for o in outs], measured, label, args.n_boot)


if __name__ == "__main__":
    main()
