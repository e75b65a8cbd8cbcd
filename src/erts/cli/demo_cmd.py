"""`erts demo`: the comparison the project exists for, on the built-in data, in a few minutes.

Trains ``full`` and ``erts-dbpd`` on the same synthetic records (10 % corrupted on
purpose), one after the other in this process, at the default schedule (warm-up,
select, ERTS and revision epochs in the published proportions of the epochs,
printed at the start of each run). Then prints one side-by-side table (test
macro-F1, effective epochs, wall clock, CPU time and FLOPs as ratios to full, and
what the focus filter removed of the corrupted and of the clean records) and
writes the HTML report of the two runs.

The demo folder is an ordinary sweep folder (grid.yaml, results.csv, runs/<run>/),
so ``erts report`` and ``erts sweep DIR/grid.yaml`` work on it; it is never
overwritten: each demo gets a new time-stamped folder, and ``--resume DIR``
finishes an interrupted one.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

# The settings of `make demo`'s runs (configs/demo.yaml holds the same, for `erts train --config`):
# sized to finish both runs and the report in about five minutes on 2 CPU cores (docs/training.md).
# One torch thread: on a busy 2-core machine an epoch of the demo took 16 s with one thread and 40-109 s
# with two (measured back to back); one thread also reached about the FLOP rate that two threads reach in
# benchmarks/README.md's idle measurement (74 against 80 GFLOP/s), so little is lost on an idle one.
DEMO: dict[str, object] = {
    "dataset": "synthetic", "n_records": 4000, "corrupt_frac": 0.1, "crop_s": 2.5, "crop": "random",
    "model": "resnet18_1d", "epochs": 8, "batch_size": 64, "lr": 0.002, "num_threads": 1,
}
METHODS = ["full", "erts-dbpd"]
BASELINE = "full"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train full and erts-dbpd on the built-in data, compare them, write the report",
                       description="Trains full and erts-dbpd on the built-in synthetic dataset (10% of the records "
                                   "corrupted on purpose) with the same settings and seed, prints a side-by-side "
                                   "table (test macro-F1, effective epochs, time and FLOPs against full, what the "
                                   "focus filter removed) and writes the HTML report. key=value settings change "
                                   "the demo's (e.g. n_records=600 epochs=4 for a quick look).")
    p.add_argument("overrides", nargs="*", help="key=value settings on top of the demo's (as for erts train)")
    p.add_argument("--config", help="YAML config file read before the key=value settings (default: the demo's)")
    p.add_argument("--out-dir", default="runs", help="where the demo folder goes (default: runs)")
    p.add_argument("--name", help="demo folder name (default: demo-<date>-<time>); an existing folder is refused")
    p.add_argument("--resume", metavar="DEMO_DIR", help="finish an interrupted demo: resume or start its missing runs")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated methods to compare (default: {','.join(METHODS)}; the first is the baseline "
                        "of the ratios)")
    p.add_argument("--no-report", action="store_true", help="print the table only, write no HTML report")
    p.add_argument("--quiet", action="store_true", help="no progress output while training")
    p.set_defaults(func=run_demo)


def demo_grid(args: argparse.Namespace):
    """The demo as a sweep grid: the demo settings (< --config < key=value) as base, the methods as the grid."""
    import yaml

    from erts.config import Config, apply_dict, parse_overrides
    from erts.errors import ConfigError
    from erts.train.sweep import Grid, load_grid

    if args.resume:
        if args.overrides or args.config or args.name or args.methods != ",".join(METHODS):
            raise ConfigError("--resume finishes a demo with its saved settings (grid.yaml); drop the other settings")
        d = Path(args.resume)
        if not (d / "grid.yaml").is_file():
            raise FileNotFoundError(f"--resume {d}: not a demo folder (no grid.yaml)")
        grid = load_grid(d / "grid.yaml")
        grid.out_dir, grid.name = str(d.parent), d.name  # wherever the folder is now
        return grid
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if len(methods) < 2 or len(set(methods)) != len(methods):
        raise ConfigError(f"--methods {args.methods!r}: give at least two different methods, the baseline first")
    base: dict[str, object] = dict(DEMO)
    if args.config:
        if not Path(args.config).is_file():
            raise FileNotFoundError(f"--config {args.config}: no such file")
        loaded = yaml.safe_load(Path(args.config).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{args.config}: expected a mapping of config keys")
        flat = {}
        for k, v in loaded.items():  # nested sections or flat keys, as erts train reads them
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        base.update(flat)
    base.update(parse_overrides(list(args.overrides)))
    base = {k.rsplit(".", 1)[-1]: v for k, v in base.items()}
    for key in ("method", "name", "out_dir"):
        if key in base:
            raise ConfigError(f"{key}= is set by erts demo (methods: --methods; folder: --name, --out-dir)")
    apply_dict(Config(), base)  # unknown keys and bad values fail here, before anything is written
    name = args.name or time.strftime("demo-%Y%m%d-%H%M%S")
    return Grid(name=name, out_dir=args.out_dir, workers=1, base=base, grid={"method": methods})


def run_demo(args: argparse.Namespace) -> int:
    import os

    import yaml

    from erts.train.sweep import collect_results, expand, run_state, validate_runs

    if args.quiet:
        os.environ["ERTS_QUIET"] = "1"
    grid = demo_grid(args)
    demo_dir = grid.sweep_dir
    if not args.resume and demo_dir.exists():
        raise FileExistsError(f"{demo_dir} already exists; erts demo never overwrites a demo: choose another "
                              f"--name, or finish it with `erts demo --resume {demo_dir}`")
    runs = expand(grid)
    validate_runs(runs)
    demo_dir.mkdir(parents=True, exist_ok=bool(args.resume))
    if not args.resume:
        (demo_dir / "grid.yaml").write_text(yaml.safe_dump(
            {"name": grid.name, "out_dir": grid.out_dir, "workers": 1, "base": grid.base, "grid": grid.grid},
            sort_keys=False))
    methods = list(grid.grid["method"])
    print(f"erts demo: {' vs '.join(methods)} on the same data and seed, one after the other; folder {demo_dir}",
          flush=True)
    t0 = time.perf_counter()
    for i, run in enumerate(runs, 1):
        state = run_state(run.run_dir)
        method = run.values["method"]
        if state == "done":
            print(f"\n[{i}/{len(runs)}] {method}: already finished", flush=True)
            continue
        print(f"\n[{i}/{len(runs)}] {method}" + (" (resumed)" if state == "resume" else ""), flush=True)
        code = _train_one(run, grid.base, state == "resume", args.quiet, demo_dir)
        if code:
            return code
    collect_results(grid, runs)
    print(f"\ntrained in {time.perf_counter() - t0:.0f} s\n")
    print(comparison_text(demo_dir, [r.run_dir for r in runs]))
    if not args.no_report:
        from erts.report.build import build_report

        html_path, _ = build_report(demo_dir, warn=None)
        print(f"\nreport: {html_path}")
    print(f"total {time.perf_counter() - t0:.0f} s; demo folder {demo_dir}")
    return 0


def _train_one(run, base: dict, resume: bool, quiet: bool, demo_dir: Path) -> int:
    """Trains (or resumes) one demo run in this process; on Ctrl-C / SIGTERM says how to finish the demo."""
    from erts.cli.train_cmd import _interruptible
    from erts.config import load_config
    from erts.train import loop

    # in this process: progress unless --quiet, and torch's own thread count unless the settings give one
    added = {"quiet"} | ({"num_threads"} - set(base))  # expand() adds them for worker processes
    overrides = {k: v for k, v in run.overrides.items() if k not in added}
    cfg = load_config(overrides={**overrides, "quiet": quiet})
    work = (lambda: loop.resume(run.run_dir, progress=not quiet)) if resume else (lambda: loop.train(cfg))
    out = _interruptible(run.run_dir, work)
    if isinstance(out, int):
        print(f"erts: the demo stopped; finish it with `erts demo --resume {demo_dir}`", file=sys.stderr)
        return out
    return 0


# --- the side-by-side table ------------------------------------------------------------------

def focus_filter_stats(run_dir: Path) -> dict | None:
    """What the focus filter removed, by ground truth: corrupted (every kind pooled) and clean candidates,
    over the run's ERTS epochs; the ERTS epochs in which it removed any; None when it never ran."""
    import pandas as pd

    from erts.report.selection import (filter_by_truth, filter_candidates, load_selection_log, load_train_records,
                                       truth_contrast)

    sel = load_selection_log(run_dir)
    if sel.empty or sel["focus"].isna().all():
        return None
    cand = filter_candidates(sel, load_train_records(run_dir))
    table = filter_by_truth(cand)
    dropped = sel[sel["pdd_keep"] & ~sel["erts_keep"] & sel["focus"].notna()]
    epochs = sorted(int(e) for e in dropped["epoch"].unique())
    if table.empty:
        return {"epochs": epochs, "contrast": None}
    table = table.assign(dropped=table["filter_drop"] * table["candidates"])
    return {"epochs": epochs, "contrast": truth_contrast(pd.DataFrame(table))}


