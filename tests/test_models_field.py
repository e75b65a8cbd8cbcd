"""The PTB-XL benchmark's anchors (resnet1d_wang, xresnet1d101): structure and parameter counts
against a spec written out from the reference code, the concat-pool head, Grad-CAM, determinism."""
from __future__ import annotations

import pytest
import torch
from test_gradcam import INDEX_TARGET, K, MULTI_HOT, calibrated, reference_gradcam
from torch import nn

from erts.explain import gradcam
from erts.models import ConcatPoolHead, count_params, create_model

pytestmark = pytest.mark.usefixtures("one_thread")

ANCHORS = ["resnet1d_wang", "xresnet1d101"]
LEADS, CLASSES = 12, 71  # PTB-XL "all" statements (exp0 of the benchmark)


# --- the reference architectures, written out as (in, out, kernel, stride) of every conv in order ---
# helme/ecg_ptbxl_benchmarking, code/models/{resnet1d,xresnet1d}.py, with fastai_model's kernel_size=5.

def wang_spec(leads: int) -> list[tuple[int, int, int, int]]:
    """ResNet1d(BasicBlock1d, [1, 1, 1], inplanes=128, kernel_size=[5, 3], kernel_size_stem=7,
    stride_stem=1, pooling_stem=False): the first block's convs, then its 1x1 shortcut if strided."""
    convs = [(leads, 128, 7, 1)]
    for stride in (1, 2, 2):
        convs += [(128, 128, 5, stride), (128, 128, 3, 1)]
        if stride != 1:
            convs.append((128, 128, 1, stride))
    return convs


def xresnet101_spec(leads: int) -> list[tuple[int, int, int, int]]:
    """XResNet1d(ResBlock, 4, [3, 4, 23, 3], stem_szs=(32, 32, 64), kernel_size=5): block_szs are
    [16, 64, 64, 64, 64] x expansion 4; the shortcut conv exists only where ni != nf (block 1)."""
    convs = [(leads, 32, 5, 2), (32, 32, 5, 1), (32, 64, 5, 1)]
    ni = 64
    for stage, n in enumerate([3, 4, 23, 3]):
        for b in range(n):
            stride = 2 if stage > 0 and b == 0 else 1
            convs += [(ni, 64, 1, 1), (64, 64, 5, stride), (64, 256, 1, 1)]
            if ni != 256:
                convs.append((ni, 256, 1, 1))
            ni = 256
    return convs


SPECS = {"resnet1d_wang": (wang_spec, 128), "xresnet1d101": (xresnet101_spec, 256)}


def spec_params(convs: list[tuple[int, int, int, int]], out_channels: int, classes: int, hidden: int = 128) -> tuple[int, int]:
    """(backbone, head) parameter counts: bias-free convs each followed by a BatchNorm (2 x out);
    head = BN(2C), Linear(2C, hidden), BN(hidden), Linear(hidden, K) (fastai create_head1d)."""
    backbone = sum(i * o * k + 2 * o for i, o, k, _ in convs)
    c2 = 2 * out_channels
    head = 2 * c2 + (c2 * hidden + hidden) + 2 * hidden + (hidden * classes + classes)
    return backbone, head


def _convs(module: nn.Module) -> list[tuple[int, int, int, int]]:
    return [(m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0]) for m in module.modules() if isinstance(m, nn.Conv1d)]


@pytest.mark.parametrize("name", ANCHORS)
def test_structure_and_param_counts_match_the_reference(name):
    spec, out_channels = SPECS[name]
    model = create_model(name, LEADS, CLASSES)
    assert _convs(model.backbone) == spec(LEADS)
    assert all(m.bias is None for m in model.backbone.modules() if isinstance(m, nn.Conv1d))
    n_bn = sum(isinstance(m, nn.BatchNorm1d) for m in model.backbone.modules())
    assert n_bn == len(spec(LEADS))  # one BatchNorm per conv
    backbone, head = spec_params(spec(LEADS), out_channels, CLASSES)
    assert (count_params(model.backbone), count_params(model.head)) == (backbone, head)
    # The reference modules themselves (reference code, fastai 1.0.61's bn_drop_lin/listify, built as
    # fastai_model does for 71 classes) count 481,863 and 1,880,775 parameters.
    assert count_params(model) == {"resnet1d_wang": 481_863, "xresnet1d101": 1_880_775}[name]


