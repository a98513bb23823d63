#!/usr/bin/env bash
# The GPU runs that settle issue 17's diffusion findings, as one script for the device tool (about 9 minutes):
#     run(command="bash benchmarks/issue17_gpu.sh", carry=[".whl"], timeout_s=590)
# 1. experiments/sims_sweep.py: the SIMS loop vs the standard loop, both regimes, refits from scratch,
#    n_aux x aux_steps in {256, 4096} x {100, 1000}, 16 seeds x 20 generations (CSV written after every program).
# 2. experiments/grid25.py: MAD's 25 modes, GMM (16 seeds x 100 generations) and diffusion (16 seeds x 15
#    generations), both refitted from scratch every generation.
# 3. experiments/digits_precision.py (SECTIONS=digits): MAD's digits loop from scratch and fine-tuned, temperature
#    against CFG bias, precision at k in {3, 5, 10} in two feature extractors, with floors; 8 seeds x 10 generations.
# SECTIONS picks them (default "sims grid25"; the digits section runs with SECTIONS=digits).
# Outputs (CSV, figures, logs) go to $OUT; the figures and tables are redrawn here from the CSVs with --from-csv.
# Prepare the wheels first: bash benchmarks/device_check.sh prepare.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/madloop_issue17}"
mkdir -p "$OUT"
PY="${PY:-python3}"
. benchmarks/device_env.sh  # the wheels of .whl/ and this tree on PYTHONPATH
export PYTHONUNBUFFERED=1
echo "== card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
$PY -c "import jax; print('== jax', jax.__version__, jax.devices())"
SIMS_LIMIT="${SIMS_LIMIT:-380}" GRID_LIMIT="${GRID_LIMIT:-170}" DIGITS_LIMIT="${DIGITS_LIMIT:-500}"
SIMS_ARGS="${SIMS_ARGS:-}" GRID_ARGS="${GRID_ARGS:-}" DIGITS_ARGS="${DIGITS_ARGS:-}"
SECTIONS="${SECTIONS:-sims grid25}"
if [[ " $SECTIONS " == *" sims "* ]]; then
    start=$SECONDS
    timeout "$SIMS_LIMIT" $PY experiments/sims_sweep.py --csv "$OUT/sims_sweep.csv" --out "$OUT/sims_sweep.png" \
        $SIMS_ARGS 2>&1 | tee "$OUT/sims_sweep.log"
    echo "== sims_sweep: rc ${PIPESTATUS[0]}, $((SECONDS - start)) s"
fi
if [[ " $SECTIONS " == *" grid25 "* ]]; then
    start=$SECONDS
    timeout "$GRID_LIMIT" $PY experiments/grid25.py --diffusion-seeds 16 --csv "$OUT/grid25.csv" \
        --out "$OUT/grid25.png" $GRID_ARGS 2>&1 | tee "$OUT/grid25.log"
    echo "== grid25: rc ${PIPESTATUS[0]}, $((SECONDS - start)) s"
fi
if [[ " $SECTIONS " == *" digits "* ]]; then
    start=$SECONDS
    timeout "$DIGITS_LIMIT" $PY experiments/digits_precision.py --csv "$OUT/digits_precision.csv" \
        --out "$OUT/digits_precision.png" $DIGITS_ARGS 2>&1 | tee "$OUT/digits_precision.log"
    echo "== digits_precision: rc ${PIPESTATUS[0]}, $((SECONDS - start)) s"
fi
