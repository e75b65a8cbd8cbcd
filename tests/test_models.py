"""Model zoo: shapes, input forms, faithfulness to torchvision, training step, layer names, errors."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from torch import nn

from erts.models import ClassifierHead, create_model, list_models

MODELS_1D = ["resnet18_1d", "mobilenetv2_1d", "efficientnetv2s_1d"]
MODELS_2D = ["resnet18", "mobilenet_v2", "efficientnet_v2_s"]
PTBXL_ANCHORS = ["resnet1d_wang", "xresnet1d101"]  # the PTB-XL benchmark's models: tests/test_models_field.py
OUT_CHANNELS = {"resnet18": 512, "mobilenet_v2": 1280, "efficientnet_v2_s": 1280}
TWIN = dict(zip(MODELS_1D, MODELS_2D))  # 1-D transposition -> torchvision original


pytestmark = pytest.mark.usefixtures("one_thread")


def _tv(name: str) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None)


def test_registry_lists_all_eight():
    assert sorted(list_models()) == sorted(MODELS_1D + MODELS_2D + PTBXL_ANCHORS)


def test_unknown_name_lists_available():
    with pytest.raises(ValueError, match="unknown model 'resnet50_1d'.*resnet18_1d.*efficientnet_v2_s"):
        create_model("resnet50_1d", 12, 5)


@pytest.mark.parametrize("name", MODELS_1D + MODELS_2D)
@pytest.mark.parametrize("leads", [12, 1])
def test_output_shapes(name, leads):
    torch.manual_seed(0)
    model = create_model(name, leads, 5).eval()
    x = torch.randn(2, leads, 1000)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    c = OUT_CHANNELS[TWIN.get(name, name)]
    expected = (2, c, 1, 32) if model.is_2d else (2, c, 32)  # 32x downsampling; 32 lead rows -> 1
    assert tuple(feats.shape) == expected
    assert logits.shape == (2, 5)
    assert torch.allclose(logits, model.forward_head(feats))
    assert model.num_classes == 5 and model.is_2d == (name in MODELS_2D)


@pytest.mark.parametrize("name", MODELS_2D)
def test_2d_accepts_leads_or_image(name):
    torch.manual_seed(0)
    model = create_model(name, 12, 3).eval()
    x = torch.randn(2, 12, 320)
    image = torch.zeros(2, 1, 32, 320)
    image[:, 0, :12] = x  # leads are the top rows, zero rows below
    with torch.no_grad():
        assert torch.equal(model(x), model(image))
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 12, T\) or \(B, 1, 32, T\)"):
        model(torch.randn(2, 1, 16, 320))


def test_bad_input_shapes():
    model = create_model("resnet18_1d", 12, 3)
    with pytest.raises(ValueError, match=r"resnet18_1d: expected input of shape \(B, 12, T\), got \(2, 8, 100\)"):
        model(torch.randn(2, 8, 100))
    with pytest.raises(ValueError, match="do not fit in lead_rows=8"):
        create_model("resnet18", 12, 3, lead_rows=8)


def _conv_signature(module: nn.Module) -> list[tuple[int, int, int, int, int]]:
    """(in, out, kernel, stride, groups) of every conv in order, one axis of the kernel/stride."""
    return [
        (m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.groups)
        for m in module.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d))
    ]


@pytest.mark.parametrize("name", MODELS_1D)
def test_1d_is_a_faithful_transposition(name):
    """Same convs in the same order (channels, kernel, stride, groups) as torchvision's feature extractor."""
    ours = _conv_signature(create_model(name, 3, 5).backbone)
    tv = _tv(TWIN[name])
    theirs = _conv_signature(tv.features if hasattr(tv, "features") else nn.Sequential(*list(tv.children())[:-2]))
    assert ours == theirs
    n_bn = lambda m, cls: sum(isinstance(x, cls) for x in m.modules())  # noqa: E731
    assert n_bn(create_model(name, 3, 5), nn.BatchNorm1d) == n_bn(tv, nn.BatchNorm2d)


@pytest.mark.parametrize("name", MODELS_2D)
def test_2d_param_count_matches_torchvision(name):
    """torchvision's feature extractor, less the two input channels the one-channel stem drops."""
    tv = _tv(name)
    tv_features = sum(p.numel() for n, p in tv.named_parameters() if not n.startswith(("fc.", "classifier.")))
    stem = tv.conv1 if hasattr(tv, "conv1") else tv.features[0][0]
    ours = create_model(name, 12, 5).backbone
    assert sum(p.numel() for p in ours.parameters()) == tv_features - 2 * stem.weight[:, 0].numel()


def test_1d_param_counts_are_sane():
    """1-D k-tap convs keep the widths, so counts sit between 1/9 and 1x of the k x k originals."""
    for name in MODELS_1D:
        ours = sum(p.numel() for p in create_model(name, 12, 5).backbone.parameters())
        tv = sum(p.numel() for n, p in _tv(TWIN[name]).named_parameters() if not n.startswith(("fc.", "classifier.")))
        assert tv / 9 < ours < tv, (name, ours, tv)


