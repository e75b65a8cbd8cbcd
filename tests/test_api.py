"""DataDropout in a hand-written loop with a user model that has no erts base class."""
import numpy as np
import pytest
import torch
from torch import nn

from erts.selection.dropout import DataDropout, EpochSampler


class SmallCNN(nn.Module):
    """A user's own 1-D CNN: no forward_features, no erts head."""

    def __init__(self, leads: int, k: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv1d(leads, 16, 7, padding=3), nn.ReLU(), nn.Conv1d(16, 32, 5, stride=2),
                                  nn.ReLU())
        self.fc = nn.Linear(32, k)

    def forward(self, x):
        return self.fc(self.body(x).mean(-1))


def toy_data(n=192, leads=2, t=64, k=3, seed=0):
    """Class c has a bump at position 10 + 20c; a fifth of the labels are flipped."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    x = 0.3 * torch.randn(n, leads, t, generator=g)
    for i in range(n):
        x[i, :, 10 + 20 * int(y[i]):14 + 20 * int(y[i])] += 2.0
    flip = torch.rand(n, generator=g) < 0.2
    y[flip] = (y[flip] + 1) % k
    return x, y


def test_data_dropout_in_a_hand_written_loop_with_a_user_model():
    torch.manual_seed(0)
    x_all, y_all = toy_data()
    n, k, bs, epochs, phi = len(y_all), 3, 32, 4, 0.7
    model = SmallCNN(2, k)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    dd = DataDropout(model, "erts-dbpd", num_samples=n, epochs=epochs, gradcam_layer="body.2", tau=0.6, phi=phi,
                     warmup_epochs=1, gradcam_start=1, revision_epoch=3, score_batch_size=64)
    stats = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(epoch))
        for b in order.split(bs):
            x, y, idx, weight = dd.select(x_all[b], y_all[b], b, epoch, num_classes=k)
            if len(idx) == 0:
                continue
            with dd.update_phase(len(idx)):
                model.train()
                loss = (dd.per_sample_loss(model(x), y) * weight).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        stats.append(dd.epoch_end(epoch))
    assert [s["phase"] for s in stats] == ["warmup", "select", "select", "revision"]
    assert stats[0]["n_kept"] == stats[3]["n_kept"] == n
    for s in stats[1:3]:
        log = s["log"]
        assert s["n_kept"] < n and s["n_filtered"] > 0
        assert (log["pdd_keep"] == (log["p"] < 0.6)).all()          # DBPD's own rule (no rescue for ERTS)
        # per batch of 32: the filter keeps int(phi * hard), at least one, plus class rescues
        for b in range(0, n, bs):
            hard = int(log["pdd_keep"][b:b + bs].sum())
            kept = int(log["erts_keep"][b:b + bs].sum()) - int(log["rescued"][b:b + bs].sum())
            expected = 0 if hard == 0 else (hard if hard == 1 else max(1, int(phi * hard)))
            assert kept == expected
            if hard > 1:
                assert np.isfinite(log["focus"][b:b + bs][log["pdd_keep"][b:b + bs]]).all()
    summary = dd.summary()
    # cost: a scoring pass over every sample in the two select epochs; autograd Grad-CAM (a forward
    # and a backward to body.2) for every candidate of a batch with more than one; updates counted
    ranked = sum(int(s["log"]["pdd_keep"][b:b + bs].sum()) for s in stats[1:3] for b in range(0, n, bs)
                 if s["log"]["pdd_keep"][b:b + bs].sum() > 1)
    assert summary["forwards"]["scoring"] == 2 * n
    assert summary["forwards"]["gradcam"] == summary["backwards"]["gradcam"] == ranked
    assert summary["backwards"]["update"] == sum(s["n_kept"] for s in stats)
    assert summary["effective_epochs"] == pytest.approx(sum(s["n_kept"] for s in stats) / n)


def test_epoch_sampler_yields_the_kept_indices():
    torch.manual_seed(0)
    x_all, y_all = toy_data(n=96)
    dataset = torch.utils.data.TensorDataset(x_all, y_all)
    model = SmallCNN(2, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):  # a partly trained model: some samples confident, some not
        loss = nn.functional.cross_entropy(model(x_all), y_all)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dd = DataDropout(model, "dbpd", num_samples=96, epochs=6, tau=0.5, granularity="epoch", class_rescue="off")
    sampler = EpochSampler(dd, dataset, num_classes=3)
    sampler.set_epoch(0)
    assert sorted(sampler) == list(range(96))                      # warm-up: everything
    dd.epoch_end(0)
    sampler.set_epoch(2)
    kept = list(sampler)
    log = dd.epoch_end(2)["log"]
    assert sorted(kept) == sorted(np.nonzero(log["p"] < 0.5)[0].tolist())
    assert len(kept) < 96


def test_a_hand_written_loop_keeps_what_erts_train_keeps(cache_dir, tmp_path):
    """The same seed and data through `erts train` and through DataDropout in a plain loop (same model
    init, shuffle, loss and optimiser) keep the same samples in every epoch."""
    from conftest import tiny_overrides
    from erts.config import load_config
    from erts.data import load_dataset
    from erts.train.builders import build_loss, build_model, build_optimizer, build_scheduler
    from erts.train.loop import seed_for, train
    from erts.data.tensors import Tensors

    cfg = load_config(overrides=tiny_overrides(cache_dir, tmp_path, method="erts-dbpd", epochs=4, name="t"))
    train(cfg)
    rs = load_dataset(cfg.data)
    seed, bs = cfg.train.seed, cfg.optim.batch_size
    torch.manual_seed(seed)
    model = build_model(cfg, rs)
    data = Tensors.from_recordset(rs, torch.device("cpu"))
    loss_fn = build_loss("ce", rs.labels[rs.indices("train")], rs.num_classes, torch.device("cpu"))
    opt, train_ids = build_optimizer(cfg, model), torch.from_numpy(rs.indices("train"))
    sched = build_scheduler(cfg, opt)
    dd = DataDropout(model, "erts-dbpd", num_samples=len(rs.labels), epochs=4, warmup_epochs=1, gradcam_start=1,
                     revision_epoch=3, score_batch_size=64, per_sample_loss=loss_fn.per_sample, seed=seed)
    for epoch in range(4):
        gen = torch.Generator().manual_seed(seed_for(seed, epoch, 1))
        torch.manual_seed(seed_for(seed, epoch, 2))
        order = train_ids[torch.randperm(len(train_ids), generator=gen)]
        for b in order.split(bs):
            x, y, idx, weight = dd.select(data.x(b), data.y[b], b, epoch, num_classes=rs.num_classes)
            if len(idx):
                model.train()
                loss = (dd.per_sample_loss(model(x), y) * weight).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        sched.step()
        mine = dd.epoch_end(epoch)["log"]
        ref = np.load(tmp_path / "t" / "selection" / f"epoch_{epoch:03d}.npz")
        np.testing.assert_array_equal(mine["index"], ref["index"])
        np.testing.assert_array_equal(mine["updated"], ref["updated"])
        np.testing.assert_array_equal(mine["pdd_keep"], ref["pdd_keep"])
    assert any(not np.load(tmp_path / "t" / "selection" / f"epoch_{e:03d}.npz")["updated"].all() for e in (1, 2))
