"""The Gaussian fully synthetic loop against closed-form laws (DESIGN.md section 1 and docs/theory.md).

Each test runs thousands of vmapped seeds through the real engine (madloop.simulate) and compares the
across-seed mean with the closed form, with a tolerance of Z standard errors. Z = 4.5 keeps the family-wise
false-alarm rate below 1e-3 over the generations checked; the keys are fixed, so results are reproducible.
Each test also checks its own power: a plausible wrong law (an off-by-one generation) must be rejected.
"""

import numpy as np
import pytest
from scipy.special import digamma, polygamma
from scipy.stats import norm

import madloop

Z = 4.5


def gaussian_loop(estimator: str, n: int, dim: int, generations: int, seeds: int, lam: float = 1.0):
    return madloop.simulate(
        [
            "data=gaussian",
            f"data.dim={dim}",
            "model=gaussian",
            f"model.estimator={estimator}",
            "regime=fully_synthetic",
            f"regime.n_real={n}",
            f"regime.n_synth={n}",
            f"bias.lam={lam}",
            f"loop.generations={generations}",
            f"loop.seeds={seeds}",
            f"loop.chunk={generations}",
            "eval.metrics=[trace_ratio,mean_sqerr,logdet_ratio]",
            "eval.snapshots=0",
            "eval.snapshot_n=1",
        ]
    )


def assert_mean_law(samples: np.ndarray, expected: np.ndarray, wrong: np.ndarray | None = None) -> None:
    """samples [S, G+1] vs expected [G+1] within Z standard errors; `wrong` must be rejected somewhere."""
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(samples.shape[0])
    z = (mean - expected) / se
    assert np.all(np.abs(z) < Z), f"max |z| = {np.abs(z).max():.2f} at generation {np.abs(z).argmax()}"
    if wrong is not None:
        assert np.any(np.abs(mean - wrong) > Z * se), "the test cannot tell the law from a wrong one"


def test_mle_covariance_shrinks_geometrically():
    # MLE (divide by n): E[Sigma_g] = ((n-1)/n)^(g+1) Sigma_true, generation 0 being fitted on real data.
    n, d, g = 10, 2, 15
    r = gaussian_loop("mle", n, d, g, seeds=4000)
    gens = np.arange(g + 1)
    rho = (n - 1) / n
    assert_mean_law(r.metrics["trace_ratio"], rho ** (gens + 1), wrong=rho**gens)
    # The mean performs a random walk with increments of covariance Sigma_{j-1} / n:
    # E||mu_g - mu||^2 = tr(Sigma) / n * sum_{j=0}^{g} rho^j.
    expected = d / n * np.cumsum(rho**gens)
    assert_mean_law(r.metrics["mean_sqerr"], expected, wrong=d / n * (gens + 1))


@pytest.mark.parametrize("lam", [1.0, 0.8])
def test_unbiased_covariance_with_sampling_bias(lam):
    # Unbiased estimator, bias lam: E[Sigma_g | Sigma_{g-1}] = lam Sigma_{g-1}  =>  E[Sigma_g] = lam^g Sigma.
    n, d, g = 10, 2, 12
    r = gaussian_loop("unbiased", n, d, g, seeds=4000, lam=lam)
    gens = np.arange(g + 1)
    wrong = lam ** (gens + 1) if lam != 1.0 else ((n - 1) / n) ** gens
    assert_mean_law(r.metrics["trace_ratio"], lam**gens, wrong=wrong)
    # E||mu_g - mu||^2 = tr(Sigma) / n * sum_{j=0}^{g} lam^j (martingale mean, increments lam Sigma_{j-1}/n).
    assert_mean_law(
        r.metrics["mean_sqerr"],
        d / n * np.cumsum(lam**gens),
        wrong=d / n * (gens + 1) * lam**0.5 if lam != 1.0 else d / n * gens,
    )
    # The mean is a martingale around the truth: E[mu_g] = mu = 0 at the last generation.
    mu = np.asarray(r.state.params.mean)  # [S, d]
    se = mu.std(axis=0, ddof=1) / np.sqrt(mu.shape[0])
    assert np.all(np.abs(mu.mean(axis=0)) < Z * se)


