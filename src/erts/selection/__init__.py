"""Sample selection: the PDD rules (DBPD, SMRD, SRD), the ERTS focus filter, their schedule.

``erts.selection.schedule`` is torch-free (config validation uses it); the rest is
imported lazily so that importing the schedule never pulls in torch.
"""
from erts.selection.schedule import Schedule, resolve_schedule

__all__ = ["METHODS", "PoolScores", "Schedule", "Selection", "Selector", "resolve_schedule"]


def __getattr__(name: str):
    if name in ("METHODS", "PoolScores", "Selection", "Selector"):
        from erts.selection import selector

        return getattr(selector, name)
    raise AttributeError(f"module 'erts.selection' has no attribute {name!r}")
