"""Config loading: YAML + key=value overrides, with errors that name the key."""
import numpy as np
import pytest

from erts.config import ConfigError, LEAVES, config_from_dict, dump_config, load_config


def test_defaults_and_flat_and_dotted_overrides():
    cfg = load_config(overrides=["method=erts-dbpd", "selection.phi=0.5", "epochs=3", "bandpass=[0.5, 40]"])
    assert cfg.selection.method == "erts-dbpd" and cfg.selection.phi == 0.5 and cfg.train.epochs == 3
    assert cfg.data.bandpass == [0.5, 40.0]
    assert cfg.data.dataset == "synthetic"


def test_yaml_nested_and_flat(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("selection:\n  method: dbpd\n  tau: 0.2\nepochs: 4\nroot: null\n")
    cfg = load_config(f, ["tau=0.1"])
    assert (cfg.selection.method, cfg.selection.tau, cfg.train.epochs, cfg.data.root) == ("dbpd", 0.1, 4, None)


@pytest.mark.parametrize("override,needle", [
    (["phii=0.7"], "unknown config key 'phii'"),
    (["selection.tau_x=1"], "selection accepts"),
    (["epochs=three"], "train.epochs='three' is not an int"),
    (["granularity=sample"], "expected one of 'auto', 'batch', 'epoch'"),
    (["method=magic"], "method='magic' is not accepted"),
    (["phi=1.5"], "phi=1.5 must be in (0, 1]"),
    (["standardize=maybe"], "is not accepted"),
    (["nope"], "expected key=value"),
    (["device=tpu"], "device='tpu'"),
])
def test_errors_name_the_key_and_accepted_values(override, needle):
    with pytest.raises(ConfigError) as e:
        load_config(overrides=override)
    assert needle in str(e.value)


def test_flat_names_are_unique_and_roundtrip():
    assert len(LEAVES) == sum(1 for _ in LEAVES)  # built without collision (would raise at import)
    cfg = load_config(overrides=["method=srd", "gamma=0.95", "seed=3"])
    import yaml

    again = config_from_dict(yaml.safe_load(dump_config(cfg)))
    assert again == cfg


def test_preset_then_overrides():
    cfg = load_config(overrides=["preset=paper-ptbxl-resnet18-erts-dbpd", "epochs=20"])
    assert cfg.model.model == "resnet18" and cfg.selection.method == "erts-dbpd"
    assert cfg.optim.lr == 3e-4 and cfg.train.epochs == 20 and cfg.selection.gradcam_layer == "published"
    # the preset's schedule scales with the epochs (published 5 / 8 / 50 of 100)
    from erts.config import schedule_of

    s = schedule_of(cfg)
    assert (s.warmup, s.gradcam_start, s.revision) == (1, 2, 10)
    s = schedule_of(load_config(overrides=["preset=paper-ptbxl-resnet18-erts-dbpd"]))
    assert (s.warmup, s.gradcam_start, s.revision) == (5, 8, 50)
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(overrides=["preset=paper-nothing"])


def test_loss_policy_same_for_every_method_unless_published():
    from erts.train.builders import resolve_loss_name

    for method in ("full", "erts-dbpd"):
        assert resolve_loss_name(load_config(overrides=[f"method={method}"]), False) == "ce"
        assert resolve_loss_name(load_config(overrides=[f"method={method}", "loss=balanced_ce"]), False) == "balanced_ce"
    pub = ["loss_policy=published"]
    assert resolve_loss_name(load_config(overrides=["method=full", *pub]), False) == "ce"
    assert resolve_loss_name(load_config(overrides=["method=dbpd", *pub]), False) == "cb_ce"
    assert resolve_loss_name(load_config(overrides=["method=dbpd"]), True) == "bce"
    with pytest.raises(ConfigError, match="multi-label"):
        resolve_loss_name(load_config(overrides=["loss=ce"]), True)


def test_cb_ce_is_the_published_class_balanced_loss():
    """Cui et al. weights (1 - b) / (1 - b^n_c), b = 0.9999, scaled to sum to K, then a plain mean of
    w_y * CE over the samples (not PyTorch's weighted mean). Hand-computed for counts 3 and 1."""
    import math

    import torch

    from erts.train.builders import build_loss

    labels = np.array([0, 0, 0, 1])
    b = 0.9999
    raw = [(1 - b) / (1 - b ** 3), (1 - b) / (1 - b ** 1)]
    w = [2 * r / sum(raw) for r in raw]                      # K = 2
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    ce0 = -math.log(math.exp(2) / (math.exp(2) + 1))         # sample 0, class 0
    ce1 = -math.log(math.e / (1 + math.e))                   # samples 1 and 2, class 1
    expected = (w[0] * ce0 + 2 * w[1] * ce1) / 3
    loss = build_loss("cb_ce", labels, 2, torch.device("cpu"))(logits, y)
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    weighted_mean = (w[0] * ce0 + 2 * w[1] * ce1) / (w[0] + 2 * w[1])
    assert abs(float(loss) - weighted_mean) > 1e-3              # not the weighted mean
