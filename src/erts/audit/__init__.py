"""Find the training records that are wrong: ``erts audit`` / ``erts.audit(...)`` (docs/audit.md).

crossfit: k-fold cross-training that scores every record after every epoch; signals: the
per-record signals and the fixed combined score; metrics: AUROC, AP, top-5 % precision with
bootstrap intervals; core: the one call; page: the HTML page of the top suspects. The package
is also callable: ``erts.audit(...)`` is the API's function (erts/api.py).
"""
from erts._callable import forward_calls

forward_calls(__name__, "audit")
