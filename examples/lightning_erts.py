"""ERTS in a Lightning training loop: ``DataDropout.select`` at the top of ``training_step``.

    python examples/lightning_erts.py

The DataDropout is made in ``on_fit_start``, once Lightning has put the model on its device.
A batch whose kept set is empty returns None: Lightning then skips the optimiser step.
"""
from __future__ import annotations

import lightning as L
import torch
from torch import nn

from erts import DataDropout


class LitECG(L.LightningModule):
    def __init__(self, model: nn.Module, num_samples: int, epochs: int, num_classes: int, **selection):
        super().__init__()
        self.model, self.num_samples, self.epochs, self.num_classes = model, num_samples, epochs, num_classes
        self.selection = selection
        self.dd: DataDropout | None = None

    def on_fit_start(self) -> None:
        self.dd = DataDropout(self.model, num_samples=self.num_samples, epochs=self.epochs, device=self.device,
                              **self.selection)

    def training_step(self, batch, batch_idx):
        x, y, idx = batch
        x, y, idx, weight = self.dd.select(x, y, idx, self.current_epoch, num_classes=self.num_classes)
        if len(idx) == 0:
            return None
        self.model.train()  # select scored the batch in eval mode
        return (self.dd.per_sample_loss(self.model(x), y) * weight).mean()

    def on_train_epoch_end(self) -> None:
        stats = self.dd.epoch_end(self.current_epoch)
        print(f"epoch {self.current_epoch} {stats['phase']}: {stats['n_kept']} kept, "
              f"{stats['n_filtered']} dropped by the focus filter")

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main(epochs: int = 6) -> DataDropout:
    torch.manual_seed(0)
    x, y = torch.randn(256, 1, 128), torch.randint(0, 3, (256,))
    data = torch.utils.data.TensorDataset(x, y, torch.arange(len(y)))   # items: (x, y, dataset index)
    model = nn.Sequential(nn.Conv1d(1, 16, 7, padding=3), nn.ReLU(), nn.Conv1d(16, 32, 5), nn.ReLU(),
                          nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(32, 3))
    lit = LitECG(model, len(y), epochs, 3, method="erts-dbpd", gradcam_layer="2", tau=0.5)
    trainer = L.Trainer(max_epochs=epochs, accelerator="auto", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(lit, torch.utils.data.DataLoader(data, batch_size=64, shuffle=True))
    print(lit.dd.summary()["effective_epochs"], "effective epochs")
    return lit.dd


if __name__ == "__main__":
    main()
