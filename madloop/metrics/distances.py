"""Distances between two samples, or two Gaussians, and the per-sample statistics that metric groups build on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from madloop import _xla, linalg
from madloop.data import DataSource
from madloop.types import Data

DIRECT_MAX_DIM = 4  # pairwise_distances: differences up to this d, a centred matrix product above


def robust_centre(x: Data) -> jax.Array:
    """[d] the coordinate-wise (lower) median of the rows of x [m, d]: the centre of ``pairwise_distances``' matrix
    product. A mean would follow a few far-off rows (a diverging generation's samples: finite, so its row stays in
    the table) and take every bulk distance's precision with it; the median moves only once half the rows are off."""
    return sort_floats(x.T)[:, (x.shape[0] - 1) // 2]


def pairwise_distances(a: Data, b: Data, centre: jax.Array | None = None) -> jax.Array:
    """Euclidean distances [n, m] between rows of a [n, d] and b [m, d], unchanged by a shift of both sets.

    Up to ``DIRECT_MAX_DIM`` dimensions, from the differences a_i - b_j (each distance to float rounding of
    itself; a point's distance to itself is 0). Above, as |a_i|^2 + |b_j|^2 - 2 a_i . b_j of both sets centred
    on ``centre`` (default ``robust_centre(b)``, b's coordinate-wise median; a matrix product: 1.5-1.7x faster at
    d = 16-32). That form loses eps |x - centre|^2 of absolute accuracy: uncentred, on the ring of 8 (radius 2,
    sd 0.05) a 5-NN radius of 0.0072 came out 1% too large, and held-out points shifted by 1000 were 0.25 precise
    against themselves; centred on the samples' mean, 5% of samples at 3e4 (d = 8) made density 3.69 for 0.96
    and recall 0.56 for 0.95. Callers that block the rows or columns pass one centre for the whole set.
    """
    if a.shape[-1] <= DIRECT_MAX_DIM:
        # Materialised first: XLA would otherwise compute a fused producer of a or b (the draws of a sample) again
        # for every pair it enters (and at the test suite's XLA settings, jaxlib 0.10, such recomputed normals gave
        # NaN distances).
        a, b = _xla.materialised(a), _xla.materialised(b)
        return jnp.sqrt(jnp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1))
    centre = robust_centre(b) if centre is None else centre
    a, b = a - centre, b - centre
    sq = jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2.0 * a @ b.T
    return jnp.sqrt(jnp.clip(sq, 0.0))


def distance_centre(b: Data) -> jax.Array | None:
    """The centre ``pairwise_distances`` uses against the columns b [m, d] (None where it takes differences), for a
    caller that computes it once and passes it to every block."""
    return None if b.shape[-1] <= DIRECT_MAX_DIM else robust_centre(b)


# Entries of a distance block per run: rows of a pairwise matrix are computed and reduced this many at a time
# (``row_blocks``). On the CPU a block of 1000-column rows then stays in the core's L2 cache through the dozen
# reductions the k-NN and kernel metrics make over it, where the whole [n, m] matrix (4 MB per run at
# n = m = 1000) went to memory and back once per reduction: the default experiment's prdc 169 -> 34 ms and its
# MMD 177 -> 62 ms per generation (16 runs, eval.n = 1000; docs/benchmarks.md). An accelerator's memory is fast
# and its launches dear, so there a block holds up to 2^24 entries (the whole matrix at eval.n <= 16384).
BLOCK_ENTRIES = {"cpu": 1 << 16}
BLOCK_ENTRIES_ACCELERATOR = 1 << 24