def _ratio(a, b) -> float:
    try:
        return float(a) / float(b) if float(b) > 0 else math.nan
    except (TypeError, ValueError):
        return math.nan


def comparison_rows(run_dirs: list[Path]) -> list[dict]:
    """One row per run: method, test macro-F1, effective epochs, seconds, CPU seconds, FLOPs, their
    ratios to the first run's, and the focus filter's removal rates (corrupted, clean)."""
    import json

    from erts.train.costnames import flatten_cost

    rows = []
    for d in run_dirs:
        m = json.loads((d / "metrics.json").read_text())
        c = flatten_cost(m.get("cost") or {})
        row = {"method": m["method"], "test_macro_f1": m["test"]["macro_f1"], "epochs": m["epochs"],
               "effective_epochs": c.get("effective_epochs"), "seconds": c.get("seconds_total"),
               "cpu_seconds": c.get("cpu_seconds_total"), "flops": c.get("flops_total"), "focus": focus_filter_stats(d)}
        rows.append(row)
    base = rows[0]
    for r in rows:
        for k in ("seconds", "cpu_seconds", "flops", "effective_epochs"):
            r[f"{k}_ratio"] = _ratio(r[k], base[k])
    return rows


def comparison_text(demo_dir: Path, run_dirs: list[Path]) -> str:
    rows = comparison_rows(run_dirs)
    base = rows[0]["method"]
    head = ["method", "test macro-F1", "effective epochs", "wall clock", f"time / {base}", f"CPU time / {base}",
            f"FLOPs / {base}", "filter removed: corrupted", "clean"]
    table = []
    for r in rows:
        f = r["focus"]
        c = (f or {}).get("contrast")
        table.append([r["method"], f"{r['test_macro_f1']:.4f}", f"{r['effective_epochs']:.2f} of {r['epochs']}",
                      f"{r['seconds']:.0f} s", f"{r['seconds_ratio']:.2f}", f"{r['cpu_seconds_ratio']:.2f}",
                      f"{r['flops_ratio']:.2f}",
                      f"{c['removed_corrupted']:.1%} of {c['n_corrupted']}" if c else "-",
                      f"{c['removed_clean']:.1%} of {c['n_clean']}" if c else "-"])
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(head), fmt(["-" * w for w in widths])] + [fmt(t) for t in table]
    notes = []
    for r in rows:
        f = r["focus"]
        if f is None:
            if r["method"].startswith("erts"):
                notes.append(f"{r['method']}: the focus filter never ran (no ERTS epoch in this schedule).")
            continue
        ep = ", ".join(map(str, f["epochs"])) or "none"
        notes.append(f"{r['method']}: the focus filter removed candidates in epochs {ep} (ERTS epochs, log.csv: "
                     "n_erts_kept < n_pdd_kept).")
        c = f["contrast"]
        if c and math.isfinite(c["ratio"]):
            notes.append(f"{r['method']}: corrupted candidates were removed {c['ratio']:.2f} times as often as clean "
                         "ones (focus filter candidates are sample-epochs: each record once per ERTS epoch).")
    notes.append(f"One seed each: a demonstration, not a result (test macro-F1 differences of a few points are "
                 f"within seed-to-seed noise; `erts sweep` runs seeds). Wall clock depends on what else runs on "
                 f"the machine; FLOPs / {base} does not.")
    return "\n".join(lines + [""] + notes)

