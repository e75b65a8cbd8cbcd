#!/usr/bin/env bash
# The evidence sweeps of issues 23 (CinC 2017 with the equal-budget controls, first: every later number
# rests on the controls) and 22 (PTB-XL under the benchmark protocol), one after the other, never two
# at once on 2 cores, from a frozen checkout.
# Resumable: run it again after any stop; finished runs are skipped, a started one resumes from its
# last epoch. Usage: bash benchmarks/evidence_chain.sh [FROZEN_COMMIT] [OUT]
#   FROZEN_COMMIT: the commit the sweeps started from (41a3e06); its checkout lives in /work/sweep-frozen
#   OUT: where the sweep folders go (~/erts-sweeps)
set -u
COMMIT=${1:-41a3e06}
OUT=${2:-$HOME/erts-sweeps}
FROZEN=${ERTS_FROZEN:-/work/sweep-frozen}
REPO=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$FROZEN" ]; then
  git -C "$REPO" worktree add --detach "$FROZEN" "$COMMIT" || exit 1
fi
(cd "$FROZEN" && bash scripts/env.sh >/dev/null) || exit 1
cd "$FROZEN"
PY=.venv/bin/python
$PY benchmarks/end_to_end.py --dataset cinc2017 --methods full,dbpd,smrd,erts-dbpd,infobatch,erts-infobatch \
    --controls each --seeds 3 --out "$OUT" --name e2e-cinc2017-controls
$PY benchmarks/end_to_end.py --dataset ptbxl --preset ptbxl-benchmark \
    --methods full,dbpd,erts-dbpd,infobatch,erts-infobatch --controls cheapest --metric test_macro_auroc \
    --variant score_source=update --variant-methods dbpd,erts-dbpd \
    --seeds 3 --out "$OUT" --name ptbxl-superdiag-30ep
