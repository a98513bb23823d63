"""Sample-level fidelity and diversity metrics: KID, the Vendi scores, alpha-precision, beta-recall, authenticity."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop.metrics.distances import kernel_means, kth_smallest, pairwise_distances, sort_floats
from madloop.types import Data

# ------------------------------------------------------------------------------------------------------- KID


def polynomial_kernel(a: Data, b: Data) -> jax.Array:
    """The cubic polynomial kernel [n, m] of KID, k(x, y) = (x . y / f + 1)^3, between rows of a [n, f], b [m, f]."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def centred_polynomial_kernel(a: Data, b: Data, centre: jax.Array) -> jax.Array:
    """The cubic kernel centred at ``centre`` [f]: k_c(x, y) = k(x, y) - k(x, c) - k(c, y) + k(c, c) [n, m], between
    rows of a [n, f] and b [m, f], computed without the cancellation of that difference.

    The unbiased MMD^2 of k_c equals that of k exactly (terms of one argument and constants cancel from it). With
    u = x - c, v = y - c, q = c . c / f + 1, alpha = u . c / f, beta = v . c / f, g = u . v / f and
    p = q + alpha + beta: k(x, y) = (p + g)^3, k(x, c) = (q + alpha)^3, k(c, y) = (q + beta)^3, so
    k_c = g (3 p^2 + 3 p g + g^2) + 3 alpha beta (2 q + alpha + beta): no term of size q^3 is formed and subtracted.
    Off-centre features (far from the origin against their spread: ReLU features, data with an offset) made KID's
    three kernel means each ~q^3 and their float32 difference erred by 0.15% at an offset of 10 SD in d = 2 and by
    0.8% at 100 (against float64); centred at the held-out mean, by under 1e-5.
    """
    f = a.shape[1]
    u, v = a - centre, b - centre
    q = 1.0 + centre @ centre / f
    alpha, beta = (u @ centre / f)[:, None], (v @ centre / f)[None, :]
    g = u @ v.T / f
    p = q + alpha + beta
    return g * (3.0 * p * p + 3.0 * p * g + g * g) + 3.0 * alpha * beta * (2.0 * q + alpha + beta)


def polynomial_kernel_mean(a: Data, b: Data, exclude_diagonal: bool, centre: jax.Array | None = None) -> jax.Array:
    """The mean cubic polynomial kernel over the pairs of rows of a [n, f] and b [m, f], over i != j when
    exclude_diagonal (a is b), by blocks of rows without the [n, m] kernel matrix (``distances.kernel_means``;
    the diagonal left out, not subtracted: its terms are the largest, and their float32 difference erred 4x more
    against float64). With ``centre`` [f], of the centred kernel (``centred_polynomial_kernel``)."""
    if centre is None:
        kernel = lambda rows, cols: (polynomial_kernel(rows, cols),)  # noqa: E731
    else:
        kernel = lambda rows, cols: (centred_polynomial_kernel(rows, cols, centre),)  # noqa: E731
    return kernel_means(kernel, a, b, exclude_diagonal)[0]


class PolynomialReference(NamedTuple):
    """The KID reference: the centre c [f] of the kernel (the held-out mean) and k_real, the mean centred kernel over
    distinct held-out pairs (the constant term of the unbiased MMD^2)."""

    centre: jax.Array
    k_real: jax.Array


def polynomial_reference(real: Data) -> PolynomialReference:
    """The held-out terms of KID from the held-out set (or its features) [n, f]."""
    centre = jnp.mean(real, axis=0)
    return PolynomialReference(centre, polynomial_kernel_mean(real, real, exclude_diagonal=True, centre=centre))


