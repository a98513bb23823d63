"""Benchmark: FLOP/s of madloop's diffusion training step (MLP or U-Net denoiser) against this machine's matmul peak.

Usage: python benchmarks/diffusion_step.py [--network mlp|unet] [--steps 500] [--widths 64 128 256]
       [--channels 32 64] [--seeds 1 8] [--batches 128] [--precision highest|default] [--json OUT]

The peak is a large square matmul (2048 on a CPU, 8192 on a GPU) of random float32 data, timed in the same run at
the same matmul precision as the step. ``highest`` is what every madloop run uses (``madloop.precision``: true
float32 products; no TF32 on a GPU); ``default`` is JAX's own default (TF32 products on NVIDIA GPUs since Ampere),
for comparison. The step's FLOPs are counted on its traced program (``benchmarks.flops``): every matrix product
(the U-Net's 3 x 3 convolutions are products of patches and kernels), forward and backward, vmapped over seeds, the
initialisation included (it runs once per call, against ``steps`` training steps). Everything else in the step
(AdamW, the EMA, random numbers, normalisation, activations) is overhead on top of that count.

The timed program is the family's own ``train`` (a ``lax.scan`` over ``steps``) vmapped over seeds and jitted
with the compiler options the digits preset's loop compiles its programs with (``--options preset``, the default;
``engine.Programs.options``): on the CPU that preset computes pairwise sample metrics, so its programs, the
training scan inside them included, are compiled with YNNPACK's reductions as well as its dots
(``madloop._xla.program_options``). ``--options none`` times the step with the process-wide defaults alone
(YNNPACK's dots). Either way the loop runs exactly this computation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/diffusion_step.py`
from benchmarks.flops import matmul_flops  # noqa: E402
from madloop.models import diffusion as D  # noqa: E402


def _timed(fn, *args, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after one warm-up call (compilation)."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


PRESET = ("experiment=digits_fully_synthetic",)  # the preset whose size and compiler options the step is timed at


def preset_options(overrides: tuple[str, ...] = PRESET) -> dict[str, str] | None:
    """The compiler options the loop of ``overrides`` compiles its programs with: the engine's own
    ``Programs.options`` (building the programs traces and compiles nothing)."""
    import madloop
    from madloop.engine import Programs

    return Programs(madloop.compose(list(overrides))).options


def matmul_peak(size: int | None = None, repeats: int = 5, precision: str = "highest") -> float:
    """GFLOP/s of a size x size float32 matmul of random data at ``precision`` (median of ``repeats`` timed calls
    after a warm-up; on a GPU each call chains 10 products so that launch latency does not count)."""
    gpu = jax.devices()[0].platform == "gpu"
    size = size or (8192 if gpu else 2048)
    chain = 10 if gpu else 1
    m = jax.random.normal(jax.random.key(0), (size, size)) / size**0.5

    def products(m):
        for _ in range(chain):
            m = m @ m
        return m

    with jax.default_matmul_precision(precision):
        seconds = _timed(jax.jit(products), m, repeats=repeats)
    return 2 * size**3 * chain / seconds / 1e9


def measure(
    widths=(256,),
    seeds_list=(1,),
    steps: int = 500,
    depth: int = 3,
    batches=(128,),
    network: str = "mlp",
    channels=(32, 64),
    precision: str = "highest",
    repeats: int = 1,
    options: dict[str, str] | None = None,
) -> list[dict]:
    """FLOP/s of the training step per (size, seeds, batch): rows with ms/step, steps/s, GFLOP/s.

    ``network="mlp"`` runs one row per width (vectors in d = 2); ``network="unet"`` one row for ``channels`` on
    8 x 8 x 1 images (the digits preset's shape). ``options``: the program's compiler options (``preset_options()``
    for the digits preset's; None: the process-wide defaults).
    """
    rows = measured(widths, seeds_list, steps, depth, batches, network, channels, precision, repeats, options)
    return list(rows)


def measured(
    widths, seeds_list, steps, depth, batches, network, channels, precision, repeats, options=None
) -> Iterator[dict]:
    """``measure``'s rows one at a time, each as soon as it is measured (width, then batch, then seeds)."""
    if network == "unet":
        sizes = [tuple(channels)]
        x = jax.random.normal(jax.random.key(0), (512, 64))
    else:
        sizes = list(widths)
        x = jax.random.normal(jax.random.key(0), (512, 2))
    w = jnp.ones(x.shape[0])
    for size in sizes:
        for batch in batches:
            if network == "unet":
                cfg = D.DiffusionModel(network="unet", channels=size, batch=batch, train_steps=steps)
                fam = D.diffusion_family(cfg, (8, 8, 1))
            else:
                cfg = D.DiffusionModel(width=size, depth=depth, batch=batch, train_steps=steps)
                fam = D.diffusion_family(cfg)

            def run(key, fam=fam):
                return fam.train(key, fam.model.init(key, x, w), x, w, steps)[1]

            program = jax.jit(jax.vmap(run), compiler_options=options)
            for seeds in seeds_list:
                keys = jax.random.split(jax.random.key(1), seeds)
                with jax.default_matmul_precision(precision):
                    flops = matmul_flops(jax.vmap(run), keys)
                    dt = _timed(program, keys, repeats=repeats)
                yield {
                    "network": network, "size": list(size) if network == "unet" else size, "seeds": seeds,
                    "batch": batch, "precision": precision, "ms_per_step": dt / steps * 1e3,
                    "steps_per_s": steps / dt, "gflop_per_step": flops / steps / 1e9, "gflops": flops / dt / 1e9,
                    "options": options or {},
                }  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--network", choices=("mlp", "unet"), default="mlp")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--channels", type=int, nargs="+", default=[32, 64])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--batches", type=int, nargs="+", default=[128])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--precision", nargs="+", default=["highest"], choices=("highest", "default"))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument(
        "--options", choices=("preset", "none"), default="preset",
        help="compile the step as the digits preset's loop does (preset) or with the process defaults alone (none)",
    )  # fmt: skip
    a = p.parse_args()
    options = preset_options() if a.options == "preset" else None
    print(f"compiler options: {options or 'none (process defaults)'}")
    out = []
    for precision in a.precision:
        peak = matmul_peak(precision=precision)
        print(f"{jax.devices()[0].device_kind}: float32 matmul peak at precision {precision}: {peak:.1f} GFLOP/s")
        rows = measured(
            a.widths, a.seeds, a.steps, a.depth, a.batches, a.network, a.channels, precision, a.repeats, options
        )
        for r in rows:  # each printed and written as soon as it is measured
            r["peak_gflops"], r["fraction"] = peak, r["gflops"] / peak
            print(
                f"{r['network']} {r['size']}, batch {r['batch']:5d}, {r['seeds']:4d} seeds: "
                f"{r['ms_per_step']:7.3f} ms/step ({r['steps_per_s']:7.1f} steps/s, {r['gflop_per_step']:.3g} GFLOP), "
                f"{r['gflops']:8.1f} GFLOP/s = {r['fraction']:5.1%} of peak",
                flush=True,
            )
            out.append(r)
            if a.json:
                with open(a.json, "w") as f:
                    json.dump({"device": jax.devices()[0].device_kind, "rows": out}, f, indent=1)


if __name__ == "__main__":
    main()
