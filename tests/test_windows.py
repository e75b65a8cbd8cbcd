"""What the model sees: windows cut from each record's real signal, never from its zero padding;
sliding-window evaluation aggregated per record; standardisation fitted on the training split only."""
import numpy as np
import pytest
import torch

from erts.config import load_config
from erts.data.preprocess import crop_or_pad
from erts.data.records import RecordSet, signal_lengths
from erts.train.loop import Trainer
from erts.data.tensors import Tensors, aggregate, fit_standardizer

FS, T, W = 100.0, 1000, 250  # 10-s prepared records, 2.5-s windows
REAL = [1000, 700, 400, 251, 250, 120, 600, 900]  # samples of real signal per record


def padded_recordset(real=REAL, offset_test: float = 0.0) -> RecordSet:
    """Records of non-zero signal (|x| >= 1 everywhere) zero-padded at the end, as loaders pad."""
    rng = np.random.default_rng(0)
    sig = []
    for n in real:
        x = (rng.choice([-1.0, 1.0], size=(2, n)) * (1.0 + rng.random((2, n)))).astype(np.float32)
        sig.append(crop_or_pad(x, T))
    split = np.array(["train", "val", "test"] * (len(real) // 3 + 1))[:len(real)]
    signals = np.stack(sig)
    signals[split == "test"] += np.where(signals[split == "test"] != 0, offset_test, 0).astype(np.float32)
    return RecordSet(name="pad", signals=signals, labels=np.arange(len(real)) % 2, split=split,
                     record_ids=np.array([f"r{i}" for i in range(len(real))]), class_names=["a", "b"], fs=FS,
                     lead_names=["I", "II"])


def tensors(rs, crop="random", stride_s=None, scale=(0.0, 1.0)) -> Tensors:
    return Tensors.from_recordset(rs, torch.device("cpu"), crop_s=W / FS, crop=crop, scale=scale, stride_s=stride_s)


def assert_inside_signal(x: torch.Tensor, ids, real):
    """A window of a record at least W long holds no padding (padding is exactly 0, signal never)."""
    for row, i in zip(x, ids):
        if real[i] >= W:
            assert bool((row != 0).all()), f"record {i} ({real[i]} samples): window cut from padding"
        else:  # shorter than the window: shown from its start, all of its signal in the window
            assert bool((row[:, :real[i]] != 0).all()) and bool((row[:, real[i]:] == 0).all())


def test_signal_lengths_find_the_padding():
    rs = padded_recordset()
    assert signal_lengths(rs.signals).tolist() == REAL
    assert rs.signal_lengths.tolist() == REAL


def test_random_training_windows_lie_in_the_real_signal_and_reach_every_offset():
    rs = padded_recordset()
    t = tensors(rs)
    t.generator.manual_seed(0)
    ids = torch.arange(len(REAL))
    starts = {i: set() for i in range(len(REAL))}
    for _ in range(400):
        x = t.x(ids, train=True)
        assert x.shape == (len(REAL), 2, W)
        assert_inside_signal(x, ids.tolist(), REAL)
        for i in range(len(REAL)):  # recover the start from the record's content
            row = rs.signals[i]
            for s in range(0, max(REAL[i] - W, 0) + 1):
                if np.array_equal(row[:, s:s + W], x[i].numpy()):
                    starts[i].add(s)
                    break
    # every start that fits is drawn for a short span (record 3: 251 samples, starts 0 and 1)
    assert starts[3] == {0, 1} and starts[4] == {0} and starts[5] == {0}
    # a long record's starts spread over its whole real signal, not into its padding
    assert max(starts[1]) <= REAL[1] - W and max(starts[1]) > 0.8 * (REAL[1] - W)


def test_centre_window_is_the_centre_of_the_real_signal():
    rs = padded_recordset()
    t = tensors(rs, crop="center")
    ids = torch.arange(len(REAL))
    x = t.x(ids, train=True)  # crop=center: training takes the centre too
    for i, n in enumerate(REAL):
        s = max(n - W, 0) // 2
        np.testing.assert_array_equal(x[i].numpy(), rs.signals[i][:, s:s + W])
    assert_inside_signal(t.x(ids), ids.tolist(), REAL)


def test_sliding_windows_cover_the_real_signal_and_aggregate_per_record():
    rs = padded_recordset()
    t = tensors(rs, stride_s=1.25)
    ids = torch.arange(len(REAL))
    x, owner = t.eval_windows(ids)
    assert_inside_signal(x, owner.tolist(), REAL)
    counts = np.bincount(owner.numpy(), minlength=len(REAL))
    # 10-s record: starts 0, 125, ..., 750 (7 windows, the benchmark's count); 700: 0,125,250,375,450
    expected = [len(range(0, max(n - W, 0) + 1, 125)) + int(max(n - W, 0) % 125 != 0) for n in REAL]
    assert counts.tolist() == expected and counts[0] == 7 and counts[1] == 5
    # the last window of each record ends at its signal's end
    for i, n in enumerate(REAL):
        last = x[owner == i][-1]
        end = max(n, W)
        np.testing.assert_array_equal(last.numpy(), rs.signals[i][:, end - W:end])
    p = torch.tensor([[0.2, 0.8], [0.6, 0.4], [1.0, 0.0]])
    o = torch.tensor([0, 0, 1])
    np.testing.assert_allclose(aggregate(p, o, 2).numpy(), [[0.4, 0.6], [1.0, 0.0]], rtol=1e-6)
    np.testing.assert_allclose(aggregate(p, o, 2, "max").numpy(), [[0.6, 0.8], [1.0, 0.0]], rtol=1e-6)


def test_standardizer_is_fitted_on_the_training_split_only():
    clean = padded_recordset()
    leaked = padded_recordset(offset_test=1000.0)  # test records shifted: a leak would move the mean by ~300
    mean, std = fit_standardizer(leaked)
    assert (mean, std) == pytest.approx(fit_standardizer(clean))
    # independently: the mean and std of the training records' real samples
    train = [clean.signals[i][:, :REAL[i]] for i in clean.indices("train")]
    vals = np.concatenate([v.ravel() for v in train]).astype(np.float64)
    assert mean == pytest.approx(vals.mean(), abs=1e-9) and std == pytest.approx(vals.std(), rel=1e-9)
    t = tensors(leaked, crop="center", scale=(mean, std))
    x = t.x(torch.tensor([0]))
    np.testing.assert_allclose(x[0].numpy(), (leaked.signals[0][:, 375:625] - mean) / std, rtol=1e-5)


def test_training_scoring_and_evaluation_never_see_padding(tmp_path):
    """Through the Trainer: every input of the update, the per-epoch scoring pass, the focus
    pass and validation/test comes from the real signal of its record."""
    real = [1000, 300, 260, 800, 500, 270] * 6
    rs = padded_recordset(real)
    cfg = load_config(overrides={"method": "erts-dbpd", "granularity": "epoch", "epochs": 3, "warmup_epochs": 1,
                                 "gradcam_start": 1, "revision_epoch": 3, "tau": 0.9, "gradcam_layer": "layer3", "crop_s": W / FS,
                                 "crop": "random", "eval_windows": "sliding", "batch_size": 8, "quiet": True,
                                 "num_threads": 1, "out_dir": str(tmp_path), "name": "r"})
    (tmp_path / "r" / "checkpoints").mkdir(parents=True)
    trainer = Trainer(cfg, rs, tmp_path / "r", progress=False)
    seen = []
    trainer.model.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    trainer.fit()
    trainer.finish()
    c = trainer.cost.summary(len(trainer.idx["train"]))
    assert c["forwards"]["scoring"] > 0 and c["forwards"]["update"] > 0 and c["forwards"]["gradcam"] > 0
    windows = torch.cat(seen)
    assert windows.shape[-1] == W
    # every record is >= W long here, so no input may hold a padded (exactly zero) sample
    assert bool((windows != 0).all()), "an input window was cut from zero padding"
