"""`erts audit`: rank a run's (or a config's) training records by how likely their label is wrong."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="rank the training records most likely to be wrong (CSV + HTML page)",
                       description="Scores every training record of a run folder (its config.yaml) or of a config "
                                   "by k-fold cross-training: training dynamics (mean p, AUM, forgetting, EL2N), "
                                   "out-of-fold confidence (cleanlab), Grad-CAM focus and concentration, signal "
                                   "quality; ranks them by one fixed combined score (or one signal, --rank-by) "
                                   "and, where ground truth exists "
                                   "(CinC 2017 relabels, synthetic corruption, --truth), prints AUROC, AP and "
                                   "top-5 %% precision with bootstrap intervals.")
    p.add_argument("items", nargs="*", metavar="RUN|CONFIG.yaml|key=value",
                   help="a run folder or a config YAML (optional, first), then key=value settings "
                        "(epochs=N: epochs of each fold)")
    p.add_argument("--folds", type=int, default=3, help="k of the cross-training (default 3)")
    p.add_argument("--out", help="output folder (default: RUN/audit, or <out_dir>/audit-<dataset>-<model>-s<seed>)")
    p.add_argument("--truth", help="CSV of records known to be wrong (column record_id, optional column wrong)")
    p.add_argument("--top", type=int, default=12, help="suspects drawn on the HTML page (default 12)")
    p.add_argument("--noise-class", default="auto",
                   help="class meaning 'too noisy to classify': its out-of-fold probability is a signal "
                        "(default auto: the dataset's own, CinC 2017's ~; none: no such class)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the intervals (default 1000)")
    p.add_argument("--rank-by", default="combined", metavar="SIGNAL",
                   help="the ranking: combined (default: built for recordings that should have been the noise "
                        "class) or one signal column of audit.csv, e.g. p_oof for labels flipped between classes "
                        "(COLUMN:high or :low picks the suspicious end); the folds are reused, so re-ranking is cheap")
    p.set_defaults(func=run_audit)


def split_items(items: list[str]) -> tuple[str | None, list[str]]:
    """(run folder or config path, key=value settings): the first item is a path when it has no '='."""
    if items and "=" not in items[0]:
        return items[0], items[1:]
    return None, items


def taken_text(taken) -> str:
    """'A 251 of 516 (49 %), N ...' from ``taken_by_class``."""
    return ", ".join(f"{r.given_label} {r.taken} of {r.records} ({r.share:.0%})" for r in taken.itertuples())


def run_audit(args: argparse.Namespace) -> int:
    import numpy as np

    from erts.audit import signals as sig
    from erts.audit.core import audit, taken_by_class
    from erts.audit.metrics import metrics_view

    target, overrides = split_items(args.items)
    res = audit(target, overrides, folds=args.folds, out=args.out, truth=args.truth,
                top=args.top, n_boot=args.n_boot, noise_class=args.noise_class, rank_by=args.rank_by)
    columns = ["rank", "record_id", "given_label", "predicted_label", sig.ranking_signal(args.rank_by).column]
    head = res.table.head(10)[list(dict.fromkeys(columns + ["combined"]))]
    print(head.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if res.metrics is not None:
        m = res.metrics.iloc[0]
        print(f"\nground truth: {int(m.n_wrong)} of {int(m.n)} records (base rate {m.base_rate:.3f})")
        print(metrics_view(res.metrics).to_string(index=False))
    print(f"\nwrote {res.csv}\nwrote {res.html}")
    flagged = int(np.nansum(res.table["cleanlab_issue"]))
    if flagged:
        print(f"to train again without the top {flagged} (cleanlab's estimate of how many labels are wrong): "
              f"erts train <the same settings> exclude_records={res.csv} exclude_top={flagged}\n"
              f"  it would take, by given label: {taken_text(taken_by_class(res.table, flagged))}\n"
              "  measured on CinC 2017 with 20 % injected noise, it did not raise test F1 (ranked by p_oof: level "
              "with training on everything; by the combined score: lower, it took genuine records of the rarest "
              "class): read docs/audit.md, 'Train again without the suspects'")
    return 0
