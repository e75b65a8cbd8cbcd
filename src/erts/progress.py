"""Progress display: a tqdm bar on a terminal, plain periodic lines anywhere else.

Why: carriage-return bars written to a log file or a CI console become one huge
line of overwritten text. When stderr is not a terminal, ``progress`` prints one
ordinary line every ``every`` items (default: about every tenth of the total, at
most every ``interval`` seconds apart otherwise) and one at the end.

``ERTS_QUIET=1`` turns progress off (``disable=None`` reads it); ``ERTS_PROGRESS``
forces a style: ``bar``, ``lines`` or ``off``.

    for rec in progress(records, "cinc2017", unit="rec"):
        ...
    bar = progress(range(epochs), "epochs", unit="epoch", every=1)
    for epoch in bar:
        bar.set_postfix(val_f1="0.812")
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO


def quiet_env() -> bool:
    return os.environ.get("ERTS_QUIET", "").lower() in ("1", "true", "yes")


def style(stream: TextIO | None = None) -> str:
    """``bar`` (stderr is a terminal), ``lines`` (it is not) or ``off``, unless ERTS_PROGRESS says otherwise."""
    forced = os.environ.get("ERTS_PROGRESS", "").lower()
    if forced in ("bar", "lines", "off"):
        return forced
    stream = stream or sys.stderr
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # closed or replaced stream
        return "lines"


def progress(iterable: Iterable | None = None, desc: str = "", *, total: int | None = None, unit: str = "it",
             disable: bool | None = None, every: int | None = None, interval: float = 60.0, leave: bool = False,
             stream: TextIO | None = None) -> Any:
    """A progress wrapper around ``iterable``: tqdm on a terminal, :class:`LineProgress` otherwise.

    disable: True hides it, None follows ERTS_QUIET. every: items between plain lines
    (default: a tenth of ``total``, or 100 without a total; 0: only every ``interval``
    seconds). interval: seconds after which a plain line is printed even before ``every`` items. leave: keep the bar when done (tqdm).
    Both kinds support iteration, ``len``, ``update``, ``set_postfix(_str)``, ``write`` and ``close``.
    """
    if disable is None:
        disable = quiet_env()
    kind = "off" if disable else style(stream)
    if kind == "bar":
        from tqdm import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, dynamic_ncols=True, file=stream)
    return LineProgress(iterable, desc, total=total, unit=unit, every=every, interval=interval,
                        stream=stream, silent=kind == "off")


class LineProgress:
    """Plain progress lines (``desc: 40/120 rec (33%), 12 s, ~24 s left``), for logs and pipes."""

    def __init__(self, iterable: Iterable | None = None, desc: str = "", *, total: int | None = None,
                 unit: str = "it", every: int | None = None, interval: float = 60.0,
                 stream: TextIO | None = None, silent: bool = False):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.desc, self.total, self.unit, self.interval, self.silent = desc, total, unit, interval, silent
        if every is None:
            every = max(1, math.ceil(total / 10)) if total else 100
        self.every = every  # 0: lines only every ``interval`` seconds
        self._stream = stream
        self.n = 0
        self.postfix = ""
        self.t0 = self._last = time.monotonic()
        self._closed = False

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr  # looked up late: tests and tools swap sys.stderr

    def __len__(self) -> int:
        return self.total or 0

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable or ():
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        due = bool(self.every) and (self.n // self.every) != ((self.n - n) // self.every)
        if due or now - self._last >= self.interval:
            if not (self.total and self.n >= self.total):  # the last line is printed by close()
                self._line(now)

    def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str = "", refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        pass

    def write(self, s: str, file: TextIO | None = None) -> None:
        if not self.silent:
            print(s, file=file or self.stream, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n:
            self._line(time.monotonic(), done=self.total is None or self.n >= self.total)

    def _line(self, now: float, done: bool = False) -> None:
        self._last = now
        if self.silent:
            return
        elapsed = now - self.t0
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            text = f"{head}{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%), {elapsed:.0f} s"
            if not done and 0 < self.n < self.total:
                text += f", ~{elapsed / self.n * (self.total - self.n):.0f} s left"
        else:
            text = f"{head}{self.n} {self.unit}, {elapsed:.0f} s"
        if done:
            text += ", done"
        if self.postfix:
            text += f" [{self.postfix}]"
        print(text, file=self.stream, flush=True)
