"""Small dense linear algebra in plain XLA ops (no LAPACK custom calls), for the d x d matrices of the loop.

Why not jnp.linalg: on CPU, batched cholesky / triangular_solve / eigh lower to LAPACK custom calls that split
their batch over XLA's intra-op thread pool and wait for the pieces. When two such calls run concurrently in one
program, each can hold a pool thread while waiting for work queued behind the other: with 2 threads the default
experiment deadlocked (jaxlib 0.10.2; both workers blocked in jax::ParallelBatchMap of a triangular solve, found
with gdb). The matrices here are d x d with small static d, so loops unrolled over d are also faster than the
per-matrix LAPACK calls (a batch of 1000 2 x 2 Cholesky factors: 0.04 ms against 0.19 ms).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

UNROLL_MAX_DIM = 4  # larger d: a loop over columns (compiles in constant time; unrolled d = 10 took 1.1 s)


def cholesky(a: jax.Array) -> jax.Array:
    """Lower Cholesky factor [..., d, d] of symmetric positive semi-definite matrices a [..., d, d].

    A non-positive pivot (a singular or collapsed covariance) gives a zero column instead of NaN, so L L^T
    still equals a up to rounding and sampling from a collapsed Gaussian returns its mean.

    Column j needs only columns < j (Cholesky-Banachiewicz by columns). For d <= UNROLL_MAX_DIM the columns are
    unrolled; above, they are a ``fori_loop`` whose body computes column j with masks (the graph does not grow
    with d: a batch of 1000 10 x 10 factors in a 300-step scan compiled in 0.30 s against 1.10 s unrolled, and ran
    in 0.30 s against 0.19 s).
    """
    d = a.shape[-1]
    if d > UNROLL_MAX_DIM:
        return _cholesky_loop(a)
    chol = jnp.zeros_like(a)
    for j in range(d):
        pivot = a[..., j, j] - jnp.sum(chol[..., j, :j] ** 2, axis=-1)
        ljj, inv = _pivot(pivot)
        below = a[..., j + 1 :, j] - jnp.einsum("...ik,...k->...i", chol[..., j + 1 :, :j], chol[..., j, :j])
        chol = chol.at[..., j, j].set(ljj).at[..., j + 1 :, j].set(below * inv[..., None])
    return chol


def _pivot(pivot: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(L_jj, 1 / L_jj) of a pivot, both 0 where the pivot is not positive."""
    ljj = jnp.sqrt(jnp.maximum(pivot, 0.0))
    return ljj, jnp.where(ljj > 0, 1.0 / jnp.where(ljj > 0, ljj, 1.0), 0.0)


def _cholesky_loop(a: jax.Array) -> jax.Array:
    """``cholesky`` as a loop over columns: at step j the columns >= j of the factor are still 0, so row j's
    squared norm and the product L L_j. need no slicing by j."""
    idx = jnp.arange(a.shape[-1])

    def column(j, chol):
        row = jnp.take(chol, j, axis=-2)  # [..., d]: row j, filled left of j
        ljj, inv = _pivot(jnp.take(jnp.take(a, j, axis=-1), j, axis=-1) - jnp.sum(row**2, axis=-1))
        below = jnp.take(a, j, axis=-1) - jnp.einsum("...ik,...k->...i", chol, row)
        col = jnp.where(idx > j, below * inv[..., None], 0.0) + jnp.where(idx == j, ljj[..., None], 0.0)
        return chol + col[..., :, None] * (idx == j)

    return jax.lax.fori_loop(0, a.shape[-1], column, jnp.zeros_like(a))


def solve_lower(chol: jax.Array, b: jax.Array) -> jax.Array:
    """x = L^-1 b by forward substitution, for L [..., d, d] lower triangular and b [..., d, n].

    Unrolled (O(d^2) ops) for d <= UNROLL_MAX_DIM; above, a loop over rows (the graph does not grow with d).
    """
    d = chol.shape[-1]
    if d > UNROLL_MAX_DIM:
        return _solve_lower_loop(chol, b)
    rows: list[jax.Array] = []
    for i in range(d):
        acc = b[..., i, :]
        for k in range(i):
            acc = acc - chol[..., i, k, None] * rows[k]
        rows.append(acc / chol[..., i, i, None])
    return jnp.stack(rows, axis=-2)


def _solve_lower_loop(chol: jax.Array, b: jax.Array) -> jax.Array:
    """``solve_lower`` as a loop over rows: at step i the rows >= i of x are still 0, so L_i. x needs no slicing."""
    idx = jnp.arange(chol.shape[-1])
    shape = jnp.broadcast_shapes(chol.shape[:-2], b.shape[:-2]) + b.shape[-2:]

    def row(i, x):
        l_i = jnp.take(chol, i, axis=-2)  # [..., d]
        residual = jnp.take(b, i, axis=-2) - jnp.einsum("...k,...kn->...n", l_i, x)  # [..., n]
        value = residual / jnp.take(l_i, i, axis=-1)[..., None]
        return x + (idx == i)[:, None] * value[..., None, :]

    return jax.lax.fori_loop(0, chol.shape[-1], row, jnp.zeros(shape, b.dtype))


def logdet(a: jax.Array) -> jax.Array:
    """log det [...] of symmetric positive semi-definite a [..., d, d]; -inf when singular."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(cholesky(a), axis1=-2, axis2=-1)), axis=-1)


def eigvalsh(a: jax.Array, sweeps: int = 12) -> jax.Array:
    """Eigenvalues [..., d] (unsorted) of symmetric a [..., d, d] by cyclic Jacobi rotations.

    Each rotation zeroes one off-diagonal pair; a sweep visits every pair and the off-diagonal mass falls
    quadratically once small, so 12 sweeps reach float32 resolution for the small d used here.

    References:
        Golub & Van Loan 2013, Matrix Computations, Alg. 8.5.3 (cyclic Jacobi).
    """
    d = a.shape[-1]
    if d == 1:
        return a[..., 0]
    pairs = jnp.array([(p, q) for p in range(d) for q in range(p + 1, d)], jnp.int32)
    eye = jnp.eye(d, dtype=a.dtype)

    def rotate(i, m):
        p, q = pairs[i % pairs.shape[0], 0], pairs[i % pairs.shape[0], 1]
        app, aqq, apq = m[..., p, p], m[..., q, q], m[..., p, q]
        active = jnp.abs(apq) > jnp.finfo(a.dtype).tiny
        theta = (aqq - app) / (2.0 * jnp.where(active, apq, 1.0))
        t = jnp.where(theta >= 0, 1.0, -1.0) / (jnp.abs(theta) + jnp.sqrt(theta**2 + 1.0))
        t = jnp.where(active, t, 0.0)
        c = 1.0 / jnp.sqrt(t**2 + 1.0)
        s = t * c
        ep, eq = eye[p], eye[q]
        outer = lambda u, v: u[:, None] * v[None, :]
        rot = (
            eye
            + (c - 1.0)[..., None, None] * (outer(ep, ep) + outer(eq, eq))
            + s[..., None, None] * (outer(ep, eq) - outer(eq, ep))
        )
        return jnp.swapaxes(rot, -1, -2) @ m @ rot

    m = jax.lax.fori_loop(0, sweeps * pairs.shape[0], rotate, a)
    return jnp.diagonal(m, axis1=-2, axis2=-1)
