"""2-D (published, torchvision) backbones against their 1-D versions: seconds per epoch and peak memory.

Each backbone trains in its own subprocess (so peak memory is its own) on the same
records of the built-in dataset (12 leads, 100 Hz x 10 s, the PTB-XL shape), with
erts' loop (`method=full`), for `--samples` training samples; seconds per epoch are
scaled from the measured samples per second to the full training split (3,500
records of the default 5,000). Peak memory is the process's maximum resident set
size (CPU) or `torch.cuda.max_memory_allocated` (GPU). The 2-D backbones run in the
memory format `--memory-format` gives (default `auto`, the run default).

Memory formats (`--bench format`): each 2-D backbone in both memory formats
(`contiguous`, `channels_last`), side by side in this process, same weights and
inputs, rounds alternating which format goes first: scoring (eval mode,
`inference_mode` forward of `--score-batch` 12-lead records -> 32-row images)
and update (train-mode forward + cross-entropy backward + fused AdamW step on
`--batch` records). Prints medians over `--repeats` rounds, the ratio
contiguous / channels_last of the medians (above 1: channels_last faster), and
the median and range of the same ratio taken round by round.

Training step (`--bench step`): the `--models` side by side in this process, each
with its own default head, one update per round (train-mode forward +
binary cross-entropy on multi-hot targets + backward + fused AdamW step on
`--batch` records of 12 x `--length`), rounds rotating which model goes first.
Prints the median and fastest step per model and the median ratio to the first.

    python benchmarks/backbones.py                   # both: all six, 256 samples each; then the formats
    python benchmarks/backbones.py --models resnet18_1d,resnet18 --samples 512
    python benchmarks/backbones.py --bench format --repeats 7
    python benchmarks/backbones.py --bench format --threads 1 --clock cpu   # a busy shared machine
    python benchmarks/backbones.py --bench step --models resnet18_1d,resnet1d_wang,xresnet1d101 --batch 128 --length 250
    python benchmarks/backbones.py --bench step --models resnet18,resnet18_1d --bf16 --threads 1 --clock cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import resource
import subprocess
import sys
import time

PAIRS = [("resnet18_1d", "resnet18"), ("mobilenetv2_1d", "mobilenet_v2"), ("efficientnetv2s_1d", "efficientnet_v2_s")]


FORMATS = ("contiguous", "channels_last")


def timed_update(model, opt, x, y, loss, now, bf16: bool = False) -> float:
    """Seconds of one update: train-mode forward, ``loss(logits, y)`` backward, optimizer step.

    ``bf16``: forward and loss under bf16 autocast, as a run with ``bf16=true`` trains."""
    import torch

    model.train()
    t = now()
    opt.zero_grad(set_to_none=True)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        value = loss(model(x), y)
    value.backward()
    opt.step()
    return now() - t


def measure(model: str, samples: int, batch: int, threads: int, memory_format: str = "auto") -> dict:
    """Runs in the child: one partial epoch of erts' loop; returns seconds/sample and peak memory."""
    import tempfile
    from pathlib import Path

    import torch

    from erts.config import load_config
    from erts.data import load_dataset
    from erts.train.loop import Trainer

    torch.set_num_threads(threads)
    cfg = load_config(overrides=[f"model={model}", f"batch_size={batch}", "quiet=true", "head=mlp",
                                 f"memory_format={memory_format}"])
    rs = load_dataset(cfg.data)
    t = Trainer(cfg, rs, Path(tempfile.mkdtemp()), progress=False)
    n_train = len(t.idx["train"])
    t.idx["train"] = t.idx["train"][:batch]
    t.run_epoch(0)  # warm-up batch (allocator, oneDNN primitives, FLOP counter)
    t.idx["train"] = torch.arange(samples) % n_train
    sync = torch.cuda.synchronize if t.device.type == "cuda" else (lambda: None)  # queued kernels inside the clock
    sync()
    start = time.perf_counter()
    t.run_epoch(1)
    sync()
    sec = time.perf_counter() - start
    if t.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model": model, "sec_per_sample": sec / samples, "epoch_s": sec / samples * n_train,
            "n_train": n_train, "peak_mb": peak, "params": sum(p.numel() for p in t.model.parameters()),
            "device": str(t.device), "memory_format": t.model.memory_format}


