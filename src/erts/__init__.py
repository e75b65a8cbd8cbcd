"""erts: train ECG classifiers faster and more reliably (PDD + Grad-CAM focus filter).

The public API (docs/api.md), imported lazily so that ``import erts`` stays light:

- ``erts.DataDropout``, ``erts.EpochSampler``: data dropout and ERTS in your own loop;
- ``erts.train``, ``erts.load_run``, ``erts.predict``, ``erts.explain``: erts' own trainer and runs;
- ``erts.audit``: the training records most likely to be wrong, ranked.
"""


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, for an editable install too)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("erts")
    except (ImportError, PackageNotFoundError):  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()

_API = {"DataDropout": "erts.selection.dropout", "EpochSampler": "erts.selection.dropout",
        "train": "erts.api", "load_run": "erts.api", "predict": "erts.api", "explain": "erts.api",
        "prepare": "erts.api", "Run": "erts.api", "audit": "erts.api"}
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'erts' has no attribute {name!r}")