@pytest.mark.parametrize("dim", [1, 3])
def test_log_determinant_follows_the_wishart_law(dim):
    # Unbiased: Sigma_g = lam Sigma_{g-1}^1/2 W_g Sigma_{g-1}^1/2, W_g ~ Wishart_d(k, I) / k, k = n - 1, so
    # log det Sigma_g / det Sigma = sum_{j=0}^{g} log det W_j + g d log lam, with
    # E log det W = sum_{i=1}^{d} psi((k - i + 1) / 2) + d log(2 / k) and Var = sum_i psi'((k - i + 1) / 2).
    # g = 12: float32 resolves eigenvalues down to ~1e-7 of the largest; in 3-D, 1 path in 3000 reaches
    # that spread near g = 18 and its float32 log-det becomes -inf (see docs/theory.md, "precision").
    n, g, lam = 12, 12, 0.9
    k = n - 1
    i = np.arange(1, dim + 1)
    e_logdet = np.sum(digamma((k - i + 1) / 2)) + dim * np.log(2 / k)
    v_logdet = np.sum(polygamma(1, (k - i + 1) / 2))
    r = gaussian_loop("unbiased", n, dim, g, seeds=3000, lam=lam)
    gens = np.arange(g + 1)
    samples = r.metrics["logdet_ratio"]
    expected = (gens + 1) * e_logdet + gens * dim * np.log(lam)
    assert_mean_law(samples, expected, wrong=gens * e_logdet + gens * dim * np.log(lam))
    # The spread matches the law too: Var = (g + 1) Var log det W (within 10% at S = 3000: SE of a
    # variance of a near-normal sum is about sqrt(2 / S) = 2.6%).
    np.testing.assert_allclose(samples[:, -1].var(ddof=1), (g + 1) * v_logdet, rtol=0.1)


def test_median_collapses_while_mean_does_not():
    # Unbiased, lam = 1: E[Sigma_g] = Sigma for every g, yet log Sigma_g is a random walk with negative drift
    # E log(chi2_k / k) = psi(k/2) - log(k/2) < 0, so Sigma_g -> 0 almost surely. Most paths collapse while
    # the average does not: test the mean and the median.
    n, g = 10, 100
    r = gaussian_loop("unbiased", n, 1, g, seeds=4000)
    tr = r.metrics["trace_ratio"]
    k = n - 1
    drift = digamma(k / 2) - np.log(k / 2)  # -0.115 per generation
    # At g = 10 the mean is still 1 (Var = (1 + 2/k)^11 - 1 is finite) ...
    se10 = tr[:, 10].std(ddof=1) / np.sqrt(tr.shape[0])
    assert abs(tr[:, 10].mean() - 1.0) < Z * se10
    # ... while the median follows exp((g + 1) drift) = 0.28 (the log is a sum of 11 iid terms).
    assert np.median(tr[:, 10]) == pytest.approx(np.exp(11 * drift), rel=0.15)
    # By g = 100 the log is approximately N(101 drift, 101 psi'(k/2)) = N(-11.6, 5.0^2): the median is
    # ~1e-5 and the share of collapsed paths (below 1% of the true variance) is Phi((log .01 + 11.6) / 5.0).
    mean_log, sd_log = (g + 1) * drift, np.sqrt((g + 1) * polygamma(1, k / 2))
    assert np.median(np.log(tr[:, g])) == pytest.approx(mean_log, abs=Z * sd_log / np.sqrt(tr.shape[0]) * 1.3)
    assert np.mean(tr[:, g] < 1e-2) == pytest.approx(norm.cdf((np.log(1e-2) - mean_log) / sd_log), abs=0.02)
    assert np.mean(tr[:, g]) > 10 * np.median(tr[:, g])  # the mean is carried by a few uncollapsed paths


