"""Explanations: batched Grad-CAM and the focus score ERTS filters on."""
from erts.explain.gradcam import (GradCAMResult, cam_from_features, focus_measure, focus_score, gradcam,
                                 target_weights, upsample_to)

__all__ = ["GradCAMResult", "cam_from_features", "focus_measure", "focus_score", "gradcam", "target_weights", "upsample_to"]
