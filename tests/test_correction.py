"""correction=toward_truth (a toy version of Gillman et al. 2024's expert): gamma = 1 returns the modes' means,
gamma = 0 and correction=none are the identity bit for bit, labels move toward w* . x, and the corrected Gaussian loop
follows its exact law (docs/theory.md, law 13)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import config as C
from madloop import theory
from madloop.correction import toward_truth
from madloop.data import make_source
from madloop.data.linear import LinearData
from madloop.data.toy import Grid25Data, Ring8Data
from tests.test_gaussian_laws import assert_mean_law


@pytest.mark.parametrize(
    "cfg", [Ring8Data(), pytest.param(Grid25Data(std=0.3), marks=pytest.mark.slow)], ids=["ring8", "grid25"]
)
def test_gamma_one_returns_each_samples_nearest_mode_mean_and_gamma_zero_is_the_identity(cfg):
    source = make_source(cfg)
    x = source.sample(jax.random.key(0), 4000) * 1.3  # pushed off the modes, so the nearest mode is not trivial
    apply = jax.jit(toward_truth(None, source).apply)
    out = np.asarray(apply(x, {"gamma": jnp.float32(1.0)}))
    means = np.asarray(source.mixture.means)
    nearest = np.argmin(((np.asarray(x)[:, None] - means[None]) ** 2).sum(-1), axis=1)  # equal isotropic modes
    np.testing.assert_array_equal(out, means[nearest])
    assert len(np.unique(nearest)) == len(means)  # every mode is hit
    np.testing.assert_array_equal(np.asarray(apply(x, {"gamma": jnp.float32(0.0)})), np.asarray(x))
    half = np.asarray(apply(x, {"gamma": jnp.float32(0.5)}))
    np.testing.assert_allclose(half, (np.asarray(x) + means[nearest]) / 2, rtol=1e-6, atol=1e-6)
    # a class-conditional family's label column rides along unchanged
    rows = jnp.concatenate([x, jnp.arange(4000.0)[:, None]], axis=1)
    moved = np.asarray(apply(rows, {"gamma": jnp.float32(1.0)}))
    np.testing.assert_array_equal(moved[:, :2], means[nearest])
    np.testing.assert_array_equal(moved[:, 2], np.arange(4000.0))


def test_labels_move_toward_the_true_labels_and_features_stay():
    source = make_source(LinearData(dim=3, noise=1.0))
    rows = source.sample(jax.random.key(1), 500)
    out = np.asarray(toward_truth(None, source).apply(rows, {"gamma": jnp.float32(0.25)}))
    x, y = np.asarray(rows[:, :3]), np.asarray(rows[:, 3])
    np.testing.assert_array_equal(out[:, :3], x)
    np.testing.assert_allclose(out[:, 3], y + 0.25 * (x @ np.asarray(source.linear.weights) - y), rtol=1e-5, atol=1e-6)


def test_images_have_no_nearby_point_to_correct_toward():
    with pytest.raises(C.ConfigError, match="correction=toward_truth: needs a truth with a most likely nearby point"):
        madloop.compose(["data=digits", "model=gaussian", "correction=toward_truth"])


def test_corrected_gaussian_loop_follows_its_law_and_gamma_zero_is_no_correction():
    """Law 13 through the engine: unbiased Gaussian, fully synthetic replace, d = 2, n = 10, gamma in {0, 0.3}
    vmapped (2000 seeds, 10 generations): the trace and the mean error follow corrected_gaussian_moments within
    4.5 SE; the covariance factor (1 - gamma) in place of (1 - gamma)^2 is rejected. The gamma = 0 runs equal a
    correction=none run bit for bit."""
    g, n = 10, 10
    common = [
        "data=gaussian",
        "model=gaussian",
        "model.estimator=unbiased",
        f"regime.n_real={n}",
        f"regime.n_synth={n}",
    ]
    common += [f"loop.generations={g}", f"loop.chunk={g}", "loop.seeds=2000", "eval.metrics=[trace_ratio,mean_sqerr]"]
    common += ["eval.snapshots=0", "eval.snapshot_n=1"]
    table = madloop.run_table([*common, "correction=toward_truth", "sweep.correction.gamma=[0.0,0.3]"])
    plain = madloop.run_table(common)
    zero = table[table["gamma"] == 0].drop(columns="gamma").reset_index(drop=True)
    np.testing.assert_array_equal(zero.to_numpy(), plain.to_numpy())
    for gamma, part in table.groupby("gamma"):
        t = part.pivot(index="seed", columns="generation", values="trace_ratio").to_numpy()
        m = part.pivot(index="seed", columns="generation", values="mean_sqerr").to_numpy() / 2  # / tr Sigma
        law_t, law_m = theory.corrected_gaussian_moments(g, n, n, float(gamma))
        wrong_t = (1 - gamma) ** np.arange(g + 1) if gamma > 0 else None
        assert_mean_law(t, law_t, wrong_t)
        assert_mean_law(m, law_m)
