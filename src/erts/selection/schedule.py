"""When each phase runs: warm-up, selection, ERTS, revision (torch-free, so config validation can use it).

The published schedule is warm-up 5, Grad-CAM from 8, revision from 50 of 100
epochs. Unset values follow those *proportions* of the run's epoch count (5 %,
8 %, 50 %, each rounded up), and each phase gets at least one epoch where the
epoch count allows it, so a 12-epoch run is warm-up 0, select 1-5 with ERTS
from 2, revision 6-11, and a 30-epoch run warm-up 0-1, ERTS from 3, revision
from 15. A value the user sets is used as given.

InfoBatch keeps its own schedule (Qin et al. 2024): one warm-up epoch fills the
score bank (InfoBatch initialises every score alike, so its first epoch prunes
nothing either), then it prunes while epoch + 1 <= delta x epochs, as the
official sampler counts (NUS-HPC-AI-Lab/InfoBatch @ 8bbb012: its iteration
counter is one ahead of the epoch), so the revision starts at floor(delta x
epochs): epoch 26 of 30 trains on everything, and a 7-epoch run has one
full-data epoch (6).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

WARMUP_FRAC, GRADCAM_FRAC, REVISION_FRAC = 0.05, 0.08, 0.5


def _frac(frac: float, epochs: int) -> int:
    return math.ceil(frac * epochs - 1e-9)


@dataclass(frozen=True)
class Schedule:
    """0-based epoch boundaries: warm-up [0, warmup), select [warmup, revision), revision [revision, epochs);
    the focus filter runs in select epochs from ``gradcam_start`` on."""

    epochs: int
    warmup: int
    gradcam_start: int
    revision: int
    method: str = "full"

    @property
    def selects(self) -> bool:
        return self.method != "full"

    @property
    def uses_erts(self) -> bool:
        return self.method.startswith("erts-")

    def phase(self, epoch: int) -> str:
        """full | warmup | select | revision."""
        if not self.selects:
            return "full"
        if epoch < self.warmup:
            return "warmup"
        return "revision" if epoch >= self.revision else "select"

    def erts_active(self, epoch: int) -> bool:
        return self.uses_erts and self.phase(epoch) == "select" and epoch >= self.gradcam_start

    def epochs_in(self, phase: str) -> list[int]:
        if phase == "erts":
            return [e for e in range(self.epochs) if self.erts_active(e)]
        return [e for e in range(self.epochs) if self.phase(e) == phase]

    def describe(self) -> str:
        """One line, e.g. "warm-up 0-1, select 2-14, ERTS 3-14, revision 15-29"."""
        if not self.selects:
            return f"full data in every epoch (0-{self.epochs - 1})"
        parts = []
        for label, phase in (("warm-up", "warmup"), ("select", "select"), ("ERTS", "erts"), ("revision", "revision")):
            if phase == "erts" and not self.uses_erts:
                continue
            parts.append(f"{label} {_span(self.epochs_in(phase))}")
        return ", ".join(parts)


def _span(epochs: list[int]) -> str:
    if not epochs:
        return "none"
    return str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}-{epochs[-1]}"


def resolve_schedule(method: str, epochs: int, warmup: int | None, gradcam_start: int | None,
                     revision: int | None, infobatch_delta: float = 0.875) -> Schedule:
    """Fills unset boundaries from the published proportions (see the module docstring)."""
    infobatch = method.removeprefix("erts-") == "infobatch"
    w = warmup if warmup is not None else (1 if infobatch else max(1, _frac(WARMUP_FRAC, epochs)))
    g = gradcam_start if gradcam_start is not None else max(w + 1, _frac(GRADCAM_FRAC, epochs))
    default_r = math.floor(infobatch_delta * epochs + 1e-9) if infobatch else _frac(REVISION_FRAC, epochs)
    r = revision if revision is not None else max(g + 1, default_r)
    return Schedule(epochs, w, g, r, method)


def schedule_problem(s: Schedule) -> str | None:
    """Why a selection run's schedule is useless (no select or no ERTS epoch), or None."""
    numbers = (f"epochs={s.epochs}, warmup_epochs={s.warmup}, gradcam_start={s.gradcam_start}, "
               f"revision_epoch={s.revision}")
    if s.selects and not s.epochs_in("select"):
        return (f"method={s.method} selects in no epoch: {numbers} (selection runs in epochs "
                f"warmup_epochs .. revision_epoch-1); raise epochs or set the boundaries")
    if s.uses_erts and not s.epochs_in("erts"):
        return (f"method={s.method} runs no ERTS epoch: {numbers} (the focus filter runs in epochs "
                f"max(warmup_epochs, gradcam_start) .. revision_epoch-1); raise epochs or set the boundaries")
    return None


def budget_epochs(epochs: int, budget: float | None) -> tuple[int, float]:
    """full with a budget: (epochs trained, fraction of the data the last one trains on), so that the
    effective epochs are budget x epochs: 0.62 of 30 is 19 epochs, the last on 60 % of the data."""
    if budget is None or budget >= 1:
        return epochs, 1.0
    target = budget * epochs
    n = max(1, math.ceil(target - 1e-9))
    return n, min(1.0, target - (n - 1))
