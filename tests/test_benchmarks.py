"""The benchmarks' reference loops compute what madloop computes: they agree statistically on small cases (so the
speed ratios in docs/benchmarks.md compare like with like)."""

import numpy as np
import pytest

import madloop
from benchmarks import references


def agree(a: np.ndarray, b: np.ndarray, z: float = 4.5) -> tuple[bool, float]:
    """Whether two independent samples have means within z combined standard errors; and that distance in SEs."""
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    dist = abs(a.mean() - b.mean()) / se
    return dist < z, dist


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
def test_numpy_gaussian_reference_matches_madloop(pool):
    seeds, dim, n, g = 400, 2, 10, 8
    ref = np.stack([references.gaussian_loop(s, dim, n, g, pool) for s in range(seeds)])
    table = madloop.run_table(
        ["data=gaussian", f"data.dim={dim}", "model=gaussian", "regime=fully_synthetic", f"regime.pool={pool}"]
        + [f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}", f"loop.seeds={seeds}"]
        + ["eval=closed_form", "eval.metrics=[trace_ratio]", "plots=false"]
    )
    ours = table.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
    for gen in (1, g):
        ok, dist = agree(np.log(ref[:, gen]), np.log(ours[:, gen]))
        assert ok, (pool, gen, dist)
    # and the check has power: a loop that forgot the MLE's (n - 1) / n shrinkage per generation would fail it
    if pool == "replace":
        ok, _ = agree(np.log(ref[:, g]) - g * np.log((n - 1) / n), np.log(ours[:, g]))
        assert not ok


def test_sklearn_gmm_reference_matches_madloop():
    seeds, n, g, init_iters, iters = 12, 128, 3, 100, 10
    rng = np.random.default_rng(1234)
    heldout = references.ring8(rng, 1000)
    ref = np.stack([references.gmm_loop(s, n, g, init_iters, iters, heldout) for s in range(seeds)])
    table = madloop.run_table(
        ["data=ring8", "model=gmm", "model.components=8", f"model.init_iters={init_iters}", f"model.iters={iters}"]
        + ["regime=fully_synthetic", f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}"]
        + [f"loop.seeds={seeds}", "eval=closed_form", "eval.metrics=[nll]", "eval.n=1000", "plots=false"]
    )
    ours = table.pivot(index="seed", columns="generation", values="nll").to_numpy()
    for gen in (0, g):
        ok, dist = agree(ref[:, gen], ours[:, gen])
        assert ok, (gen, dist, ref[:, gen].mean(), ours[:, gen].mean())
    # both fit the ring: the held-out nll at generation 0 lies within 0.5 nats above the truth's entropy (8 modes of
    # std 0.05: -1.07 nats per sample); 128 samples for 8 components leave some fits with merged modes
    truth = np.log(8) + np.log(2 * np.pi * 0.05**2) + 1
    for side in (ref, ours):
        assert truth - 0.05 < np.median(side[:, 0]) < truth + 0.5
