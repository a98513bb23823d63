"""The Gaussian fully synthetic loop at the benchmarks' size (n = 100, MLE, to 1000 generations; conf/experiment/
gaussian_long.yaml, benchmarks/run.py) against a float64 numpy loop (eigh square root) and the closed forms.

Power: each assertion is also applied to a plausible wrong implementation, which must fail it.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import madloop
from benchmarks.run import gaussian_overrides
from madloop.theory import expected_log_det_wishart

from . import reference as R

N = 100
GENERATIONS = 1000
CHECKED = (250, 500, 750, 1000)
SEEDS = {1: 400, 2: 400, 10: 300, 32: 100}  # madloop runs (one compiled program per d)
REF_SEEDS = {1: 400, 2: 400, 10: 300, 32: 100}  # float64 numpy runs (eigh at d = 32: the costliest)
# E[Sigma_g] = ((n-1)/n)^(g+1) Sigma is tested up to a generation where the trace's spread over seeds is moderate
# (its relative variance grows about like (1 + 2 / (d k))^g; beyond, a mean over a few hundred seeds is carried by
# a handful of paths and its sample SE is not trustworthy).
LAW_UNTIL = {1: 50, 2: 100, 10: 250, 32: 250}


def madloop_loop(d: int, n: int, generations: int, seeds: int, *extra: str) -> dict[str, np.ndarray]:
    """madloop's MLE fully synthetic loop, the benchmark's overrides, as {metric: [seeds, generations + 1]}."""
    overrides = gaussian_overrides(d, "replace", n, generations, seeds)
    return madloop.simulate([*overrides, "eval.metrics=[trace_ratio,logdet_ratio]", *extra]).metrics


@functools.cache
def reference(d: int) -> dict[str, np.ndarray]:
    return R.gaussian_loop(d, N, GENERATIONS, REF_SEEDS[d], seed=100 + d)


@pytest.mark.parametrize("d", [1, 2, 10, 32])
def test_mle_loop_follows_the_float64_reference_to_1000_generations(d):
    """Mean and median log trace ratio at generations 250/500/750/1000 within 4.5 combined SE of the float64 numpy
    loop, and E tr Sigma_g / tr Sigma = ((n-1)/n)^(g+1) where measurable. Power: the unbiased estimator in place of
    the MLE (exactly the reference times (n/(n-1))^(g+1), same draws) fails both comparisons."""
    got = madloop_loop(d, N, GENERATIONS, SEEDS[d])
    ref = reference(d)
    assert np.isfinite(got["trace_ratio"]).all()
    gens = np.asarray(CHECKED)
    log_tr = np.log(got["trace_ratio"][:, gens])
    log_ref = np.log(ref["trace"][:, gens])
    wrong = log_ref + (gens + 1) * np.log(N / (N - 1))  # the unbiased estimator's loop, same draws
    for stat in (R.mean_se, R.median_se):
        a, se_a = stat(log_tr)
        b, se_b = stat(log_ref)
        w, se_w = stat(wrong)
        assert R.agrees(a, se_a, b, se_b), R.describe(f"d={d} {stat.__name__} log trace ratio", a, se_a, b, se_b)
        assert not R.agrees(a, se_a, w, se_w), "power: the unbiased estimator's loop is not rejected"

    # The closed form: E[Sigma_g] = rho^(g+1) Sigma, generation 0 being an MLE fit of real data.
    rho = (N - 1) / N
    upto = np.arange(LAW_UNTIL[d] + 1)
    a, se_a = R.mean_se(got["trace_ratio"][:, upto])
    assert R.agrees(a, se_a, rho ** (upto + 1)), R.describe(
        f"d={d} E trace ratio", a[-3:], se_a[-3:], rho ** (upto[-3:] + 1)
    )
    # power: the unbiased estimator's law (E[Sigma_g] = Sigma) is rejected
    assert not R.agrees(a, se_a, np.ones_like(a)), "power: E[Sigma_g] = Sigma is not rejected"
    # and the reference itself follows the law (it is a reference, not a second opinion)
    b, se_b = R.mean_se(ref["trace"][:, upto])
    assert R.agrees(b, se_b, rho ** (upto + 1))


# The log-determinant law (docs/theory.md, law 4, for the MLE: W_g ~ Wishart_d(n - 1, I) / n):
#   E log det Sigma_g / det Sigma = (g + 1) (E log det [Wishart_d(k, I) / k] + d log(k / n)),  k = n - 1.
# Which horizons a precision can represent: Sigma_g is a product of g + 1 rotation-invariant Wishart factors, whose
# log-eigenvalues separate at the rates of the Bartlett factors' E log chi^2_{k-i+1} (the Lyapunov spectrum), so
# log(lambda_max / lambda_min) grows like g (psi(k/2) - psi((k-d+1)/2)): 0.0963 per generation at d = 10 and 0.380
# at d = 32 (k = 99), with a spread over seeds of about sqrt(g (psi'(k/2) + psi'((k-d+1)/2))) (3 at d = 10,
# g = 200). A fitted covariance resolves lambda_min only while lambda_min / lambda_max is well above the dtype's
# eps (1.2e-7 = e^-15.9 in float32, 2.2e-16 = e^-36 in float64). At (d, g) = (10, 200) the typical spread is
# e^-19 (e^-29 for the worst of 300 seeds): float64 resolves it, float32 cannot; likewise (32, 50): e^-19.
LOGDET_AT = {10: 200, 32: 50}


def logdet_law(d: int, g: np.ndarray) -> np.ndarray:
    k = N - 1
    return (g + 1) * (expected_log_det_wishart(d, k) + d * np.log(k / N))


@pytest.mark.parametrize("d", [10, 32])
def test_float64_follows_the_log_det_law_that_float32_cannot(d):
    """loop.precision=float64 follows the log-det law at a horizon where the eigenvalue spread is beyond float32's
    resolution (derived above); the default float32 loop does not (its smallest eigenvalues stop at a rounding floor
    near eps * lambda_max, so its log-determinant stays too high). The float64 numpy reference follows it too."""
    g_max = LOGDET_AT[d]
    gens = np.arange(0, g_max + 1, 10)
    law = logdet_law(d, gens)
    ref = R.gaussian_loop(d, N, g_max, REF_SEEDS[d], seed=200 + d, keep=tuple(gens))["logdet"]
    b, se_b = R.mean_se(ref)
    assert R.agrees(b, se_b, law), R.describe(f"d={d} reference log det", b, se_b, law)

    f64 = madloop_loop(d, N, g_max, SEEDS[d], "loop.precision=float64", "eval.metrics=[logdet_ratio]")["logdet_ratio"]
    a, se_a = R.mean_se(f64[:, gens])
    assert R.agrees(a, se_a, law), R.describe(f"d={d} float64 log det", a, se_a, law)

    f32 = madloop_loop(d, N, g_max, SEEDS[d], "eval.metrics=[logdet_ratio]")["logdet_ratio"][:, g_max]
    assert not (np.isfinite(f32).all() and R.agrees(*R.mean_se(f32), law[-1])), "float32 followed the law"
