"""madloop.linalg against numpy, and on the matrices a collapsing loop produces: rank-deficient, near-singular
and slightly indefinite float32 covariances with eigenvalue spreads to 1e-12, at tiny and huge scales."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madloop import linalg

RNG = np.random.default_rng(0)
EPS32 = float(np.finfo(np.float32).eps)


def spd(d: int, batch: int = 5) -> np.ndarray:
    x = RNG.standard_normal((batch, d, d + 3))
    return (x @ x.transpose(0, 2, 1) / (d + 3)).astype(np.float32)


def rotated(eigenvalues: np.ndarray, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Q diag(eigenvalues) Q^T in float64 for a random rotation Q, then rounded to float32: with a spread below
    float32's eps the rounded matrix is singular or slightly indefinite, as a collapsed loop's covariance is."""
    d = eigenvalues.shape[0]
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    return (scale * (q * eigenvalues) @ q.T).astype(np.float32)


def noisy_collapsed(d: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """A covariance whose first coordinate has collapsed (variance 1e-30) while its covariances with the others
    hold float32 rounding noise (1e-8): slightly indefinite, and the first pivot an unpivoted Cholesky meets."""
    x = rng.standard_normal((d, d + 3))
    a = x @ x.T / (d + 3)
    a[0, :] = a[:, 0] = 1e-8 * rng.standard_normal(d)
    a[0, 0] = 1e-30
    return (scale * a).astype(np.float32)


def clipped_cholesky(a: np.ndarray) -> np.ndarray:
    """The plausible wrong factor (madloop before issue 15): unpivoted Cholesky with pivots clipped at 0, no
    threshold relative to the matrix's scale, in float32."""
    a = a.astype(np.float32)
    d = a.shape[-1]
    chol = np.zeros_like(a)
    for j in range(d):
        pivot = a[j, j] - np.sum(chol[j, :j] ** 2)
        ljj = np.sqrt(max(pivot, np.float32(0.0)))
        chol[j, j] = ljj
        below = a[j + 1 :, j] - chol[j + 1 :, :j] @ chol[j, :j]
        chol[j + 1 :, j] = below / ljj if ljj > 0 else 0.0
    return chol


def reconstruction_error(factor: np.ndarray, a: np.ndarray) -> float:
    """||F F^T - a||_F / (eps ||a||_F), computed in float64."""
    f = np.asarray(factor, np.float64)
    a = np.asarray(a, np.float64)
    return float(np.linalg.norm(f @ f.T - a) / (EPS32 * np.linalg.norm(a)))


# The bound on ||F F^T - a||_F / (eps ||a||_F): Higham's bound for pivoted Cholesky of a PSD matrix is a small
# multiple of d eps ||a|| (rounding) plus the truncated Schur complement (rank threshold d eps max a_ii, at most
# d of them): 4 d^2 leaves room for both at every d tested and is ~1e4 times smaller than the clipped factor's.
def bound(d: int) -> float:
    return 4.0 * d * d


@pytest.mark.parametrize("d", [1, 2, 3, 6, 10])
def test_small_linear_algebra_matches_numpy(d):
    a = spd(d)
    a64 = a.astype(np.float64)
    chol = linalg.pivoted_cholesky(jnp.asarray(a))
    lower, perm = np.asarray(chol.lower, np.float64), np.asarray(chol.perm)
    assert np.allclose(np.triu(lower, 1), 0.0)  # lower triangular in pivot order
    for i in range(a.shape[0]):  # a[perm][:, perm] = L L^T, pivots in decreasing order
        np.testing.assert_allclose(lower[i] @ lower[i].T, a64[i][np.ix_(perm[i], perm[i])], atol=2e-5)
        assert np.all(np.diff(np.diag(lower[i])) <= 1e-6)
    factor = np.asarray(linalg.sqrt_factor(jnp.asarray(a)), np.float64)
    np.testing.assert_allclose(factor @ factor.transpose(0, 2, 1), a64, atol=2e-5)
    np.testing.assert_allclose(linalg.factor_matrix(chol), factor, atol=1e-6)
    b = RNG.standard_normal((5, d, 4)).astype(np.float32)
    z = np.asarray(linalg.whiten(chol, jnp.asarray(b)), np.float64)  # ||z||^2 = b^T a^-1 b, column by column
    np.testing.assert_allclose((z**2).sum(1), np.einsum("bin,bin->bn", b, np.linalg.solve(a64, b)), rtol=1e-3)
    expected = np.linalg.solve(np.linalg.cholesky(a64), b)
    np.testing.assert_allclose(
        linalg.solve_lower(jnp.linalg.cholesky(a), jnp.asarray(b)), expected, rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(linalg.logdet(jnp.asarray(a)), np.linalg.slogdet(a64)[1], atol=1e-4)
    eig = np.sort(np.asarray(linalg.eigvalsh(jnp.asarray(a))), axis=-1)
    np.testing.assert_allclose(eig, np.linalg.eigvalsh(a64), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("d", [3, 6])  # the unrolled and the loop factorisation
def test_singular_matrices_give_exact_factors_and_no_nan(d):
    v = RNG.standard_normal((d, 1)).astype(np.float32)
    for a in (v @ v.T, np.zeros((d, d), np.float32)):  # rank 1, rank 0 (a fully collapsed covariance)
        factor = np.asarray(linalg.sqrt_factor(jnp.asarray(a)))
        assert np.isfinite(factor).all()
        np.testing.assert_allclose(factor @ factor.T, a, atol=1e-5)
    assert float(linalg.logdet(jnp.zeros((2, 2)))) == -np.inf
    assert float(linalg.logdet(jnp.asarray(v @ v.T))) == -np.inf  # singular: -inf, not a rounded finite number


SPREADS = [1e-3, 1e-6, 1e-9, 1e-12]


@pytest.mark.parametrize("d", [2, 10, 32])
@pytest.mark.parametrize("scale", [1e-10, 1.0, 1e10])
def test_factors_of_collapsing_covariances_are_exact(d, scale):
    """Log-spaced eigenvalues from 1 down to each spread, some exact zeros, random rotations, float32 rounding:
    F F^T = a to 4 d^2 eps ||a||_F for every matrix, where the clipped unpivoted factor misses it."""
    rng = np.random.default_rng(d)
    mats = []
    for spread in SPREADS:
        for rank in (d, max(d // 2, 1)):
            eig = np.zeros(d)
            eig[:rank] = np.logspace(0, np.log10(spread), rank) if rank > 1 else 1.0
            mats += [rotated(eig, rng, scale) for _ in range(8)]
    mats += [noisy_collapsed(d, rng, scale) for _ in range(8)]
    a = np.stack(mats)
    assert np.min(np.linalg.eigvalsh(a.astype(np.float64))) < 0  # some are indefinite after rounding
    factor = np.asarray(linalg.sqrt_factor(jnp.asarray(a)))
    assert np.isfinite(factor).all()
    errors = np.array([reconstruction_error(f, m) for f, m in zip(factor, a, strict=True)])
    assert errors.max() <= bound(d), errors.max()
    # power: the clipped factor of madloop before the fix fails the same bound on these matrices, by far
    wrong = np.array([reconstruction_error(clipped_cholesky(m), m) for m in a])
    assert np.nanmax(wrong) > 1e6 * bound(d), np.nanmax(wrong)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    d=st.integers(1, 16),
    log_spread=st.floats(-12.0, 0.0),
    rank_share=st.floats(0.0, 1.0),
    log_scale=st.floats(-30.0, 30.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_sqrt_factor_property(d, log_spread, rank_share, log_scale, seed):
    """Any PSD input (rank 0..d, spreads to 1e-12, scales 1e-30..1e30): finite, exact to the bound."""
    rng = np.random.default_rng(seed)
    rank = int(round(rank_share * d))
    eig = np.zeros(d)
    eig[:rank] = np.logspace(0, log_spread, rank)
    a = rotated(eig, rng, 10.0**log_scale)
    factor = np.asarray(linalg.sqrt_factor(jnp.asarray(a)))
    assert np.isfinite(factor).all()
    if rank == 0:
        assert np.all(factor == 0)
    else:
        assert reconstruction_error(factor, a) <= bound(d)


@pytest.mark.parametrize("d", [10, 32])
def test_draws_have_the_covariance_of_a_near_singular_matrix(d):
    """mean + F z draws from N(mean, a): the draws' covariance matches a within its sampling error
    (E ||S - a||_F^2 = (tr(a)^2 + tr(a^2)) / N for Gaussian draws), where the clipped factor's does not."""
    rng = np.random.default_rng(1)
    a = noisy_collapsed(d, rng)
    n = 100_000
    z = jax.random.normal(jax.random.key(0), (d, n))
    x = np.asarray(linalg.sqrt_factor(jnp.asarray(a)) @ z, np.float64)
    s = x @ x.T / n
    a64 = a.astype(np.float64)
    se = np.sqrt((np.trace(a64) ** 2 + np.trace(a64 @ a64)) / n)
    assert np.linalg.norm(s - a64) < 3.0 * se
    assert abs(np.trace(s) / np.trace(a64) - 1.0) < 4.5 * np.sqrt(2.0 * np.trace(a64 @ a64) / n) / np.trace(a64)
    wrong = clipped_cholesky(a).astype(np.float64)
    assert np.linalg.norm(wrong @ wrong.T - a64) > 10.0 * se  # power: the clipped factor's draws are off


def test_logdet_degrades_gracefully():
    """Accurate while the spread is within the precision; -inf (never a wrong finite number) below it."""
    rng = np.random.default_rng(2)
    for spread, finite in ((1e-4, True), (1e-12, False)):
        eig = np.logspace(0, np.log10(spread), 6)
        a = rotated(eig, rng)
        value = float(linalg.logdet(jnp.asarray(a)))
        if finite:
            assert abs(value - np.sum(np.log(eig))) < 0.05
        else:
            assert value == -np.inf or abs(value - np.sum(np.log(eig))) < 0.05
    with jax.enable_x64(True):  # float64 resolves the spread float32 cannot
        a = rotated(np.logspace(0, -12, 6), rng).astype(np.float64)
        a = (a + a.T) / 2
        exact = np.linalg.slogdet(a)[1]
        assert abs(float(linalg.logdet(jnp.asarray(a, jnp.float64))) - exact) < 1e-3


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_unrolled_factorisation_equals_the_loop(d, monkeypatch):
    """Up to UNROLL_MAX_DIM the factorisation selects with one-hot masks instead of gathers and row updates (a
    smaller program to compile). On well-conditioned, singular, collapsed, zero and NaN matrices it gives the
    loop's pivots exactly and its factor, whitening and log-determinant to float32 rounding. A NaN matrix has no
    pivot above the threshold in either (a zero factor, log-determinant -inf) and leaves the others of its batch
    as they are."""
    rng = np.random.default_rng(10 + d)
    v = rng.standard_normal((d, 1))
    mats = [*spd(d, 6), (v @ v.T).astype(np.float32), np.zeros((d, d), np.float32), noisy_collapsed(d, rng)]
    mats += [rotated(np.logspace(0, -9, d), rng, 1e10), np.full((d, d), np.nan, np.float32)]
    a = jnp.asarray(np.stack(mats))
    b = jnp.asarray(rng.standard_normal((len(mats), d, 5)).astype(np.float32))

    def outputs():
        chol = linalg.pivoted_cholesky(a)
        return chol, linalg.factor_matrix(chol), linalg.whiten(chol, b), linalg.sqrt_factor(a), linalg.logdet(a)

    unrolled = outputs()
    monkeypatch.setattr(linalg, "UNROLL_MAX_DIM", 0)
    looped = outputs()
    np.testing.assert_array_equal(unrolled[0].perm, looped[0].perm)
    scale = np.abs(np.asarray(a)).max(axis=(1, 2))
    scale = np.where(scale > 0, scale, 1.0)[:, None, None]  # NaN and 0: 1
    # The 1e10-scaled matrix with a 1e-9 spread (index -2) is factored through cancelling Schur complements: there
    # the two paths' summation orders differ by 1e-3 relative on jax 0.12, so it is held to exactness instead.
    for mine, theirs in ((unrolled[0].lower, looped[0].lower), (unrolled[1], looped[1]), (unrolled[3], looped[3])):
        mine, theirs = np.asarray(mine), np.asarray(theirs)
        assert np.isfinite(mine).all() and np.all(mine[-1] == 0)
        keep = np.arange(len(mine)) != len(mine) - 2
        np.testing.assert_allclose(
            (mine / np.sqrt(scale))[keep], (theirs / np.sqrt(scale))[keep], rtol=0, atol=4 * EPS32
        )
    factor = np.asarray(unrolled[3])
    nonzero = [(f, m) for f, m in zip(factor[:-1], np.asarray(a)[:-1], strict=True) if np.any(m != 0)]
    assert all(reconstruction_error(f, m) <= bound(d) for f, m in nonzero)
    finite = np.isfinite(np.asarray(looped[2])).all(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(unrolled[2])[finite], np.asarray(looped[2])[finite], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(unrolled[4], looped[4], rtol=1e-6, atol=1e-5)
    assert unrolled[4][-1] == -np.inf
