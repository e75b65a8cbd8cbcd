"""Model zoo: shapes, input forms, faithfulness to torchvision, training step, layer names, errors."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from erts.models import ClassifierHead, create_model, list_models

MODELS_1D = ["resnet18_1d", "mobilenetv2_1d", "efficientnetv2s_1d"]
MODELS_2D = ["resnet18", "mobilenet_v2", "efficientnet_v2_s"]
OUT_CHANNELS = {"resnet18": 512, "mobilenet_v2": 1280, "efficientnet_v2_s": 1280}
TWIN = dict(zip(MODELS_1D, MODELS_2D))  # 1-D transposition -> torchvision original


pytestmark = pytest.mark.usefixtures("one_thread")


def _tv(name: str) -> nn.Module:
    return getattr(torchvision.models, name)(weights=None)


def test_registry_lists_all_six():
    assert sorted(list_models()) == sorted(MODELS_1D + MODELS_2D)


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
    with pytest.raises(ValueError, match="unknown head 'conv'; available: linear, mlp"):
        create_model("resnet18_1d", 12, 5, head="conv")


def test_backbone_kwargs():
    model = create_model("efficientnetv2s_1d", 12, 5, stochastic_depth_prob=0.0)
    assert all(m.p == 0.0 for m in model.modules() if type(m).__name__ == "StochasticDepth")
    with pytest.raises(TypeError):
        create_model("resnet18_1d", 12, 5, stochastic_depth_prob=0.1)