def row_block(m: int, backend: str | None = None) -> int:
    """Rows per block of a pairwise matrix with m columns (``row_blocks``), on ``backend`` (default JAX's)."""
    entries = BLOCK_ENTRIES.get(backend or jax.default_backend(), BLOCK_ENTRIES_ACCELERATOR)
    return max(8, entries // max(m, 1))


def row_blocks(fn: Callable[..., tuple[Any, Any]], rows: tuple[jax.Array, ...], m: int) -> tuple[Any, Any]:
    """Maps ``fn`` over blocks of rows, so that a pairwise matrix [n, m] is never held whole (``row_block``).

    ``fn(index, valid, *blocks)`` receives a block of each array of ``rows`` (each [n, ...], blocked along its first
    axis), the rows' indices [B] in the whole and whether each is a real row [B] (the last block is padded with
    copies of row 0, which ``fn`` must leave out of its totals). It returns ``(per_row, totals)``: arrays [B, ...]
    with one entry per row, put back together as [n, ...], and arrays summed over the blocks (counts, sums). A set
    of at most one block is passed whole, without a loop. Each entry is computed as in the whole matrix, though a
    block's matrix product may round its last bit differently (another kernel for another shape); a sum is added
    up block by block, another order for float32 rounding.

    Args:
        fn: the block's computation, as above.
        rows: arrays with the same first axis n.
        m: the pairwise matrix's columns (sets the block's rows).
    Returns:
        (per_row, totals) as pytrees of ``fn``'s structure.
    """
    n = rows[0].shape[0]
    block = row_block(m)
    index = jnp.arange(n, dtype=jnp.int32)
    if n <= block:
        return fn(index, jnp.ones(n, bool), *rows)
    count = -(-n // block)
    pad = count * block - n

    def blocked(x: jax.Array) -> jax.Array:
        if pad:
            x = jnp.concatenate([x, jnp.broadcast_to(x[:1], (pad, *x.shape[1:]))])
        return x.reshape(count, block, *x.shape[1:])

    index = jnp.arange(count * block, dtype=jnp.int32).reshape(count, block)
    per_row, totals = jax.lax.map(lambda a: fn(a[0], a[0] < n, *a[1:]), (index, *map(blocked, rows)))
    per_row = jax.tree.map(lambda x: x.reshape(count * block, *x.shape[2:])[:n], per_row)
    return per_row, jax.tree.map(lambda x: jnp.sum(x, axis=0), totals)


def sort_floats(x: jax.Array) -> jax.Array:
    """Sorts floats along the last axis through order-preserving integer keys of their width: float64 (x64 mode)
    through int64, anything else as float32 through int32.

    XLA's CPU sort with the float comparator (which orders NaNs totally) is about 6x slower than its integer
    sort. Flipping the magnitude bits of negative floats makes the integer order equal the float order.
    """
    if x.dtype == jnp.float64:
        ftype, itype, mask = jnp.float64, jnp.int64, 0x7FFF_FFFF_FFFF_FFFF
    else:
        ftype, itype, mask = jnp.float32, jnp.int32, 0x7FFF_FFFF
    bits = jax.lax.bitcast_convert_type(x.astype(ftype), itype)
    keys = jnp.sort(jnp.where(bits < 0, bits ^ mask, bits), axis=-1)
    return jax.lax.bitcast_convert_type(jnp.where(keys < 0, keys ^ mask, keys), ftype)


def kth_smallest(values: jax.Array, k: int) -> jax.Array:
    """The entry at sorted position k (0-based) along the last axis: [..., m] -> [...].

    k + 1 rounds over the distinct values in increasing order, each a masked min (the next distinct value) and a
    count (how many entries are at most it); the answer is the first value whose count reaches k + 1, so ties
    count with their multiplicity, exactly as sorting would. O(k m) per row in plain min / sum reductions: XLA's
    CPU sort and top_k are an order of magnitude slower for the small k of k-NN metrics (benchmarks/README: 2.4 s
    vs 0.16 s for 16 x 1000 x 1000), and this is 1.8x faster than k rounds of "remove one argmin" (argmin is a
    variadic reduction XLA's CPU backend runs slowly; 16 x 1000 x 1000, k = 5: 438 -> 247 ms, the same values).
    """
    out = jnp.full(values.shape[:-1], jnp.nan, values.dtype)
    found = jnp.zeros(values.shape[:-1], bool)
    below = None  # the last distinct value visited
    for _ in range(k + 1):  # position k lies within the first k + 1 distinct values
        rest = values if below is None else jnp.where(values > below[..., None], values, jnp.inf)
        nxt = jnp.min(rest, axis=-1)  # the first round a plain min, so -inf entries count
        reached = ~found & (jnp.sum(values <= nxt[..., None], axis=-1) >= k + 1)
        out = jnp.where(reached, nxt, out)
        found, below = found | reached, nxt
    # NaN where a row holds a NaN (no order; the argmin rounds this replaced could return a number) and where
    # k >= m (no position k; they returned inf).
    return jnp.where(jnp.any(jnp.isnan(values), axis=-1), jnp.nan, out)


def kth_distance(a: Data, b: Data, k: int) -> jax.Array:
    """[n] position k (0-based) of each sorted row of the distances [n, m] between a [n, d] and b [m, d], computed
    by blocks of rows (``row_blocks``): ``kth_smallest(pairwise_distances(a, b), k)`` without the whole matrix."""
    centre = distance_centre(b)
    row = lambda _, __, rows: (kth_smallest(pairwise_distances(rows, b, centre), k), ())
    return row_blocks(row, (a,), b.shape[0])[0]


def kth_neighbour_distance(points: Data, k: int) -> jax.Array:
    """Distance [n] from each point to its k-th nearest other point (position k of its sorted row, where
    position 0 is the point itself)."""
    return kth_distance(points, points, k)


JACOBI_MAX_DIM = 16  # frechet_distance: Jacobi eigenvalues up to this d, LAPACK eigh above


def frechet_distance(mu1: jax.Array, cov1: jax.Array, mu2: jax.Array, cov2: jax.Array) -> jax.Array:
    """Squared Fréchet (= Wasserstein-2) distance between N(mu1, cov1) and N(mu2, cov2).

    ||mu1 - mu2||^2 + tr(cov1) + tr(cov2) - 2 tr((cov1^1/2 cov2 cov1^1/2)^1/2).

    References:
        Dowson & Landau 1982; Heusel et al. 2017 (FID), eq. 6.
    """
    # (cov1^1/2 cov2 cov1^1/2) and L1^T cov2 L1 (cov1 = L1 L1^T, any square root) are similar to cov1 cov2:
    # the same eigenvalues.
    l1 = linalg.sqrt_factor(cov1)
    if cov1.shape[-1] <= JACOBI_MAX_DIM:
        eig = linalg.eigvalsh(l1.T @ cov2 @ l1)
        cross = jnp.sum(jnp.sqrt(jnp.clip(eig, 0.0)))
    else:
        # Feature spaces (64-d). With cov2 = L2 L2^T, L1^T cov2 L1 = (L1^T L2)(L1^T L2)^T: the square roots of its
        # eigenvalues are the singular values of L1^T L2, which LAPACK finds to eps ||L1^T L2||. The eigenvalues
        # themselves carry an error of eps ||L1^T cov2 L1||, the square of that scale, and the square roots of the
        # many near-zero ones of classifier features (dead ReLUs) made fd about 1% off in float32 (digits' held-out
        # set against itself: -0.155; the training images against it: 9.211 for 9.315). The Jacobi sweeps would
        # cost O(d^5). This SVD is the one LAPACK call of an image loop, so the deadlock of two concurrent calls
        # (madloop.linalg) cannot arise. (A Newton-Schulz square root was tried: float32 rounding makes the zero
        # eigenvalues of dead-ReLU features negative, and it diverges on them.)
        cross = jnp.sum(jnp.linalg.svd(l1.T @ linalg.sqrt_factor(cov2), compute_uv=False))
    return jnp.sum((mu1 - mu2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * cross


def gaussian_kl(mu_p: jax.Array, cov_p: jax.Array, mu_q: jax.Array, cov_q: jax.Array) -> jax.Array:
    """KL(N(mu_p, cov_p) || N(mu_q, cov_q)) = 1/2 [tr(Sq^-1 Sp) + dmu^T Sq^-1 dmu - d + ln det Sq - ln det Sp]."""
    d = mu_p.shape[0]
    chol_q = linalg.pivoted_cholesky(cov_q)
    half = lambda m: linalg.whiten(chol_q, m)  # L^-1 P^T m, so tr(Sq^-1 Sp) = ||L^-1 P^T Fp||_F^2 (Sp = Fp Fp^T)
    dmu = mu_q - mu_p
    logdet_q = 2.0 * linalg.half_logdet(chol_q)
    logdet_p = linalg.logdet(cov_p)
    trace = jnp.sum(half(linalg.sqrt_factor(cov_p)) ** 2)
    maha = jnp.sum(half(dmu[:, None]) ** 2)
    kl = 0.5 * (trace + maha - d + logdet_q - logdet_p)
    # A singular q (a collapsed model) puts no mass where a nonsingular p has all of it: KL = +inf, where the
    # whitening's division by zero pivots gave 0/0.
    return jnp.where(jnp.isneginf(logdet_q) & jnp.isfinite(logdet_p), jnp.inf, kl)


def sliced_w2(x_proj_sorted: jax.Array, y: Data, directions: jax.Array) -> jax.Array:
    """Sliced Wasserstein-2 distance between two samples (of equal or different sizes).

    SW2 = sqrt(mean over directions of W2^2 of the 1-D projections). The 1-D W2^2 is the integral over u in
    (0, 1) of the squared difference of the two empirical quantile functions, which are piecewise constant:
    for equal sizes the mean squared difference of the sorted projections, else a sum over the merged
    breakpoints {i / n} and {j / m} (exact, with static indices).

    Args:
        x_proj_sorted: [L, n] sorted projections of the reference sample on the L directions.
        y: [m, d] the other sample.
        directions: [L, d] unit vectors.

    References:
        Bonneel et al. 2015, "Sliced and Radon Wasserstein Barycenters of Measures", eq. 5.
    """
    y_proj = sort_floats(directions @ y.T)
    n, m = x_proj_sorted.shape[1], y_proj.shape[1]
    if n == m:
        return jnp.sqrt(jnp.mean((x_proj_sorted - y_proj) ** 2))
    ends = np.unique(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
    widths = np.diff(np.concatenate([[0.0], ends]))
    mid = ends - widths / 2
    i, j = np.minimum((mid * n).astype(int), n - 1), np.minimum((mid * m).astype(int), m - 1)
    w2 = jnp.sum(widths.astype(y_proj.dtype) * (x_proj_sorted[:, i] - y_proj[:, j]) ** 2, axis=1)
    return jnp.sqrt(jnp.mean(w2))


def rbf_mean(a: Data, b: Data, bandwidth: jax.Array, exclude_diagonal: bool) -> jax.Array:
    """Mean of exp(-||a_i - b_j||^2 / (2 bandwidth^2)), over i != j when exclude_diagonal (a is b)."""
    return rbf_kernel_means(a, b, jnp.reshape(jnp.asarray(bandwidth), (1,)), exclude_diagonal)[0]


def kernel_means(
    kernel: Callable[[jax.Array, jax.Array], tuple[jax.Array, ...]], a: Data, b: Data, exclude_diagonal: bool
) -> jax.Array:
    """[S] the means of S kernels' values over the pairs of rows of a [n, d] and b [m, d], over i != j when
    exclude_diagonal (a is b), by blocks of rows (``row_blocks``), without the [n, m] matrix.

    ``kernel(rows, cols)`` maps rows [B, d] and columns [C, d] to the S kernel matrices, each [B, C] (one reduction
    each: a stacked [S, B, C] array ran 5x slower on the CPU). Over one set with itself the kernels must be
    symmetric: each pair of blocks is then computed once and counted for both orders (``_symmetric_sums``).
    """
    n, m = a.shape[0], b.shape[0]
    if exclude_diagonal:
        if b is not a:  # "i != j" pairs a set with itself; a second set of the same size would be ignored
            raise ValueError("kernel_means: exclude_diagonal needs b to be a itself (one set with itself)")
        return _symmetric_sums(kernel, a) / (n * (n - 1))

    def block(_: jax.Array, valid: jax.Array, rows: jax.Array) -> tuple[tuple, jax.Array]:
        return (), jnp.stack([jnp.sum(jnp.where(valid[:, None], k, 0.0)) for k in kernel(rows, b)])

    return row_blocks(block, (a,), m)[1] / (n * m)


def _symmetric_sums(kernel: Callable[[jax.Array, jax.Array], tuple[jax.Array, ...]], a: Data) -> jax.Array:
    """[S] the sums of S symmetric kernels over the ordered pairs i != j of the rows of a [n, d].

    The rows form c blocks (``row_block``; the last padded with copies of row 0, left out). Block p meets the blocks
    p, p + 1, ..., p + c // 2 (mod c): every unordered pair of blocks once, the pair at distance c / 2 (c even)
    twice. So a block's pairs with itself count once (both orders are in it), a pair at distance c / 2 once per
    visit, and every other pair twice: about half the kernel evaluations of the whole matrix (the default
    experiment's MMD 21% faster).
    """
    n = a.shape[0]
    block = row_block(n)
    if n <= block:
        off = ~jnp.eye(n, dtype=bool)
        return jnp.stack([jnp.sum(jnp.where(off, k, 0.0)) for k in kernel(a, a)])
    count = -(-n // block)
    half, width = count // 2, (count // 2 + 1) * block
    padded = jnp.concatenate([a, jnp.broadcast_to(a[:1], (count * block - n, a.shape[1]))])
    index = jnp.arange(count * block, dtype=jnp.int32)
    wrapped, wrapped_index = (
        jnp.concatenate([padded, padded[: half * block]]),
        jnp.concatenate([index, index[: half * block]]),
    )
    distance = np.arange(width) // block  # each column's block distance from the row block
    weight = jnp.asarray(np.where((distance == 0) | (2 * distance == count), 1.0, 2.0), a.dtype)

    def one(p: jax.Array) -> jax.Array:
        start = p * block
        rows, rows_index = (jax.lax.dynamic_slice_in_dim(x, start, block) for x in (padded, index))
        cols, cols_index = (jax.lax.dynamic_slice_in_dim(x, start, width) for x in (wrapped, wrapped_index))
        keep = (rows_index[:, None] < n) & (cols_index[None, :] < n) & (rows_index[:, None] != cols_index[None, :])
        return jnp.stack([jnp.sum(jnp.where(keep, k * weight, 0.0)) for k in kernel(rows, cols)])

    return jnp.sum(jax.lax.map(one, jnp.arange(count)), axis=0)


def rbf_kernel_means(a: Data, b: Data, bandwidths: jax.Array, exclude_diagonal: bool) -> jax.Array:
    """[S] the mean of exp(-||a_i - b_j||^2 / (2 h^2)) over pairs of rows of a [n, d] and b [m, d] for each
    bandwidth h of [S], over i != j when exclude_diagonal (a is b), by blocks of rows without the [n, m]
    distance matrix (``kernel_means``)."""

    centre = distance_centre(b)  # one centre for every block of rows and of columns

    def kernel(rows: jax.Array, cols: jax.Array) -> tuple[jax.Array, ...]:
        sq = pairwise_distances(rows, cols, centre) ** 2
        return tuple(jnp.exp(-sq / (2.0 * bandwidths[i] ** 2)) for i in range(bandwidths.shape[0]))

    return kernel_means(kernel, a, b, exclude_diagonal)


def prdc(real_radii: jax.Array, real: Data, fake: Data, k: int) -> dict[str, jax.Array]:
    """Precision, recall (Kynkäänniemi et al. 2019), density, coverage (Naeem et al. 2020) with k-NN balls.

    Args:
        real_radii: [n] distance of each real sample to its k-th nearest real neighbour.
        real: [n, d]; fake: [m, d].
    Returns:
        dict of four scalars. Strict inequalities, as the reference implementation (prdc) uses.
    """
    fake_radii = kth_neighbour_distance(fake, k)
    centre = distance_centre(fake)

    def block(_: jax.Array, valid: jax.Array, rows: jax.Array, radii: jax.Array) -> tuple[Any, jax.Array]:
        d_rf = pairwise_distances(rows, fake, centre)  # [B, m]: the real rows' distances to every fake sample
        recalled = jnp.any(d_rf < fake_radii[None, :], axis=1)
        covered = jnp.min(d_rf, axis=1) < radii
        balls = jnp.sum((d_rf < radii[:, None]) & valid[:, None], axis=0, dtype=jnp.int32)  # [m]
        return (recalled, covered), balls

    (recalled, covered), balls = row_blocks(block, (real, real_radii), fake.shape[0])  # balls: real balls per fake
    return {
        "precision": jnp.mean(balls > 0, dtype=fake.dtype),  # (a bool mean is float32 in x64 mode too)
        "recall": jnp.mean(recalled, dtype=fake.dtype),
        "density": jnp.mean(balls, dtype=fake.dtype) / k,
        "coverage": jnp.mean(covered, dtype=fake.dtype),
    }


def mode_assignment(samples: Data, source: DataSource) -> tuple[jax.Array, jax.Array]:
    """Each sample's nearest truth component and whether it lies within 3 sigma of some component.

    Nearest is in the truth's own metric, without its weights (argmax_k log N(x; mu_k, Sigma_k)): a sample between
    a heavy and a rare mode goes to the closer one, so the weights do not decide the count. "Within 3 sigma" of
    component k: the Mahalanobis distance is below the radius whose chi-square(d) mass equals that of the 3-sigma
    disc in 2-D (1 - e^-4.5), so r = 3 exactly for d = 2.

    Args:
        samples: [m, d].
        source: a mixture truth (``source.mixture`` with K >= 1 components).
    Returns:
        (nearest [m] int32, within [K, m] bool: within 3 sigma of component k).
    """
    mix = source.mixture
    d = mix.means.shape[1]
    from scipy.special import gammaincinv  # here: importing scipy.stats at start-up cost 1.2 s

    r2 = 2.0 * float(gammaincinv(d / 2.0, 1.0 - np.exp(-4.5)))  # the chi2(d) quantile of 1 - exp(-4.5)
    chol = linalg.pivoted_cholesky(mix.covs)  # [K, d, d]
    diff = samples[None, :, :] - mix.means[:, None, :]  # [K, n, d]
    z = linalg.whiten(chol, jnp.swapaxes(diff, 1, 2))  # [K, d, n]
    maha = jnp.sum(z**2, axis=1)  # [K, n]
    nearest = jnp.argmin(0.5 * maha + linalg.half_logdet(chol)[:, None], axis=0)
    return nearest, maha <= r2


def covered_threshold(weights: jax.Array, share: float) -> jax.Array | float:
    """[K] the sample share at which a mode counts as covered: ``share`` scaled by the mode's weight relative to
    uniform (share * K * w_k), so a rare mode of a Zipf truth is held to its own expected share. An equal-weight
    truth (concrete weights) gets ``share`` itself, exactly: share * K * (1 / K) can round above it in float32 and
    drop a mode that holds exactly that share."""
    w = np.asarray(weights)
    if np.all(w == w[0]):
        return share
    return share * weights.shape[0] * weights


def mode_stats(samples: Data, source: DataSource, share: float) -> dict[str, jax.Array]:
    """Mode counts, the quality share and the mode-share error for a mixture truth.

    - ``modes``: components that are the nearest component (``mode_assignment``) of at least
      ``covered_threshold`` of the samples. Diversity only: a blurred sample still counts for its nearest mode.
    - ``modes_hq``: components holding that share of the samples within 3 sigma of them (VEEGAN's count: mode
      coverage by high-quality samples; blur away from the modes lowers it too).
    - ``hq``: the share of samples within 3 sigma of some component (quality).
    - ``mode_tv``: the total variation 1/2 sum_k |share_k - w_k| between the nearest-mode shares and the truth's
      weights (0 for a perfect balance; it sees a mode's weight drift before the mode is lost).

    References:
        Srivastava et al. 2017 (VEEGAN) and Metz et al. 2017 (unrolled GANs): the ring/grid mode counts.
    """
    mix = source.mixture
    k = mix.weights.shape[0]
    nearest, within = mode_assignment(samples, source)
    shares = jnp.mean(jax.nn.one_hot(nearest, k, dtype=samples.dtype), axis=0)  # [K]
    threshold = covered_threshold(mix.weights, share)
    return {
        "modes": jnp.sum(shares >= threshold).astype(samples.dtype),
        "modes_hq": jnp.sum(jnp.mean(within, axis=1, dtype=samples.dtype) >= threshold).astype(samples.dtype),
        "hq": jnp.mean(jnp.any(within, axis=0), dtype=samples.dtype),
        "mode_tv": 0.5 * jnp.sum(jnp.abs(shares - mix.weights)),
    }


def rare_modes(weights: np.ndarray) -> np.ndarray:
    """The indices of the rarest quarter of the modes (at least one): the ceil(K / 4) smallest weights, ties by
    index. ``weights`` [K] are the truth's (concrete numbers)."""
    weights = np.asarray(weights)
    return np.argsort(weights, kind="stable")[: max(1, -(-weights.shape[0] // 4))]


def tail_stats(samples: Data, source: DataSource, share: float) -> dict[str, jax.Array]:
    """Survival of the rare modes of an unequal-weight mixture truth (``data.weights`` or ``data.zipf``).

    - ``rare_mass``: the samples' share in the rare modes (``rare_modes``, by nearest-mode assignment) divided by
      the truth's weight of those modes: 1 = kept, 0 = lost (collapse erodes the tails first: Shumailov et al.
      2024).
    - ``rare_modes``: the share of the rare modes still covered by high-quality samples (``modes_hq``'s rule).
    """
    mix = source.mixture
    rare = rare_modes(np.asarray(mix.weights))
    nearest, within = mode_assignment(samples, source)
    shares = jnp.mean(jax.nn.one_hot(nearest, mix.weights.shape[0], dtype=samples.dtype), axis=0)
    held = jnp.mean(within, axis=1, dtype=samples.dtype) >= covered_threshold(mix.weights, share)
    return {
        "rare_mass": jnp.sum(shares[rare]) / jnp.sum(mix.weights[rare]),
        "rare_modes": jnp.mean(held[rare].astype(samples.dtype)),
    }


def class_columns(classes: int) -> tuple[str, ...]:
    """The predicted-class histogram's columns: class_0 ... class_{C-1} (the share of samples per class)."""
    return tuple(f"class_{c}" for c in range(classes))


def class_stats(logits: jax.Array, classes: int) -> dict[str, jax.Array]:
    """The classifier's reading of samples: the predicted-class histogram (``class_c``: the share of samples whose
    most likely class is c), its entropy in nats (``class_entropy``: log C when every class is equally
    predicted, 0 when one class takes all: mode collapse) and the mean top-class probability (``confidence``).

    Args:
        logits: [n, C] classifier logits of n samples.
        classes: C.
    """
    hist = jnp.mean(jax.nn.one_hot(jnp.argmax(logits, axis=1), classes, dtype=logits.dtype), axis=0)
    out = {name: hist[c] for c, name in enumerate(class_columns(classes))}
    out["class_entropy"] = -jnp.sum(jnp.where(hist > 0, hist * jnp.log(jnp.where(hist > 0, hist, 1.0)), 0.0))
    out["confidence"] = jnp.mean(jnp.max(jax.nn.softmax(logits, axis=1), axis=1))
    return out
