"""What only a GPU can check: Grad-CAM's fast path, the 2-D memory formats and a whole run on CUDA.

Every test here is marked ``cuda`` and skipped without a CUDA device (conftest.py);
``benchmarks/gpu_check.sh`` runs them with ``-m cuda``. Tolerances allow for TF32,
which cuDNN uses for float32 convolutions by default.
"""
from __future__ import annotations

import math

import pytest
import torch
from conftest import tiny_overrides
from test_gradcam import INDEX_TARGET, MULTI_HOT, calibrated

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


@pytest.mark.parametrize("name", ["resnet18_1d", "resnet18"])
def test_fast_path_equals_autograd_on_cuda(name):
    from erts.explain import gradcam

    model, x = calibrated(name, "mlp")
    model, x = model.to(CUDA), x.to(CUDA)
    for target in (INDEX_TARGET.to(CUDA), MULTI_HOT.to(CUDA)):
        fast = gradcam(model, x, target, layer="last", fast=True)
        slow = gradcam(model, x, target, layer="last", fast=False)
        assert fast.maps.device.type == "cuda"
        scale = slow.maps.abs().max().item()
        assert scale > 1e-3  # a real map, not an all-zero one
        torch.testing.assert_close(fast.maps, slow.maps, rtol=0, atol=2e-3 * scale)
    assert all(p.grad is None for p in model.parameters())


def test_2d_memory_formats_agree_on_cuda():
    from erts.models import create_model

    torch.manual_seed(0)
    base = create_model("resnet18", 12, 5, head="mlp").eval()
    nets = {f: create_model("resnet18", 12, 5, head="mlp").eval() for f in ("contiguous", "channels_last")}
    for f, m in nets.items():
        m.load_state_dict(base.state_dict())
        m.to(CUDA).set_memory_format(f)
    x = torch.randn(4, 12, 500, device=CUDA)
    with torch.no_grad():
        a, b = (nets[f](x) for f in ("contiguous", "channels_last"))
    assert nets["channels_last"].memory_format == "channels_last"
    torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2 * a.abs().max().item())


@pytest.mark.parametrize("bf16", [False, True])
def test_a_whole_erts_run_on_cuda(cache_dir, tmp_path, bf16):
    """Train, select with Grad-CAM, evaluate and checkpoint on the GPU; the checkpoint loads on the CPU."""
    from erts.config import load_config
    from erts.train.loop import load_run, train

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", device="cuda",
                                               bf16=str(bf16).lower(), name=f"cuda-bf16-{bf16}"))
    metrics = train(cfg, progress=False)
    assert math.isfinite(metrics["test"]["macro_f1"]) and metrics["epochs"] == cfg.train.epochs
    assert metrics["cost"]["flops"]["gradcam"] > 0  # the focus filter ran (fast path: FLOPs, no extra forward)
    _, model, _ = load_run(tmp_path / f"cuda-bf16-{bf16}")
    assert next(model.parameters()).device.type == "cpu"
