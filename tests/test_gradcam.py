"""Grad-CAM engine: fast path == autograd path on every backbone, definitions, side effects, focus score."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from erts.explain import cam_from_features, focus_measure, focus_score, gradcam, upsample_to
from erts.models import HEADS, create_model, list_models

K = 4
INDEX_TARGET = torch.tensor([0, 3, 1])
MULTI_HOT = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
LAST_STRIDE = {"resnet1d_wang": 4}  # time downsampling at the last stage; 32 for the others


pytestmark = pytest.mark.usefixtures("one_thread")


def calibrated(name: str, head: str, dtype: torch.dtype = torch.float32, T: int = 256) -> tuple[nn.Module, torch.Tensor]:
    """A random model whose BatchNorm running stats come from one batch, so eval-mode activations
    have unit scale and the maps are far from zero (random-init running stats make them ~1e-10)."""
    torch.manual_seed(0)
    model = create_model(name, 12, K, head=head, dropout=0.2).to(dtype)
    x = torch.randn(3, 12, T, dtype=dtype)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average: one batch sets the stats
    with torch.no_grad():
        model.train()(x)
    return model.eval(), x


def reference_gradcam(model: nn.Module, x: torch.Tensor, weights: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Textbook Grad-CAM with retain_grad and a full backward, independent of the engine."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.setdefault("A", o))
    logits = model(x)
    handle.remove()
    store["A"].retain_grad()
    (logits * weights).sum().backward()
    a, g = store["A"], store["A"].grad
    alpha = g.flatten(2).mean(-1).reshape(*g.shape[:2], *[1] * (g.ndim - 2))
    cam = torch.relu((alpha * a).sum(1)).detach()
    model.zero_grad(set_to_none=True)
    return cam.mean(1) if cam.ndim == 3 else cam


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("name", list_models())
def test_fast_path_equals_autograd(name, head):
    model, x = calibrated(name, head)
    # each target and its negation (weights -w): the ReLU keeps the positive side of the one and the
    # negative side of the other, so the pair compares the whole sum_k alpha_k A_k (a random model's
    # map can be all zero for one sign: xresnet1d101 with the mlp head and MULTI_HOT)
    for target, negated in ((INDEX_TARGET, -nn.functional.one_hot(INDEX_TARGET, K).float()), (MULTI_HOT, -MULTI_HOT)):
        runs = [(gradcam(model, x, t, layer="last", fast=True), gradcam(model, x, t, layer="last", fast=False))
                for t in (target, negated)]
        scale = max(slow.maps.abs().max().item() for _, slow in runs)
        assert scale > 1e-3  # a real map, not an all-zero one
        for fast, slow in runs:
            torch.testing.assert_close(fast.maps, slow.maps, rtol=0, atol=1e-5 * scale)  # float32 rounding only
            torch.testing.assert_close(fast.logits, slow.logits)
            if model.is_2d:
                assert fast.maps_2d.shape[:2] == (3, 1) and slow.maps_2d is not None
                torch.testing.assert_close(fast.maps_2d, slow.maps_2d, rtol=0, atol=1e-5 * scale)
                torch.testing.assert_close(fast.maps, fast.maps_2d.mean(1))
            else:
                assert fast.maps_2d is None and slow.maps_2d is None
            assert fast.maps.shape == (3, 256 // LAST_STRIDE.get(name, 32))
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ["resnet18_1d", "resnet18", "mobilenetv2_1d"])
def test_middle_layer_matches_textbook_gradcam(name):
    model, x = calibrated(name, "mlp")
    layer = model.get_layer("published")
    for target, weights in ((INDEX_TARGET, nn.functional.one_hot(INDEX_TARGET, K).float()), (MULTI_HOT, MULTI_HOT)):
        res = gradcam(model, x, target, layer="published")
        ref = reference_gradcam(model, x, weights, layer)
        scale = ref.abs().max().item()
        assert scale > 1e-3
        torch.testing.assert_close(res.maps, ref, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "name, maps_shape, maps_2d_shape",
    [
        ("resnet18_1d", (3, 32), None),  # layer3: stride 16
        ("mobilenetv2_1d", (3, 16), None),  # features.17: stride 32
        ("efficientnetv2s_1d", (3, 16), None),  # features.6: stride 32
        ("resnet18", (3, 32), (3, 2, 32)),  # 32 lead rows / 16 = 2 rows
        ("mobilenet_v2", (3, 16), (3, 1, 16)),
        ("efficientnet_v2_s", (3, 16), (3, 1, 16)),
    ],
)
def test_published_layer_shapes(name, maps_shape, maps_2d_shape):
    torch.manual_seed(0)
    model = create_model(name, 12, K)
    res = gradcam(model, torch.randn(3, 12, 512), INDEX_TARGET, layer="published")
    assert res.maps.shape == maps_shape and res.logits.shape == (3, K)
    assert (res.maps_2d is None) if maps_2d_shape is None else (res.maps_2d.shape == maps_2d_shape)
    if maps_2d_shape is not None:
        torch.testing.assert_close(res.maps, res.maps_2d.mean(1))
    assert (res.maps >= 0).all()


def test_no_parameter_gradients_and_existing_grads_untouched():
    model, x = calibrated("resnet18_1d", "mlp")
    marker = torch.full_like(model.head.fc.weight, 7.0)
    model.head.fc.weight.grad = marker.clone()
    for layer, fast in (("layer2", True), ("last", False), ("last", True)):
        gradcam(model, x, INDEX_TARGET, layer=layer, fast=fast)
    assert torch.equal(model.head.fc.weight.grad, marker)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "head.fc.weight")


@pytest.mark.parametrize("fast", [True, False])
def test_mode_restored(fast):
    model, x = calibrated("resnet18_1d", "mlp")
    model.train()
    model.backbone.layer1.eval()  # a mixed state must come back exactly
    before = {n: m.training for n, m in model.named_modules()}
    bn = model.backbone.bn1
    stats = bn.running_mean.clone()
    res = gradcam(model, x, INDEX_TARGET, fast=fast)
    assert {n: m.training for n, m in model.named_modules()} == before
    assert torch.equal(bn.running_mean, stats)  # ran in eval mode: BatchNorm stats untouched
    with torch.no_grad():
        torch.testing.assert_close(res.logits, model.eval()(x))  # eval-mode logits (dropout off)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("ctx", [torch.inference_mode, torch.no_grad])
def test_cam_from_features_under_inference_mode(head, ctx):
    model, x = calibrated("mobilenet_v2", head)
    with ctx():
        feats = model.forward_features(x)
        logits = model.forward_head(feats)
        maps, maps_2d = cam_from_features(model, feats, MULTI_HOT)
    ref = gradcam(model, x, MULTI_HOT, fast=False)
    torch.testing.assert_close(logits, ref.logits)
    torch.testing.assert_close(maps, ref.maps, rtol=1e-4, atol=1e-5 * ref.maps.abs().max().item())
    torch.testing.assert_close(maps_2d, ref.maps_2d, rtol=1e-4, atol=1e-5 * ref.maps.abs().max().item())


def test_cam_from_bf16_autocast_features_is_fp32():
    model, x = calibrated("resnet18_1d", "linear")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        feats = model.forward_features(x)
        maps, _ = cam_from_features(model, feats, INDEX_TARGET)
    ref = gradcam(model, x, INDEX_TARGET).maps
    assert feats.dtype == torch.bfloat16 and maps.dtype == torch.float32
    assert torch.corrcoef(torch.stack([maps.flatten(), ref.flatten()]))[0, 1] > 0.98


def test_target_validation():
    model, x = calibrated("resnet18_1d", "linear")
    with pytest.raises(ValueError, match=r"class indices must be in \[0, 4\)"):
        gradcam(model, x, torch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match="3 class indices for a batch of 2"):
        gradcam(model, x[:2], INDEX_TARGET)
    with pytest.raises(ValueError, match=r"got torch.float64 of shape \(3, 5\)"):
        gradcam(model, x, torch.zeros(3, 5, dtype=torch.float64))


def test_layer_by_module_and_bad_name():
    model, x = calibrated("resnet18_1d", "linear")
    by_name = gradcam(model, x, INDEX_TARGET, layer="layer2")
    by_module = gradcam(model, x, INDEX_TARGET, layer=model.backbone.layer2)
    assert torch.equal(by_name.maps, by_module.maps) and by_name.maps.shape == (3, 32)
    with pytest.raises(ValueError, match="no layer 'layer9'"):
        gradcam(model, x, INDEX_TARGET, layer="layer9")


def test_upsample_to():
    maps = torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    up = upsample_to(maps, 8)
    assert up.shape == (2, 8)
    assert torch.equal(up[1], torch.full((8,), 2.0))  # constant stays constant
    assert up[0, 0] == 0.0 and up[0, -1] == 1.0 and (up[0].diff() >= 0).all()
    assert upsample_to(torch.rand(2, 3, 5), 20).shape == (2, 3, 20)


def test_focus_score_hand_computed():
    maps = torch.tensor(
        [
            [3.0] * 10,  # constant -> 0
            [0, 0, 0, 0, 5.0, 0, 0, 0, 0, 0],  # single peak, k = 1 -> 1
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9.0],  # top 1 of normalised values -> 1
            [2, 2, 2, 2, 2, 2, 2, 2, 2, 4.0],  # normalised to one peak -> 1
        ]
    )
    torch.testing.assert_close(focus_score(maps, q=0.1), torch.tensor([0.0, 1.0, 1.0, 1.0]))
    # q = 0.2 keeps 2 values: peak 1 and 0 -> 0.5; ramp: (9 + 8) / 9 / 2
    torch.testing.assert_close(focus_score(maps, q=0.2), torch.tensor([0.0, 0.5, 17 / 18, 0.5]))
    # q * n = 0.4 rounds to 0 -> at least one value is kept
    torch.testing.assert_close(focus_score(torch.tensor([[0.0, 1.0, 4.0, 2.0]]), q=0.1), torch.tensor([1.0]))
    # q * n = 2.5 -> k = int(2.5) = 2, the published max(1, W // 10) rule: (1 + 0.75) / 2
    torch.testing.assert_close(focus_score(torch.tensor([[0.0, 1, 2, 3, 4]]), q=0.5), torch.tensor([0.875]))
    # W = 25 positions, q = 0.1 -> W // 10 = 2 values: the two highest of a ramp 0..24 -> (1 + 23/24) / 2
    ramp = torch.arange(25.0)[None]
    torch.testing.assert_close(focus_score(ramp, q=0.1), torch.tensor([(1 + 23 / 24) / 2]))
    # q = 1: the mean of the whole normalised map
    torch.testing.assert_close(focus_score(torch.tensor([[0.0, 1, 2, 3, 4]]), q=1.0), torch.tensor([0.5]))


def test_focus_score_invariances_and_errors():
    torch.manual_seed(0)
    maps = torch.rand(5, 40)
    torch.testing.assert_close(focus_score(3.0 * maps + 2.0), focus_score(maps))  # min-max normalised
    torch.testing.assert_close(focus_score(maps.view(5, 4, 10)), focus_score(maps))  # 2-D maps flattened
    with pytest.raises(ValueError, match=r"q=0.0 must be in \(0, 1\]"):
        focus_score(maps, q=0.0)


def test_autograd_path_inside_inference_mode():
    model, x = calibrated("resnet18_1d", "mlp")
    ref = gradcam(model, x, INDEX_TARGET, layer="published")
    with torch.inference_mode():
        res = gradcam(model, x.clone(), INDEX_TARGET, layer="published")
    torch.testing.assert_close(res.maps, ref.maps)


def test_focus_measures_on_a_peak_a_plateau_and_a_flat_map():
    """The paper's score (topq) ranks a broad plateau at least as high as a narrow peak; mass and
    entropy measure concentration and rank the peak first. n = 100 positions, q = 0.1 (k = 10)."""
    peak = torch.zeros(100)
    peak[50] = 1.0                                   # one position
    plateau = torch.zeros(100)
    plateau[20:50] = 1.0                             # 30 positions
    flat = torch.ones(100)
    zero = torch.zeros(100)
    maps = torch.stack([peak, plateau, flat, zero])
    # topq: peak -> (1 + 9 * 0) / 10; plateau -> 10 ones / 10; flat and zero -> constant -> 0
    torch.testing.assert_close(focus_measure(maps, "topq", 0.1), torch.tensor([0.1, 1.0, 0.0, 0.0]))
    # mass in the top 10 positions: peak 1/1; plateau 10/30; flat 10/100; zero: no evidence -> 0
    torch.testing.assert_close(focus_measure(maps, "mass", 0.1), torch.tensor([1.0, 1 / 3, 0.1, 0.0]))
    # 1 - H/log(100): peak H = 0; plateau H = log 30; flat H = log 100
    expected = torch.tensor([1.0, 1 - math.log(30) / math.log(100), 0.0, 0.0])
    torch.testing.assert_close(focus_measure(maps, "entropy", 0.1), expected)
    with pytest.raises(ValueError, match="unknown focus measure"):
        focus_measure(maps, "gini")
