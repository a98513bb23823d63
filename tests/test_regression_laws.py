"""The supervised loop (data=linear, model=linear) against its exact laws (docs/theory.md, law 12).

The laws are checked twice: against a plain numpy simulation of each loop (batched least squares, written here
independently of madloop, 20,000 seeds at small d and T), and through the real engine (madloop.simulate) at
4.5 standard errors with fixed keys. Each check also rejects a plausible wrong law (the power check). The laws at the
preset's size (d = 10, T = 100) and 100 generations are in tests/validation/test_regression.py.
"""

import jax
import numpy as np
import pytest

import madloop
from madloop import theory
from madloop.models.linear import fit_stats, linear_stats, solve_psd
from tests.test_gaussian_laws import Z, assert_mean_law


def numpy_loop(loop: str, pool: str, d: int, n_real: int, n_synth: int, g: int, seeds: int, gamma: float = 0.0):
    """[seeds, g + 1] excess risks ||w_t - w*||^2 of least squares in the supervised loop, simulated plainly: isotropic
    features, sigma = 1, w* = 0 (the risk does not depend on w*), synthetic labels x . w_{t-1} + N(0, 1) moved a
    fraction gamma toward the truth's label x . w* = 0."""
    rng = np.random.default_rng(0)

    def rows(n):
        x = rng.standard_normal((seeds, n, d))
        return x, rng.standard_normal((seeds, n))

    def solve(xtx, xty):
        return np.linalg.solve(xtx, xty[..., None])[..., 0]

    x0, e0 = rows(n_real)
    real = (np.einsum("sni,snj->sij", x0, x0), np.einsum("sni,sn->si", x0, e0))  # labels x . 0 + noise
    w = solve(*real)
    pool_xtx, pool_xty = np.zeros((seeds, d, d)), np.zeros((seeds, d))
    out = [np.sum(w**2, axis=1)]
    for _ in range(g):
        x, e = rows(n_synth)
        y = (1 - gamma) * (np.einsum("sni,si->sn", x, w) + e)  # y + gamma (0 - y)
        xtx, xty = np.einsum("sni,snj->sij", x, x), np.einsum("sni,sn->si", x, y)
        if pool == "accumulate":
            pool_xtx, pool_xty = pool_xtx + xtx, pool_xty + xty
            xtx, xty = pool_xtx, pool_xty
        if loop == "synthetic_augmentation":
            xtx, xty = xtx + real[0], xty + real[1]
        elif loop == "fresh_data":
            xf, ef = rows(n_real)
            xtx, xty = xtx + np.einsum("sni,snj->sij", xf, xf), xty + np.einsum("sni,sn->si", xf, ef)
        w = solve(xtx, xty)
        out.append(np.sum(w**2, axis=1))
    return np.stack(out, axis=1)


def fixed_design_sum(d: int, n: int, terms: np.ndarray) -> np.ndarray:
    """sigma^2 d / (n - d - 1) sum_{i in terms} 1 / i^2: the accumulating loop's error when every generation reuses
    one design matrix (Gerstgrasser et al.'s sum), a plausible wrong law for fresh features."""
    return theory.ols_variance(n, d) * np.cumsum(1.0 / terms**2)


D, N, G, SEEDS = 3, 12, 8, 20000


