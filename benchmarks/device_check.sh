#!/usr/bin/env bash
# The GPU table of the sweeps issue, in at most eight minutes on one modern GPU: every speed target measured on the card
# against its goal (benchmarks/targets.py: the Gaussian loop at 100,000 seeds against its RNG bound and against
# numpy, the GMM loop, the compile times, the diffusion MLP and U-Net training steps against the card's measured
# float32 matmul peak), the digits loop with the U-Net, and the training steps across sizes, seeds and matmul
# precisions (benchmarks/diffusion_step.py).
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
#     bash benchmarks/device_check.sh --quick        (or PY=.venv/bin/python SIZE=quick SECTIONS=steps OUT=/tmp/dc ...)
# Sections (SECTIONS, default "targets digits"), each under its own time limit so that one slow section cannot
# take the others with it; each writes its rows as they are measured, so a section stopped at its limit keeps them:
#   targets  benchmarks/targets.py --seeds 100000 (all rows but the digits loop)              limit 300 s
#   digits   benchmarks/targets.py --only digits: the digits preset with the U-Net, 2 gen.    limit 180 s
#   and, by name only: steps (benchmarks/diffusion_step.py: MLP widths 256, 512 and the U-Net, over seeds and both
#   matmul precisions, true float32 as madloop runs and TF32 as JAX's default; limit 240 s), categorical (benchmarks/categorical_loop.py at V = 10^4, 1,000 seeds x 1,000 generations;
#   limit 150 s), transformer (benchmarks/transformer_step.py, 4, 16, 64 seeds, PyTorch on the GPU too; 240 s),
#   gaussian, gmm, diffusion (benchmarks/run.py's comparison tables against numpy,
#   scikit-learn and PyTorch at --size device, about five minutes together), golden (a few golden tables
#   recomputed on this device, with their largest differences from the CPU's files), nll
#   (benchmarks/gpu_nll_check.py).
# It prints the card's name and the software, then the sections, then one targets table of all of them, and writes
# targets.json, digits.json (and by name steps_mlp.json, steps_unet.json, transformer.json, the comparison tables'
# results.json and benchmarks.md) and a log to $OUT.
# The exit status is non-zero when a section failed, ran out of time or disagreed beyond 4.5 SE.
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
    if [[ -z "${SECTIONS:-}" ]]; then
        SECTIONS="targets digits steps gaussian gmm categorical"
        $PY -c "import torch" 2>/dev/null && SECTIONS="$SECTIONS diffusion transformer"
    fi
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
GOLDEN="${GOLDEN:-gaussian-fully_synthetic-accumulate gmm-fresh_data-replace kde-synthetic_augmentation-accumulate_subsample diffusion-synthetic_augmentation-replace sims-omega-sweep gaussian-count-sweep}"
quick=$([[ $SIZE == quick ]] && echo --quick)
for section in ${SECTIONS:-targets digits}; do
    limit=$(case $section in gmm | nll) echo 90 ;; golden | categorical) echo 150 ;; targets) echo 300 ;; steps | transformer) echo 240 ;; *) echo 180 ;; esac)
    # The limits fit the GPU run's 8 minutes. The CPU dry run shares 2 cores with another test worker: its gmm
    # section took 56 s on a lightly loaded machine and ran past its 90 s under a heavier one, so each limit doubles.
    [[ $SIZE == quick ]] && limit=$((2 * limit))
    echo "== section $section (limit ${limit} s)"
    start=$SECONDS
    case $section in
    golden) timeout "$limit" $PY -m tests.golden.make --check $GOLDEN ;;
    nll) timeout "$limit" $PY benchmarks/gpu_nll_check.py ;;
    # every speed target of the sweeps issue against its goal, on this device (benchmarks/targets.py)
    targets) timeout "$limit" $PY benchmarks/targets.py --json "$OUT/targets.json" --only gaussian gmm default steps \
        $quick $([[ $SIZE == device ]] && echo --seeds 100000) ;;
    digits) timeout "$limit" $PY benchmarks/targets.py --json "$OUT/digits.json" --only digits $quick ;;
    steps)
        if [[ $SIZE == quick ]]; then
            mlp=(--widths 64 --seeds 1 2 --steps 5) unet=(--seeds 1 --steps 2)
        else
            mlp=(--widths 256 512 --seeds 8 256 --steps 200) unet=(--seeds 8 64 --steps 30)
        fi
        timeout "$limit" $PY benchmarks/diffusion_step.py --network mlp "${mlp[@]}" --precision highest default \
            --json "$OUT/steps_mlp.json" &&
            timeout "$(( (r = limit - SECONDS + start) > 1 ? r : 1 ))" $PY benchmarks/diffusion_step.py --network unet "${unet[@]}" \
                --precision highest default --json "$OUT/steps_unet.json" ;;
    # issue 20's speed rows: the categorical loop at full size (V = 10^4, 1,000 seeds x 1,000 generations, one
    # program) and the transformer LM's training steps against PyTorch batched over seeds, both on this GPU
    categorical) timeout "$limit" $PY benchmarks/categorical_loop.py \
        $([[ $SIZE == quick ]] && echo --vocab 100 --n 100 --seeds 8 --generations 20 --ref-seeds 2 || echo --ref-seeds 4) ;;
    transformer) timeout "$limit" $PY benchmarks/transformer_step.py --json "$OUT/transformer.json" \
        $([[ $SIZE == quick ]] && echo --seeds 2 --steps 5 --repeats 1 --no-compile || echo --seeds 4 16 64 --steps 100) ;;
    *) timeout "$limit" $PY benchmarks/run.py --size "$SIZE" --sections "$section" --repeats 3 --ref-repeats 1 \
        --out "$OUT" --note "$note" $([[ $SIZE == quick ]] && echo --no-processes --gaussian-dims 2) ;;
    esac
    rc=$?
    echo "== section $section: exit $rc after $((SECONDS - start)) s"
    [[ $rc -ne 0 ]] && status=1
done
echo "== the targets, every section together"
$PY benchmarks/targets.py --render "$OUT/targets.json" "$OUT/digits.json"
echo "== table and results in $OUT (exit $status; 1 = a section failed, timed out or DISAGREEd)"
exit $status