def kid(feats: Data, real: Data, stats: PolynomialReference, ctx: Any = None) -> dict[str, jax.Array]:
    """Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel (x . y / f + 1)^3 between
    the samples' features [m, f] and the held-out features [n, f] (the samples themselves off image sources).

    MMD^2_u = mean_{i != j} k(s_i, s_j) + mean_{i != j} k(r_i, r_j) - 2 mean_{i, j} k(r_i, s_j). Its expectation is
    0 when both sets come from one distribution, so a value may be slightly negative. The paper averages this
    estimator over random subsets (of 1000); here it is the estimator on the full sets, once: both are unbiased
    for MMD^2, and the full-set one has the smaller variance. It is computed with the kernel centred at the
    held-out mean (``centred_polynomial_kernel``), which gives the same MMD^2 without float32 cancellation.

    References:
        Bińkowski et al. 2018, "Demystifying MMD GANs" (KID: the kernel and the unbiased estimator);
        Gretton et al. 2012, "A Kernel Two-Sample Test", eq. 3.
    """
    del ctx
    k_ff = polynomial_kernel_mean(feats, feats, exclude_diagonal=True, centre=stats.centre)
    k_rf = polynomial_kernel_mean(real, feats, exclude_diagonal=False, centre=stats.centre)
    return {"kid": k_ff + stats.k_real - 2.0 * k_rf}


# ----------------------------------------------------------------------------------------------- Vendi scores


class VendiReference(NamedTuple):
    """The Vendi similarity's RBF bandwidth: the held-out set's median pairwise distance (the ``mmd`` group's
    bandwidth), fixed per run so scores are comparable across generations and seeds."""

    bandwidth: jax.Array


def median_bandwidth(real: Data) -> VendiReference:
    """The median distance over distinct pairs of the held-out set [n, d]."""
    dist = pairwise_distances(real, real)
    return VendiReference(jnp.median(dist[jnp.triu_indices(real.shape[0], 1)]))


def rbf_similarity(x: Data, bandwidth: jax.Array) -> jax.Array:
    """K [m, m], K_ij = exp(-||x_i - x_j||^2 / (2 bandwidth^2)), with K_ii = 1 exactly (the float32 distance of a
    point to itself can round above 0)."""
    k = jnp.exp(-(pairwise_distances(x, x) ** 2) / (2.0 * bandwidth**2))
    return jnp.where(jnp.eye(x.shape[0], dtype=bool), 1.0, k)


def spectral_entropy(eig: jax.Array) -> jax.Array:
    """Shannon entropy -sum_i l_i log l_i (nats, 0 log 0 = 0) of the eigenvalues [m] of a PSD matrix of trace 1.

    Eigenvalues at or below eps max_i l_i count as 0 (negative rounding values included): float32 ``eigh`` returns
    the m - 1 zero eigenvalues of m identical points as noise of about that size, whose -l log l terms would add
    about 1e-4 to the entropy. A larger cut removes real eigenvalues: numpy's rank tolerance m eps max_i l_i made
    the score of 1000 64-d Gaussian samples 17% low; this cut keeps every case tried within 4e-4 of float64.
    """
    tol = jnp.finfo(eig.dtype).eps * jnp.max(eig, axis=-1, keepdims=True)
    pos = eig > tol
    safe = jnp.where(pos, eig, 1.0)
    return -jnp.sum(jnp.where(pos, safe * jnp.log(safe), 0.0), axis=-1)


