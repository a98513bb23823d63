"""Benchmark: a convolution's training step inside ``lax.scan``, XLA's convolution against madloop's Conv3x3.

Usage: python benchmarks/conv_in_scan.py [--steps 20] [--batch 128] [--channels 32] [--size 8]

Every training loop in madloop is a ``lax.scan``. On XLA's CPU backend (jaxlib 0.10.2) the weight gradient of
``flax.linen.Conv`` inside a scan ran 25-35x slower than the same step outside one, so the U-Net denoiser and the
feature classifier use ``madloop.models.networks.Conv3x3`` (nine shifted slices and one dot, the same function).
This prints ms per step of a two-layer 3 x 3 network's SGD step for both, inside a scan and as one jitted call,
and the ratios, all measured in this run.
"""

from __future__ import annotations

import argparse
import functools
import time

import flax.linen as nn
import jax
import jax.numpy as jnp

from madloop.models.networks import Conv3x3


class TwoLayers(nn.Module):
    channels: int
    slices: bool  # Conv3x3 (slices and a dot) or nn.Conv

    @nn.compact
    def __call__(self, x):  # one image [h, w, c]
        conv = (lambda f: Conv3x3(f)) if self.slices else (lambda f: lambda h: nn.Conv(f, (3, 3))(h[None])[0])
        h = nn.relu(conv(self.channels)(x))
        return jnp.sum(nn.relu(conv(self.channels)(h)) ** 2)


def timed(fn, *args, repeats: int = 3) -> float:
    jax.block_until_ready(fn(*args))
    best = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best.append(time.perf_counter() - t0)
    return sorted(best)[len(best) // 2]


def _sgd_step(net: TwoLayers, x: jax.Array):
    def loss(p):
        return jnp.mean(jax.vmap(lambda xi: net.apply(p, xi))(x))

    return lambda p: jax.tree.map(lambda a, g: a - 1e-4 * g, p, jax.grad(loss)(p))


def _scanned(sgd, steps: int, params):
    return jax.lax.scan(lambda p, _: (sgd(p), None), params, None, length=steps)[0]


def measure(steps: int = 20, batch: int = 128, channels: int = 32, size: int = 8) -> dict[str, float]:
    """ms per SGD step for each (convolution, inside a scan or not)."""
    x = jax.random.normal(jax.random.key(0), (batch, size, size, 1))
    out = {}
    for slices in (False, True):
        sgd = _sgd_step(TwoLayers(channels, slices), x)
        params = TwoLayers(channels, slices).init(jax.random.key(1), x[0])
        scanned = functools.partial(_scanned, sgd, steps)
        name = "Conv3x3" if slices else "nn.Conv"
        out[f"{name} in scan"] = 1e3 * timed(jax.jit(scanned), params) / steps
        out[f"{name} one call"] = 1e3 * timed(jax.jit(sgd), params)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--size", type=int, default=8)
    a = p.parse_args()
    r = measure(a.steps, a.batch, a.channels, a.size)
    print(f"{jax.devices()[0].platform}, batch {a.batch}, {a.channels} channels, {a.size} x {a.size}: ms per step")
    for k, v in r.items():
        print(f"  {k:20s} {v:9.2f}")
    print(f"nn.Conv in scan / one call: {r['nn.Conv in scan'] / r['nn.Conv one call']:.1f}x")
    print(f"nn.Conv / Conv3x3 in scan:  {r['nn.Conv in scan'] / r['Conv3x3 in scan']:.1f}x")


if __name__ == "__main__":
    main()
