"""Benchmark: the Gaussian fully synthetic loop, 1000 seeds x 1000 generations, madloop vs a numpy loop.

The reference does what published collapse scripts do: for each seed, for each generation, draw n samples from
the current Gaussian with numpy and refit mean and covariance. It is timed in the same run on ``--ref-seeds``
seeds and scaled linearly to the full seed count (its cost is linear in seeds by construction).

Usage: python benchmarks/gaussian_long.py [--seeds 1000] [--generations 1000] [--n 100] [--dim 2]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def numpy_reference(seeds: int, generations: int, n: int, dim: int) -> tuple[float, np.ndarray]:
    """Seconds and final trace ratios [seeds] of the plain per-seed, per-generation numpy loop (MLE)."""
    t0 = time.perf_counter()
    ratios = np.empty(seeds)
    for s in range(seeds):
        rng = np.random.default_rng(s)
        x = rng.standard_normal((n, dim))
        mean, cov = x.mean(0), np.cov(x.T, bias=True).reshape(dim, dim)
        for _ in range(generations):
            x = rng.multivariate_normal(mean, cov, size=n)
            mean, cov = x.mean(0), np.cov(x.T, bias=True).reshape(dim, dim)
        ratios[s] = np.trace(cov) / dim
    return time.perf_counter() - t0, ratios


def madloop_run(seeds: int, generations: int, n: int, dim: int, chunk: int) -> tuple[float, float, np.ndarray]:
    """(seconds with compilation, seconds of a second call, final trace ratios [seeds])."""
    import madloop
    from madloop.engine import Simulation

    cfg = madloop.compose(
        [
            "experiment=gaussian_long",
            f"data.dim={dim}",
            f"loop.seeds={seeds}",
            f"loop.generations={generations}",
            f"loop.chunk={chunk}",
            f"regime.n_real={n}",
            f"regime.n_synth={n}",
        ]
    )
    sim = Simulation(cfg)
    first = sim()
    second = sim()
    return first.seconds, second.seconds, first.metrics["trace_ratio"][:, -1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--dim", type=int, default=2)
    p.add_argument("--ref-seeds", type=int, default=20)
    a = p.parse_args()

    import jax

    print(
        f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {jax.devices()[0]}, "
        f"jax {jax.__version__}, numpy {np.__version__}"
    )
    print(f"Gaussian fully synthetic loop, MLE, d={a.dim}, n={a.n}, {a.seeds} seeds x {a.generations} generations")
    ref_s, ref_ratios = numpy_reference(a.ref_seeds, a.generations, a.n, a.dim)
    ref_full = ref_s * a.seeds / a.ref_seeds
    one_first, one_second, ratios = madloop_run(a.seeds, a.generations, a.n, a.dim, chunk=a.generations)
    step_first, step_second, _ = madloop_run(a.seeds, a.generations, a.n, a.dim, chunk=0)
    rows = [
        ("numpy loop, per seed and generation", ref_full, f"timed on {a.ref_seeds} seeds: {ref_s:.2f} s"),
        ("madloop, one program, compile included", one_first, ""),
        ("madloop, one program, second call", one_second, ""),
        ("madloop, 20 chunks with progress, compile included", step_first, ""),
        ("madloop, 20 chunks with progress, second call", step_second, ""),
    ]
    print("| run | seconds | speed-up vs numpy | note |\n|---|---|---|---|")
    for name, sec, note in rows:
        print(f"| {name} | {sec:.2f} | {ref_full / sec:.0f}x | {note} |")

    # Same law, different random streams. At g = 1000 the trace ratio is log-normal-like with a heavy right tail
    # (its mean is carried by rare paths), so compare the mean of its log, which both estimate well.
    def log_summary(r: np.ndarray) -> str:
        lr = np.log(r)
        return f"{lr.mean():.2f} +- {1.96 * lr.std(ddof=1) / np.sqrt(len(lr)):.2f}"

    print(
        f"final log trace ratio (mean, 95% CI): madloop {log_summary(ratios)} ({a.seeds} seeds), "
        f"numpy {log_summary(ref_ratios)} ({a.ref_seeds} seeds)"
    )


if __name__ == "__main__":
    main()
