"""The GMM family against scikit-learn's GaussianMixture: EM step by step from identical parameters on identical
data, and the benchmark's loop (benchmarks/run.py: ring of 8, K = 8, n = 128, 400 + 10 EM iterations, 200
generations) as statistics of the trajectories within 4.5 combined SE. Power: an M-step with the unbiased
covariance fails the step check; scikit-learn's loop with reused draws (the published-script fault) fails the loop
check."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import madloop
from benchmarks.run import gmm_overrides
from madloop.mixture import Mixture
from madloop.models.gmm import GMMModel, _init, em_step

from . import reference as R

REG = 1e-6


def test_em_steps_equal_scikit_learn_from_identical_parameters():
    """20 EM iterations on 512 ring-of-8 samples from madloop's own k-means++ start: at each iteration both take one
    step from madloop's current parameters; weights, means and covariances agree to float32 rounding (relative
    2e-4 of each component's scale). Power: an M-step dividing by N_k - 1 differs by about 1/64 and fails."""
    x = R.ring8(np.random.default_rng(0), 512).astype(np.float32)
    w = jnp.ones(512, jnp.float32)
    mix = _init(GMMModel(components=8, reg_covar=REG), jax.random.key(0), jnp.asarray(x), w)
    step = jax.jit(lambda m: em_step(m, jnp.asarray(x), w, REG))
    for _ in range(20):
        ref_w, ref_m, ref_c = R.sklearn_em_step(x, *map(np.asarray, mix), REG)
        new = step(mix)
        scale = np.linalg.norm(ref_c, axis=(1, 2))[:, None, None]
        np.testing.assert_allclose(np.asarray(new.weights), ref_w, rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(new.means), ref_m, rtol=0, atol=2e-4 * 2.0)
        np.testing.assert_allclose(np.asarray(new.covs) / scale, ref_c / scale, rtol=0, atol=2e-4)
        # power: the unbiased M-step (scatter / (N_k - 1)) is outside the same tolerance
        nk = ref_w * 512
        unbiased = (ref_c - REG * np.eye(2)) * (nk / (nk - 1))[:, None, None] + REG * np.eye(2)
        assert np.max(np.abs(np.asarray(new.covs) - unbiased) / scale) > 2e-4
        mix = Mixture(*new)


def test_gmm_loop_matches_scikit_learn_over_the_benchmark_horizon():
    """The held-out NLL (symlog, as benchmarks/run.py compares it) at generations 0, 50, 100, 200: mean over the
    benchmark's 16 seeds for madloop and scikit-learn within 4.5 combined SE (scikit-learn costs about 8 CPU seconds
    a seed)."""
    seeds, gens, n, init_iters, iters = 16, 200, 128, 400, 10
    checked = (0, 50, 100, 200)
    got = madloop.simulate(gmm_overrides(seeds, gens, n, init_iters, iters)).metrics["nll"][:, list(checked)]
    heldout = R.ring8(np.random.default_rng(12345), 1000)
    ref = np.stack([R.sklearn_gmm_loop(s, n, gens, init_iters, iters, heldout, keep=checked) for s in range(seeds)])
    a, se_a = R.mean_se(R.symlog(got))
    b, se_b = R.mean_se(R.symlog(ref))
    assert R.agrees(a, se_a, b, se_b), R.describe("GMM symlog NLL", a, se_a, b, se_b)
    wrong = np.stack(
        [
            R.sklearn_gmm_loop(s, n, gens, init_iters, iters, heldout, reuse_draws=True, keep=checked)
            for s in range(seeds)
        ]
    )
    assert not R.agrees(a, se_a, *R.mean_se(R.symlog(wrong))), "power: the reused-draws loop is not rejected"
