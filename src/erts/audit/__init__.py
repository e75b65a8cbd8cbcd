"""Find the training records that are wrong: ``erts audit`` / ``erts.audit(...)`` (docs/audit.md).

crossfit: k-fold cross-training that scores every record after every epoch; signals: the
per-record signals and the fixed combined score; metrics: AUROC, AP, top-5 % precision with
bootstrap intervals; core: the one call; page: the HTML page of the top suspects.
"""
from erts.audit.core import AuditResult, audit

__all__ = ["AuditResult", "audit"]
