"""`erts` command line: one sub-command per module in this folder.

Each module exposes ``add_parser(subparsers)`` which registers its sub-command and
sets ``func`` on the parsed namespace.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from erts.cli.stop import Terminated
from erts.errors import debug, describe, user_errors

# sub-command modules, in the order `erts --help` lists them
COMMANDS = [
    "erts.cli.train_cmd",    # erts train, erts presets
    "erts.cli.demo_cmd",     # erts demo
    "erts.cli.data_cmd",     # erts data list|info|prepare|download
    "erts.cli.report_cmd",   # erts sweep, erts report, erts explain
    "erts.cli.audit_cmd",    # erts audit
]


class VersionAction(argparse.Action):
    """``erts --version``: the version, and the git commit when erts runs from a checkout."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def version_text() -> str:
    from erts import __version__
    from erts.train.runio import git_commit

    commit = git_commit()
    return f"erts {__version__}" + (f" (git {commit})" if commit else "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="erts", description="Train ECG classifiers faster and more reliably: Progressive Data Dropout "
                                 "with a Grad-CAM focus filter (ERTS), with honest cost accounting.")
    parser.add_argument("--version", action=VersionAction, help="print the erts version (and git commit) and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one sub-command. A user error (bad setting, missing or unusable path or data; see
    erts.errors) is one line on stderr and exit code 2; ``ERTS_DEBUG=1`` shows its traceback.
    Ctrl-C is exit code 130, SIGTERM where a command turns it into an exception 143 (``erts train``
    first says where to resume)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except user_errors() as e:
        if debug():
            raise
        print(f"erts: {describe(e)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as e:  # Terminated: SIGTERM where a command asked for it (cli/stop.py)
        if debug():
            raise
        term = isinstance(e, Terminated)
        print(f"erts: {'stopped by SIGTERM' if term else 'interrupted'}", file=sys.stderr)
        return 143 if term else 130
    except BrokenPipeError:  # `erts train --keys | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
