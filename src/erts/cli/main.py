"""`erts` command line: one sub-command per module in this folder.

Each module exposes ``add_parser(subparsers)`` which registers its sub-command and
sets ``func`` on the parsed namespace.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from erts.config import ConfigError

# sub-command modules, in the order `erts --help` lists them
COMMANDS = [
    "erts.cli.train_cmd",    # erts train, erts presets
    "erts.cli.data_cmd",     # erts data list|info|prepare|download
    "erts.cli.report_cmd",   # erts sweep, erts report, erts explain
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erts", description="Train ECG classifiers faster and more reliably: Progressive Data Dropout "
                                 "with a Grad-CAM focus filter (ERTS), with honest cost accounting.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"erts: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
