"""Distances between a generation's model (or its samples) and the truth (or a held-out real set), in JAX.

Closed-form metrics read the fitted parameters; sample-based metrics compare ``eval.n`` model samples with a
held-out real set of the same size, drawn once per run. Everything here runs inside the compiled loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import linalg
from madloop.data import DataSource
from madloop.models.gaussian import weighted_moments
from madloop.types import Data, GenerativeModel, Key

# Metrics from the fitted parameters (model has moments; truth has known moments).
MOMENT_METRICS = ("trace_ratio", "mean_sqerr", "logdet_ratio")
GAUSSIAN_METRICS = ("w2", "kl")  # Gaussian model vs Gaussian truth, closed form
PRDC_METRICS = ("precision", "recall", "density", "coverage")  # k-NN metrics on the held-out radii
SAMPLE_METRICS = ("sw2", "mmd", "fd", *PRDC_METRICS)
MODE_METRICS = ("modes", "hq")  # truth is a mixture of >= 2 components
DENSITY_METRICS = ("nll",)  # model has a log-density
CLASSIFIER_METRICS = ("class_entropy", "confidence")  # image source with a feature classifier (+ class_0...)
CURATION_METRICS = ("reward",)  # the curation's reward, averaged over the model's (uncurated) samples
ALL_METRICS = (
    MOMENT_METRICS
    + GAUSSIAN_METRICS
    + SAMPLE_METRICS
    + MODE_METRICS
    + DENSITY_METRICS
    + CLASSIFIER_METRICS
    + CURATION_METRICS
)
# On an image source, fd and precision / recall / density / coverage are computed in the classifier's feature
# space ("FID with a digits classifier"); sw2 and mmd stay in pixel space.
FEATURE_METRICS = ("fd", *PRDC_METRICS)


def class_columns(classes: int) -> tuple[str, ...]:
    """The predicted-class histogram's columns: class_0 ... class_{C-1} (the share of samples per class)."""
    return tuple(f"class_{c}" for c in range(classes))


class Context(NamedTuple):
    """What a metric may read besides the samples and parameters: the data source, the model family, the
    curation and the eval config."""

    source: DataSource
    model: GenerativeModel
    curation: Any
    eval: C.EvalConfig


def available(ctx: Context) -> dict[str, str | None]:
    """Every metric name -> None when it applies to this run, else why not (for error messages)."""
    source, model = ctx.source, ctx.model
    gaussian_pair = model.moments is not None and model.moments.gaussian and source.gaussian
    mixture_truth = source.mixture is not None and source.mixture.weights.shape[0] >= 2
    out: dict[str, str | None] = {}
    for name in ALL_METRICS + class_columns(source.classes if source.classifier is not None else 10):
        reason = None
        if name in MOMENT_METRICS and (source.cov is None or model.moments is None):
            reason = "needs a truth with known moments (data=gaussian, ring8, grid25, mixture)"
        elif name in GAUSSIAN_METRICS and not gaussian_pair:
            reason = "needs model=gaussian and data=gaussian (closed form)"
        elif name in MODE_METRICS and not mixture_truth:
            reason = "needs a mixture truth with >= 2 modes (data=ring8, grid25, mixture)"
        elif name in DENSITY_METRICS and model.density is None:
            reason = "needs a model with a log-density"
        elif (name in CLASSIFIER_METRICS or name.startswith("class_")) and source.classifier is None:
            reason = "needs an image source with a feature classifier (data=digits, mnist)"
        elif name in CURATION_METRICS and ctx.curation.reward is None:
            reason = "needs curation=k_choice (the reward it curates by)"
        out[name] = reason
    return out