def test_fresh_data_loop_follows_the_exact_recursion_hot_and_cold():
    """The fresh data loop with a count sweep (n_real as a mask over 100 slots) against madloop.theory's exact
    recursion for E tr Sigma_g and E ||mu_g - mu||^2: hot (lam = 1.25, below and above the heat-death threshold
    n_s (lam - 1) = 25) and cold (lam = 0.8). The recursion without its between-group mean term is rejected."""
    from madloop.theory import fresh_data_moments

    g = 15
    table = madloop.run_table(
        ["experiment=heat_death", "loop.seeds=600", f"loop.generations={g}", f"loop.chunk={g}"]
        + ["sweep.bias.lam=[0.8,1.25]", "sweep.regime.n_real=[2,100]"]
    )
    for (lam, n_real), part in table.groupby(["lam", "n_real"]):
        t = part.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
        m = part.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy()
        law_t, law_m = fresh_data_moments(g, float(lam), int(n_real), 100, 2)
        assert_mean_law(t, law_t)
        assert_mean_law(m, law_m)
    # without the mean term the small-n_real cold loop is visibly off (0.115 against 0.146 at generation 15)
    cold = table[(table["n_real"] == 2) & (table["lam"] < 1)]
    t = cold.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
    fixed, a = 2 / (2 + 100 * 0.2), 0.8 * 100 / 102
    assert_mean_law(t, fresh_data_moments(g, 0.8, 2, 100, 2)[0], wrong=fixed + (1 - fixed) * a ** np.arange(g + 1))


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
def test_pools_follow_their_exact_laws_and_accumulate_bounds_the_mean_error(pool):
    """Replace vs accumulate (Gerstgrasser et al. 2024) on the unbiased Gaussian, n = 10, lam in {1, 0.9} in one
    program, against madloop.theory.pool_moments (docs/theory.md law 9). The accumulate law's between-generation
    term is what keeps its covariance near the truth: dropping it (t_g = lam * mean of t_0..t_{g-1}) is rejected,
    and so is replace's law for an accumulating pool."""
    from madloop.theory import pool_moments

    g, n = 20, 10
    table = madloop.run_table(
        ["data=gaussian", "model=gaussian", "model.estimator=unbiased", f"regime.pool={pool}"]
        + [f"regime.n_real={n}", f"regime.n_synth={n}", f"loop.generations={g}", "loop.seeds=3000"]
        + ["sweep.bias.lam=[0.9,1.0]", "eval.metrics=[trace_ratio,mean_sqerr]"]
    )
    for lam, part in table.groupby("lam"):
        t = part.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
        m = part.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy() / 2  # / tr Sigma
        law_t, law_m = pool_moments(g, n, n, 2, pool, float(lam))
        other_t, other_m = pool_moments(g, n, n, 2, "accumulate" if pool == "replace" else "replace", float(lam))
        assert_mean_law(m, law_m, wrong=other_m)
        if pool == "replace" or lam == 1.0:
            assert_mean_law(t, law_t)
        else:  # lam < 1: accumulate's covariance against the law without the between-generation term
            naive = [1.0]
            for j in range(1, g + 1):
                naive.append(float(lam) * np.mean(naive[:j]))
            assert_mean_law(t, law_t, wrong=np.asarray(naive))
    if pool == "accumulate":  # bounded: below 1/n_r + (pi^2/6)/n at lam = 1 (replace reaches 1/n_r + g/n)
        assert pool_moments(g, n, n, 2, pool)[1][-1] < 1 / n + np.pi**2 / 6 / n


