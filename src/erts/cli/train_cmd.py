"""`erts train` and `erts presets`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: resnet18_1d on the built-in synthetic dataset)",
                       description="Train one run. Settings are key=value pairs (flat, e.g. method=erts-dbpd phi=0.7, "
                                   "or dotted, e.g. selection.phi=0.7); --config reads a YAML file first. "
                                   "Run `erts train --keys` to list every key with its default.")
    p.add_argument("overrides", nargs="*", help="key=value settings")
    p.add_argument("--config", help="YAML config file (nested sections or flat keys)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last completed epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keys", action="store_true", help="list every config key with its default and exit")
    p.set_defaults(func=run_train)
    pr = sub.add_parser("presets", help="list the named experiment presets (erts train preset=NAME)")
    pr.add_argument("name", nargs="?", help="show one preset's settings")
    pr.set_defaults(func=run_presets)


def print_keys() -> None:
    import dataclasses

    from erts.config import Config

    for section in dataclasses.fields(Config):
        print(f"[{section.name}]")
        for f in dataclasses.fields(section.default_factory()):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            print(f"  {f.name} = {default!r}")


def format_summary(metrics: dict, run_dir: Path) -> str:
    t, c = metrics["test"], metrics["cost"]
    sec = c["seconds"]
    lines = [
        f"run        {run_dir}",
        f"method     {metrics['method']} ({metrics['granularity']}), best epoch {metrics['best_epoch']} by val macro-F1",
        f"test       macro-F1 {t['macro_f1']:.4f}  accuracy {t['accuracy']:.4f}  macro-AUROC {t['macro_auroc']:.4f}"
        + (f"  F1(N,A,O) {t['f1_nao']:.4f}" if "f1_nao" in t else ""),
        "per-class  " + "  ".join(f"{k} {v:.3f}" for k, v in t["per_class_f1"].items()),
        f"cost       effective epochs {c['effective_epochs']:.2f} of {metrics['epochs']}",
        f"seconds    scoring {sec['scoring']:.1f}  gradcam {sec['gradcam']:.1f}  update {sec['update']:.1f}  "
        f"eval {sec['eval']:.1f}  total {sec['total']:.1f}",
        f"samples    fwd scoring {c['sample_forwards']['scoring']:.0f}  fwd/bwd gradcam "
        f"{c['sample_forwards']['gradcam']:.0f}/{c['sample_backwards']['gradcam']:.0f}  fwd/bwd update "
        f"{c['sample_forwards']['update']:.0f}/{c['sample_backwards']['update']:.0f}",
        f"FLOPs      scoring {c['flops']['scoring']:.3g}  gradcam {c['flops']['gradcam']:.3g}  "
        f"update {c['flops']['update']:.3g}  total {c['flops']['total']:.3g}",
    ]
    return "\n".join(lines)


def focus_filter_summary(run_dir: Path) -> str:
    """Where the dataset knows which records are corrupted: how often the focus filter
    dropped corrupted candidates versus clean ones (empty when it never ran)."""
    from erts.report.selection import (filter_by_truth, focus_candidates, load_selection_log,
                                       load_train_records)

    sel = load_selection_log(run_dir)
    if sel.empty or sel["focus"].isna().all():
        return ""
    table = filter_by_truth(focus_candidates(sel, load_train_records(run_dir)))
    if table.empty:
        return ""
    rows = "  ".join(f"{r.truth} {r.filter_drop:.1%} of {r.candidates}" for r in table.itertuples())
    return f"focus filter dropped (share of candidates, by ground truth): {rows}"


def run_train(args: argparse.Namespace) -> int:
    from erts.config import load_config
    from erts.train.loop import resume, run_dir_for, train

    if args.keys:
        print_keys()
        return 0
    if args.quiet:
        os.environ["ERTS_QUIET"] = "1"
    if args.resume:
        if args.overrides or args.config:
            print("erts: --resume continues a run with its saved config; drop the other settings", file=sys.stderr)
            return 2
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").exists():
            print(f"erts: {run_dir} is not a run directory (no config.yaml)", file=sys.stderr)
            return 2
        metrics = resume(run_dir, progress=False if args.quiet else None)
    else:
        overrides = list(args.overrides) + (["quiet=true"] if args.quiet else [])
        cfg = load_config(args.config, overrides)
        if cfg.train.quiet:
            os.environ["ERTS_QUIET"] = "1"  # also silences the dataset preparation bars
        run_dir = run_dir_for(cfg)
        try:
            metrics = train(cfg)
        except FileExistsError as e:
            print(f"erts: {e}", file=sys.stderr)
            return 2
    print(format_summary(metrics, run_dir))
    summary = focus_filter_summary(run_dir)
    if summary:
        print(summary)
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from erts.train.presets import PRESETS, get_preset

    if args.name:
        print(json.dumps(get_preset(args.name), indent=2))
        return 0
    for name, (desc, _) in PRESETS.items():
        print(f"{name:40s} {desc}")
    return 0