@pytest.mark.parametrize("name", MODELS_1D + MODELS_2D)
def test_training_step_changes_params_with_finite_grads(name):
    torch.manual_seed(0)
    model = create_model(name, 12, 3, head="mlp", dropout=0.1).train()
    x, y = torch.randn(4, 12, 256), torch.tensor([0, 1, 2, 0])
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    opt.step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert changed == len(before)


def test_same_seed_same_model():
    torch.manual_seed(3)
    a = create_model("mobilenetv2_1d", 12, 5)
    torch.manual_seed(3)
    b = create_model("mobilenetv2_1d", 12, 5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_gradcam_layer_names():
    r = create_model("resnet18_1d", 12, 5)
    layers = r.gradcam_layers()
    assert list(layers) == ["layer1", "layer2", "layer3", "layer4", "last", "published"]
    assert layers["last"] is r.backbone.layer4 and layers["published"] is r.backbone.layer3

    m = create_model("mobilenet_v2", 12, 5)
    layers = m.gradcam_layers()
    assert [k for k in layers if k.startswith("features.")] == [f"features.{i}" for i in range(19)]
    assert layers["published"] is m.backbone.features[-2] is m.get_layer("features.17")
    assert layers["last"] is m.backbone.features[-1]

    e = create_model("efficientnetv2s_1d", 12, 5)
    assert e.get_layer("published") is e.backbone.features[-2] is e.get_layer("features.6")
    assert e.get_layer("last") is e.backbone.features[7]
    assert e.get_layer("features.6.0.block") is e.backbone.features[6][0].block  # any backbone submodule path


def test_get_layer_error_lists_names():
    model = create_model("resnet18", 12, 5)
    with pytest.raises(ValueError, match="resnet18 has no layer 'layer5'; valid names: layer1, layer2, layer3, layer4, last, published"):
        model.get_layer("layer5")


def test_heads():
    z = torch.randn(3, 16)
    lin = ClassifierHead(16, 4, kind="linear")
    assert lin.kind == "linear" and lin.fc.in_features == 16
    assert torch.allclose(lin.from_pooled(z), z @ lin.fc.weight.T + lin.fc.bias)
    mlp = ClassifierHead(16, 4, kind="mlp", hidden=8, dropout=0.5).eval()
    assert mlp.kind == "mlp" and (mlp.fc1.out_features, mlp.fc.in_features) == (8, 8)
    assert torch.allclose(mlp.from_pooled(z), mlp.fc(torch.relu(mlp.fc1(z))))
    feats = torch.randn(3, 16, 5, 7)  # 2-D features: pooled over rows and time
    assert torch.allclose(mlp(feats), mlp.from_pooled(feats.mean((2, 3))), atol=1e-6)
    with pytest.raises(ValueError, match="unknown head 'conv'; available: linear, mlp, concat"):
        create_model("resnet18_1d", 12, 5, head="conv")
    with pytest.raises(ValueError, match="unknown head 'concat'; available: linear, mlp"):
        ClassifierHead(16, 4, kind="concat")  # the concat head is its own class (ConcatPoolHead)


def test_backbone_kwargs():
    model = create_model("efficientnetv2s_1d", 12, 5, stochastic_depth_prob=0.0)
    assert all(m.p == 0.0 for m in model.modules() if type(m).__name__ == "StochasticDepth")
    with pytest.raises(TypeError):
        create_model("resnet18_1d", 12, 5, stochastic_depth_prob=0.1)


# --- memory formats (issue 13): 2-D backbones run channels_last where faster; 1-D ones are unaffected ---

def _format_twins(name: str, **kw) -> dict[str, nn.Module]:
    """The same weights in both memory formats."""
    torch.manual_seed(0)
    base = create_model(name, 12, 3, **kw)
    return {"contiguous": base, "channels_last": copy.deepcopy(base).set_memory_format("channels_last")}


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-4) -> None:
    """Equal to ``rtol`` of the largest magnitude (gradients: of the whole model's)."""
    torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * max(a.abs().max().item(), 1e-6))


