"""Benchmark: where the Gaussian loop's time goes beyond its random draws, stage by stage.

Usage: python benchmarks/gaussian_stages.py [--seeds 1000] [--generations 1000] [--dims 2 10] [--repeats 3]
       [--json OUT]

The fully synthetic MLE replace loop (n = 100) rebuilt in stages, each a complete jitted program (a scan over
generations, vmapped over seeds) that adds one step of the generation to the previous stage, with the loop's own
functions (``madloop.models.gaussian``, ``madloop.linalg``):
1. ``draws``: the n x d standard normals of each generation, drawn flat (the RNG bound of benchmarks/targets.py);
2. ``draws [d, n]``: drawn as the sampler draws them, z [d, n];
3. ``+ transform``: x = mean + (L z)^T [n, d], the sampler's output;
4. ``+ fit``: the weighted mean and MLE covariance of x (``gaussian_stats``), carried to the next generation;
5. ``+ factor``: the pivoted-Cholesky square root of the covariance for the next draws (the loop's sampler);
6. ``madloop``: the loop itself through ``madloop.engine.Simulation`` (``eval.metrics=[trace_ratio]``).
Each stage prints its steady seconds (median of ``repeats`` after a compiling call) and the time it adds to the
stage before, so the cost of each step of a generation is on the page, on whatever device runs it. Stage 5 and the
loop follow the same law with different keys: the run prints both final mean log trace ratios +- SE, and
tests/test_benchmarks.py checks that they agree within 4.5 SE (and that a stage without the MLE's shrinkage fails).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/gaussian_stages.py`
import madloop  # noqa: E402
from benchmarks.run import gaussian_overrides, timed_madloop  # noqa: E402
from madloop import linalg  # noqa: E402
from madloop.models import gaussian as G  # noqa: E402

N = 100


def stage_program(stage: int, dim: int, generations: int):
    """A jitted, seed-vmapped program of the loop up to ``stage`` (1-5): keys [S] -> one number per seed."""
    w = jnp.ones(N)

    def one(key):
        def body(carry, g):
            mean, factor, total = carry
            k = jax.random.fold_in(key, g)
            if stage == 1:
                return (mean, factor, total + jnp.sum(jax.random.normal(k, (N * dim,)))), None
            z = jax.random.normal(k, (dim, N))
            if stage == 2:
                return (mean, factor, total + jnp.sum(z)), None
            x = mean + jnp.einsum("ij,jn->ni", factor, z)
            if stage == 3:
                return (mean, factor, total + jnp.sum(x)), None
            stats = G.gaussian_stats(x, w)
            cov = stats.scatter / stats.count
            if stage == 4:  # the fit carried (its mean), the factor kept: no square root
                return (stats.mean, factor, total + jnp.trace(cov)), None
            return (stats.mean, linalg.sqrt_factor(cov), jnp.trace(cov)), None

        init = (jnp.zeros(dim), jnp.eye(dim), jnp.float32(0))
        return jax.lax.scan(body, init, jnp.arange(generations))[0][2]

    return jax.jit(jax.vmap(one))


def steady(fn, *args, repeats: int) -> tuple[float, float]:
    """(first call seconds, median of ``repeats`` further calls)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


NAMES = ["draws (flat)", "draws [d, n]", "+ transform", "+ fit", "+ factor"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--dims", type=int, nargs="+", default=[2, 10])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    madloop.compose([])  # registers the options
    print(f"# {jax.devices()[0].device_kind}, jax {jax.__version__}: {a.seeds} seeds x {a.generations} generations")
    out = []
    for dim in a.dims:
        keys = jax.random.split(jax.random.key(0), a.seeds)
        rows, before = [], 0.0
        for stage, name in enumerate(NAMES, start=1):
            first, t = steady(stage_program(stage, dim, a.generations), keys, repeats=a.repeats)
            rows.append({"dim": dim, "stage": name, "first": first, "steady": t, "adds": t - before})
            before = t
        ml = timed_madloop(gaussian_overrides(dim, "replace", N, a.generations, a.seeds), a.repeats)
        rows.append({"dim": dim, "stage": "madloop", "first": ml["first"], "steady": ml["steady"],
                     "adds": ml["steady"] - before})  # fmt: skip
        # stage 5 and the loop: the same law (different keys), so compare the final log trace ratios' means
        final = np.log(np.asarray(stage_program(5, dim, a.generations + 1)(keys)) / dim)  # + generation 0
        loop = np.log(ml["result"].metrics["trace_ratio"][:, -1])
        print(f"d = {dim}: final log trace ratio, stage 5 {final.mean():.3f} +- {final.std() / len(final) ** 0.5:.3f}, "
              f"madloop {loop.mean():.3f} +- {loop.std() / len(loop) ** 0.5:.3f}")  # fmt: skip
        bound = rows[0]["steady"]
        print("| stage | first call (s) | steady (s) | adds (s) | steady / bound |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| d={dim} {r['stage']} | {r['first']:.2f} | {r['steady']:.3f} | {r['adds']:+.3f} | "
                  f"{r['steady'] / bound:.2f}x |")  # fmt: skip
        out += rows
        if a.json:
            Path(a.json).write_text(json.dumps({"device": jax.devices()[0].device_kind, "rows": out}, indent=1))


if __name__ == "__main__":
    main()