def check(ctx: Context) -> None:
    """Checks ``eval.metrics`` against the metrics that apply."""
    names = ctx.eval.metrics
    if names is None:
        return
    avail = available(ctx)
    if len(names) == 0:
        raise C.ConfigError("eval.metrics", [], "name at least one metric (or null for all that apply)")
    if not all(isinstance(name, str) for name in names):
        raise C.ConfigError("eval.metrics", list(names), "must be a list of metric names")
    for name in names:
        if name not in avail:
            raise C.ConfigError("eval.metrics", list(names), f"unknown metric {name!r}; known: " + ", ".join(avail))
        if avail[name] is not None:
            raise C.ConfigError("eval.metrics", list(names), f"{name!r} {avail[name]}")


def select(ctx: Context) -> tuple[str, ...]:
    """The metrics a run computes: ``eval.metrics`` or every metric that applies."""
    if ctx.eval.metrics is not None:
        return tuple(ctx.eval.metrics)
    return tuple(name for name, why in available(ctx).items() if why is None)


# ------------------------------------------------------------------------------------------- building blocks


def pairwise_distances(a: Data, b: Data) -> jax.Array:
    """Euclidean distances [n, m] between rows of a [n, d] and b [m, d]."""
    sq = jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2.0 * a @ b.T
    return jnp.sqrt(jnp.clip(sq, 0.0))


def sort_floats(x: jax.Array) -> jax.Array:
    """Sorts float32 values along the last axis through order-preserving int32 keys.

    XLA's CPU sort with the float comparator (which orders NaNs totally) is about 6x slower than its integer
    sort. Flipping the magnitude bits of negative floats makes the int32 order equal the float order.
    """
    bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    keys = jnp.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    keys = jnp.sort(keys, axis=-1)
    return jax.lax.bitcast_convert_type(jnp.where(keys < 0, keys ^ 0x7FFFFFFF, keys), jnp.float32)


def kth_smallest(values: jax.Array, k: int) -> jax.Array:
    """The entry at sorted position k (0-based) along the last axis: [..., m] -> [...].

    k rounds of "remove one argmin" then a min: O(k m) per row. XLA's CPU sort and top_k are an order of
    magnitude slower than this for the small k of k-NN metrics (benchmarks/README: 2.4 s vs 0.16 s for
    16 x 1000 x 1000). Removing one occurrence per round keeps ties exact, as sorting would.
    """
    cols = jnp.arange(values.shape[-1])
    for _ in range(k):
        values = jnp.where(cols == jnp.argmin(values, axis=-1)[..., None], jnp.inf, values)
    return jnp.min(values, axis=-1)


def kth_neighbour_distance(points: Data, k: int) -> jax.Array:
    """Distance [n] from each point to its k-th nearest other point (position k of its sorted row, where
    position 0 is the point itself)."""
    return kth_smallest(pairwise_distances(points, points), k)


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
    inner = l1.T @ cov2 @ l1
    if cov1.shape[-1] <= JACOBI_MAX_DIM:
        eig = linalg.eigvalsh(inner)
    else:
        # Feature spaces (64-d): these Jacobi sweeps cost O(d^5). LAPACK's eigh is the one LAPACK call of an image
        # loop, so the deadlock of two concurrent calls (madloop.linalg) cannot arise. (A Newton-Schulz square
        # root was tried: float32 rounding makes the zero eigenvalues of dead-ReLU features negative, and it
        # diverges on them.)
        eig = jnp.linalg.eigvalsh(0.5 * (inner + jnp.swapaxes(inner, -1, -2)))
    cross = jnp.sum(jnp.sqrt(jnp.clip(eig, 0.0)))
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
    return 0.5 * (trace + maha - d + logdet_q - logdet_p)


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
    w2 = jnp.sum(jnp.asarray(widths, jnp.float32) * (x_proj_sorted[:, i] - y_proj[:, j]) ** 2, axis=1)
    return jnp.sqrt(jnp.mean(w2))


def rbf_mean(a: Data, b: Data, bandwidth: jax.Array, exclude_diagonal: bool) -> jax.Array:
    """Mean of exp(-||a_i - b_j||^2 / (2 bandwidth^2)), over i != j when exclude_diagonal (a is b)."""
    k = jnp.exp(-(pairwise_distances(a, b) ** 2) / (2.0 * bandwidth**2))
    if not exclude_diagonal:
        return jnp.mean(k)
    n = a.shape[0]
    return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))


