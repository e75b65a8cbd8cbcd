"""`erts sweep`, `erts report` and `erts explain`."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run an experiment grid (resumable; results in <out_dir>/<name>/results.csv)",
                       description="Runs every combination of the grid file's values in worker processes. "
                                   "Run it again to resume: finished runs are skipped, killed ones continued.")
    p.add_argument("grid", help="grid YAML file (name, out_dir, workers, gpus_per_run, procs_per_run, base, grid)")
    p.add_argument("--workers", type=int, help="parallel worker processes (overrides the file)")
    p.add_argument("--gpus-per-run", type=int,
                   help="GPUs of each worker, set as its CUDA_VISIBLE_DEVICES (overrides the file; default 0)")
    p.add_argument("--procs-per-run", type=int,
                   help="processes per run; > 1 launches each run with torchrun (DDP) (overrides the file; "
                        "default 1, or one per GPU with --gpus-per-run)")
    p.add_argument("--max-runs", type=int, help="start at most this many runs now, leave the rest for later")
    p.add_argument("--dry-run", action="store_true", help="list the runs and their state, start nothing")
    p.set_defaults(func=run_sweep_cmd)

    r = sub.add_parser("report", help="write report.html + report.md for a run or a sweep folder")
    r.add_argument("dir", help="a run folder (runs/<name>) or a sweep folder (sweeps/<name>)")
    r.add_argument("--out", help="output folder (default: DIR)")
    r.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples: a single run's CI, the label-noise ratio CIs")
    r.add_argument("--examples", type=int, default=2, help="example records per kind (kept, filtered); 0: none")
    r.add_argument("--leads", type=int, default=3, help="leads drawn per example record")
    r.add_argument("--metric", default="auto",
                   help="what a sweep report compares: a results.csv column (test_macro_f1, test_macro_auroc, "
                        "test_f1_nao, ...); auto: test_macro_auroc for multi-label runs, else test_macro_f1")
    r.set_defaults(func=run_report_cmd)

    e = sub.add_parser("explain", help="draw one record with its Grad-CAM map (PNG); print its keep/filter history",
                       description="Prints the record's ground truth (train_records.csv) and, per epoch, whether the "
                                   "PDD rule kept it, the focus filter kept or removed it, its p and focus score "
                                   "(selection/epoch_*.npz); then draws it with its Grad-CAM map.")
    e.add_argument("run", help="run folder with checkpoints/")
    e.add_argument("--record", required=True, help="record id, as in train_records.csv or predictions_test.npz")
    e.add_argument("--out", help="PNG path (default: RUN/explain/<record>.png)")
    e.add_argument("--layer", help="Grad-CAM layer: last, published, or a backbone module name "
                                   "(default: the run's gradcam_layer)")
    e.add_argument("--leads", type=int, help="draw only the first N leads")
    e.add_argument("--target", choices=["pred", "true"], default="pred",
                   help="map of the predicted class (default) or of the true label")
    e.add_argument("--checkpoint", choices=["best", "last"], default="best")
    e.add_argument("--history-only", action="store_true",
                   help="print the record's keep/filter history and ground truth, draw nothing (needs no checkpoint)")
    e.set_defaults(func=run_explain_cmd)


def run_sweep_cmd(args: argparse.Namespace) -> int:
    from erts.train.sweep import expand, load_grid, run_state, run_sweep, validate_runs

    grid = load_grid(args.grid)
    if args.dry_run:
        runs = expand(grid, args.workers, gpus_per_run=args.gpus_per_run, procs_per_run=args.procs_per_run)
        validate_runs(runs)
        for run in runs:
            print(f"{run_state(run.run_dir):7s} {run.run_dir}")
        return 0
    # SIGTERM (a job scheduler's kill) unwinds like Ctrl-C, so the workers are stopped too
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        res = run_sweep(grid, workers=args.workers, max_runs=args.max_runs, gpus_per_run=args.gpus_per_run,
                        procs_per_run=args.procs_per_run)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"sweep {grid.name}: {len(res.finished)} finished now ({len(res.resumed)} resumed), "
          f"{len(res.skipped)} already done, {len(res.failed)} failed, {len(res.not_started)} not started")
    print(f"results: {res.results_csv}")
    for name in res.failed:
        print(f"failed: {name} (log: {res.sweep_dir / 'logs' / (name + '.log')})", file=sys.stderr)
    return 1 if res.failed else 0


def run_report_cmd(args: argparse.Namespace) -> int:
    from erts.report.build import build_report

    html_path, md_path = build_report(args.dir, out_dir=args.out, n_boot=args.n_boot, examples=args.examples, metric=args.metric,
                                      max_leads=args.leads)
    print(f"wrote {html_path}\nwrote {md_path}")
    return 0


def run_explain_cmd(args: argparse.Namespace) -> int:
    from erts.cli.train_cmd import run_folder_problem
    from erts.errors import DataError
    from erts.report.selection import history_text

    run = Path(args.run)
    problem = run_folder_problem(run)  # before the history: one line, not a history line and then the error
    if problem and not (args.history_only and run.is_dir()):  # the history alone needs no config.yaml
        raise DataError(f"{args.run}: {problem}")
    print(history_text(args.run, args.record))
    if args.history_only:
        return 0
    from erts.report.explain import explain_record

    path = explain_record(args.run, args.record, out=args.out, layer=args.layer, max_leads=args.leads,
                          which=args.checkpoint, target=args.target)
    print(f"wrote {path}")
    return 0
