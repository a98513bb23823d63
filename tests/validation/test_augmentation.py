"""Laws 10 and 11 (docs/theory.md) at the sizes of the experiments: the synthetic augmentation loop's fitted
moments as AR(1)s with factor r / (1 + r) for the GMM on the ring of 8 (experiment=bertrand_stability, where Bertrand
et al.'s condition r < 1 fails from r = 1 on), and the fresh data loop's mean error at its fixed point, with n_e
approaching 2 n_r, for both covariance estimators. Each check rejects a plausible wrong law."""

from __future__ import annotations

import numpy as np

import madloop
from madloop.theory import (
    augmentation_autocorrelation,
    augmentation_moments,
    fresh_data_effective_sample_size,
    fresh_data_mean_fixed_point,
    fresh_data_moments,
    lag1_autocorrelation,
)

from . import reference as R

# The GMM loop costs about 12 ms per run and generation at 1700 slots in the test tier's XLA settings: each ratio
# runs as its own program (no padding to the largest count) with the seeds its power check needs.
GMM_SEEDS = {25: 120, 100: 48, 400: 32, 1600: 16}  # n_synth: seeds, 100 generations each


def test_gmm_overall_moments_contract_by_ratio_over_one_plus_ratio():
    """The GMM (8 components, 10 warm EM iterations per generation) on 100 fixed real samples plus r x 100
    synthetic ones, r in {0.25, 1, 4, 16} (experiment=bertrand_stability), 100 generations. EM's M-step makes the
    overall mean sum_k pi_k m_k and the second moment about xbar the training set's averages, so both are AR(1)s
    with factor a = r / (1 + r) about their generation-0 values, and E||mu_t - xbar||^2 / tr S follows the MLE
    Gaussian's exact recursion (theory.augmentation_moments). Power: a^2 and, at r = 0.25, r itself are rejected
    as the autocorrelation, and the variance recursion with a in place of a^2 is rejected."""
    n_real, g = 100, 100
    reg = madloop.compose(["experiment=bertrand_stability"]).model.reg_covar
    for n_synth, seeds in GMM_SEEDS.items():
        path = madloop.parameter_path(
            ["experiment=bertrand_stability", "sweep.regime.n_synth=null", f"regime.n_synth={n_synth}"]
            + [f"loop.seeds={seeds}", f"loop.generations={g}", "eval.metrics=[trace_ratio]", "eval.snapshots=0"]
            + ["eval.snapshot_n=1"]
        )
        w, m, c = (np.asarray(p, np.float64) for p in (path.params.weights, path.params.means, path.params.covs))
        mean = np.einsum("bgk,bgki->bgi", w, m)  # [S, G + 1, 2]
        dev = mean - mean[:, :1]
        # the second moment about xbar, sum_k pi_k (tr C_k + ||m_k - xbar||^2), has the fixed point
        # Q_0 + d reg n_s / n_r (reg_covar is added to every component at every M-step)
        sq = np.sum((m - mean[:, :1, None]) ** 2, axis=-1)
        q = np.einsum("bgk,bgk->bg", w, np.trace(c, axis1=-2, axis2=-1) + sq)
        q_dev = q - q[:, :1] - 2 * reg * n_synth / n_real
        r = n_synth / n_real
        a = augmentation_autocorrelation(r)
        for name, x in (("mean", dev), ("second moment", q_dev)):
            est, se = lag1_autocorrelation(x)
            assert abs(est - a) < R.Z * se, f"r={r:g} {name}: {est:.4f} +- {se:.4f}, law {a:.4f}"
            assert abs(est - a**2) > R.Z * se, f"r={r:g} {name}: cannot tell the law from a^2"
            if r < 1 and name == "mean":
                assert abs(est - r) > R.Z * se, f"r={r:g}: cannot tell the law from Bertrand's lambda"
        delta = np.sum(dev**2, axis=-1) / (q[:, :1] - 2 * reg)  # / tr S
        law_t, law_m = augmentation_moments(g, n_real, n_synth)
        wrong = [0.0]  # the same recursion summing the noise with a in place of a^2
        for t in law_t[:-1]:
            wrong.append(a * wrong[-1] + n_synth * t / (n_real + n_synth) ** 2)
        avg, se = R.mean_se(delta[:, 1:])
        assert R.agrees(avg, se, law_m[1:]), R.describe(f"r={r:g} delta", avg[-3:], se[-3:], law_m[-3:])
        assert not R.agrees(avg, se, np.asarray(wrong)[1:]), f"r={r:g}: the variance law with a is not rejected"


def test_fresh_data_n_e_approaches_twice_n_real_for_both_estimators():
    """n_r = 5 fresh real samples and n_s in {5, 50, 200} synthetic ones per generation at sampling bias 1, d = 4,
    400 seeds x 300 generations from a generation 0 of 9 real samples (near the limit's error); the long run is
    generations 150..300, where the exact recursion is within 0.3% and half a standard error of its fixed point.
    The mean error matches theory.fresh_data_mean_fixed_point for the unbiased and the MLE covariance within 4.5 SE,
    and n_e = d / error rises with n_s, above 1.5 n_r at n_s = 200 (the laws: 1.78 and 2.17 n_r; the limits
    2 n_r -+ 1). Power: n_e = n_r (n_r + n_s in place of n_r + 2 n_s) is rejected at every n_s, and at n_s = 200
    the other estimator's law."""
    n_real, d, g, first, synth = 5, 4, 300, 150, (5, 50, 200)
    for estimator, other in (("unbiased", "mle"), ("mle", "unbiased")):
        table = madloop.run_table(
            ["data=gaussian", f"data.dim={d}", "model=gaussian", f"model.estimator={estimator}", "regime=fresh_data"]
            + [f"regime.n_real={n_real}", "regime.n_initial=9", "regime.n_synth=200", "loop.seeds=400"]
            + [f"sweep.regime.n_synth=[{','.join(map(str, synth))}]", f"loop.generations={g}", f"loop.chunk={g}"]
            + ["eval=closed_form", "eval.metrics=[mean_sqerr]"]
        )
        n_e = []
        for n_synth, part in table.groupby("n_synth"):
            m = part.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy()[:, first:]
            long_run = m.mean(axis=1)  # per seed: the seeds are independent, the generations are not
            est, se = long_run.mean(), long_run.std(ddof=1) / np.sqrt(long_run.size)
            law = fresh_data_mean_fixed_point(d, n_real, int(n_synth), estimator)
            window = fresh_data_moments(g, 1.0, n_real, int(n_synth), d, 9, estimator)[1][first:].mean()
            assert abs(window / law - 1) < 0.003 and abs(window - law) < 0.5 * se  # the window has settled
            assert abs(est - law) < R.Z * se, f"{estimator} n_s={n_synth}: {est:.5f} +- {se:.5f}, law {law:.5f}"
            assert abs(est - d / n_real) > R.Z * se, f"{estimator} n_s={n_synth}: n_e = n_r not rejected"
            if n_synth == synth[-1]:
                wrong = fresh_data_mean_fixed_point(d, n_real, int(n_synth), other)
                assert abs(est - wrong) > R.Z * se, f"{estimator}: the {other} law is not rejected"
            n_e.append(d / est)
            assert abs(d / law / fresh_data_effective_sample_size(n_real, int(n_synth), estimator) - 1) < 1e-12
        assert np.all(np.diff(n_e) > 0) and n_e[-1] > 1.5 * n_real, n_e
