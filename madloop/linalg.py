"""Small dense linear algebra in plain XLA ops (no LAPACK custom calls), for the d x d matrices of the loop.

Why not jnp.linalg:
- Correctness. Sampling from a collapsing covariance needs a square root that is exact for every PSD matrix,
  singular and slightly indefinite float32 ones included. ``jnp.linalg.cholesky`` has no pivoting and returns NaN
  on them; an ``eigh`` square root is exact but several times slower than the pivoted Cholesky here
  (``python benchmarks/sqrt_factor.py``; figures in docs/benchmarks.md). So ``pivoted_cholesky`` (LAPACK
  ?pstrf's algorithm) is written here.
- A deadlock. On CPU, batched cholesky / triangular_solve / eigh lower to LAPACK custom calls that split their
  batch over XLA's intra-op thread pool and wait for the pieces; with 2 threads the default experiment deadlocked
  when two such calls ran concurrently (jaxlib 0.10.2; both workers blocked in jax::ParallelBatchMap of a
  triangular solve, found with gdb). Re-checked for issue 15 with a program of two concurrent batched
  cholesky + triangular solve + eigh calls in a 200-step scan over 1000 runs, 30 calls on 2 cores: no hang, so
  the trigger is narrower than "any two calls"; ``tests/test_loop.py`` keeps the compiled loop free of LAPACK
  custom calls until the default experiment itself has been shown safe with them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

UNROLL_MAX_DIM = 4  # larger d: a loop over pivots (compiles in constant time; unrolled d = 10 took 1.1 s)


class PivotedCholesky(NamedTuple):
    """A pivoted Cholesky factorisation ``a[perm][:, perm] = lower @ lower.T`` of a PSD matrix a [..., d, d].

    Attributes:
        lower: [..., d, d] lower triangular L; its diagonal is the square roots of the pivots, in decreasing
            order, and 0 from the first pivot below the rank threshold on (a singular or collapsed covariance).
        perm: [..., d] int32 pivot order: the k-th pivot is the original coordinate perm[k].
    """

    lower: jax.Array
    perm: jax.Array


def pivot_tolerance(a: jax.Array) -> jax.Array:
    """The rank threshold [...] of a [..., d, d]: d eps max_i a_ii, LAPACK's ?pstrf default.

    A pivot at or below it is rounding noise of the matrix's largest entries (a float32 covariance of a collapsed
    loop holds eigenvalues far below eps times its largest): it is set to 0 instead of being divided by.
    """
    d = a.shape[-1]
    scale = jnp.max(jnp.diagonal(a, axis1=-2, axis2=-1), axis=-1)
    return d * jnp.finfo(a.dtype).eps * jnp.maximum(scale, 0.0)


def _pick(onehot: jax.Array, x: jax.Array, axis: int) -> jax.Array:
    """The entry of x that ``onehot`` marks along ``axis``: a sum of ``where(onehot, x, 0)``, exact (one term is
    nonzero) and free of the other entries' NaN or inf. For the unrolled d <= UNROLL_MAX_DIM path it replaces a
    gather (and a row update a scatter): XLA's CPU backend compiles each gather and scatter to a kernel of its own,
    and these small ones were a quarter of the GMM loop's kernels (its compilation 3.1 -> 2.6 s)."""
    return jnp.sum(jnp.where(onehot, x, jnp.zeros((), x.dtype)), axis=axis)


def _pivot_rows(m: jax.Array, perm: jax.Array) -> jax.Array:
    """m[..., perm[k], :] for every k -> [..., d, n], for m [..., d, n] and perm [..., d] (d <= UNROLL_MAX_DIM)."""
    idx = jnp.arange(perm.shape[-1])
    return jnp.stack([_pick((perm[..., k, None] == idx)[..., None], m, -2) for k in range(perm.shape[-1])], axis=-2)