def prdc(real_radii: jax.Array, real: Data, fake: Data, k: int) -> dict[str, jax.Array]:
    """Precision, recall (Kynkäänniemi et al. 2019), density, coverage (Naeem et al. 2020) with k-NN balls.

    Args:
        real_radii: [n] distance of each real sample to its k-th nearest real neighbour.
        real: [n, d]; fake: [m, d].
    Returns:
        dict of four scalars. Strict inequalities, as the reference implementation (prdc) uses.
    """
    d_rf = pairwise_distances(real, fake)  # [n, m]
    inside = d_rf < real_radii[:, None]
    fake_radii = kth_neighbour_distance(fake, k)
    return {
        "precision": jnp.mean(jnp.any(inside, axis=0)),
        "recall": jnp.mean(jnp.any(d_rf < fake_radii[None, :], axis=1)),
        "density": jnp.mean(jnp.sum(inside, axis=0)) / k,
        "coverage": jnp.mean(jnp.min(d_rf, axis=1) < real_radii),
    }


def mode_stats(samples: Data, source: DataSource, share: float) -> dict[str, jax.Array]:
    """Modes covered and the share of high-quality samples for a mixture truth.

    A sample is "within 3 sigma" of component k when its Mahalanobis distance is below the radius whose
    chi-square(d) mass equals that of the 3-sigma disc in 2-D (1 - e^-4.5), so r = 3 exactly for d = 2.
    ``modes`` counts components holding at least ``share`` of the samples; ``hq`` is the share of samples
    within 3 sigma of some component.

    References:
        Srivastava et al. 2017 (VEEGAN) and Metz et al. 2017 (unrolled GANs): the ring/grid mode counts.
    """
    mix = source.mixture
    d = mix.means.shape[1]
    from scipy.special import gammaincinv  # here: importing scipy.stats at start-up cost 1.2 s

    r2 = 2.0 * float(gammaincinv(d / 2.0, 1.0 - np.exp(-4.5)))  # the chi2(d) quantile of 1 - exp(-4.5)
    chol = linalg.pivoted_cholesky(mix.covs)  # [K, d, d]
    diff = samples[None, :, :] - mix.means[:, None, :]  # [K, n, d]
    z = linalg.whiten(chol, jnp.swapaxes(diff, 1, 2))  # [K, d, n]
    within = jnp.sum(z**2, axis=1) <= r2  # [K, n]
    return {
        "modes": jnp.sum(jnp.mean(within, axis=1) >= share).astype(jnp.float32),
        "hq": jnp.mean(jnp.any(within, axis=0)),
    }


# --------------------------------------------------------------------------------------------- the evaluator


class Reference(NamedTuple):
    """Statistics of the held-out real set, computed once per run and shared by every seed and generation.

    Only the statistics the selected metrics read are computed (``make_reference(..., names=...)``); the others
    are None, so a run of parameter metrics does not pay for the held-out set's pairwise distances and sorts.

    Attributes:
        heldout: [n, d] held-out real samples.
        radii: [n] k-th nearest-neighbour radii within the held-out set.
        directions: [L, d] sliced-W2 directions (fixed for the run: common random numbers across generations).
        proj_sorted: [L, n] sorted projections of the held-out set.
        bandwidth: RBF bandwidth for MMD, the median pairwise distance of the held-out set (fixed per run,
            so MMD values are comparable across generations and seeds).
        k_real: mean RBF kernel over distinct held-out pairs (the constant term of unbiased MMD^2).
        mean: [d]; cov: [d, d] held-out mean and (unbiased) covariance, for ``fd``.
        classifier: the feature classifier's weights on an image source (then ``mean``, ``cov`` and ``radii``
            are of the held-out features [n, f], not of the pixels), else None.
        features: [n, f] the held-out images' classifier features, or None.
    """

    heldout: Data
    radii: jax.Array | None = None
    directions: jax.Array | None = None
    proj_sorted: jax.Array | None = None
    bandwidth: jax.Array | None = None
    k_real: jax.Array | None = None
    mean: jax.Array | None = None
    cov: jax.Array | None = None
    classifier: Any = None
    features: jax.Array | None = None


