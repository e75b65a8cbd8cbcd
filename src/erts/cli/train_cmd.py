"""`erts train` and `erts presets`."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from erts.cli.stop import Terminated, main_thread, raise_terminated


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (default: resnet18_1d on the built-in synthetic dataset)",
                       description="Train one run. Settings are key=value pairs (flat, e.g. method=erts-dbpd phi=0.7, "
                                   "or dotted, e.g. selection.phi=0.7); --config reads a YAML file first. "
                                   "Run `erts train --keys` to list every key with its default.")
    p.add_argument("overrides", nargs="*", help="key=value settings")
    p.add_argument("--config", help="YAML config file (nested sections or flat keys)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last completed epoch")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keys", action="store_true",
                   help="list every config key: its default (or the value the given settings resolve to), "
                        "what it means and the values it accepts; then exit")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults < preset < --config < key=value) as YAML and exit")
    p.set_defaults(func=run_train)
    pr = sub.add_parser("presets", help="list the named experiment presets (erts train preset=NAME)")
    pr.add_argument("name", nargs="?", help="show one preset's settings")
    pr.set_defaults(func=run_presets)


def _scalar(v) -> str:
    """A setting's value as a YAML file spells it (null, true, [0.5, 40], 0.001)."""
    return json.dumps(v) if v is None or isinstance(v, (bool, list, dict)) else str(v)


def keys_text(cfg=None, width: int = 100) -> str:
    """`erts train --keys`: per section, each key with its default (or, when ``cfg`` sets another
    value, that value and the default), the values it accepts, and what it means (the comments
    next to the fields in erts/config.py). Imports no torch."""
    import dataclasses
    import textwrap

    from erts.config import Config, allowed_values, field_docs

    docs, default, lines = field_docs(), Config(), []
    for section in dataclasses.fields(Config):
        lines.append(f"[{section.name}]")
        for f in dataclasses.fields(getattr(default, section.name)):
            d = getattr(getattr(default, section.name), f.name)
            v = d if cfg is None else getattr(getattr(cfg, section.name), f.name)
            lines.append(f"  {f.name} = {_scalar(v)}" + (f"   (default {_scalar(d)})" if v != d else ""))
            for text in (f"accepts: {allowed_values(f.name)}", docs.get(f.name, "")):
                if text:
                    lines += textwrap.wrap(text, width, initial_indent=" " * 6, subsequent_indent=" " * 8,
                                           break_on_hyphens=False)
    return "\n".join(lines)


def resolved_config_text(cfg) -> str:
    """`erts train --print-config`: the resolved config as YAML (loadable with --config), the schedule
    the unset phase boundaries resolve to as a comment on top."""
    from erts.config import dump_config, schedule_of

    return f"# schedule: {schedule_of(cfg).describe()}\n" + dump_config(cfg)


def format_summary(metrics: dict, run_dir: Path) -> str:
    from erts.train.costnames import normalize_cost

    t, c = metrics["test"], normalize_cost(metrics["cost"])
    sec = c["seconds"]
    lines = [
        f"run        {run_dir}",
        f"method     {metrics['method']} ({metrics['granularity']}), best epoch {metrics['best_epoch']} by val macro-F1",
        f"test       macro-F1 {t['macro_f1']:.4f}  accuracy {t['accuracy']:.4f}  macro-AUROC {t['macro_auroc']:.4f}"
        + (f"  F1(N,A,O) {t['f1_nao']:.4f}" if "f1_nao" in t else ""),
        "per-class  " + "  ".join(f"{k} {v:.3f}" for k, v in t["per_class_f1"].items()),
        f"cost       effective epochs {c['effective_epochs']:.2f} of {metrics.get('reference_epochs') or metrics['epochs']}"
        + (f" (budget {metrics['budget']:g}: {metrics['epochs']} epochs, the schedule compressed)"
           if metrics.get("budget") and metrics["method"] == "full" else "")
        + (f", {metrics['optimizer_steps']} optimiser steps" if metrics.get("optimizer_steps") is not None else ""),
        f"seconds    scoring {sec['scoring']:.1f}  gradcam {sec['gradcam']:.1f}  update {sec['update']:.1f}  "
        f"eval {sec['eval']:.1f}  other {sec['other']:.1f}  total {sec['total']:.1f}",
        f"samples    fwd scoring {c['forwards']['scoring']:.0f}  fwd/bwd gradcam "
        f"{c['forwards']['gradcam']:.0f}/{c['backwards']['gradcam']:.0f}  fwd/bwd update "
        f"{c['forwards']['update']:.0f}/{c['backwards']['update']:.0f}",
        f"FLOPs      scoring {c['flops']['scoring']:.3g}  gradcam {c['flops']['gradcam']:.3g}  "
        f"update {c['flops']['update']:.3g}  total {c['flops']['total']:.3g}",
    ]
    il = {g: (c.get(g) or {}).get("irreducible", 0.0) for g in ("seconds", "forwards", "backwards", "flops")}
    if il["forwards"]:  # rho-loss: the irreducible-loss models, in every total above
        lines.append(f"irreducible  {il['seconds']:.1f} s  fwd/bwd {il['forwards']:.0f}/{il['backwards']:.0f}  "
                     f"FLOPs {il['flops']:.3g} (rho-loss's two IL models, in the totals)")
    if metrics.get("world_size", 1) > 1:  # torchrun: counts are every process's, seconds rank 0's
        ranks = "  ".join(f"{s:.1f}" for s in metrics.get("rank_seconds", []))
        lines.append(f"processes  {metrics['world_size']} (DDP): samples and FLOPs summed over them, seconds are "
                     f"rank 0's; total seconds per rank {ranks}")
    return "\n".join(lines)


