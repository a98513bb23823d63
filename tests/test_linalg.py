"""madloop.linalg against numpy: Cholesky (also of singular matrices), forward substitution, log-det, eigenvalues."""

import jax.numpy as jnp
import numpy as np
import pytest

from madloop import linalg

RNG = np.random.default_rng(0)


def spd(d: int, batch: int = 5) -> np.ndarray:
    x = RNG.standard_normal((batch, d, d + 3))
    return (x @ x.transpose(0, 2, 1) / (d + 3)).astype(np.float32)


@pytest.mark.parametrize("d", [1, 2, 3, 6, 10])
def test_small_linear_algebra_matches_numpy(d):
    a = spd(d)
    chol = linalg.cholesky(jnp.asarray(a))
    np.testing.assert_allclose(chol, np.linalg.cholesky(a.astype(np.float64)), atol=2e-5)
    b = RNG.standard_normal((5, d, 4)).astype(np.float32)
    expected = np.linalg.solve(np.linalg.cholesky(a.astype(np.float64)), b)
    np.testing.assert_allclose(linalg.solve_lower(chol, jnp.asarray(b)), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(linalg.logdet(jnp.asarray(a)), np.linalg.slogdet(a.astype(np.float64))[1], atol=1e-4)
    eig = np.sort(np.asarray(linalg.eigvalsh(jnp.asarray(a))), axis=-1)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(a.astype(np.float64)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("d", [3, 6])  # the unrolled and the column-loop factorisation
def test_cholesky_of_singular_matrices_has_no_nan(d):
    v = RNG.standard_normal((d, 1)).astype(np.float32)
    for a in (v @ v.T, np.zeros((d, d), np.float32)):  # rank 1, rank 0 (a fully collapsed covariance)
        chol = np.asarray(linalg.cholesky(jnp.asarray(a)))
        assert np.isfinite(chol).all()
        np.testing.assert_allclose(chol @ chol.T, a, atol=1e-5)
    assert float(linalg.logdet(jnp.zeros((2, 2)))) == -np.inf
