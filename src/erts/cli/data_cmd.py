"""`erts data list|info|prepare|download`: see, cache and fetch the datasets."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from erts.cli.stop import sigterm_raises
from erts.errors import ConfigError
from erts.registry import DATASETS


class _Intermixed(argparse.ArgumentParser):
    """Lets key=value settings follow options (``erts data info X --root P fs=100``).

    Plain argparse stops filling positionals at the first option; its
    intermixed mode (which calls parse_known_args itself, hence the guard)
    does not.
    """

    _inner = False

    def parse_known_args(self, args=None, namespace=None):
        if self._inner:
            return super().parse_known_args(args, namespace)
        self._inner = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="list, inspect, prepare (cache) or download datasets; list or clean the cache",
                       description="Datasets: list them, show counts per split, build the cache, download them, "
                                   "or list and remove cache entries. "
                                   "Extra key=value settings (fs=, length_s=, split_seed=, labels=, cache_dir=, ...) "
                                   "are the same as for `erts train`.")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=_Intermixed)
    dl = dsub.add_parser("list", help="names and descriptions of the datasets")
    dl.set_defaults(func=run_list)
    for name, func, help_ in (("info", run_info, "record and class counts per split, skipped records, cache path"),
                              ("prepare", run_prepare, "decode and cache a dataset (progress bar, time, location)")):
        q = dsub.add_parser(name, help=help_)
        # a name is checked with the other settings (one line, exit 2), not by argparse (usage text first)
        q.add_argument("dataset", metavar="DATASET", help="one of: " + ", ".join(DATASETS))
        q.add_argument("--root", help="dataset folder or archive (not needed for synthetic)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        q.add_argument("overrides", nargs="*", help="key=value settings")
        q.set_defaults(func=func)
        if name == "info":
            q.add_argument("--all", action="store_true", help="list every skipped record (default: the first 5)")
    c = dsub.add_parser("cache", help="list the cache entries with their sizes; remove old ones",
                        description="Lists the prepared datasets in the cache folder (cache_dir=, $ERTS_CACHE or "
                                    "~/.cache/erts), with size, records and days since last use. Nothing else in "
                                    "that folder is touched.")
    c.add_argument("overrides", nargs="*", help="cache_dir=PATH")
    c.add_argument("--remove-older-than", type=float, metavar="DAYS",
                   help="remove entries not used for more than DAYS days (killed preparations: not written to for DAYS days)")
    c.add_argument("--clear", action="store_true", help="remove every entry")
    c.set_defaults(func=run_cache)
    d = dsub.add_parser("download", help="download a PhysioNet dataset into --root (resumable, checksums verified)")
    d.add_argument("dataset", metavar="DATASET",
                   help="one of: " + ", ".join(n for n in DATASETS if n not in ("synthetic", "wfdb-folder")))
    d.add_argument("--root", required=True, help="folder to download into")
    d.add_argument("--base-url", help="mirror to download from instead of physionet.org")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=run_download)


def run_list(args: argparse.Namespace) -> int:
    from erts.data import list_datasets

    items = list_datasets()
    width = max(map(len, items))
    for name, desc in items.items():
        print(f"{name:<{width}}  {desc}")
    return 0


def _config(args: argparse.Namespace):
    """Config from the key=value overrides, plus the dataset and root given on the command line."""
    from erts.config import load_config

    if args.quiet:
        os.environ["ERTS_QUIET"] = "1"
    cfg = load_config(overrides=[*args.overrides, f"dataset={args.dataset}"])  # checks the name too
    if args.root:
        cfg.data.root = str(args.root)
    return cfg


def _fail(e: Exception) -> int:
    """A download that failed (network, checksums): one clear line, exit 1. Bad settings, paths
    and data raise to main, which prints one line and exits 2."""
    print(f"erts: error: {e}", file=sys.stderr)
    return 1


def _load(cfg):
    """The dataset with every split or not: a split without records is said, as a warning
    (training on it stops with the same words). SIGTERM stops it like Ctrl-C: the partial
    cache entry is removed and the command says so (exit 143)."""
    from erts.data import load_dataset, split_problem
    from erts.errors import warn

    with sigterm_raises():
        rs = load_dataset(cfg.data, all_splits=False)
    problem = split_problem(rs)
    if problem:
        warn(problem)
    return rs


def run_info(args: argparse.Namespace) -> int:
    rs = _load(_config(args))
    print(describe(rs, n_skipped=None if args.all else 5))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    cfg = _config(args)
    t0 = time.time()
    rs = _load(cfg)
    dt = time.time() - t0
    what = "already cached; loaded" if getattr(rs, "fresh", True) is False else "prepared"
    print(f"{rs.name}: {len(rs.record_ids):,} records {what} in {dt:.1f} s ({len(rs.skipped)} skipped)")
    for label, attr in (("cache", "cache_path"), ("split file", "split_path")):
        if getattr(rs, attr, None) is not None:
            print(f"{label}: {getattr(rs, attr)}")
    return 0


def describe(rs, n_skipped: int | None = 5) -> str:
    """A human summary of a record set: shape, counts per split, skipped records (the first
    ``n_skipped``; None: all), cache location."""
    from erts.data.records import names_text

    kind = "multi-label" if rs.multilabel else "single-label"
    lines = [
        f"dataset: {rs.name}",
        f"records: {len(rs.record_ids):,} kept, {len(rs.skipped):,} skipped",
        f"signal: {rs.num_leads} lead(s) ({names_text(rs.lead_names)}), {rs.fs:g} Hz, "
        f"{rs.length} samples ({rs.length / rs.fs:g} s)",
        f"labels: {kind}, {rs.num_classes} classes ({names_text(rs.class_names)})",
        "",
        rs.summary().to_string(),
    ]
    if rs.skipped:
        shown = rs.skipped if n_skipped is None else rs.skipped[:n_skipped]
        more = "" if len(shown) == len(rs.skipped) else f"; first {len(shown)}, --all lists every one"
        lines += ["", f"skipped ({len(rs.skipped):,}{more}):"]
        lines += [f"  {rid}: {reason}" for rid, reason in shown]
    for label, attr in (("cache", "cache_path"), ("split file", "split_path")):
        if getattr(rs, attr, None) is not None:
            lines.append(f"{label}: {getattr(rs, attr)}")
    return "\n".join(lines)


def run_download(args: argparse.Namespace) -> int:
    from erts.data.download import REMOTES, DownloadError, download

    if args.dataset not in REMOTES:
        raise ConfigError(f"dataset={args.dataset!r} cannot be downloaded; downloadable: {', '.join(REMOTES)}")
    try:
        path = download(args.dataset, Path(args.root), base_url=args.base_url, quiet=args.quiet)
    except (ValueError, OSError, DownloadError) as e:
        return _fail(e)
    print(f"{args.dataset}: downloaded to {path}")
    print(f"next: erts data prepare {args.dataset} --root {path}")
    return 0


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def run_cache(args: argparse.Namespace) -> int:
    from erts.config import load_config
    from erts.data.cache import default_cache_dir, list_entries, remove_entry

    cfg = load_config(overrides=list(args.overrides))
    if args.clear and args.remove_older_than is not None:
        raise ConfigError("give --clear or --remove-older-than, not both")
    if args.remove_older_than is not None and args.remove_older_than < 0:
        raise ConfigError(f"--remove-older-than {args.remove_older_than:g}: DAYS must be >= 0")
    root = default_cache_dir(cfg.data.cache_dir)
    entries = list_entries(root)
    if args.clear or args.remove_older_than is not None:
        gone = [e for e in entries if args.clear or e.age_days > args.remove_older_than]
        for e in gone:
            remove_entry(e)
        freed = sum(e.size for e in gone)
        print(f"removed {len(gone)} of {len(entries)} cache entries ({_size(freed)}) from {root}")
        return 0
    if not entries:
        print(f"cache {root}: no entries")
        return 0
    width = max(len(e.path.name) for e in entries)
    print(f"{'entry':<{width}}  {'size':>9}  {'records':>8}  {'last used':>10}")
    for e in entries:
        state = f"{e.records:>8,}" if e.complete else f"{'partial':>8}"
        print(f"{e.path.name:<{width}}  {_size(e.size):>9}  {state}  {e.age_days:>6.1f} d ago")
    print(f"{len(entries)} entries, {_size(sum(e.size for e in entries))} in {root}")
    return 0