def _make_reference(
    key: Key,
    heldout: Data,
    k: int,
    projections: int,
    names: tuple[str, ...] = ALL_METRICS,
    classifier: Any = None,
) -> Reference:
    """Precomputes the held-out statistics that the metrics ``names`` read (one call per run).

    Args:
        key: the key of the sliced-W2 directions.
        heldout: [n, d] held-out real samples.
        k: the k of the k-NN radii (precision, recall, density, coverage).
        projections: the number L of sliced-W2 directions.
        names: the selected metrics; statistics no metric reads are left None.
        classifier: a ``madloop.classifier.Classifier`` (image sources): fd and the k-NN metrics then use the
            held-out images' features.
    """
    n, d = heldout.shape
    ref = Reference(heldout=heldout)
    feats = heldout
    if classifier is not None and any(m in names for m in FEATURE_METRICS):
        feats = classifier.apply(classifier.params, heldout)[0]
        ref = ref._replace(features=feats)
    if classifier is not None and any(m in FEATURE_METRICS or reads_classes(m) for m in names):
        ref = ref._replace(classifier=classifier.params)
    if "sw2" in names:
        directions = jax.random.normal(key, (projections, d))
        directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
        ref = ref._replace(directions=directions, proj_sorted=sort_floats(directions @ heldout.T))
    if "mmd" in names:
        dist = pairwise_distances(heldout, heldout)
        bandwidth = jnp.median(dist[jnp.triu_indices(n, 1)])
        ref = ref._replace(bandwidth=bandwidth, k_real=rbf_mean(heldout, heldout, bandwidth, exclude_diagonal=True))
    if any(m in names for m in PRDC_METRICS):
        ref = ref._replace(radii=kth_neighbour_distance(feats, k))
    if "fd" in names:
        mean, cov = weighted_moments(feats, jnp.ones((n,), feats.dtype), unbiased=True)
        ref = ref._replace(mean=mean, cov=cov)
    return ref


def sample_metrics(
    names: tuple[str, ...], samples: Data, ref: Reference, cfg: C.EvalConfig, source: DataSource
) -> dict[str, jax.Array]:
    """Sample-based metrics of samples [n, d] against the held-out reference."""
    out: dict[str, jax.Array] = {}
    if "sw2" in names:
        out["sw2"] = sliced_w2(ref.proj_sorted, samples, ref.directions)
    if "mmd" in names:
        # Unbiased MMD^2 (Gretton et al. 2012, eq. 3); may be slightly negative when the two sets agree.
        k_ff = rbf_mean(samples, samples, ref.bandwidth, exclude_diagonal=True)
        k_rf = rbf_mean(ref.heldout, samples, ref.bandwidth, exclude_diagonal=False)
        out["mmd"] = k_ff + ref.k_real - 2.0 * k_rf
    feats, real = samples, ref.heldout
    if ref.classifier is not None:  # an image source: feature-space metrics and the predicted classes
        feats, logits = source.classifier().apply(ref.classifier, samples)
        real = ref.features if ref.features is not None else real
        out.update(class_stats(logits, source.classes))
    if "fd" in names:
        mean, cov = weighted_moments(feats, jnp.ones(feats.shape[:1], feats.dtype), unbiased=True)
        out["fd"] = frechet_distance(mean, cov, ref.mean, ref.cov)
    if any(n in names for n in PRDC_METRICS):
        out.update({k: v for k, v in prdc(ref.radii, real, feats, cfg.k).items() if k in names})
    if any(n in names for n in MODE_METRICS):
        out.update({k: v for k, v in mode_stats(samples, source, cfg.mode_share).items() if k in names})
    return out


