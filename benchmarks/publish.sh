#!/usr/bin/env bash
# Copies a sweep's results into the repository so they survive the machine: the report (Markdown and
# figures; the self-contained HTML stays with the sweep), results.csv, grid.yaml, each finished run's
# small files (config, per-epoch log, metrics, provenance, test predictions; not the checkpoints, nor the
# selection logs unless --selection-logs), and the benchmark's own summary when its command is given.
# Usage: bash benchmarks/publish.sh SWEEP_DIR DEST [--metric M] [--no-report] [--selection | --selection-logs]
#        [-- SUMMARY_COMMAND...]
#   --no-report: the runs and results only (noise_filter.py's filter sweeps: its summary compares them, and
#   a report of a sweep that holds one configuration adds about 1 MB of figures and nothing to read)
#   --selection: each run's train_records.csv and selection_counts.npz too (benchmarks/selection_counts.py;
#   about 60 KB in git a 30-epoch CinC run): what noise_filter.py's drop ratios are computed from, so its
#   summary can be rebuilt from the published runs
#   --selection-logs: the selection logs themselves as well (about 0.8 MB in git a run): what `erts report`'s
#   record histories and per-class drop tables read
#   bash benchmarks/publish.sh ~/erts-sweeps/e2e-cinc2017-controls-bf16 benchmarks/measured/e2e-cinc2017-controls-bf16 \
#     -- .venv/bin/python benchmarks/end_to_end.py --dataset cinc2017 \
#        --methods full,dbpd,smrd,erts-dbpd,infobatch,erts-infobatch --controls each --seeds 3 \
#        --out ~/erts-sweeps --name e2e-cinc2017-controls-bf16 bf16=true
set -euo pipefail
src=${1:?SWEEP_DIR}; dest=${2:?DEST}; shift 2
metric=auto report=1 selection=0
while [ $# -gt 0 ]; do
  case $1 in
    --metric) metric=${2:?--metric M}; shift 2 ;;
    --no-report) report=0; shift ;;
    --selection) selection=1; shift ;;
    --selection-logs) selection=2; shift ;;
    --) shift; break ;;
    *) echo "publish: unknown option $1 (expected --metric M, --no-report, --selection, --selection-logs," \
            "-- COMMAND)" >&2; exit 2 ;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest/runs"
if [ $# -gt 0 ]; then  # first: it rewrites results.csv from the run folders (controls included, also mid-sweep,
  "$@" --summary-only > "$dest/summary.txt"  # and after a stop during the controls, which left it empty)
fi
listed=$(( $(wc -l < "$src/results.csv" 2>/dev/null || echo 1) - 1 ))
[ "$listed" -gt 0 ] || { echo "publish: $src has no finished run yet (results.csv missing or empty)" >&2; exit 1; }
finished=$(find "$src/runs" -mindepth 2 -maxdepth 2 -name metrics.json 2>/dev/null | wc -l)
if [ "$listed" -lt "$finished" ]; then  # a grid's run_sweep lists its own runs only (noise_filter's controls)
  echo "publish: $src/results.csv lists $listed of its $finished finished runs, so its report would leave" \
       "the others out; run the benchmark's --summary-only first (it rewrites results.csv) or give its" \
       "command after --" >&2
  exit 1
fi
if [ "$report" = 1 ]; then
  "$here/.venv/bin/erts" report "$src" --out "$dest" --metric "$metric" --n-boot 2000 --examples 2
  rm -f "$dest/report.html"
fi
cp "$src/results.csv" "$src/grid.yaml" "$dest/"
for run in "$src"/runs/*/; do
  [ -f "$run/metrics.json" ] || continue
  name=$(basename "$run"); mkdir -p "$dest/runs/$name"
  for f in config.yaml log.csv metrics.json run.json predictions_test.npz; do
    [ -f "$run/$f" ] && cp "$run/$f" "$dest/runs/$name/"
  done
  if [ "$selection" -ge 1 ] && [ -f "$run/train_records.csv" ]; then
    cp "$run/train_records.csv" "$dest/runs/$name/"
  fi
  if [ "$selection" = 2 ] && [ -d "$run/selection" ]; then
    rm -rf "$dest/runs/$name/selection" && cp -r "$run/selection" "$dest/runs/$name/"
  fi
done
if [ "$selection" -ge 1 ]; then
  "$here/.venv/bin/python" "$here/benchmarks/selection_counts.py" "$src" "$dest"
fi
echo "published $src -> $dest ($(ls "$dest/runs" | wc -l) runs)"