def test_fresh_data_loop_forgets_its_generation_zero_sample_size():
    """MAD's claim that the fresh data loop's long-run error does not depend on the initial model: generation 0
    fitted on n_initial = 4 or 1000 real samples (regime.n_initial), then n_r = 20 fresh + n_s = 100 synthetic
    samples per generation at lam = 0.9. Both follow the exact recursion from their own start (4.5 SE at every
    generation) and meet:
    the squared mean error starts 250x apart and agrees within 1% by generation 40 (law) and within 4.5 SE
    (simulation)."""
    from madloop.theory import fresh_data_moments

    g, seeds, ends = 40, 1000, {}
    for n0 in (4, 1000):
        table = madloop.run_table(
            ["experiment=effective_sample_size", "sweep.bias.lam=null", "sweep.regime.n_synth=null", "bias.lam=0.9"]
            + ["regime.n_synth=100", f"regime.n_initial={n0}", f"loop.generations={g}", f"loop.seeds={seeds}"]
            + ["eval.metrics=[trace_ratio,mean_sqerr]"]
        )
        t = table.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
        m = table.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy()
        law_t, law_m = fresh_data_moments(g, 0.9, 20, 100, 2, n_initial=n0)
        assert_mean_law(t, law_t)
        assert_mean_law(m, law_m)
        ends[n0] = (m[:, -1], law_m)
    (a, law_a), (b, law_b) = ends[4], ends[1000]
    assert law_a[0] / law_b[0] == 250 and abs(law_a[-1] / law_b[-1] - 1) < 0.01
    assert abs(a.mean() - b.mean()) < Z * np.sqrt(a.var() / seeds + b.var() / seeds)


def test_synthetic_augmentation_mean_is_an_ar1_with_factor_ratio_over_one_plus_ratio():
    """Law 10 (docs/theory.md): with a fixed real set of n_r samples and n_s = r n_r synthetic ones per generation,
    the fitted mean's deviation from the real set's mean is an AR(1) with factor a = r / (1 + r) < 1 at every ratio
    (Bertrand et al.'s lambda = r), and its squared size follows theory.augmentation_moments to the stationary
    n_s tr S / (n_r (n_r + 2 n_s) + n_s). Read per generation with madloop.parameter_path (MLE, d = 2, n_r = 4,
    r in {0.25, 1, 4, 16} as a count sweep, 300 seeds x 60 generations). Power: the lag-1 autocorrelation is not
    a^2 (the variance's factor) at any ratio nor r itself (Bertrand's lambda) at r = 0.25, and the variance law
    with a in place of a^2 is rejected."""
    from madloop.theory import (
        augmentation_autocorrelation,
        augmentation_mean_variance,
        augmentation_moments,
        lag1_autocorrelation,
    )

    n_real, g, ratios = 4, 60, (0.25, 1.0, 4.0, 16.0)
    synth = [int(r * n_real) for r in ratios]
    path = madloop.parameter_path(
        ["data=gaussian", "data.dim=2", "model=gaussian", "model.estimator=mle", "regime=synthetic_augmentation"]
        + [f"regime.n_real={n_real}", f"regime.n_synth={synth[-1]}", f"sweep.regime.n_synth={list(synth)}"]
        + [f"loop.generations={g}", "loop.seeds=300", "eval.metrics=[mean_sqerr]", "eval.snapshots=0"]
        + ["eval.snapshot_n=1"]
    )
    mean, cov = path.params.mean.astype(np.float64), path.params.cov.astype(np.float64)  # [B, G + 1, d (, d)]
    np.testing.assert_allclose(path.metrics["mean_sqerr"], np.sum(mean**2, axis=-1), rtol=1e-4, atol=1e-6)
    for r, n_synth in zip(ratios, synth, strict=True):
        run = path.knobs["n_synth"] == n_synth
        dev = mean[run] - mean[run][:, :1]  # generation 0 is the MLE of the real set: its mean is xbar
        a = augmentation_autocorrelation(r)
        est, se = lag1_autocorrelation(dev)
        assert abs(est - a) < Z * se, f"r={r}: lag-1 autocorrelation {est:.4f} +- {se:.4f}, law {a:.4f}"
        assert abs(est - a**2) > Z * se, f"r={r}: cannot tell the law from a^2"
        if r < 1:
            assert abs(est - r) > Z * se, f"r={r}: cannot tell the law from Bertrand's lambda"
        # E[||mu_t - xbar||^2 | X] / tr S at every generation (tr S = tr Sigma_0, the real set's MLE covariance)
        delta = np.sum(dev**2, axis=-1) / np.trace(cov[run][:, 0], axis1=-2, axis2=-1)[:, None]
        law_t, law_m = augmentation_moments(g, n_real, n_synth)
        wrong = [0.0]  # the same recursion summing the noise with a in place of a^2
        for t in law_t[:-1]:
            wrong.append(a * wrong[-1] + n_synth * t / (n_real + n_synth) ** 2)
        assert_mean_law(delta[:, 1:], law_m[1:], wrong=np.asarray(wrong)[1:])  # generation 0: exactly 0
        assert law_m[-1] == pytest.approx(augmentation_mean_variance(n_real, n_synth), rel=1e-3)  # stationary


