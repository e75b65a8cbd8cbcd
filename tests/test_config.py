"""Config loading: YAML + key=value overrides, with errors that name the key."""
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
    (["granularity=sample"], "expected one of 'batch', 'epoch'"),
    (["method=magic"], "method='magic' is not accepted"),
    (["phi=1.5"], "phi=1.5 must be in (0, 1]"),
    (["standardize=maybe"], "not a bool"),
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
    cfg = load_config(overrides=["preset=paper-ptbxl-resnet18-erts-dbpd", "epochs=2"])
    assert cfg.model.model == "resnet18" and cfg.selection.method == "erts-dbpd"
    assert cfg.optim.lr == 3e-4 and cfg.train.epochs == 2 and cfg.selection.gradcam_layer == "published"
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(overrides=["preset=paper-nothing"])


def test_loss_policy_same_for_every_method_unless_published():
    from erts.train.builders import resolve_loss_name

    for method in ("full", "erts-dbpd"):
        assert resolve_loss_name(load_config(overrides=[f"method={method}"]), False) == "ce"
        assert resolve_loss_name(load_config(overrides=[f"method={method}", "loss=balanced_ce"]), False) == "balanced_ce"
    pub = ["loss_policy=published"]
    assert resolve_loss_name(load_config(overrides=["method=full", *pub]), False) == "ce"
    assert resolve_loss_name(load_config(overrides=["method=dbpd", *pub]), False) == "balanced_ce"
    assert resolve_loss_name(load_config(overrides=["method=dbpd"]), True) == "bce"
    with pytest.raises(ConfigError, match="multi-label"):
        resolve_loss_name(load_config(overrides=["loss=ce"]), True)
