"""Benchmark: the categorical fully synthetic loop (Wright-Fisher) at V = 10^4 types, 1,000 seeds x 1,000
generations in one program, madloop against vectorised numpy loops.

Each generation draws n tokens from the previous fit and refits their frequencies (MLE), for every seed. Two numpy
references, each vectorised over seeds and timed in the same run on ``--ref-seeds`` seeds, scaled linearly to the
full seed count (their cost is linear in seeds; a single process, as madloop's):
- ``inverse CDF``: the same algorithm as madloop (n uniforms per seed located in the cumulative law with
  ``np.searchsorted`` on the seeds' stacked cdfs, then ``np.bincount``): the same work;
- ``multinomial``: ``Generator.multinomial(n, q)`` on all seeds' laws at once (conditional binomials, O(V) per
  seed and generation: less work than drawing n tokens when n ~ V); what a numpy user would write first.
Agreement: all three follow the Wright-Fisher law E[1 - sum q_g^2] = (1 - 1/n)^(g + 1) (1 - sum p^2)
(docs/theory.md, law 14); the table shows each one's final mean +- SE against it, and the share of types kept.

Usage: python benchmarks/categorical_loop.py [--vocab 10000] [--n 10000] [--seeds 1000] [--generations 1000]
       [--ref-seeds 20]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

ALPHA = 1.1


def zipf(vocab: int) -> np.ndarray:
    p = (np.arange(vocab) + 1.0) ** -ALPHA
    return p / p.sum()


def numpy_inverse_cdf(seeds: int, generations: int, n: int, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds, final Gini-Simpson [seeds] and final support share [seeds]: every seed's n tokens drawn by inverse
    CDF in one searchsorted over the stacked cdfs (seed s's cdf shifted by s), counted by one bincount."""
    rng = np.random.default_rng(0)
    v = p.shape[0]
    offset = np.arange(seeds)[:, None]
    t0 = time.perf_counter()
    q = np.broadcast_to(p, (seeds, v))
    for _ in range(generations + 1):  # generation 0 draws from the truth
        cdf = np.cumsum(q, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random((seeds, n))
        tokens = np.searchsorted((cdf + offset).ravel(), (u + offset).ravel(), side="right")
        q = np.bincount(tokens, minlength=seeds * v).reshape(seeds, v) / n
    return time.perf_counter() - t0, 1 - np.sum(q**2, axis=1), np.mean(q > 0, axis=1)


def numpy_multinomial(seeds: int, generations: int, n: int, p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Seconds, final Gini-Simpson [seeds] and final support share [seeds] of the loop by multinomial counts."""
    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    q = np.broadcast_to(p, (seeds, p.shape[0]))
    for _ in range(generations + 1):
        q = rng.multinomial(n, q) / n
    return time.perf_counter() - t0, 1 - np.sum(q**2, axis=1), np.mean(q > 0, axis=1)


def madloop_run(vocab: int, n: int, seeds: int, generations: int) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(seconds with compilation, seconds of a second call, final Gini-Simpson [seeds], final support [seeds])."""
    import madloop
    from madloop.engine import Simulation

    cfg = madloop.compose(
        ["data=zipf", f"data.vocab={vocab}", f"data.alpha={ALPHA}", "model=categorical", "regime=fully_synthetic"]
        + [f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.seeds={seeds}", f"loop.generations={generations}"]
        + [f"loop.chunk={generations}", "eval.metrics=[gini_simpson,support]", "eval.snapshots=0"]
        + ["eval.snapshot_n=1", "plots=false"]
    )
    sim = Simulation(cfg)
    first = sim()
    second = sim()
    return first.seconds, second.seconds, first.metrics["gini_simpson"][:, -1], first.metrics["support"][:, -1]


def summary(x: np.ndarray) -> str:
    return f"{x.mean():.4f} ± {x.std(ddof=1) / np.sqrt(len(x)):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=10_000)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=1000)
    ap.add_argument("--generations", type=int, default=1000)
    ap.add_argument("--ref-seeds", type=int, default=20)
    a = ap.parse_args()

    import jax

    print(
        f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} x {jax.devices()[0]}, "
        f"jax {jax.__version__}, numpy {np.__version__}"
    )
    print(f"categorical fully synthetic loop, MLE, Zipf({ALPHA}) over V = {a.vocab}, n = {a.n} tokens per generation,")
    print(f"{a.seeds} seeds x {a.generations} generations")
    p = zipf(a.vocab)
    law = (1 - 1 / a.n) ** (a.generations + 1) * (1 - p @ p)
    inv_s, inv_h, inv_k = numpy_inverse_cdf(a.ref_seeds, a.generations, a.n, p)
    mul_s, mul_h, mul_k = numpy_multinomial(a.ref_seeds, a.generations, a.n, p)
    first, second, h, k = madloop_run(a.vocab, a.n, a.seeds, a.generations)
    scale = a.seeds / a.ref_seeds
    inv_full, mul_full = inv_s * scale, mul_s * scale
    print("| run | seconds | madloop (2nd call) speed-up | final 1 - sum q^2 (law " + f"{law:.4f}) | types kept |")
    print("|---|---|---|---|---|")
    rows = [
        (f"numpy inverse CDF (same algorithm), timed on {a.ref_seeds} seeds, scaled", inv_full, inv_h, inv_k),
        (f"numpy multinomial counts, timed on {a.ref_seeds} seeds, scaled", mul_full, mul_h, mul_k),
        ("madloop, one program, compile included", first, h, k),
        ("madloop, one program, second call", second, h, k),
    ]
    for name, sec, hh, kk in rows:
        print(f"| {name} | {sec:.1f} | {sec / second:.1f}x | {summary(hh)} | {summary(kk)} |")
    for name, hh in (("madloop", h), ("numpy inverse CDF", inv_h), ("numpy multinomial", mul_h)):
        z = (hh.mean() - law) / (hh.std(ddof=1) / np.sqrt(len(hh)))
        print(f"{name}: final Gini-Simpson {z:+.2f} SE from the Wright-Fisher law ({len(hh)} seeds)")


if __name__ == "__main__":
    main()
