"""Training: the one loop (loop.py), builders, cost accounting, sweeps, presets, run files.

The package is also callable: ``erts.train(...)`` is the API's training function (erts/api.py).
"""
from erts._callable import forward_calls

forward_calls(__name__, "train")
