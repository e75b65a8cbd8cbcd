"""`erts data list|info|prepare|download`: see, cache and fetch the datasets."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from erts.config import ConfigError
from erts.data import DATASETS


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
    p = sub.add_parser("data", help="list, inspect, prepare (cache) or download datasets",
                       description="Datasets: list them, show counts per split, build the cache, or download them. "
                                   "Extra key=value settings (fs=, length_s=, split_seed=, labels=, cache_dir=, ...) "
                                   "are the same as for `erts train`.")
    dsub = p.add_subparsers(dest="data_command", required=True, parser_class=_Intermixed)
    dl = dsub.add_parser("list", help="names and descriptions of the datasets")
    dl.set_defaults(func=run_list)
    for name, func, help_ in (("info", run_info, "record and class counts per split, skipped records, cache path"),
                              ("prepare", run_prepare, "decode and cache a dataset (progress bar, time, location)")):
        q = dsub.add_parser(name, help=help_)
        q.add_argument("dataset", choices=list(DATASETS))
        q.add_argument("--root", help="dataset folder or archive (not needed for synthetic)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")
        q.add_argument("overrides", nargs="*", help="key=value settings")
        q.set_defaults(func=func)
    d = dsub.add_parser("download", help="download a PhysioNet dataset into --root (resumable, checksums verified)")
    d.add_argument("dataset", choices=[n for n in DATASETS if n not in ("synthetic", "wfdb-folder")])
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
    cfg = load_config(overrides=list(args.overrides))
    cfg.data.dataset = args.dataset
    if args.root:
        cfg.data.root = str(args.root)
    return cfg


def _fail(e: Exception) -> int:
    """Bad data or paths: one clear line, exit 1 (config errors reach main, which exits 2)."""
    print(f"erts: error: {e}", file=sys.stderr)
    return 1


def run_info(args: argparse.Namespace) -> int:
    from erts.data import load_dataset

    try:
        rs = load_dataset(_config(args).data)
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError) as e:
        return _fail(e)
    print(describe(rs))
    return 0


def run_prepare(args: argparse.Namespace) -> int:
    from erts.data import load_dataset

    try:
        cfg = _config(args)
        t0 = time.time()
        rs = load_dataset(cfg.data)
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError) as e:
        return _fail(e)
    dt = time.time() - t0
    what = "already cached; loaded" if getattr(rs, "fresh", True) is False else "prepared"
    print(f"{rs.name}: {len(rs.record_ids):,} records {what} in {dt:.1f} s ({len(rs.skipped)} skipped)")
    for label, attr in (("cache", "cache_path"), ("split file", "split_path")):
        if getattr(rs, attr, None) is not None:
            print(f"{label}: {getattr(rs, attr)}")
    return 0


def describe(rs, n_skipped: int = 5) -> str:
    """A human summary of a record set: shape, counts per split, skipped records, cache location."""
    kind = "multi-label" if rs.multilabel else "single-label"
    lines = [
        f"dataset: {rs.name}",
        f"records: {len(rs.record_ids):,} kept, {len(rs.skipped):,} skipped",
        f"signal: {rs.num_leads} lead(s) ({', '.join(rs.lead_names)}), {rs.fs:g} Hz, "
        f"{rs.length} samples ({rs.length / rs.fs:g} s)",
        f"labels: {kind}, {rs.num_classes} classes ({', '.join(rs.class_names)})",
        "",
        rs.summary().to_string(),
    ]
    if rs.skipped:
        lines += ["", f"skipped ({len(rs.skipped):,}; first {min(n_skipped, len(rs.skipped))}):"]
        lines += [f"  {rid}: {reason}" for rid, reason in rs.skipped[:n_skipped]]
    for label, attr in (("cache", "cache_path"), ("split file", "split_path")):
        if getattr(rs, attr, None) is not None:
            lines.append(f"{label}: {getattr(rs, attr)}")
    return "\n".join(lines)


def run_download(args: argparse.Namespace) -> int:
    from erts.data.download import DownloadError, download

    try:
        path = download(args.dataset, Path(args.root), base_url=args.base_url, quiet=args.quiet)
    except (ValueError, OSError, DownloadError) as e:
        return _fail(e)
    print(f"{args.dataset}: downloaded to {path}")
    print(f"next: erts data prepare {args.dataset} --root {path}")
    return 0
