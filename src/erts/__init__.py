"""erts: train ECG classifiers faster and more reliably (PDD + Grad-CAM focus filter)."""

__version__ = "0.1.0"
