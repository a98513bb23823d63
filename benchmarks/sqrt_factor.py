"""Square roots of a batch of covariances: madloop's pivoted Cholesky against jnp.linalg's eigh square root (the
exact alternative) and LAPACK's unpivoted Cholesky (fast, but NaN on semi-definite input).

    python benchmarks/sqrt_factor.py

Prints the median of 5 timed calls after a warm-up call (compilation excluded) for 1000 matrices at d = 2, 10, 32,
and the largest reconstruction error ||F F^T - A||_F / ||A||_F of each method, so both sides computed the same
thing.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from madloop import linalg


def eigh_factor(a: jax.Array) -> jax.Array:
    w, v = jnp.linalg.eigh(a)
    return v * jnp.sqrt(jnp.clip(w, 0.0))[..., None, :]


def main() -> None:
    methods = {"pivoted (madloop)": linalg.sqrt_factor, "eigh": eigh_factor, "LAPACK cholesky": jnp.linalg.cholesky}
    for d in (2, 10, 32):
        x = jax.random.normal(jax.random.key(0), (1000, d, d + 5))
        a = x @ jnp.swapaxes(x, 1, 2) / (d + 5)
        times = {}
        for name, fn in methods.items():
            f = jax.jit(fn)
            factor = f(a).block_until_ready()
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                f(a).block_until_ready()
                ts.append(time.perf_counter() - t)
            times[name] = float(np.median(ts))
            err = jnp.linalg.norm(factor @ jnp.swapaxes(factor, 1, 2) - a, axis=(1, 2)) / jnp.linalg.norm(
                a, axis=(1, 2)
            )
            print(f"d={d:2d} {name:18s} {1e3 * times[name]:8.2f} ms   max rel. error {float(jnp.max(err)):.1e}")
        base = times["pivoted (madloop)"]
        print(
            f"d={d:2d} eigh / pivoted = {times['eigh'] / base:.1f}x, LAPACK cholesky / pivoted = "
            f"{times['LAPACK cholesky'] / base:.2f}x  ({jax.devices()[0].device_kind})"
        )


if __name__ == "__main__":
    main()
