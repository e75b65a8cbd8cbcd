"""Sample selection: the PDD rules (DBPD, SMRD, SRD), the ERTS focus filter, their schedule."""
from erts.selection.selector import METHODS, PoolScores, Selector

__all__ = ["METHODS", "PoolScores", "Selector"]
