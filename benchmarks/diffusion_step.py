"""Benchmark: FLOP/s of madloop's diffusion training step against this machine's float32 matmul peak.

Usage: python benchmarks/diffusion_step.py [--steps 500] [--widths 64 128 256] [--seeds 1 8]

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

from madloop import config as C
from madloop.models import diffusion as D


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    m = jnp.ones((2048, 2048))
    mm = jax.jit(lambda m: m @ m)
    mm(m).block_until_ready()
    t0 = time.perf_counter()
    for _ in range(5):
        mm(m).block_until_ready()
    peak = 2 * 2048**3 / ((time.perf_counter() - t0) / 5) / 1e9
    print(f"float32 matmul peak (2048^3): {peak:.1f} GFLOP/s")
    x, w = jax.random.normal(jax.random.key(0), (512, 2)), jnp.ones(512)
    for width in a.widths:
        cfg = C.DiffusionModel(width=width, depth=a.depth, batch=a.batch, train_steps=a.steps)
        fam = D.diffusion_family(cfg)

        def run(key, fam=fam):
            return fam.train(key, fam.model.init(key, x, w), x, w, a.steps)[1]

        step = jax.jit(jax.vmap(run))
        for seeds in a.seeds:
            keys = jax.random.split(jax.random.key(1), seeds)
            step(keys).block_until_ready()
            t0 = time.perf_counter()
            step(keys).block_until_ready()
            dt = time.perf_counter() - t0
            fwd = 2 * a.batch * ((2 + cfg.time_features) * width + (a.depth - 1) * width**2 + width * 2)
            rate = 3 * fwd * seeds * a.steps / dt / 1e9
            print(
                f"width {width:4d}, {seeds:2d} seeds: {dt / a.steps * 1e3:6.2f} ms/step, {rate:6.1f} GFLOP/s "
                f"= {rate / peak:5.1%} of peak"
            )


if __name__ == "__main__":
    main()