def test_fresh_data_mean_error_settles_at_its_fixed_point_and_n_e_rises_toward_twice_n_real():
    """Law 11: at sampling bias 1 the fresh data loop's E||mu_g - mu||^2 settles at d N / (n_r (n_r + 2 n_s) -
    n_s^2 / (N - 1)) (unbiased fits), so n_e = d / that rises from n_r toward 2 n_r - 1 as n_s grows. d = 4, n_r = 3,
    n_s in {0, 3, 12, 24} as a count sweep, 1000 seeds; the long-run mean is generations 30..60, where the exact
    recursion is within 0.5% of its fixed point. Power: n_r + n_s in place of n_r + 2 n_s (n_e = n_r: the synthetic
    data adds nothing) and the known-covariance form d N / (n_r (n_r + 2 n_s)) are rejected."""
    from madloop.theory import fresh_data_effective_sample_size, fresh_data_mean_fixed_point, fresh_data_moments

    n_real, d, g, first, synth = 3, 4, 60, 30, (0, 3, 12, 24)
    table = madloop.run_table(
        ["data=gaussian", f"data.dim={d}", "model=gaussian", "model.estimator=unbiased", "regime=fresh_data"]
        + [f"regime.n_real={n_real}", "regime.n_synth=24", f"sweep.regime.n_synth=[{','.join(map(str, synth))}]"]
        + [f"loop.generations={g}", "loop.seeds=1000", "eval.metrics=[mean_sqerr]", "eval.snapshots=0"]
        + ["eval.snapshot_n=1"]
    )
    n_e = []
    for n_synth, part in table.groupby("n_synth"):
        m = part.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy()[:, first:]
        long_run = m.mean(axis=1)  # per seed: the seeds are independent, the generations are not
        est, se = long_run.mean(), long_run.std(ddof=1) / np.sqrt(long_run.size)
        law = fresh_data_mean_fixed_point(d, n_real, int(n_synth))
        window = fresh_data_moments(g, 1.0, n_real, int(n_synth), d)[1][first:].mean()
        assert abs(window / law - 1) < 0.005 and abs(window - law) < 0.5 * se  # the window has settled
        assert abs(est - law) < Z * se, f"n_s={n_synth}: {est:.4f} +- {se:.4f}, law {law:.4f}"
        if n_synth > 0:
            assert abs(est - d / n_real) > Z * se, f"n_s={n_synth}: cannot tell the law from n_e = n_r"
        if n_synth == synth[-1]:
            known = fresh_data_mean_fixed_point(d, n_real, synth[-1], "known")
            assert abs(est - known) > Z * se, "cannot tell the refitted covariance's law from the known one's"
        n_e.append(d / est)
        assert d / law == pytest.approx(fresh_data_effective_sample_size(n_real, int(n_synth)))
    assert np.all(np.diff(n_e) > 0) and n_e[0] == pytest.approx(n_real, rel=0.05) and n_e[-1] > 1.5 * n_real