@pytest.mark.parametrize(
    "loop,pool,gamma",
    [
        ("fully_synthetic", "replace", 0.0),
        ("fully_synthetic", "replace", 0.3),
        ("fully_synthetic", "accumulate", 0.0),
        ("synthetic_augmentation", "accumulate", 0.0),
        ("fresh_data", "replace", 0.0),
        ("fresh_data", "replace", 0.3),
    ],
)
def test_laws_match_a_plain_numpy_simulation(loop, pool, gamma):
    """Each closed form against 20,000 numpy seeds (d = 3, n_r = n_s = 12, 8 generations). Power: replace against
    the naive d / n per generation, the correction against (1 - gamma) in place of (1 - gamma)^2, accumulate against
    the fixed-design sum (1 / i^2), fresh data against the contraction (n_s / N)^2 in place of c."""
    risk = numpy_loop(loop, pool, D, N, N, G, SEEDS, gamma)
    law = theory.regression_test_error(G, D, N, N, loop, pool, gamma=gamma)
    gens = np.arange(G + 1)
    v = theory.ols_variance(N, D)
    if loop == "fully_synthetic" and pool == "replace":
        wrong = (
            (gens + 1) * D / N
            if gamma == 0
            else theory.regression_test_error(G, D, N, N, loop, pool, gamma=1 - np.sqrt(0.7))
        )
    elif loop == "fully_synthetic":
        wrong = np.concatenate([[v], v + fixed_design_sum(D, N, gens[1:])])
    elif loop == "synthetic_augmentation":
        wrong = fixed_design_sum(D, N, gens + 1.0)
    else:  # the contraction a^2 = (n_s / N)^2 of a mean, in place of c
        keep, m = (1 - gamma) ** 2, [v]
        for _ in gens[1:]:
            m.append(keep * 0.25 * m[-1] + (1 + keep) * N * theory.ols_variance(2 * N, D) / (2 * N))
        wrong = np.asarray(m)
    assert_mean_law(risk, law, wrong)


def test_fresh_contraction_matches_monte_carlo():
    """c = E tr(B A^-2 B) / d (law 12's fresh data factor) against 40,000 numpy draws at three sizes; d = 1 is the
    Beta(n_s / 2, n_r / 2) second moment n_s (n_s + 2) / (N (N + 2)) exactly."""
    rng = np.random.default_rng(1)
    for d, n_r, n_s in ((2, 3, 10), (5, 20, 30), (4, 12, 12)):
        xs, xr = rng.standard_normal((40000, n_s, d)), rng.standard_normal((40000, n_r, d))
        b = np.einsum("rni,rnj->rij", xs, xs)
        m = np.linalg.solve(b + np.einsum("rni,rnj->rij", xr, xr), b)  # A^-1 B
        v = np.einsum("rij,rij->r", m, m) / d
        c = theory.fresh_contraction(d, n_r, n_s)
        assert abs(v.mean() - c) < Z * v.std() / np.sqrt(v.size), (d, n_r, n_s)
        assert abs(v.mean() - (n_s / (n_r + n_s)) ** 2) > Z * v.std() / np.sqrt(v.size)  # not a mean's a^2
    assert theory.fresh_contraction(1, 5, 5) == pytest.approx(5 * 7 / (10 * 12))


def test_accumulate_stays_below_gerstgrassers_bound_and_replace_grows_linearly():
    d, n = 10, 100
    bound = theory.regression_accumulate_bound(d, n)
    augmented = theory.regression_test_error(1000, d, n, n, "synthetic_augmentation", "accumulate")
    assert np.all(augmented < bound) and augmented[-1] > 0.96 * bound  # within 4% of it at T = 10 d
    replace = theory.regression_test_error(100, d, n, n)
    np.testing.assert_allclose(replace, (np.arange(101) + 1) * d / (n - d - 1))
    with pytest.raises(ValueError, match="law covers"):
        theory.regression_test_error(3, d, n, n, "synthetic_augmentation", "replace")


