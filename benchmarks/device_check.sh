#!/usr/bin/env bash
# The benchmark table on a GPU machine, in about five minutes: madloop on the GPU against the competent and the
# published-script references, with the agreement columns (benchmarks/run.py --size device).
#
# Prepare once, here (a machine with pip and this repo's .venv; the GPU machine has no network):
#     bash benchmarks/device_check.sh prepare
# That puts the three pure-Python packages madloop needs and the GPU image lacks (hydra-core, omegaconf,
# antlr4-python3-runtime; the image has jax, flax, optax, chex, orbax, scipy, pandas, matplotlib, tqdm,
# scikit-learn, PyYAML and torch) as wheels in .whl/, which .git/info/exclude ignores.
#
# Then run it there, through the device tool, carrying .whl:
#     run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=540)
# A dry run of the script itself on a CPU (small sizes; the slow tier runs it, tests/test_benchmarks.py):
#     bash benchmarks/device_check.sh --quick        (or PY=.venv/bin/python SIZE=quick SECTIONS=gmm OUT=/tmp/dc ...)
# The targets table (benchmarks/targets.py, 100,000 seeds; limit 240 s) is its own call, to keep each call within
# the device's 10 minutes:
#     run(command="SECTIONS=targets bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=400)
# It prints the card's name and the software, runs the gaussian, gmm and diffusion sections (each under its own
# time limit, so one slow section cannot take the others with it) and writes results.json, benchmarks.md and a
# log to $OUT. The exit status is non-zero when a section failed, ran out of time or disagreed beyond 4.5 SE.
#
# Sizes (benchmarks/run.py SIZES["device"]): Gaussian 500 seeds x 1000 generations (d = 2 and 10, replace and
# accumulate; the published-script loop timed on 10 / 2 seeds; no one-process-per-seed timings); GMM 8 seeds x 200
# generations; diffusion 4 seeds x 3 generations (PyTorch references on the GPU too). Numpy and scikit-learn run on
# the machine's CPU cores, as they would for a user of that machine. Estimated: 100 + 50 + 130 s; the limits
# below (180 + 90 + 180 s) bound the run at 7.5 minutes plus start-up.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "prepare" ]]; then
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >>.git/info/exclude
    # pure-Python wheels (antlr4-python3-runtime 4.9.3 is an sdist on PyPI; pip wheel builds it)
    .venv/bin/pip wheel -q --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
    ls -l .whl
    exit 0
fi

if [[ "${1:-}" == "--quick" ]]; then
    # The suite's dry run on a CPU (tests/test_benchmarks.py, slow tier): small sizes, this interpreter, the
    # sections that need no PyTorch unless it is installed; the same code path as the GPU run otherwise.
    PY="${PY:-python}"
    SIZE=quick
    OUT="${OUT:-$(mktemp -d -t madloop-device-check-XXXXXX)}"
    $PY -c "import torch" 2>/dev/null && SECTIONS="${SECTIONS:-targets gaussian gmm diffusion}" || SECTIONS="${SECTIONS:-targets gaussian gmm}"
fi
OUT="${OUT:-/tmp/madloop_device_check}"
mkdir -p "$OUT"
exec > >(tee "$OUT/device_check.log") 2>&1

PY="${PY:-python3}"  # there: the image's python3 (the one with torch); a dry run here: PY=.venv/bin/python
SIZE="${SIZE:-device}"  # a dry run here: SIZE=quick
. benchmarks/device_env.sh  # the wheels of .whl/ and this tree on PYTHONPATH
# JAX and PyTorch share the GPU in the diffusion section: JAX must not take 75% of its memory up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1

echo "== card: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
echo "== cpu: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
$PY - <<'EOF' || exit 1
import platform, jax, numpy, sklearn
import madloop  # noqa: F401  (fails here when hydra/omegaconf are missing: run `prepare` and carry .whl)
try:
    import torch
    torch_line = f"torch {torch.__version__} (cuda: {torch.cuda.is_available()})"
except ImportError:  # a CPU dry run without the bench extra: the diffusion section is left out
    torch_line = "no torch"
print(f"== python {platform.python_version()}, jax {jax.__version__} {jax.devices()}, numpy {numpy.__version__}, "
      f"scikit-learn {sklearn.__version__}, {torch_line}")
EOF

status=0
note="GPU machine (benchmarks/device_check.sh); numpy and scikit-learn on its CPU cores"
# Extra sections (not in the default list): golden (a few golden tables recomputed on this device, with their
# largest differences from the CPU's files) and nll (benchmarks/gpu_nll_check.py: the GMM NLL in the loop against
# the same NLL evaluated standalone).
GOLDEN="${GOLDEN:-gaussian-fully_synthetic-accumulate gmm-fresh_data-replace kde-synthetic_augmentation-accumulate_subsample diffusion-synthetic_augmentation-replace sims-omega-sweep gaussian-count-sweep}"
for section in ${SECTIONS:-gaussian gmm diffusion}; do
    limit=$(case $section in gmm | nll) echo 90 ;; golden) echo 150 ;; targets) echo 240 ;; *) echo 180 ;; esac)
    echo "== section $section (limit ${limit} s)"
    start=$SECONDS
    case $section in
    golden) timeout "$limit" $PY -m tests.golden.make --check $GOLDEN ;;
    nll) timeout "$limit" $PY benchmarks/gpu_nll_check.py ;;
    # every speed target of the sweeps issue against its goal, on this device (benchmarks/targets.py)
    targets) timeout "$limit" $PY benchmarks/targets.py --json "$OUT/targets.json" \
        $(case $SIZE in quick) echo --quick ;; device) echo --seeds 100000 ;; esac) ;;
    *) timeout "$limit" $PY benchmarks/run.py --size "$SIZE" --sections "$section" --repeats 3 --ref-repeats 1 \
        --out "$OUT" --note "$note" $([[ $SIZE == quick ]] && echo --no-processes --gaussian-dims 2) ;;
    esac
    rc=$?
    echo "== section $section: exit $rc after $((SECONDS - start)) s"
    [[ $rc -ne 0 ]] && status=1
done
echo "== table and results in $OUT (exit $status; 1 = a section failed, timed out or DISAGREEd)"
exit $status