def class_stats(logits: jax.Array, classes: int) -> dict[str, jax.Array]:
    """The classifier's reading of samples: the predicted-class histogram (``class_c``: the share of samples whose
    most likely class is c), its entropy in nats (``class_entropy``: log C when every class is equally
    predicted, 0 when one class takes all: mode collapse) and the mean top-class probability (``confidence``).

    Args:
        logits: [n, C] classifier logits of n samples.
        classes: C.
    """
    hist = jnp.mean(jax.nn.one_hot(jnp.argmax(logits, axis=1), classes, dtype=jnp.float32), axis=0)
    out = {name: hist[c] for c, name in enumerate(class_columns(classes))}
    out["class_entropy"] = -jnp.sum(jnp.where(hist > 0, hist * jnp.log(jnp.where(hist > 0, hist, 1.0)), 0.0))
    out["confidence"] = jnp.mean(jnp.max(jax.nn.softmax(logits, axis=1), axis=1))
    return out


def reads_classes(name: str) -> bool:
    """Whether a metric reads the classifier's predicted classes (class_entropy, confidence, class_c)."""
    return name in CLASSIFIER_METRICS or name.startswith("class_")


def params_metrics(
    names: tuple[str, ...], params, model: GenerativeModel, source: DataSource, ref: Reference
) -> dict[str, jax.Array]:
    """Metrics that read the fitted parameters: moments vs the truth's, closed-form w2/kl, held-out nll."""
    out: dict[str, jax.Array] = {}
    if any(n in names for n in MOMENT_METRICS + GAUSSIAN_METRICS):
        mean, cov = model.moments.moments(params)
        if "trace_ratio" in names:
            out["trace_ratio"] = jnp.trace(cov) / jnp.trace(source.cov)
        if "mean_sqerr" in names:
            out["mean_sqerr"] = jnp.sum((mean - source.mean) ** 2)
        if "logdet_ratio" in names:  # log(det cov / det cov_true)
            out["logdet_ratio"] = linalg.logdet(cov) - linalg.logdet(source.cov)
        if "w2" in names:
            out["w2"] = jnp.sqrt(jnp.clip(frechet_distance(mean, cov, source.mean, source.cov), 0.0))
        if "kl" in names:  # KL(truth || model): the expected excess code length of the model on real data
            out["kl"] = gaussian_kl(source.mean, source.cov, mean, cov)
    if "nll" in names:
        out["nll"] = -jnp.mean(model.density.log_prob(params, ref.heldout))
    return out


def is_sample_metric(name: str) -> bool:
    """Whether a metric reads model samples."""
    return name in SAMPLE_METRICS + MODE_METRICS + CURATION_METRICS or reads_classes(name)


def needs_samples(names: tuple[str, ...]) -> bool:
    """Whether any selected metric reads model samples."""
    return any(is_sample_metric(n) for n in names)


def needs_classifier(names: tuple[str, ...]) -> bool:
    """Whether a selected metric reads the image classifier."""
    return any(m in FEATURE_METRICS or reads_classes(m) for m in names)


def make_reference(key: Key, heldout: Data, ctx: Context, names: tuple[str, ...]) -> Reference:
    """The held-out statistics the metrics ``names`` read (one call per run)."""
    source = ctx.source
    classifier = source.classifier() if source.classifier is not None and needs_classifier(names) else None
    return _make_reference(key, heldout, ctx.eval.k, ctx.eval.projections, names, classifier)


def evaluate_params(names: tuple[str, ...], params, ctx: Context, ref: Reference) -> dict[str, jax.Array]:
    """Metrics that read the fitted parameters (of the base family)."""
    return params_metrics(names, params, ctx.model, ctx.source, ref)


def evaluate_samples(names: tuple[str, ...], samples: Data, ctx: Context, ref: Reference) -> dict[str, jax.Array]:
    """Metrics that read model samples [n, d]."""
    out = sample_metrics(names, samples, ref, ctx.eval, ctx.source)
    if "reward" in names:  # the model's expected reward under the curation's reward (uncurated samples)
        out["reward"] = jnp.mean(ctx.curation.reward(samples))
    return out