def focus_filter_summary(run_dir: Path) -> str:
    """Where the dataset knows which records are corrupted: how often the reliability filter (the
    paper's focus, or the run's ``reliability=``) dropped corrupted candidates versus clean ones
    (empty when it never ran)."""
    from erts.report.provenance import read_config
    from erts.report.selection import (filter_by_truth, filter_candidates, load_selection_log,
                                       load_train_records)

    sel = load_selection_log(run_dir)
    if sel.empty:
        return ""
    table = filter_by_truth(filter_candidates(sel, load_train_records(run_dir)))
    if table.empty:
        return ""
    rows = "  ".join(f"{r.truth} {r.filter_drop:.1%} of {r.candidates}" for r in table.itertuples())
    reliability = (read_config(run_dir) or {}).get("selection.reliability", "focus")
    return f"reliability filter ({reliability}) dropped (share of candidates, by ground truth): {rows}"


def run_train(args: argparse.Namespace) -> int:
    from erts.config import load_config

    if args.keys or args.print_config:  # answers in a fraction of a second: no torch on this path
        if args.resume:
            print("erts: --keys and --print-config describe settings; drop --resume", file=sys.stderr)
            return 2
        if args.config and not Path(args.config).is_file():
            print(f"erts: error: --config {args.config}: no such file", file=sys.stderr)
            return 2
        given = bool(args.config or args.overrides)
        cfg = load_config(args.config, args.overrides) if given or args.print_config else None
        print(resolved_config_text(cfg) if args.print_config else keys_text(cfg), end="\n")
        return 0
    if args.resume and not (args.overrides or args.config) and (Path(args.resume) / "metrics.json").is_file():
        print(finished_message(Path(args.resume)))  # before importing torch: nothing to train
        return 0
    from erts.train.loop import resume, run_dir_for, train

    if args.quiet:
        os.environ["ERTS_QUIET"] = "1"
    if args.resume:
        if args.overrides or args.config:
            print("erts: --resume continues a run with its saved config; drop the other settings", file=sys.stderr)
            return 2
        run_dir = Path(args.resume)
        problem = run_folder_problem(run_dir)
        if problem:
            print(f"erts: error: --resume {run_dir}: {problem}", file=sys.stderr)
            return 2
        metrics = _interruptible(run_dir, lambda: resume(run_dir, progress=False if args.quiet else None))
    else:
        if args.config and not Path(args.config).is_file():
            print(f"erts: error: --config {args.config}: no such file", file=sys.stderr)
            return 2
        overrides = list(args.overrides) + (["quiet=true"] if args.quiet else [])
        cfg = load_config(args.config, overrides)
        check_model(cfg)
        if cfg.train.quiet:
            os.environ["ERTS_QUIET"] = "1"  # also silences the dataset preparation bars
        run_dir = run_dir_for(cfg)
        metrics = _interruptible(run_dir, lambda: train(cfg))
    if isinstance(metrics, int):  # interrupted: the exit code
        return metrics
    if not _dist().main:  # torchrun: rank 0 reports
        return 0
    print(format_summary(metrics, run_dir))
    summary = focus_filter_summary(run_dir)
    if summary:
        print(summary)
    return 0


def run_folder_problem(run_dir: Path) -> str | None:
    """Why ``run_dir`` cannot be a run folder, in a few words; None when it has a config.yaml."""
    if not run_dir.is_dir():
        return "no such run folder"
    if not (run_dir / "config.yaml").exists():
        return "not a run folder (no config.yaml)"
    return None


def finished_message(run_dir: Path) -> str:
    """One line for `erts train --resume` on a run that already finished: nothing is retrained."""
    try:
        m = json.loads((run_dir / "metrics.json").read_text())
        f1 = f", test macro-F1 {m['test']['macro_f1']:.4f}"
        epochs = f" {m['epochs']} epochs"
    except (OSError, ValueError, KeyError, TypeError):
        f1, epochs = "", ""
    return (f"erts: {run_dir} is finished ({epochs.strip() or 'all epochs'} done{f1}); nothing to resume "
            f"(results: {run_dir / 'metrics.json'})")