def _pivoted_columns(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """F = P L [..., d, d] and the pivot order perm [..., d] of the Cholesky factorisation with complete
    (diagonal) pivoting of symmetric PSD matrices a [..., d, d].

    Exact to a small multiple of eps ||a|| for every PSD input, whatever its conditioning: rank-deficient,
    near-singular and slightly indefinite matrices (the float32 covariances of a collapsing loop) included.
    Step k takes as pivot p the largest remaining diagonal entry of the Schur complement, forms its column
    S[:, p] = a[:, p] - F[:, :k] F[p, :k]^T (left-looking: only the Schur diagonal is kept) and stores
    F[:, k] = S[:, p] / sqrt(S_pp); once the largest remaining pivot is at or below ``pivot_tolerance`` the
    remaining columns are 0 (the rank is reached). Pivoting bounds every entry of F[:, k] by sqrt(S_pp), which is
    what makes the factorisation stable for semi-definite matrices; the unpivoted algorithm divides rounding
    noise by a tiny pivot (on a slightly indefinite 10 x 10 float32 covariance of the d = 10 loop,
    tr(L L^T) / tr(a) was 93).

    The input is symmetrised first: (a + a^T) / 2. Up to UNROLL_MAX_DIM the d steps are unrolled and select with
    one-hot masks (``_pick``); above, a loop over pivots builds F^T a row per step with gathers and row updates.

    References:
        Higham 1990, "Analysis of the Cholesky decomposition of a semi-definite matrix" (stability with
        complete pivoting); LAPACK ?pstrf (the tolerance d eps max a_ii); Golub & Van Loan 2013, Alg. 4.2.4.
    """
    a = 0.5 * (a + jnp.swapaxes(a, -1, -2))
    d = a.shape[-1]
    tol = pivot_tolerance(a)
    idx = jnp.arange(d)
    diag = jnp.diagonal(a, axis1=-2, axis2=-1)  # the Schur diagonal [..., d]
    chosen = jnp.zeros(diag.shape, bool)

    def column_of(pivot, column, chosen):
        ok = pivot > tol
        inv = jnp.where(ok, jax.lax.rsqrt(jnp.where(ok, pivot, 1.0)), 0.0)
        # Chosen coordinates are exactly 0 in later columns: the factor is triangular in pivot order.
        return jnp.where(chosen | ~ok[..., None], 0.0, column * inv[..., None])

    if d <= UNROLL_MAX_DIM:
        cols: list[jax.Array] = []  # F[..., :, k]
        pivots: list[jax.Array] = []
        for _ in range(d):
            p = jnp.argmax(jnp.where(chosen, -jnp.inf, diag), axis=-1).astype(jnp.int32)  # [...]
            onehot = idx == p[..., None]  # [..., d]
            column = _pick(onehot[..., None, :], a, -1)  # a[..., :, p]
            if cols:  # - F[:, :k] F[p, :k]^T
                column = column - functools.reduce(jnp.add, [c * _pick(onehot, c, -1)[..., None] for c in cols])
            col = column_of(_pick(onehot, diag, -1), column, chosen)
            cols.append(col)
            pivots.append(p)
            diag, chosen = diag - col**2, chosen | onehot
        return jnp.stack(cols, axis=-1), jnp.stack(pivots, axis=-1)

    batch = a.shape[:-2]

    def step(k, state):
        diag, rows, perm, chosen = state  # rows [..., d, d]: F^T, one contiguous row written per step
        p = jnp.argmax(jnp.where(chosen, -jnp.inf, diag), axis=-1).astype(jnp.int32)  # [...]
        pivot = jnp.take_along_axis(diag, p[..., None], axis=-1)[..., 0]
        f_p = jnp.take_along_axis(rows, p[..., None, None], axis=-1)[..., 0]  # F[p, :] (0 from column k on)
        column = jnp.take_along_axis(a, p[..., None, None], axis=-1)[..., 0] - jnp.einsum("...ki,...k->...i", rows, f_p)
        col = column_of(pivot, column, chosen)
        rows = rows.at[..., k, :].set(col)
        return diag - col**2, rows, perm.at[..., k].set(p), chosen | (idx == p[..., None])

    init = (diag, jnp.zeros_like(a), jnp.zeros((*batch, d), jnp.int32), chosen)
    _, rows, perm, _ = jax.lax.fori_loop(0, d, step, init)
    return jnp.swapaxes(rows, -1, -2), perm


def pivoted_cholesky(a: jax.Array) -> PivotedCholesky:
    """The pivoted Cholesky factorisation of symmetric PSD a [..., d, d] (see ``_pivoted_columns``)."""
    cols, perm = _pivoted_columns(a)
    if a.shape[-1] <= UNROLL_MAX_DIM:
        return PivotedCholesky(_pivot_rows(cols, perm), perm)
    return PivotedCholesky(jnp.take_along_axis(cols, perm[..., :, None], axis=-2), perm)


def sqrt_factor(a: jax.Array) -> jax.Array:
    """A square root F [..., d, d] of symmetric PSD a [..., d, d]: F F^T = a to a small multiple of eps ||a||.

    F is the pivoted Cholesky factor with its rows in the original order (F = P L), so mean + F z with
    z ~ N(0, I) draws from N(mean, a) for any PSD a: singular (a collapsed covariance returns its mean),
    near-singular or slightly indefinite from rounding.
    """
    return _pivoted_columns(a)[0]


def factor_matrix(chol: PivotedCholesky) -> jax.Array:
    """F = P L [..., d, d] (F F^T = a) from a factorisation: L's rows put back in the original order."""
    d = chol.perm.shape[-1]
    if d <= UNROLL_MAX_DIM:  # F[i] = L[k] where perm[k] = i
        return jnp.stack([_pick((chol.perm == i)[..., :, None], chol.lower, -2) for i in range(d)], axis=-2)
    inverse = jnp.argsort(chol.perm, axis=-1)
    return jnp.take_along_axis(chol.lower, inverse[..., :, None], axis=-2)


def whiten(chol: PivotedCholesky, b: jax.Array) -> jax.Array:
    """z = L^-1 P^T b [..., d, n] for b [..., d, n], so that ||z||^2 = b^T a^-1 b column by column."""
    if chol.perm.shape[-1] <= UNROLL_MAX_DIM:
        return solve_lower(chol.lower, _pivot_rows(b, chol.perm))
    return solve_lower(chol.lower, jnp.take_along_axis(b, chol.perm[..., :, None], axis=-2))


def half_logdet(chol: PivotedCholesky) -> jax.Array:
    """(1/2) log det a [...] from its factorisation; -inf when a is singular (below the rank threshold)."""
    return jnp.sum(jnp.log(jnp.diagonal(chol.lower, axis1=-2, axis2=-1)), axis=-1)


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
    """log det [...] of symmetric positive semi-definite a [..., d, d]; -inf when singular.

    Accurate while the smallest eigenvalue is above about d eps times the largest (float32: a spread of 1e-6,
    float64: 1e-14); below, the matrix is singular at its precision and the answer is -inf, never a finite
    wrong number from a rounded pivot.
    """
    return 2.0 * half_logdet(pivoted_cholesky(a))


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
