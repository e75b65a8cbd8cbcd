"""What the model sees: the dataset as device tensors, the windows cut from each record's real
signal, the training split's standardisation, and the per-record aggregation of window predictions.

One place for all of it, because every number rests on it: a window cut from zero padding or a
scaler fitted on test records would go unseen by any metric (tests/test_windows.py checks both).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from erts.data.records import RecordSet


@dataclass
class Tensors:
    """The dataset as device tensors, so batching is one index_select (no per-epoch decoding).

    Windows are cut inside each record's real signal (``lengths``), never from the zero padding
    after a short record: random training windows start anywhere the window fits in the signal,
    scoring and evaluation take the signal's centre (or, ``eval_windows=sliding``, every
    ``stride``-th window over it, aggregated per record). A record shorter than the window is
    shown from its start, the padding after it unavoidable."""

    signals: torch.Tensor  # (N, leads, T) float32, the prepared records
    y: torch.Tensor | None  # (N,) long, or (N, K) float multi-hot (None: inputs only, api.predict)
    member: torch.Tensor | None  # (N, K) bool
    multilabel: bool
    window: int = 0        # crop_s in samples (0: whole records)
    random_crop: bool = False
    generator: torch.Generator | None = None  # draws random crop offsets (reseeded every epoch)
    lengths: torch.Tensor | None = None  # (N,) samples of real signal per record (None: the whole T)
    scale: tuple[float, float] = (0.0, 1.0)  # standardize=train: (mean, std) fitted on the training split
    stride: int = 0        # eval_windows=sliding: samples between window starts (0: centre window only)

    @property
    def length(self) -> int:
        """Samples per model input (the crop window, or the whole prepared record)."""
        t = self.signals.shape[-1]
        return self.window if 0 < self.window < t else t

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.scale
        return x if (mean, std) == (0.0, 1.0) else (x - mean) / std

    def _span(self, ids: torch.Tensor) -> torch.Tensor:
        """Per record, the last start at which a window lies inside its real signal (>= 0)."""
        t = self.signals.shape[-1]
        real = self.lengths[ids] if self.lengths is not None else torch.full((len(ids),), t, device=ids.device)
        return (real - self.window).clamp(0, t - self.window)

    def _cut(self, ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        cols = starts[:, None] + torch.arange(self.window, device=ids.device)       # (B, W)
        x = self.signals[ids]
        return self._scaled(x.gather(2, cols[:, None, :].expand(-1, x.shape[1], -1)))

    def x(self, ids: torch.Tensor, train: bool = False) -> torch.Tensor:
        """Inputs for ``ids``: whole records, or ``window``-sample windows of their real signal
        (random for training batches when crop=random, else the signal's centre)."""
        t = self.signals.shape[-1]
        if not self.window or self.window >= t:
            return self._scaled(self.signals[ids])
        span = self._span(ids)
        if train and self.random_crop:
            draw = torch.rand(len(ids), generator=self.generator, dtype=torch.float64).to(ids.device)
            starts = torch.minimum((draw * (span + 1)).long(), span)
        else:
            starts = span // 2
        return self._cut(ids, starts)

    def eval_windows(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluation inputs of ``ids``: (windows, the position in ``ids`` each comes from). The
        centre window of each record, or (``stride`` > 0) the windows starting at 0, stride, 2
        stride, ... that fit in its real signal, plus one ending at the signal's end when the
        strides miss it (the signal's last samples are always seen)."""
        if not self.stride or not self.window or self.window >= self.signals.shape[-1]:
            return self.x(ids), torch.arange(len(ids), device=ids.device)
        span = self._span(ids)
        owner, starts = [], []
        for pos, last in enumerate(span.tolist()):
            s = list(range(0, last + 1, self.stride))
            if s[-1] != last:
                s.append(last)
            owner += [pos] * len(s)
            starts += s
        owner_t = torch.tensor(owner, device=ids.device)
        return self._cut(ids[owner_t], torch.tensor(starts, device=ids.device)), owner_t

    @classmethod
    def from_recordset(cls, rs: RecordSet, device: torch.device, crop_s: float | None = None,
                       crop: str = "center", scale: tuple[float, float] = (0.0, 1.0),
                       stride_s: float | None = None) -> "Tensors":
        x = _signals_tensor(rs.signals, device)
        if rs.multilabel:
            y = torch.from_numpy(rs.labels.astype(np.float32)).to(device)
            member = y > 0.5
        else:
            y = torch.from_numpy(rs.labels.astype(np.int64)).to(device)
            member = torch.nn.functional.one_hot(y, rs.num_classes).bool()
        window = int(round(crop_s * rs.fs)) if crop_s else 0
        lengths = torch.from_numpy(rs.signal_lengths).to(device)
        stride = max(1, int(round(stride_s * rs.fs))) if stride_s else 0
        return cls(x, y, member, rs.multilabel, window, crop == "random", torch.Generator(), lengths, scale, stride)


def aggregate(probs: torch.Tensor, owner: torch.Tensor, n: int, how: str = "mean") -> torch.Tensor:
    """Per record, the mean (or max) of its windows' probabilities (``owner``: each window's record
    position in 0..n-1). The PTB-XL benchmark aggregates its sliding windows by the maximum."""
    k = probs.shape[1]
    if how == "max":
        out = torch.full((n, k), -torch.inf, device=probs.device, dtype=probs.dtype)
        return out.scatter_reduce(0, owner[:, None].expand(-1, k), probs, reduce="amax")
    total = torch.zeros((n, k), device=probs.device, dtype=probs.dtype).index_add_(0, owner, probs)
    count = torch.zeros(n, device=probs.device, dtype=probs.dtype).index_add_(0, owner, torch.ones_like(owner, dtype=probs.dtype))
    return total / count[:, None]


def eval_stride_s(data) -> float:
    """Seconds between sliding evaluation windows: ``eval_stride_s``, else half the window."""
    return data.eval_stride_s or (data.crop_s or 0) / 2


def fit_standardizer(rs: RecordSet) -> tuple[float, float]:
    """standardize=train (the PTB-XL benchmark's protocol, Strodthoff et al. 2021): one mean and
    standard deviation over every real sample of every lead of the *training* split only (never
    validation or test), applied to every record. Padding after short records is left out."""
    idx = rs.indices("train")
    lengths = rs.signal_lengths[idx]
    total, sq, n = 0.0, 0.0, 0
    for start in range(0, len(idx), 512):
        rows = idx[start:start + 512]
        x = np.asarray(rs.signals[rows], dtype=np.float64)
        real = np.arange(x.shape[-1])[None, :] < lengths[start:start + 512, None]  # (n, T)
        vals = x[np.broadcast_to(real[:, None, :], x.shape)]
        total, sq, n = total + vals.sum(), sq + np.square(vals).sum(), n + vals.size
    mean = total / max(n, 1)
    std = float(np.sqrt(max(sq / max(n, 1) - mean ** 2, 0.0)))
    return float(mean), std if std > 0 else 1.0


def _signals_tensor(signals: np.ndarray, device: torch.device) -> torch.Tensor:
    """The records as one float32 tensor on ``device``. On the CPU, a memory-mapped dataset cache is
    used in place, not copied: its pages are shared by every process of a torchrun job on the
    machine (and by the OS page cache), so N processes do not hold N copies. erts only reads it
    (batches are gathered copies); the tensor is read-only, which torch warns about once: silenced."""
    if device.type == "cpu" and isinstance(signals, np.memmap) and signals.dtype == np.float32 \
            and signals.flags.c_contiguous:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(signals)
    return torch.from_numpy(np.array(signals, dtype=np.float32)).to(device)  # one copy (in RAM, or on the GPU)
