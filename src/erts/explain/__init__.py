"""Explanations: batched Grad-CAM and the focus score ERTS filters on.

The package is also callable: ``erts.explain(run, signals, fs)`` is the API's function (erts/api.py).
"""
from erts._callable import forward_calls

from erts.explain.gradcam import (GradCAMResult, cam_from_features, focus_measure, focus_score, gradcam,
                                 target_weights, upsample_to)

__all__ = ["GradCAMResult", "cam_from_features", "focus_measure", "focus_score", "gradcam", "target_weights", "upsample_to"]


forward_calls(__name__, "explain")