@pytest.mark.parametrize("name", MODELS_2D)
def test_2d_memory_formats_agree(name):
    """Same outputs, features and gradients in both formats; channels_last really runs channels_last."""
    nets = _format_twins(name, head="mlp")
    fresh = copy.deepcopy(nets)  # for the train-mode pass below, which updates BatchNorm running statistics
    cl = nets["channels_last"]
    assert (nets["contiguous"].memory_format, cl.memory_format) == ("contiguous", "channels_last")
    convs = [m.weight for m in cl.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    x, y = torch.randn(2, 12, 64), torch.tensor([0, 2])
    with torch.no_grad():
        out = {f: (m.eval().forward_features(x), m(x)) for f, m in nets.items()}
    feats = out["channels_last"][0]
    assert feats.is_contiguous(memory_format=torch.channels_last) and not feats.is_contiguous()
    _close(out["contiguous"][0], feats)
    _close(out["contiguous"][1], out["channels_last"][1])
    # backward, eval mode (BatchNorm on running statistics): float32 gradients agree
    grads = {}
    for f, m in nets.items():
        nn.functional.cross_entropy(m.eval()(x), y).backward()
        grads[f] = torch.cat([p.grad.flatten() for p in m.parameters()])
        m.zero_grad(set_to_none=True)
    _close(grads["contiguous"], grads["channels_last"], rtol=1e-3)
    # the update, train mode (batch statistics, same stochastic-depth draws). In float32, CPU BatchNorm
    # computes channels_last batch statistics less exactly (~1e-5 against ~1e-6 relative), and train-mode
    # BatchNorm over 2 tiny records (4 values per channel at the last stage) amplifies that to ~3e-3 in
    # MobileNetV2's logits (contiguous: 2e-4 from float64) and 1e-2 in gradients. So the layouts are
    # compared in float64 (same semantics, tight tolerance) and the float32 logits loosely.
    for dtype, rtol in ((torch.float32, 1e-2), (torch.float64, 1e-9)):
        outs, grads = {}, {}
        for f, m in copy.deepcopy(fresh).items():
            m = m.to(dtype)
            torch.manual_seed(1)
            outs[f] = m.train()(x.to(dtype))
            nn.functional.cross_entropy(outs[f], y).backward()
            grads[f] = torch.cat([p.grad.flatten() for p in m.parameters()])
        _close(outs["contiguous"], outs["channels_last"], rtol=rtol)
        if dtype == torch.float64:
            _close(grads["contiguous"], grads["channels_last"], rtol=rtol)
    # checkpoints move between formats (a run saved in one format resumes or loads in the other)
    back = fresh["contiguous"].eval()
    back.load_state_dict(cl.state_dict())
    with torch.no_grad():
        _close(back(x), cl.eval()(x))


@pytest.mark.parametrize("name", MODELS_2D)
def test_gradcam_same_maps_in_both_formats(name):
    """Fast path and autograd path, last stage and the published layer: equal maps in either format."""
    from erts.explain import gradcam

    nets = _format_twins(name, head="mlp")
    x, y = torch.randn(2, 12, 64), torch.tensor([1, 2])
    maps = {(f, how): gradcam(m, x, y, layer=layer, fast=fast)
            for f, m in nets.items()
            for how, layer, fast in (("fast", "last", True), ("autograd", "last", False), ("published", "published", False))}
    ref = maps["contiguous", "fast"]
    for key, r in maps.items():
        if key[1] != "published":
            _close(ref.maps, r.maps, rtol=1e-3)
            _close(ref.maps_2d, r.maps_2d, rtol=1e-3)
        _close(ref.logits, r.logits)
    _close(maps["contiguous", "published"].maps_2d, maps["channels_last", "published"].maps_2d, rtol=1e-3)
    assert all(p.grad is None for m in nets.values() for p in m.parameters())


def test_memory_format_auto_resolves_per_device_and_backbone():
    from types import SimpleNamespace

    from erts.config import ConfigError, load_config
    from erts.train.builders import build_model, resolve_memory_format

    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert resolve_memory_format("auto", True) == "channels_last"  # no device: the CPU rule
    assert resolve_memory_format("auto", True, cpu) == resolve_memory_format("auto", True, "cpu") == "channels_last"
    assert resolve_memory_format("auto", True, cuda) == "channels_last"
    assert resolve_memory_format("auto", True, mps) == "contiguous"  # not measured: the layout PyTorch defaults to
    assert resolve_memory_format("contiguous", True, cpu) == "contiguous"
    assert resolve_memory_format("channels_last", True, mps) == "channels_last"
    for fmt in ("auto", "contiguous", "channels_last"):
        for dev in (cpu, cuda):
            assert resolve_memory_format(fmt, False, dev) == "contiguous"  # 1-D: channels_last does not apply
    with pytest.raises(ConfigError, match="memory_format='nhwc'"):
        resolve_memory_format("nhwc", True, cpu)
    with pytest.raises(ValueError, match="memory_format='nhwc'"):
        create_model("resnet18", 12, 3, memory_format="nhwc")

    rs = SimpleNamespace(num_leads=12, num_classes=3)
    assert load_config().model.memory_format == "auto"
    assert build_model(load_config(overrides=["model=mobilenet_v2"]), rs).memory_format == "channels_last"
    assert build_model(load_config(overrides=["model=mobilenet_v2"]), rs, device="cpu").memory_format == "channels_last"
    assert build_model(load_config(overrides=["model=mobilenet_v2", "memory_format=contiguous"]), rs,
                       device=cpu).memory_format == "contiguous"
    assert build_model(load_config(overrides=["model=mobilenetv2_1d", "memory_format=channels_last"]), rs,
                       device=cpu).memory_format == "contiguous"


@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_1d_model_unaffected_by_memory_format(fmt):
    torch.manual_seed(0)
    plain = create_model("resnet18_1d", 12, 3).eval()
    torch.manual_seed(0)
    model = create_model("resnet18_1d", 12, 3, memory_format=fmt).eval()
    assert model.memory_format == "contiguous"
    assert all(p.is_contiguous() and torch.equal(p, q) for p, q in zip(model.parameters(), plain.parameters()))
    x = torch.randn(2, 12, 64)
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))
