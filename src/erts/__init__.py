"""erts: train ECG classifiers faster and more reliably (PDD + Grad-CAM focus filter)."""


def _version() -> str:
    """The installed distribution's version (pyproject.toml's, for an editable install too)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("erts")
    except (ImportError, PackageNotFoundError):  # run from a source tree that was never installed
        return "0+unknown"


__version__ = _version()
