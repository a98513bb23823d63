"""Benchmark: FLOP/s of madloop's diffusion training step against this machine's float32 matmul peak.

Usage: python benchmarks/diffusion_step.py [--steps 500] [--widths 64 128 256] [--seeds 1 8] [--batches 128]

The peak is a 2048 x 2048 float32 matmul timed in the same run. The training step's FLOPs count the MLP's
matmuls only (forward and backward = 3 x forward): 2 * batch * (in * width + (depth - 1) * width^2 + width * d)
per forward, with in = d + time_features. Everything else in the step (AdamW, EMA, random numbers, the time
embedding) is overhead on top of that count.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from madloop.models import diffusion as D


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a size x size float32 matmul (median of ``repeats`` timed calls after a warm-up)."""
    m = jnp.ones((size, size))
    mm = jax.jit(lambda m: m @ m)
    mm(m).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(m).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * size**3 / sorted(times)[len(times) // 2] / 1e9


def measure(widths, seeds_list, steps: int = 500, depth: int = 3, batches=(128,), dtype: str = "float32") -> list[dict]:
    """FLOP/s of the training step per (width, seeds, batch): rows with ms/step, GFLOP/s."""
    x, w = jax.random.normal(jax.random.key(0), (512, 2)), jnp.ones(512)
    rows = []
    for width in widths:
        for batch in batches:
            cfg = D.DiffusionModel(width=width, depth=depth, batch=batch, train_steps=steps)
            fam = D.diffusion_family(cfg)

            def run(key, fam=fam):
                return fam.train(key, fam.model.init(key, x, w), x, w, steps)[1]

            step = jax.jit(jax.vmap(run))
            for seeds in seeds_list:
                keys = jax.random.split(jax.random.key(1), seeds)
                step(keys).block_until_ready()
                t0 = time.perf_counter()
                step(keys).block_until_ready()
                dt = time.perf_counter() - t0
                fwd = 2 * batch * ((2 + cfg.time_features) * width + (depth - 1) * width**2 + width * 2)
                rate = 3 * fwd * seeds * steps / dt / 1e9
                rows.append(
                    {"width": width, "seeds": seeds, "batch": batch, "ms_per_step": dt / steps * 1e3, "gflops": rate}
                )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--batches", type=int, nargs="+", default=[128])
    p.add_argument("--depth", type=int, default=3)
    a = p.parse_args()
    peak = matmul_peak()
    print(f"float32 matmul peak (2048^3): {peak:.1f} GFLOP/s")
    for r in measure(a.widths, a.seeds, a.steps, a.depth, a.batches):
        print(
            f"width {r['width']:4d}, batch {r['batch']:5d}, {r['seeds']:2d} seeds: {r['ms_per_step']:6.2f} ms/step, "
            f"{r['gflops']:6.1f} GFLOP/s = {r['gflops'] / peak:5.1%} of peak"
        )


if __name__ == "__main__":
    main()