def test_weighted_least_squares_and_its_statistics_match_numpy():
    """The family's fit is numpy's weighted least squares (with a ridge term r n_w I, n_w = sum w), zero weights drop
    rows, and fitting merged statistics equals fitting the pooled rows; the solver is exact on an ill-conditioned
    system (condition number 1e4)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    w = rng.integers(0, 3, 40).astype(np.float32)
    fitted = jax.jit(lambda x, w, ridge: fit_stats(ridge, linear_stats(x, w)).weights)
    for ridge in (0.0, 0.5):
        fit = np.asarray(fitted(x, w, ridge))
        xf, y = x[:, :4].astype(float), x[:, 4].astype(float)
        ref = np.linalg.solve((xf.T * w) @ xf + ridge * w.sum() * np.eye(4), (xf.T * w) @ y)
        np.testing.assert_allclose(fit, ref, rtol=1e-4, atol=1e-5)
    keep = w > 0
    np.testing.assert_allclose(
        fit_stats(0.0, linear_stats(x[keep], np.ones(keep.sum(), np.float32))).weights,
        fit_stats(0.0, linear_stats(x, (w > 0).astype(np.float32))).weights,
        rtol=1e-5,
    )
    from madloop.models.linear import merge_stats

    a, b = linear_stats(x[:20], w[:20]), linear_stats(x[20:], w[20:])
    np.testing.assert_allclose(
        fit_stats(0.0, merge_stats(a, b)).weights, fit_stats(0.0, linear_stats(x, w)).weights, rtol=1e-5, atol=1e-6
    )
    q = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    a = (q * np.array([1e4, 10.0, 1.0, 1.0])) @ q.T
    rhs = rng.standard_normal(4)
    np.testing.assert_allclose(
        solve_psd(a.astype(np.float32), rhs.astype(np.float32)), np.linalg.solve(a, rhs), rtol=2e-3
    )


def test_engine_follows_law_12_with_and_without_correction_and_a_noiseless_verifier_holds_generation_zero():
    """One program of the real engine (fully synthetic replace, d = 4, T = 12, 12 generations, 1000 seeds) with the
    loop operators' knobs vmapped: the verifier's noise in {0, 1e9} x the correction's gamma in {0, 0.5}.

    - noise 1e9 accepts nothing (unfilled = 1), so the slots take the first n_synth candidates: the unverified
      loop. At gamma = 0 it follows law 12's replace rate (g + 1) sigma^2 d / (T - d - 1) within 4.5 SE at every
      generation (the naive d / T per generation is rejected); at gamma = 0.5 the corrected law (the uncorrected one
      is rejected).
    - The must-show: the noiseless label verifier (tolerance = sigma, 2 candidates per slot, gamma = 0) keeps the
      test error at or below its generation-0 level at every generation, far below the unverified law (power).
      tests/validation/test_regression.py repeats it at the preset's size over 100 generations against
      curation=none.
    - The weight error equals the test error (isotropic features).
    """
    d, n, g = 4, 12, 12
    table = madloop.run_table(
        ["data=linear", f"data.dim={d}", "model=linear", f"regime.n_real={n}", f"regime.n_synth={n}"]
        + [f"loop.generations={g}", f"loop.chunk={g}", "loop.seeds=1000", "curation=verifier"]
        + ["sweep.curation.noise=[0.0,1e9]", "correction=toward_truth", "sweep.correction.gamma=[0.0,0.5]"]
        + ["eval.metrics=[test_error,weight_error,unfilled]", "eval.snapshots=0", "eval.snapshot_n=1"]
    )
    np.testing.assert_allclose(table["test_error"], table["weight_error"], rtol=1e-5)
    blind = table[table["verifier_noise"] > 1]
    assert (blind.loc[blind.generation > 0, "unfilled"] == 1).all()
    for gamma, part in blind.groupby("gamma"):
        risk = part.pivot(index="seed", columns="generation", values="test_error").to_numpy()
        law = theory.regression_test_error(g, d, n, n, gamma=float(gamma))
        wrong = (np.arange(g + 1) + 1) * d / n if gamma == 0 else theory.regression_test_error(g, d, n, n)
        assert_mean_law(risk, law, wrong)
    verified = table[(table["verifier_noise"] == 0) & (table["gamma"] == 0)]
    risk = verified.pivot(index="seed", columns="generation", values="test_error").to_numpy()
    mean, se = risk.mean(axis=0), risk.std(axis=0, ddof=1) / np.sqrt(risk.shape[0])
    assert np.all(mean[1:] < mean[0] + Z * np.sqrt(se[1:] ** 2 + se[0] ** 2))  # at or below generation 0
    law = theory.regression_test_error(g, d, n, n)
    assert np.all(mean[2:] < law[2:] - Z * se[2:])  # not the unverified law
    assert verified.loc[verified.generation > 0, "unfilled"].mean() < 0.05