def check_model(cfg) -> None:
    """An unknown model name fails before the dataset is prepared, as a config error."""
    from erts.errors import ConfigError
    from erts.models import list_models

    for key, name in (("model", cfg.model.model), ("rho_il_model", cfg.selection.rho_il_model)):
        if name is not None and name not in list_models():
            raise ConfigError(f"{key}={name!r} is not accepted; available: {', '.join(list_models())}")


def last_completed_epoch(run_dir: Path) -> int | None:
    """The epoch of the run's consistent checkpoint (checkpoints/last.pt, written after every completed
    epoch); log.csv's last row where the checkpoint cannot be read; None when no epoch completed."""
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        try:
            from erts.train.runio import load_checkpoint

            return int(load_checkpoint(last)["epoch"])
        except Exception:  # unreadable: fall back to the log
            pass
    from erts.train.runio import read_csv

    try:
        rows = read_csv(run_dir / "log.csv")
        return int(rows[-1]["epoch"]) if rows else None
    except (OSError, ValueError, KeyError):
        return None


def resume_command(run_dir: Path) -> str:
    """How to continue a run: as it was started (torchrun with the same number of processes, or not)."""
    d = _dist()
    if d.enabled:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", d.world))
        nodes = f"--nnodes={d.world // local} (and your rendezvous options) " if local != d.world else "--standalone "
        return f"torchrun {nodes}--nproc_per_node={local} -m erts train --resume {run_dir}"
    return f"erts train --resume {run_dir}"


def interrupted_message(run_dir: Path, epochs: int | None = None, why: str = "interrupted") -> str:
    """Where an interrupted run stopped and how to continue it (epochs are 0-based, as in log.csv)."""
    if not (run_dir / "config.yaml").exists():
        return f"erts: {why} before the run started (nothing written)"
    done = last_completed_epoch(run_dir)
    resume = f"resume with `{resume_command(run_dir)}`"
    why = f"erts: {why}"
    if done is None:
        return f"{why} during epoch 0 (no epoch completed); {resume} (it starts from epoch 0)"
    if epochs is not None and done + 1 >= epochs:
        return f"{why} after the last epoch ({done}), during the final evaluation; {resume}"
    return f"{why} during epoch {done + 1} (epoch {done} completed and checkpointed); {resume}"


def _interruptible(run_dir: Path, work):
    """Runs ``work`` with SIGTERM raising like Ctrl-C; on either, prints where to resume and returns
    130 (SIGINT) or 143 (SIGTERM) instead of the metrics. Files are written atomically, so the last
    completed epoch's checkpoint is consistent whatever instant the signal came."""
    main = main_thread()  # signal handlers can only be set there
    previous = signal.signal(signal.SIGTERM, raise_terminated) if main else None
    try:
        return work()
    except Exception as e:  # torchrun: another rank died (killed, out of memory, node lost)
        if not _peer_failure(e):
            raise
        if main:  # torchrun's SIGTERM to the survivors must not cut the message short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        d = _dist()
        seen = next((m for m in PEER_FAILURE if m in str(e)), type(e).__name__)
        print(interrupted_message(run_dir, _epochs(run_dir), f"rank {d.rank} of {d.world} stopped: another process "
                                  f"of this torchrun job failed ({seen})"), file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as e:
        if main:  # a second Ctrl-C or SIGTERM must not cut the message short
            sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            d = _dist()
            why = "interrupted" if not (d.enabled and isinstance(e, Terminated)) else \
                f"rank {d.rank} of {d.world} stopped by SIGTERM (torchrun stops the job when another process of " \
                f"this torchrun job failed, or the job was cancelled)"
            if d.main:  # torchrun stops every rank: one message
                print(interrupted_message(run_dir, _epochs(run_dir), why), file=sys.stderr)
        finally:
            if main:
                signal.signal(signal.SIGINT, sigint)
        return 143 if isinstance(e, Terminated) else 130
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _dist():
    """This process's place in a torchrun job (only called around training: torch is loaded by then)."""
    from erts.distributed import from_env

    return from_env()


# what gloo and NCCL say when the other end of a collective is gone (gloo raises a plain RuntimeError)
PEER_FAILURE = ("Connection closed by peer", "Connection reset by peer", "NCCL communicator was aborted",
                "remote worker crash", "ProcessGroupNCCL", "ProcessGroupGloo")


def _peer_failure(e: BaseException) -> bool:
    """A collective failed because a peer process is gone (only under torchrun)."""
    if not _dist().enabled:
        return False
    import torch.distributed as tdist

    return isinstance(e, tdist.DistError) or (isinstance(e, RuntimeError) and any(m in str(e) for m in PEER_FAILURE))


def _epochs(run_dir: Path) -> int | None:
    try:
        import yaml

        return int(yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["epochs"])
    except Exception:
        return None


def run_presets(args: argparse.Namespace) -> int:
    from erts.presets import PRESETS, get_preset

    if args.name:
        print(json.dumps(get_preset(args.name), indent=2))
        return 0
    for name, (desc, _) in PRESETS.items():
        print(f"{name:40s} {desc}")
    return 0