@pytest.mark.parametrize("name, steps", [("resnet1d_wang", (63, 250)), ("xresnet1d101", (8, 32))])
def test_output_shapes_250_and_1000(name, steps):
    torch.manual_seed(0)
    model = create_model(name, LEADS, 5).eval()
    channels = SPECS[name][1]
    for T, t_last in zip((250, 1000), steps):
        x = torch.randn(3, LEADS, T)
        with torch.no_grad():
            feats = model.forward_features(x)
            logits = model(x)
        assert feats.shape == (3, channels, t_last)
        assert logits.shape == (3, 5)
        torch.testing.assert_close(logits, model.forward_head(feats))


def test_default_head_is_the_benchmark_head_and_others_keep_theirs():
    wang = create_model("resnet1d_wang", LEADS, 5)
    assert isinstance(wang.head, ConcatPoolHead) and wang.head.kind == "concat"
    assert (wang.head.drop1.p, wang.head.drop.p) == (0.25, 0.5)  # ps_head=0.5: fastai halves it for the hidden layer
    assert (wang.head.fc1.in_features, wang.head.fc1.out_features) == (256, 128)  # concat pool, lin_ftrs_head=[128]
    assert create_model("resnet18_1d", LEADS, 5).head.kind == "linear"
    lin = create_model("xresnet1d101", LEADS, 5, head="linear", dropout=0.0)
    assert lin.head.kind == "linear" and lin.head.fc.in_features == 256
    other = create_model("resnet18_1d", LEADS, 5, head="concat", head_hidden=32, dropout=0.2)
    assert isinstance(other.head, ConcatPoolHead) and other.head.fc.in_features == 32 and other.head.drop1.p == 0.1


def test_concat_head_is_create_head1d():
    """[max, mean] pooling, then BN -> Dropout -> Linear -> ReLU -> BN -> Dropout -> Linear, in eval mode."""
    torch.manual_seed(0)
    head = ConcatPoolHead(8, 3, hidden=6, dropout=0.5)
    for bn in (head.bn1, head.bn2):  # non-trivial running statistics
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
        bn.bias.data.normal_()
    head.eval()
    feats = torch.randn(4, 8, 11)
    pooled = torch.cat([nn.functional.adaptive_max_pool1d(feats, 1), nn.functional.adaptive_avg_pool1d(feats, 1)], 1)[..., 0]
    torch.testing.assert_close(head.pool(feats), pooled)
    bn = lambda m, v: (v - m.running_mean) / torch.sqrt(m.running_var + m.eps) * m.weight + m.bias  # noqa: E731
    h = torch.relu(head.fc1(bn(head.bn1, pooled)))
    torch.testing.assert_close(head(feats), head.fc(bn(head.bn2, h)))


def test_concat_head_grad_pooled_is_the_summed_gradient():
    """grad_pooled == sum over positions of d(score)/dA from autograd (float64), ties in the max included."""
    torch.manual_seed(0)
    head = ConcatPoolHead(6, 4, hidden=5, dropout=0.3).double()
    for bn in (head.bn1, head.bn2):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.normal_()
    head.eval()
    a = torch.relu(torch.randn(3, 6, 9, dtype=torch.float64))
    a[:, 0] = 0.0  # a dead channel: every position ties for the max
    a[:, 1, 2] = a[:, 1, 5] = a[:, 1].max(-1).values + 1.0  # a two-way tie for the max
    a.requires_grad_(True)
    for w in (nn.functional.one_hot(torch.tensor([0, 3, 1]), 4).double(), MULTI_HOT.double()[:, :4]):
        (grad,) = torch.autograd.grad((head(a) * w).sum(), a)
        with torch.no_grad():
            ours = head.grad_pooled(head.pool(a), w)
        torch.testing.assert_close(ours, grad.sum(-1), rtol=1e-12, atol=1e-12)
        assert not torch.allclose(grad, grad.mean(-1, keepdim=True).expand_as(grad))  # the gradient itself varies


@pytest.mark.parametrize("name", ANCHORS)
def test_gradcam_equals_textbook_autograd(name):
    """The library's maps (fast path at the last stage, autograd at ``published``) == retain_grad Grad-CAM."""
    model, x = calibrated(name, "concat")
    for layer_name in ("last", "published"):
        layer = model.get_layer(layer_name)
        for target, weights in ((INDEX_TARGET, nn.functional.one_hot(INDEX_TARGET, K).float()), (MULTI_HOT, MULTI_HOT)):
            res = gradcam(model, x, target, layer=layer_name)
            ref = reference_gradcam(model, x, weights, layer)
            neg = reference_gradcam(model, x, -weights, layer)  # the other side of the ReLU
            scale = max(ref.abs().max().item(), neg.abs().max().item())
            assert scale > 1e-3
            torch.testing.assert_close(res.maps, ref, rtol=0, atol=1e-5 * scale)
            torch.testing.assert_close(gradcam(model, x, -weights, layer=layer_name).maps, neg, rtol=0, atol=1e-5 * scale)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("name", ANCHORS)
