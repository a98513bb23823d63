"""Mixture weights below the smallest normal float count as 0 on every device (madloop.mixture.log_weights).

XLA's CPU flushes subnormal floats to zero and a GPU keeps them, so before this rule the same GMM parameters gave a
held-out NLL of 946 on an H100 and 2685 on the CPU (a starved component, weight 1e-40, sat on a held-out mode;
docs/benchmarks.md). On a CPU the old and the new rule agree, so the first two tests document the rule here and
catch its loss only on a GPU; ``benchmarks/gpu_nll_check.py`` compares the devices.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from madloop.mixture import Mixture, component_log_prob, log_weights, mixture_log_prob
from madloop.precision import precision


def test_subnormal_weight_is_zero_and_normal_weights_are_exact():
    w = np.array([np.float32(1e-40), np.finfo(np.float32).tiny, 0.25, 0.75], np.float32)
    assert w[0] != 0 and w[0] < np.finfo(np.float32).tiny  # a subnormal float32
    got = np.asarray(log_weights(jnp.asarray(w)))
    assert got[0] == -np.inf
    np.testing.assert_array_equal(got[1:], np.log(w[1:]))


def test_a_starved_component_does_not_carry_a_far_point():
    # Component 1 has a subnormal weight and a collapsed covariance exactly on the point x = (10, 10).
    mix = Mixture(
        jnp.asarray([1.0, 1e-40], jnp.float32),
        jnp.asarray([[0.0, 0.0], [10.0, 10.0]], jnp.float32),
        jnp.asarray([np.eye(2), 1e-6 * np.eye(2)], jnp.float32),
    )
    x = jnp.asarray([[10.0, 10.0]], jnp.float32)
    want = -0.5 * 200.0 - np.log(2 * np.pi)  # log N(x; 0, I) alone
    np.testing.assert_allclose(np.asarray(mixture_log_prob(mix, x)), [want], rtol=1e-6)
    assert np.asarray(component_log_prob(mix, x))[0, 1] == -np.inf


def test_float64_runs_use_float64s_threshold():
    with precision("float64"):
        got = np.asarray(log_weights(jnp.asarray([1e-300, 1e-310], jnp.float64)))
    assert np.isfinite(got[0]) and got[1] == -np.inf  # 1e-310 is subnormal in float64, 1e-300 is not
