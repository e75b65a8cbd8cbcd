"""examples/lightning_erts.py trains with DataDropout inside a Lightning loop."""
import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lightning_erts.py"


def test_lightning_example_selects_and_filters(capsys):
    spec = importlib.util.spec_from_file_location("lightning_erts", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dd = module.main(epochs=6)
    out = capsys.readouterr().out
    epochs = dd.summary()["epochs"]
    assert [e["phase"] for e in epochs] == ["warmup", "select", "select", "revision", "revision", "revision"]
    assert epochs[0]["n_kept"] == 256 and epochs[2]["n_filtered"] > 0      # ERTS ran in epoch 2
    assert dd.summary()["effective_epochs"] < 6 and "dropped by the focus filter" in out
    assert dd.summary()["backwards"]["gradcam"] > 0                      # autograd Grad-CAM at layer "2"
