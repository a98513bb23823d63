"""Every pool and regime of the Gaussian loop at the horizons of the presets and docs (experiments/pools.py's
Gaussian row: d = 2, n = 100, unbiased, 100 generations; experiment=heat_death: 200 generations) against the
exact laws (madloop.theory.pool_moments, fresh_data_moments) or, where no closed form exists, the float64 numpy
loop. Each check also rejects a plausible wrong implementation: the other pool's law, the recursion without its
mean term, the wrong pool or regime in the reference."""

from __future__ import annotations

import numpy as np
import pytest

import madloop
from madloop.theory import fresh_data_moments, pool_moments

from . import reference as R

D, N, G = 2, 100, 100


def pivot(table, metric: str) -> np.ndarray:
    """[seeds, G + 1] of one metric from one knob point's table."""
    return table.pivot(index="seed", columns="generation", values=metric).to_numpy()


def gaussian(pool: str, regime: str, seeds: int, *extra: str):
    return madloop.run_table(
        ["data=gaussian", f"data.dim={D}", "model=gaussian", "model.estimator=unbiased", f"regime={regime}"]
        + [f"regime.pool={pool}", f"regime.n_real={N}", f"regime.n_synth={N}", f"loop.generations={G}"]
        + [f"loop.seeds={seeds}", f"loop.chunk={G}", "eval=closed_form", "eval.metrics=[trace_ratio,mean_sqerr]"]
        + list(extra)
    )


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
def test_pool_follows_its_exact_law_for_100_generations(pool):
    """E tr Sigma_g / tr Sigma and E ||mu_g - mu||^2 / tr Sigma at every generation to 100, lam in {0.9, 1}, within
    4.5 SE of theory.pool_moments; the other pool's law is rejected."""
    table = gaussian(pool, "fully_synthetic", 1000, "sweep.bias.lam=[0.9,1.0]")
    for lam, part in table.groupby("lam"):
        t, m = pivot(part, "trace_ratio"), pivot(part, "mean_sqerr") / D
        law_t, law_m = pool_moments(G, N, N, D, pool, float(lam))
        other_t, other_m = pool_moments(G, N, N, D, "accumulate" if pool == "replace" else "replace", float(lam))
        for x, law, other, name in ((t, law_t, other_t, "trace"), (m, law_m, other_m, "mean error")):
            a, se = R.mean_se(x)
            assert R.agrees(a, se, law), R.describe(f"{pool} lam={lam} {name}", a[-3:], se[-3:], law[-3:])
            if name == "mean error" or lam != 1.0:  # at lam = 1 both pools keep E tr Sigma_g = tr Sigma
                assert not R.agrees(a, se, other), f"power: {pool}'s {name} does not reject the other pool's law"


def test_accumulate_subsample_follows_the_float64_reference():
    """accumulate_subsample has no closed form: its moments at generations 25/50/75/100 against the float64 numpy loop
    (n uniform draws without replacement from the accumulated pool); the replace pool's reference is rejected."""
    gens = (25, 50, 75, 100)
    got = gaussian("accumulate_subsample", "fully_synthetic", 600)
    ref = R.gaussian_loop(D, N, G, 600, estimator="unbiased", pool="accumulate_subsample", seed=7, keep=gens)
    wrong = R.gaussian_loop(D, N, G, 600, estimator="unbiased", pool="replace", seed=8, keep=gens)
    for metric, key, scale in (("trace_ratio", "trace", 1.0), ("mean_sqerr", "sqerr", 1.0)):
        a, se_a = R.mean_se(pivot(got, metric)[:, list(gens)] * scale)
        b, se_b = R.mean_se(ref[key])
        w, se_w = R.mean_se(wrong[key])
        assert R.agrees(a, se_a, b, se_b), R.describe(f"accumulate_subsample {metric}", a, se_a, b, se_b)
        if metric == "mean_sqerr":  # the mean's error is what the pool bounds (E tr Sigma stays 1 for both)
            assert not R.agrees(a, se_a, w, se_w), "power: the replace pool's reference is not rejected"


def test_fresh_data_regime_follows_the_exact_recursion_for_200_generations():
    """experiment=heat_death's horizon (200 generations) cold and hot below the heat-death threshold
    n_s (lam - 1) = n_r, and hot above it for the first 30 generations (beyond, the law's mean grows as 1.2^g and is
    carried by a few paths); the recursion without its between-group mean term is rejected at n_r = 2, lam = 0.8."""
    g = 200
    table = madloop.run_table(
        ["experiment=heat_death", "loop.seeds=500", f"loop.generations={g}", f"loop.chunk={g}"]
        + ["sweep.bias.lam=[0.8,1.25]", "sweep.regime.n_real=[2,100]"]
    )
    for (lam, n_real), part in table.groupby(["lam", "n_real"]):
        upto = g + 1 if 100 * (lam - 1) < n_real else 31
        law_t, law_m = fresh_data_moments(g, float(lam), int(n_real), 100, 2)
        for x, law, name in ((pivot(part, "trace_ratio"), law_t, "trace"), (pivot(part, "mean_sqerr"), law_m, "mean")):
            a, se = R.mean_se(x[:, :upto])
            assert R.agrees(a, se, law[:upto]), R.describe(
                f"fresh lam={lam} n_r={n_real} {name}", a[-3:], se[-3:], law[upto - 3 : upto]
            )
        if n_real == 2 and lam < 1:
            fixed, r = 2 / (2 + 100 * 0.2), 0.8 * 100 / 102
            a, se = R.mean_se(pivot(part, "trace_ratio"))
            assert not R.agrees(a, se, fixed + (1 - fixed) * r ** np.arange(g + 1)), "power: no mean term not rejected"


def test_synthetic_augmentation_follows_the_float64_reference():
    """A fixed real set (generation 0's) plus the previous generation's samples, 100 generations, against the float64
    numpy loop; the fresh data loop's reference (new real samples every generation) is rejected: with a fixed set the
    real sample's own mean error never averages out."""
    gens = (25, 50, 75, 100)
    got = gaussian("replace", "synthetic_augmentation", 600)
    ref = R.gaussian_loop(D, N, G, 600, estimator="unbiased", regime="synthetic_augmentation", seed=9, keep=gens)
    wrong = R.gaussian_loop(D, N, G, 600, estimator="unbiased", regime="fresh_data", seed=10, keep=gens)
    for metric, key in (("trace_ratio", "trace"), ("mean_sqerr", "sqerr")):
        a, se_a = R.mean_se(pivot(got, metric)[:, list(gens)])
        b, se_b = R.mean_se(ref[key])
        assert R.agrees(a, se_a, b, se_b), R.describe(f"augmentation {metric}", a, se_a, b, se_b)
    a, se_a = R.mean_se(pivot(got, "mean_sqerr")[:, list(gens)])
    assert not R.agrees(a, se_a, *R.mean_se(wrong["sqerr"])), "power: the fresh data reference is not rejected"