def format_bench(models: list[str], repeats: int, score_batch: int, batch: int, length: int, threads: int,
                 clock: str = "wall", leads: int = 12, classes: int = 5) -> dict:
    """Scoring and update seconds of each 2-D backbone in both memory formats, side by side (CPU).

    clock="cpu" times with this process's CPU time instead of the wall clock: with one thread it
    does not count the time other processes hold the cores (spin-waiting threads would count).
    """
    import copy

    import torch
    import torch.nn.functional as F

    from erts.models import create_model

    torch.set_num_threads(threads)
    now = time.process_time if clock == "cpu" else time.perf_counter
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(score_batch, leads, length, generator=gen)
    xu = torch.randn(batch, leads, length, generator=gen)
    yu = torch.randint(0, classes, (batch,), generator=gen)
    out: dict = {}
    for name in models:
        torch.manual_seed(0)
        base = create_model(name, leads, classes, head="mlp")
        nets = {f: copy.deepcopy(base).set_memory_format(f) for f in FORMATS}
        opts = {f: torch.optim.AdamW(nets[f].parameters(), lr=1e-4, fused=True) for f in FORMATS}

        def score(f: str) -> float:
            m = nets[f].eval()
            with torch.inference_mode():
                t = now()
                m(xs)
                return now() - t

        def update(f: str) -> float:
            return timed_update(nets[f], opts[f], xu, yu, F.cross_entropy, now)

        with torch.inference_mode():  # same weights, same outputs (checked before any update)
            a, b = (nets[f].eval()(xs[:2]) for f in FORMATS)
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), f"{name}: formats disagree"
        times: dict = {(p, f): [] for p in ("score", "update") for f in FORMATS}
        for f in FORMATS:  # warm-up: oneDNN primitives, allocator, optimizer state
            score(f), update(f)
        for r in range(repeats):
            order = FORMATS if r % 2 == 0 else FORMATS[::-1]
            for f in order:
                times["score", f].append(score(f))
            for f in order:
                times["update", f].append(update(f))
        res = {p: {f: statistics.median(times[p, f]) for f in FORMATS} for p in ("score", "update")}
        for p in res:
            # fastest round of each: the least disturbed by other processes on a shared machine
            res[p]["min"] = {f: min(times[p, f]) for f in FORMATS}
            res[p]["ratio"] = res[p]["contiguous"] / res[p]["channels_last"]
            # the same ratio per round (both formats measured back to back): its spread shows the noise
            per_round = [c / l for c, l in zip(times[p, "contiguous"], times[p, "channels_last"])]
            res[p]["ratio_min"], res[p]["ratio_max"] = min(per_round), max(per_round)
            res[p]["ratio_rounds"] = statistics.median(per_round)
        out[name] = res
        for p, what in (("score", f"scoring (eval, batch {score_batch})"), ("update", f"update (train, batch {batch})")):
            r = res[p]
            print(f"{name:18s} {what:26s} contiguous {1e3 * r['contiguous']:8.1f} ms  channels_last "
                  f"{1e3 * r['channels_last']:8.1f} ms  x{r['ratio']:.2f} (per round: median {r['ratio_rounds']:.2f}, "
                  f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}; fastest rounds x"
                  f"{r['min']['contiguous'] / r['min']['channels_last']:.2f})", flush=True)
        del nets, opts
    return out