def test_selection_fast_focus_equals_autograd_focus(name):
    """ERTS' scoring pass takes the fast path for these models, and its focus equals autograd's."""
    from erts.selection.dropout import DataDropout

    model, x = calibrated(name, "concat")
    dd = DataDropout(model, "erts-dbpd", num_samples=3, epochs=10, input_length=x.shape[-1])
    assert dd.cam_fast
    y = INDEX_TARGET
    with torch.inference_mode():
        fast = dd.fast_focus(model.forward_features(x), y, K)
    ref = dd.focus_of(gradcam(model, x, y, fast=False).maps, x.shape[-1])
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-5)


def test_layer_names():
    wang = create_model("resnet1d_wang", LEADS, 5)
    assert list(wang.gradcam_layers()) == ["layer1", "layer2", "layer3", "last", "published"]
    assert wang.get_layer("last") is wang.backbone.layer3 and wang.get_layer("published") is wang.backbone.layer2
    assert wang.get_layer("layer2.0.conv1").kernel_size == (5,)
    x = create_model("xresnet1d101", LEADS, 5)
    assert list(x.gradcam_layers()) == ["layer1", "layer2", "layer3", "layer4", "last", "published"]
    assert x.get_layer("last") is x.backbone.layer4 and x.get_layer("published") is x.backbone.layer3
    assert len(x.backbone.layer3) == 23 and x.get_layer("layer3.22.convs.1") is x.backbone.layer3[22].convs[1]
    with pytest.raises(ValueError, match="valid names: layer1, layer2, layer3, last, published"):
        wang.get_layer("layer4")


def test_init_is_the_benchmark_weight_init():
    """kaiming fan-in convs and Linears, zero biases, unit BatchNorm (fastai_model applies weight_init last)."""
    torch.manual_seed(0)
    model = create_model("xresnet1d101", LEADS, 5)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in bns)
    conv = model.backbone.layer3[5].convs[1][0]  # 64 -> 64, 5 taps: fan-in 320
    assert abs(conv.weight.std().item() - (2 / 320) ** 0.5) < 0.05 * (2 / 320) ** 0.5
    assert not model.head.fc.bias.any() and not model.head.fc1.bias.any()
    zero = create_model("xresnet1d101", LEADS, 5, zero_init_residual=True)
    last_bns = [b.convs[-1][1].weight for stage in ("layer1", "layer2", "layer3", "layer4") for b in zero.backbone.get_submodule(stage)]
    assert len(last_bns) == 33 and all(not w.any() for w in last_bns)


@pytest.mark.parametrize("name", ANCHORS)
def test_deterministic_training_steps(name):
    """Same seed, same weights, same two AdamW steps, bit for bit on CPU; a kept pool of one sample trains."""
    def run() -> list[torch.Tensor]:
        torch.manual_seed(1)
        model = create_model(name, LEADS, 5).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        gen = torch.Generator().manual_seed(2)
        for batch in (4, 1):  # a batch of one: the head's BatchNorms use their running statistics
            x, y = torch.randn(batch, LEADS, 250, generator=gen), torch.randint(0, 2, (batch, 5), generator=gen).float()
            opt.zero_grad(set_to_none=True)
            nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            assert all(torch.isfinite(p.grad).all() for p in model.parameters())
            opt.step()
        return [t.detach().clone() for t in model.state_dict().values()]

    a, b = run(), run()
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def test_one_sample_batch_leaves_head_statistics_alone():
    head = ConcatPoolHead(4, 2).train()
    before = [head.bn1.running_mean.clone(), head.bn2.running_var.clone()]
    out = head(torch.randn(1, 4, 7))
    assert out.shape == (1, 2)
    assert torch.equal(head.bn1.running_mean, before[0]) and torch.equal(head.bn2.running_var, before[1])


def test_run_config_accepts_concat_head():
    from types import SimpleNamespace

    from erts.config import load_config
    from erts.train.builders import build_model

    rs = SimpleNamespace(num_leads=LEADS, num_classes=5)
    model = build_model(load_config(overrides=["model=xresnet1d101", "head=concat", "dropout=0.5"]), rs)
    assert isinstance(model.head, ConcatPoolHead) and model.head.drop.p == 0.5
    plain = build_model(load_config(overrides=["model=resnet1d_wang"]), rs)
    assert plain.head.kind == "linear"  # the run config's head default applies to every model
