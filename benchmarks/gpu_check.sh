#!/usr/bin/env bash
# One GPU check, ready to run the day a CUDA machine is lent:
#
#   bash benchmarks/gpu_check.sh
#
# In under 8 minutes on one GPU (every step has its own time limit, 450 s together):
#   1. the CUDA-marked tests (pytest -m cuda: Grad-CAM fast path, 2-D memory formats, a whole run);
#   2. benchmarks/epoch_bench.py on CUDA: full, erts-dbpd and infobatch epochs, fp32 and bf16 autocast;
#   3. benchmarks/backbones.py on CUDA: the 2-D resnet18 epoch in contiguous and channels_last;
#   4. with two GPUs or more, a 2-process DDP smoke run (torchrun, NCCL, erts-dbpd);
# then every ratio, each with the card's name. A step that fails is reported and the others
# still run; the exit code is 0 only when every step passed.
#
# Without a CUDA device it prints one line saying "no CUDA device" and exits 3 at once.
#
# Why one script: device time is lent in short slots, so the check must be one command that
# needs no decisions, finishes in the slot, and leaves numbers that read without the logs.
#
# Settings (environment): ERTS_GPU_PYTHON the interpreter (default: .venv/bin/python, else the
# one scripts/env.sh builds); GPU_CHECK_OUT a folder for the logs and JSON (default: a new
# temporary one, printed at the end). The data is the built-in synthetic set (12 leads, 10 s at
# 100 Hz), prepared once into GPU_CHECK_OUT/cache, so no dataset download is needed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

no_cuda() {
  echo "gpu_check: no CUDA device ($1); nothing was run"
  exit 3
}

# --- is there a GPU? (fast: a hidden device needs no torch import) ---------------------------
case "${CUDA_VISIBLE_DEVICES-unset}" in
  "" | "-1") no_cuda "CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}' hides every device" ;;
esac
py="${ERTS_GPU_PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then
    py=.venv/bin/python
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    py="$(bash scripts/env.sh)/bin/python" || { echo "gpu_check: scripts/env.sh failed; set ERTS_GPU_PYTHON"; exit 1; }
  else
    no_cuda "no nvidia-smi and no .venv whose torch could look"
  fi
fi
n_gpus="$(timeout 120 "$py" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)' 2>/dev/null)"
[ -n "$n_gpus" ] && [ "$n_gpus" -gt 0 ] 2>/dev/null || no_cuda "torch.cuda.is_available() is False for $py"

# --- the steps ---------------------------------------------------------------------------------
out="${GPU_CHECK_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/erts-gpu-check.XXXXXX")}"
mkdir -p "$out"
export ERTS_CACHE="$out/cache" ERTS_QUIET=1
card="$("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')"
echo "gpu_check: $n_gpus x $card; logs and JSON in $out"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/  /'
"$py" -c 'import torch; print(f"  torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")'

failed=()
step() {  # step NAME SECONDS command...: runs with a time limit, output in $out/NAME.log
  local name="$1" limit="$2" t0=$SECONDS rc
  shift 2
  timeout --kill-after=10 "$limit" "$@" >"$out/$name.log" 2>&1
  rc=$?
  if [ $rc -eq 0 ]; then
    echo "  $name: ok ($((SECONDS - t0)) s)"
  else
    [ $rc -eq 124 ] && why="over its ${limit} s" || why="exit code $rc"
    echo "  $name: FAILED ($why, $((SECONDS - t0)) s); last lines of $out/$name.log:"
    tail -n 15 "$out/$name.log" | sed 's/^/    | /'
    failed+=("$name")
  fi
}

step prepare 30 "$py" -m erts data prepare synthetic --quiet
step cuda-tests 100 "$py" -m pytest -q -m cuda -p no:cacheprovider tests
for precision in fp32 bf16; do
  bf16=false; [ "$precision" = bf16 ] && bf16=true
  step "epoch-$precision" 85 "$py" benchmarks/epoch_bench.py dataset=synthetic device=cuda "bf16=$bf16" \
    --variants full,erts-dbpd,infobatch --repeats 3 --max-train 2000 --json "$out/epoch-$precision.json"
done
for fmt in contiguous channels_last; do
  step "resnet18-$fmt" 45 "$py" benchmarks/backbones.py --bench epoch --models resnet18 --memory-format "$fmt" \
    --samples 2048 --batch 64 --threads 8 --json "$out/resnet18-$fmt.json"
done
if [ "$n_gpus" -ge 2 ]; then
  step ddp-2gpu 60 "$py" -m torch.distributed.run --standalone --nproc_per_node=2 -m erts train \
    dataset=synthetic n_records=800 length_s=2.5 epochs=2 warmup_epochs=0 gradcam_start=0 revision_epoch=2 \
    method=erts-dbpd device=cuda quiet=true "out_dir=$out/runs" name=ddp
else
  echo "  ddp-2gpu: skipped (one GPU)"
fi

# --- every ratio, with the card's name -----------------------------------------------------------
"$py" - "$out" "$card" "$n_gpus" <<'EOF'
import json, sys
from pathlib import Path

out, card, n_gpus = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
print(f"\ngpu_check results on {card}:")


def load(name):
    p = out / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


epochs = {p: load(f"epoch-{p}") for p in ("fp32", "bf16")}
for p, e in epochs.items():
    if e is None:
        print(f"  {card}: epoch {p}: no result")
        continue
    full = e["variants"]["full"]
    print(f"  {card}: epoch {p}, {e['n_train']} {e['dataset']} records, {e['model']}, batch {e['batch_size']}: "
          f"full {full['seconds']:.2f} s")
    for v in ("erts-dbpd", "infobatch"):
        r = e["variants"].get(v)
        if r:
            print(f"  {card}: epoch {p}: {v} / full = {r['x_full']:.3f}x wall clock "
                  f"({r['updated']:.2f} of the samples updated; Grad-CAM {r['gradcam_seconds']:.3f} s)")
if all(epochs.values()):
    for v in ("full", "erts-dbpd", "infobatch"):
        a, b = epochs["bf16"]["variants"].get(v), epochs["fp32"]["variants"].get(v)
        if a and b:
            print(f"  {card}: {v} epoch, bf16 autocast / fp32 = {a['seconds'] / b['seconds']:.3f}x")
fmt = {f: load(f"resnet18-{f}") for f in ("contiguous", "channels_last")}
if all(fmt.values()):
    c, cl = (fmt[f]["epoch"]["resnet18"] for f in ("contiguous", "channels_last"))
    print(f"  {card}: resnet18 (2-D) epoch, channels_last / contiguous = {cl['epoch_s'] / c['epoch_s']:.3f}x time, "
          f"{cl['peak_mb'] / c['peak_mb']:.3f}x peak memory ({c['epoch_s']:.1f} s vs {cl['epoch_s']:.1f} s per "
          f"{c['n_train']}-record epoch)")
else:
    print(f"  {card}: resnet18 memory formats: no result")
ddp = out / "runs" / "ddp" / "metrics.json"
if n_gpus >= 2:
    if ddp.exists():
        m = json.loads(ddp.read_text())
        print(f"  {card}: DDP 2 processes: finished, test macro-F1 {m['test']['macro_f1']:.3f}, "
              f"effective epochs {m['cost']['effective_epochs']:.2f}")
    else:
        print(f"  {card}: DDP 2 processes: no metrics.json")
EOF

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu_check: ${#failed[@]} step(s) failed: ${failed[*]} (logs in $out)"
  exit 1
fi
echo "gpu_check: every step passed (logs in $out)"