def step_bench(models: list[str], repeats: int, batch: int, length: int, threads: int, clock: str = "wall",
               leads: int = 12, classes: int = 5, bf16: bool = False) -> dict:
    """Training-step seconds of each model side by side (same inputs), rounds rotating the order."""
    import torch
    import torch.nn.functional as F

    from erts.models import count_params, create_model

    torch.set_num_threads(threads)
    now = time.process_time if clock == "cpu" else time.perf_counter
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, leads, length, generator=gen)
    y = torch.randint(0, 2, (batch, classes), generator=gen).float()
    nets, opts = {}, {}
    for name in models:
        torch.manual_seed(0)
        nets[name] = create_model(name, leads, classes)
        opts[name] = torch.optim.AdamW(nets[name].parameters(), lr=1e-3, fused=True)
    loss = F.binary_cross_entropy_with_logits
    times: dict = {name: [] for name in models}
    for name in models:  # warm-up: oneDNN primitives, allocator, optimizer state
        timed_update(nets[name], opts[name], x, y, loss, now, bf16)
    for r in range(repeats):
        for name in models[r % len(models):] + models[:r % len(models)]:
            times[name].append(timed_update(nets[name], opts[name], x, y, loss, now, bf16))
    first = models[0]
    out = {}
    for name in models:
        ratio = statistics.median(t / f for t, f in zip(times[name], times[first]))
        out[name] = {"median_s": statistics.median(times[name]), "min_s": min(times[name]), "ratio": ratio,
                     "params": count_params(nets[name]), "head": nets[name].head.kind}
        r = out[name]
        print(f"{name:20s} {r['params'] / 1e6:6.2f} M params ({r['head']} head)  step median {r['median_s']:7.3f} s  "
              f"fastest {r['min_s']:7.3f} s  x{ratio:.2f} of {first} (per-round median)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(m for pair in PAIRS for m in pair))
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-format", default="auto", choices=("auto", *FORMATS),
                    help="epoch bench: the 2-D backbones' memory format (default auto, as a run)")
    ap.add_argument("--bench", default="epoch,format", help="epoch, format, step, comma-separated (default: epoch,format)")
    ap.add_argument("--repeats", type=int, default=7, help="format and step benches: rounds (medians reported)")
    ap.add_argument("--score-batch", type=int, default=16, help="format bench: records per scoring forward")
    ap.add_argument("--length", type=int, default=1000, help="format and step benches: samples per record")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="format bench: wall clock, or process CPU time (with --threads 1 on a busy machine)")
    ap.add_argument("--bf16", action="store_true", help="step bench: bf16 autocast, as a run with bf16=true")
    ap.add_argument("--json", help="also write the results here: {'epoch': per model, 'format' / 'step': medians}")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.samples, args.batch, args.threads, args.memory_format)))
        return
    benches = args.bench.split(",")
    results: dict = {}
    if "epoch" in benches:
        results["epoch"] = epoch_bench(args)
    if "format" in benches:
        two_d = [m for m in args.models.split(",") if m in {b for _, b in PAIRS}]
        print(f"\nmemory formats, 2-D backbones, {args.threads} threads, 12 x {args.length} records, {args.clock} "
              f"clock, medians of {args.repeats} rounds; x = contiguous / channels_last (above 1: channels_last faster):")
        results["format"] = format_bench(two_d, args.repeats, args.score_batch, args.batch, args.length,
                                         args.threads, args.clock)
    if "step" in benches:
        print(f"\ntraining step, {args.threads} threads, batch {args.batch} x 12 x {args.length}, {args.clock} clock, "
              f"{'bf16' if args.bf16 else 'fp32'}, {args.repeats} rounds:")
        results["step"] = step_bench(args.models.split(","), args.repeats, args.batch, args.length, args.threads,
                                     args.clock, bf16=args.bf16)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def epoch_bench(args: argparse.Namespace) -> dict:
    rows = {}
    for model in args.models.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", model, "--samples", str(args.samples),
                              "--batch", str(args.batch), "--threads", str(args.threads),
                              "--memory-format", args.memory_format],
                             capture_output=True, text=True, check=True)
        rows[model] = json.loads(out.stdout.strip().splitlines()[-1])
        r = rows[model]
        print(f"{model:20s} {r['params'] / 1e6:6.2f} M params  {r['epoch_s']:8.1f} s/epoch ({r['n_train']} records)  "
              f"peak {r['peak_mb']:7.0f} MB  [{r['device']}, {r['memory_format']}]", flush=True)
    print("\n2-D / 1-D ratios (same data, same loop, batch %d):" % args.batch)
    for one_d, two_d in PAIRS:
        if one_d in rows and two_d in rows:
            a, b = rows[one_d], rows[two_d]
            print(f"{two_d:20s} vs {one_d:20s} time x{b['epoch_s'] / a['epoch_s']:.2f}  "
                  f"peak memory x{b['peak_mb'] / a['peak_mb']:.2f}")
    return rows


if __name__ == "__main__":
    main()