def vendi_scores(x: Data, bandwidth: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The Vendi score (order 1) and its order-2 cousin of m samples x [m, d] under the RBF similarity.

    With l_i the eigenvalues of K / m (non-negative, summing to 1): VS_1 = exp(-sum_i l_i log l_i), the exponential
    of their Shannon entropy, and VS_2 = 1 / sum_i l_i^2 = m^2 / ||K||_F^2 (no eigendecomposition). Both are
    "effective numbers of distinct samples": 1 when every sample is the same, m when all are dissimilar (K = I),
    and VS_2 <= VS_1.

    The eigenvalues come from LAPACK's ``eigh`` (``jnp.linalg.eigvalsh``, O(m^3)): madloop.linalg's Jacobi sweeps
    cost O(m^5) for an m x m matrix. madloop.linalg records a deadlock of two concurrent batched LAPACK calls on a
    2-thread pool; the group is opt-in, so the default compiled loop stays free of LAPACK calls (tests/test_loop.py).
    A loop with vendi and a 32-d ``fd`` (two batched eigh calls in one program) ran 9 times without a hang. Cost:
    one 1000 x 1000 eigh took 0.2 s on a 2-core CPU with OPENBLAS_NUM_THREADS=1 and 0.4 to 1.5 s with OpenBLAS's
    default threads, which contend with XLA's thread pool (eigh runs in scipy's OpenBLAS).

    References:
        Friedman & Dieng 2023, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning" (order 1);
        Pasarkar & Dieng 2024, "Cousins of the Vendi Score" (order q; q = 2 is the inverse purity sum_i l_i^2).
    """
    m = x.shape[0]
    k = rbf_similarity(x, bandwidth)
    eig = jnp.linalg.eigvalsh(k / m)
    vendi = jnp.exp(spectral_entropy(eig))
    vendi2 = m**2 / jnp.sum(k**2)
    return vendi, vendi2


def vendi(x: Data, real: Data, stats: VendiReference, ctx: Any = None) -> dict[str, jax.Array]:
    """``vendi`` (order 1) and ``vendi2`` (order 2) of the samples (their features on an image source)."""
    del real, ctx
    vs1, vs2 = vendi_scores(x, stats.bandwidth)
    return {"vendi": vs1, "vendi2": vs2}


# ----------------------------------------------------------------- alpha-precision, beta-recall, authenticity

# The grid of alpha (and beta) of the integrated scores: 30 points from 0 to 1, as the paper's public code.
ALPHAS = np.linspace(0.0, 1.0, 30)


def quantiles(values: jax.Array, probs: np.ndarray) -> jax.Array:
    """Quantiles [q] of values [n] at the static probabilities probs [q], by linear interpolation between order
    statistics (numpy's default method): position p (n - 1) of the sorted values."""
    v = sort_floats(values)
    pos = np.asarray(probs) * (values.shape[0] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, values.shape[0] - 1)
    frac = jnp.asarray(pos - lo, v.dtype)
    return v[lo] + frac * (v[hi] - v[lo])


class Supports(NamedTuple):
    """The held-out statistics of alpha-precision, beta-recall and authenticity (identity embedding).

    Attributes:
        centre: [f] the held-out mean, the centre of the real alpha-supports.
        radii: [A] the radius of the real alpha-support per alpha of ``ALPHAS``: the alpha-quantile of the held-out
            points' distances to the centre.
        nn_radius: [n] each held-out point's distance to its nearest other held-out point (authenticity).
        knn_radius: [n] its distance to its ``eval.k``-th nearest other held-out point (the beta-recall ball).
    """

    centre: jax.Array
    radii: jax.Array
    nn_radius: jax.Array
    knn_radius: jax.Array


def real_supports(real: Data, k: int) -> Supports:
    """The held-out centre, the alpha-support radii on ``ALPHAS`` and the 1-NN and k-NN radii of real [n, f]."""
    centre = jnp.mean(real, axis=0)
    radii = quantiles(jnp.linalg.norm(real - centre, axis=1), ALPHAS)
    d_rr = pairwise_distances(real, real)  # position 0 of a sorted row is the point itself
    return Supports(centre, radii, kth_smallest(d_rr, 1), kth_smallest(d_rr, k))


def integrated_score(curve: jax.Array) -> jax.Array:
    """Delta-score 1 - 2 int_0^1 |C(a) - a| da of a curve [A] on ``ALPHAS``, the integral taken as the mean over the
    grid: 1 for the ideal C(a) = a, 0 for C = 0 or C = 1 (the extremes of a non-decreasing curve)."""
    return 1.0 - 2.0 * jnp.mean(jnp.abs(curve - jnp.asarray(ALPHAS, curve.dtype)))


def alpha_precision_curve(samples: Data, sup: Supports) -> jax.Array:
    """P(alpha) [A]: the share of samples [m, f] inside the real alpha-support (closed ball) for each alpha."""
    to_centre = jnp.linalg.norm(samples - sup.centre, axis=1)
    return jnp.mean(to_centre[None, :] <= sup.radii[:, None], axis=1, dtype=samples.dtype)


def beta_recall_curve(samples: Data, d_rs: jax.Array, sup: Supports) -> jax.Array:
    """R(beta) [A]: the share of held-out points x_i whose nearest sample inside the samples' beta-support lies in
    x_i's k-NN ball B(x_i, NND_k(x_i)), for each beta.

    The beta-support is the ball around the samples' mean whose radius is the beta-quantile of the samples'
    distances to it. "The nearest in-support sample lies in the ball" holds exactly when some in-support sample
    lies in the ball, that is when t_i = min {||s_j - mean|| : s_j in the ball} is at most the beta-radius: one pass
    over d_rs [n, m] for every beta.
    """
    to_centre = jnp.linalg.norm(samples - jnp.mean(samples, axis=0), axis=1)  # [m]
    radii = quantiles(to_centre, ALPHAS)  # [A]
    in_ball = d_rs <= sup.knn_radius[:, None]  # [n, m]
    t = jnp.min(jnp.where(in_ball, to_centre[None, :], jnp.inf), axis=1)  # [n]
    return jnp.mean(t[None, :] <= radii[:, None], axis=1, dtype=samples.dtype)


def authentic_share(d_rs: jax.Array, sup: Supports) -> jax.Array:
    """The share of samples whose distance to their nearest held-out point x_i* exceeds x_i*'s distance to its own
    nearest held-out neighbour (a sample closer to x_i* than any other real point is deemed a copy)."""
    nearest = jnp.argmin(d_rs, axis=0)  # [m]
    return jnp.mean(jnp.min(d_rs, axis=0) > sup.nn_radius[nearest], dtype=d_rs.dtype)


def alpha_beta(samples: Data, real: Data, stats: Supports, ctx: Any = None) -> dict[str, jax.Array]:
    """alpha-precision, beta-recall (the integrated Delta-scores) and authenticity of samples [m, f] against the
    held-out set real [n, f], with the identity embedding.

    The paper embeds both sets with a one-class network trained on the real data, so that the real data fills a
    hypersphere; here the supports are balls in the space the group reads (the samples, or the classifier's
    features on an image source), without that network. On a multimodal truth such a ball also covers the empty
    space between the modes, so alpha-precision is lenient there; beta-recall's k-NN check and authenticity are
    local and do not share this limit.

    - alpha-precision: P(alpha) = share of samples within the real alpha-support (ball around the held-out mean,
      radius the alpha-quantile of held-out distances to it); Delta-precision = 1 - 2 mean_alpha |P(alpha) - alpha|.
    - beta-recall: R(beta) = share of held-out points whose nearest sample inside the samples' beta-support lies in
      their ``eval.k``-NN ball (``beta_recall_curve``); Delta-recall as above. The public code instead takes each
      held-out point's nearest sample overall, its 1-NN ball (k = 1) and the beta-quantile over those matched
      samples: about 0.5 for an independent draw from the truth. Here an independent draw scores about 0.95 in
      1-D and 2-D (n = 1000), but the k-NN balls grow with the dimension until every ball reaches samples of every
      radius: 0.41 in 8-D and 0.17 in 64-D for Gaussian data, so read beta_recall on low-dimensional data only.
    - authenticity: share of samples farther from their nearest held-out point than that point's nearest held-out
      neighbour (the paper's hypothesis test reduced to this rule, as its public code does). 0 when every sample
      copies a held-out point; for an independent draw it is 1 - P(the sample and its nearest real point are
      mutual nearest neighbours) = 1 - 1 / (2 - w_d) for a locally uniform density (w_d: the overlap of two unit
      balls at unit distance, as a share of one): 1/3 in 1-D, 0.38 in 2-D, not 1/2.

    The integrals are means over the 30-point grid ``ALPHAS``; the public code multiplies the sum by the grid step
    1/29 instead, which scales the deviation term by 30/29 and can give -1/29 for the worst curve.

    References:
        Alaa et al. 2022, "How Faithful is your Synthetic Data? Sample-level Metrics for Evaluating and Auditing
        Generative Models", ICML (the metrics' definitions and their sample estimators); the authors' public code
        (github.com/ahmedmalaa/evaluating-generative-models) for the 30-point grid and the authenticity rule.
    """
    del ctx
    d_rs = pairwise_distances(real, samples)  # [n, m]
    return {
        "alpha_precision": integrated_score(alpha_precision_curve(samples, stats)),
        "beta_recall": integrated_score(beta_recall_curve(samples, d_rs, stats)),
        "authenticity": authentic_share(d_rs, stats),
    }
