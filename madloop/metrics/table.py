"""The metric groups, one entry each in ``GROUPS``: adding a metric is one entry here."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop import linalg
from madloop.metrics import discrete as D
from madloop.metrics.distances import (
    class_stats,
    frechet_distance,
    gaussian_kl,
    kth_neighbour_distance,
    kth_smallest,
    mode_stats,
    pairwise_distances,
    prdc,
    rbf_kernel_means,
    sliced_w2,
    sort_floats,
    tail_stats,
)
from madloop.metrics.fidelity import (
    PolynomialReference,
    Supports,
    VendiReference,
    alpha_beta,
    kid,
    median_bandwidth,
    polynomial_reference,
    real_supports,
    vendi,
)
from madloop.metrics.group import (
    FEATURES,
    LOGITS,
    LOOP,
    MOMENTS,
    PARAMS,
    SAMPLES,
    Columns,
    Context,
    MetricGroup,
    always,
)
from madloop.models.gaussian import weighted_moments
from madloop.types import Data, Key

# ----------------------------------------------------------------------------------------- when a group applies


def known_moments(ctx: Context) -> str | None:
    """The model has moments and the truth known moments."""
    if ctx.source.cov is None or ctx.model.moments is None:
        return "needs a truth with known moments (data=gaussian, ring8, grid25, mixture, rosenbrock, linear)"
    return None


def gaussian_pair(ctx: Context) -> str | None:
    """The fitted model is exactly Gaussian and so is the truth (closed-form distances)."""
    moments = ctx.model.moments
    if not (moments is not None and moments.gaussian and ctx.source.gaussian):
        return "needs model=gaussian and data=gaussian (closed form)"
    return None


def mixture_truth(ctx: Context) -> str | None:
    """The truth is a mixture of at least two components."""
    mix = ctx.source.mixture
    if not (mix is not None and mix.weights.shape[0] >= 2):
        return "needs a mixture truth with >= 2 modes (data=ring8, grid25, mixture)"
    return None


def unequal_weights(ctx: Context) -> str | None:
    """The truth is a mixture whose components have unequal weights (its rare modes are defined)."""
    if mixture_truth(ctx) is not None:
        return mixture_truth(ctx)
    w = np.asarray(ctx.source.mixture.weights)
    if np.all(w == w[0]):
        return "needs a mixture truth with unequal weights (data.weights or data.zipf)"
    return None


def known_density(ctx: Context) -> str | None:
    """The truth's log-density is known (``DataSource.log_prob``: in closed form, or by quadrature along the curve
    of moons, swiss roll and circles)."""
    if ctx.source.log_prob is None:
        return "needs a truth with a known density (data=gaussian, ring8, grid25, mixture, rosenbrock, moons, ...)"
    return None


def has_density(ctx: Context) -> str | None:
    """The model has a log-density."""
    return "needs a model with a log-density" if ctx.model.density is None else None


def has_classifier(ctx: Context) -> str | None:
    """The source is an image source with a feature classifier."""
    if ctx.source.classifier is None:
        return "needs an image source with a feature classifier (data=digits, mnist, cifar10)"
    return None


def regression_pair(ctx: Context) -> str | None:
    """The model is a regressor and the truth a regression truth."""
    if ctx.source.linear is None or ctx.model.regression is None:
        return "needs model=linear and data=linear (a regressor of a regression truth)"
    return None


def has_reward(ctx: Context) -> str | None:
    """The run curates by a reward."""
    return "needs curation=k_choice (the reward it curates by)" if ctx.curation.reward is None else None


def reports_candidates(ctx: Context) -> str | None:
    """The run's curation reports on its candidates (a verifier)."""
    return None if ctx.curation.report else "needs curation=verifier (its report on each generation's candidates)"


def class_count(ctx: Context) -> int:
    """C of the class histogram (10 where there is no classifier, for the error message's list of names)."""
    return ctx.source.classes if ctx.source.classifier is not None else 10


# ------------------------------------------------------------------------------------------ held-out statistics


class Sliced(NamedTuple):
    """The sliced-W2 reference: directions [L, d] (fixed for the run: common random numbers across generations)
    and the held-out set's sorted projections on them [L, n]."""

    directions: jax.Array
    proj_sorted: jax.Array


class Kernel(NamedTuple):
    """The MMD reference, fixed per run so that MMD values are comparable across generations and seeds.

    Attributes:
        bandwidths: [S] RBF bandwidths, largest first: the median pairwise distance of the held-out set (``mmd``),
            then geometric steps down to the local scale (``mmd_local``): the median distance of a held-out point
            to its ``eval.k``-th nearest held-out neighbour. On the ring of 8 the first is about the ring's radius
            and the last about a mode's sd, so the family sees both mode weights and within-mode collapse.
        k_real: [S] the mean RBF kernel over distinct held-out pairs at each bandwidth (the constant term of
            unbiased MMD^2).
    """

    bandwidths: jax.Array
    k_real: jax.Array


MMD_SCALES = 4  # bandwidths of the MMD family, from the median heuristic down to the local scale


class Gaussian(NamedTuple):
    """The held-out mean [f] and (unbiased) covariance [f, f], for ``fd``."""

    mean: jax.Array
    cov: jax.Array


def sliced_reference(key: Key, real: Data, ctx: Context) -> Sliced:
    """``eval.projections`` random unit directions and the held-out set's sorted projections."""
    directions = jax.random.normal(key, (ctx.eval.projections, real.shape[1]))
    directions = directions / jnp.linalg.norm(directions, axis=1, keepdims=True)
    return Sliced(directions, sort_floats(directions @ real.T))


def kernel_reference(key: Key, real: Data, ctx: Context) -> Kernel:
    """The MMD bandwidths (median heuristic down to the local k-NN scale) and the held-out set's mean kernels."""
    del key
    dist = pairwise_distances(real, real)
    wide = jnp.median(dist[jnp.triu_indices(real.shape[0], 1)])
    # (floored: a finite set drawn with repeats can put k duplicates at distance 0)
    local = jnp.clip(jnp.median(kth_smallest(dist, ctx.eval.k)), 1e-6 * wide, wide)
    steps = jnp.arange(MMD_SCALES, dtype=real.dtype) / (MMD_SCALES - 1)
    bandwidths = wide ** (1.0 - steps) * local**steps
    bandwidths = bandwidths.at[0].set(wide)  # the median heuristic exactly (``mmd`` as before the family)
    return Kernel(bandwidths, rbf_kernel_means(real, real, bandwidths, exclude_diagonal=True))


def gaussian_reference(key: Key, real: Data, ctx: Context) -> Gaussian:
    """The held-out set's mean and unbiased covariance."""
    del key, ctx
    return Gaussian(*weighted_moments(real, jnp.ones(real.shape[:1], real.dtype), unbiased=True))


def radii_reference(key: Key, real: Data, ctx: Context) -> jax.Array:
    """[n] the distance of each held-out point to its ``eval.k``-th nearest held-out neighbour."""
    del key
    return kth_neighbour_distance(real, ctx.eval.k)


def kid_reference(key: Key, real: Data, ctx: Context) -> PolynomialReference:
    """The held-out term of KID: the mean cubic polynomial kernel over distinct held-out pairs."""
    del key, ctx
    return polynomial_reference(real)


def vendi_reference(key: Key, real: Data, ctx: Context) -> VendiReference:
    """The Vendi similarity's bandwidth: the held-out median pairwise distance (as ``kernel_reference``'s, computed
    here so that the group does not need the ``mmd`` group selected)."""
    del key, ctx
    return median_bandwidth(real)


def support_reference(key: Key, real: Data, ctx: Context) -> Supports:
    """The real alpha-supports and the held-out 1-NN and ``eval.k``-NN radii (alpha-precision, beta-recall,
    authenticity)."""
    del key
    return real_supports(real, ctx.eval.k)


# ---------------------------------------------------------------------------------------------------- metrics


def moment_errors(moments: tuple[jax.Array, jax.Array], real: Data, stats: None, ctx: Context) -> dict:
    """The fitted moments against the truth's: trace ratio, squared mean error, log det ratio."""
    del real, stats
    mean, cov = moments
    src = ctx.source
    return {
        "trace_ratio": jnp.trace(cov) / jnp.trace(src.cov),
        "mean_sqerr": jnp.sum((mean - src.mean) ** 2),
        "logdet_ratio": linalg.logdet(cov) - linalg.logdet(src.cov),  # log(det cov / det cov_true)
    }


def gaussian_distances(moments: tuple[jax.Array, jax.Array], real: Data, stats: None, ctx: Context) -> dict:
    """Closed-form W2 and KL(truth || model), the expected excess code length of the model on real data."""
    del real, stats
    mean, cov = moments
    src = ctx.source
    return {
        "w2": jnp.sqrt(jnp.clip(frechet_distance(mean, cov, src.mean, src.cov), 0.0)),
        "kl": gaussian_kl(src.mean, src.cov, mean, cov),
    }


def sw2(samples: Data, real: Data, stats: Sliced, ctx: Context) -> dict:
    """Sliced W2 against the held-out set's projections."""
    del real, ctx
    return {"sw2": sliced_w2(stats.proj_sorted, samples, stats.directions)}


def mmd(samples: Data, real: Data, stats: Kernel, ctx: Context) -> dict:
    """Unbiased MMD^2 with RBF kernels at the run's bandwidths; may be slightly negative when the two sets agree.

    ``mmd``: the median-heuristic bandwidth (sees the layout of the modes, blind to their widths); ``mmd_local``:
    the local k-NN scale (sees within-mode collapse and blur); ``mmd_multi``: the sum over the ``MMD_SCALES``
    bandwidths (the MMD of the sum kernel, characteristic at every scale; Li et al. 2017, MMD GAN, use such a
    mixture).

    References:
        Gretton et al. 2012, "A Kernel Two-Sample Test", eq. 3.
    """
    del ctx
    k_ff = rbf_kernel_means(samples, samples, stats.bandwidths, exclude_diagonal=True)
    k_rf = rbf_kernel_means(real, samples, stats.bandwidths, exclude_diagonal=False)
    per_scale = k_ff + stats.k_real - 2.0 * k_rf  # [S]
    return {"mmd": per_scale[0], "mmd_local": per_scale[-1], "mmd_multi": jnp.sum(per_scale)}


def fd(feats: Data, real: Data, stats: Gaussian, ctx: Context) -> dict:
    """Fréchet distance between Gaussians fitted to the samples and to the held-out set (FID on an image source)."""
    del real, ctx
    mean, cov = weighted_moments(feats, jnp.ones(feats.shape[:1], feats.dtype), unbiased=True)
    return {"fd": frechet_distance(mean, cov, stats.mean, stats.cov)}


def prdc_metrics(feats: Data, real: Data, radii: jax.Array, ctx: Context) -> dict:
    """Precision, recall, density and coverage with the held-out k-NN radii."""
    return prdc(radii, real, feats, ctx.eval.k)


def modes(samples: Data, real: Data, stats: None, ctx: Context) -> dict:
    """Modes by nearest-mode assignment, modes covered by high-quality samples, the quality share, the mode-share
    error (``distances.mode_stats``)."""
    del real, stats
    return mode_stats(samples, ctx.source, ctx.eval.mode_share)


def rare(samples: Data, real: Data, stats: None, ctx: Context) -> dict:
    """Survival of the rarest quarter of the modes (``distances.tail_stats``)."""
    del real, stats
    return tail_stats(samples, ctx.source, ctx.eval.mode_share)


TAIL_LEVEL = 0.05  # tail_mass: the truth's lowest-density 5% (an expected 50 of 1000 samples)
TAIL_DRAWS = 1 << 16  # truth samples that locate the tail's log-density threshold (its quantile's sd ~ 0.002)


def tail_reference(key: Key, real: Data, ctx: Context) -> jax.Array:
    """The truth's TAIL_LEVEL quantile of its own log-density, from TAIL_DRAWS fresh truth samples."""
    del real
    log_p = ctx.source.log_prob(ctx.source.sample(jax.random.fold_in(key, 7), TAIL_DRAWS))
    return jnp.quantile(log_p, TAIL_LEVEL)


def tail(samples: Data, real: Data, threshold: jax.Array, ctx: Context) -> dict:
    """``tail_mass``: the share of samples in the truth's lowest-density TAIL_LEVEL region, over TAIL_LEVEL.

    1 for the truth; below 1 when the model's samples stay out of the truth's tails (a shrinking Gaussian: its
    tails go first), above 1 when they fall in low-density regions (a hotter model, or blur between modes).
    """
    del real
    log_p = ctx.source.log_prob(samples)
    return {"tail_mass": jnp.mean(log_p < threshold, dtype=log_p.dtype) / TAIL_LEVEL}


def nll(params, real: Data, stats: None, ctx: Context) -> dict:
    """The model's negative log-likelihood of the held-out set, per sample."""
    del stats
    return {"nll": -jnp.mean(ctx.model.density.log_prob(params, real))}


def classes(logits: jax.Array, real: Data, stats: None, ctx: Context) -> dict:
    """The classifier's reading of the samples: class histogram, its entropy, mean confidence."""
    del real, stats
    return class_stats(logits, ctx.source.classes)


def regression(params, real: Data, stats: None, ctx: Context) -> dict:
    """``test_error``: the excess risk E_x[(x . (w - w*))^2] = (w - w*)^T S (w - w*) in closed form (S the features'
    diagonal covariance); ``weight_error``: ||w - w*||^2 (Dohmatob et al. 2024's test error and weight error)."""
    del real, stats
    truth = ctx.source.linear
    diff = ctx.model.regression.weights(params) - truth.weights
    return {"test_error": jnp.sum(truth.variances * diff**2), "weight_error": jnp.sum(diff**2)}


def verifier(report: dict, real: Data, stats: None, ctx: Context) -> dict:
    """The verifier's report on generation g - 1's candidates for generation g (``curation.VERIFIER_REPORT``):
    ``kept_share``, ``false_accept`` and ``false_reject`` (against the noiseless verdict), ``unfilled`` (the share
    of slots the cap left to rejected candidates)."""
    del real, stats, ctx
    return dict(report)


def reward(samples: Data, real: Data, stats: None, ctx: Context) -> dict:
    """The model's expected reward under the curation's reward (of its own, uncurated samples)."""
    del real, stats
    return {"reward": jnp.mean(ctx.curation.reward(samples))}


# ------------------------------------------------------------------------------------------------- the table

# In the order ``available`` lists the names (the column order of metrics.csv). On an image source fd and the
# k-NN metrics work in the feature classifier's feature space ("FID with a digits classifier"); sw2 and mmd stay in
# pixel space.
GROUPS: tuple[MetricGroup, ...] = (
    MetricGroup("moments", ("trace_ratio", "mean_sqerr", "logdet_ratio"), known_moments, MOMENTS, moment_errors),
    MetricGroup("gaussian", ("w2", "kl"), gaussian_pair, MOMENTS, gaussian_distances),
    MetricGroup("sw2", ("sw2",), always, SAMPLES, sw2, prepare=sliced_reference),
    MetricGroup(
        "mmd", ("mmd", "mmd_local", "mmd_multi"), always, SAMPLES, mmd, prepare=kernel_reference, pairwise=True
    ),
    MetricGroup("fd", ("fd",), always, FEATURES, fd, prepare=gaussian_reference),
    MetricGroup(
        "prdc",
        ("precision", "recall", "density", "coverage"),
        always,
        FEATURES,
        prdc_metrics,
        radii_reference,
        pairwise=True,
    ),
    # KID, the Vendi scores and the alpha-beta group also read the classifier's features on an image source.
    MetricGroup("kid", ("kid",), always, FEATURES, kid, prepare=kid_reference, pairwise=True),
    MetricGroup(
        "vendi", ("vendi", "vendi2"), always, FEATURES, vendi, prepare=vendi_reference, default=False, pairwise=True
    ),
    MetricGroup(
        "alpha_beta",
        ("alpha_precision", "beta_recall", "authenticity"),
        always,
        FEATURES,
        alpha_beta,
        prepare=support_reference,
        default=False,
        pairwise=True,
    ),
    MetricGroup("modes", ("modes", "modes_hq", "hq", "mode_tv"), mixture_truth, SAMPLES, modes),
    MetricGroup("rare", ("rare_mass", "rare_modes"), unequal_weights, SAMPLES, rare),
    MetricGroup("tail", ("tail_mass",), known_density, SAMPLES, tail, prepare=tail_reference),
    MetricGroup("density", ("nll",), has_density, PARAMS, nll),
    MetricGroup("regression", ("test_error", "weight_error"), regression_pair, PARAMS, regression),
    MetricGroup(
        "classifier",
        ("class_entropy", "confidence"),
        has_classifier,
        LOGITS,
        classes,
        columns=Columns("class_", class_count),
    ),
    MetricGroup("curation", ("reward",), has_reward, SAMPLES, reward),
    MetricGroup(
        "verifier", ("kept_share", "false_accept", "false_reject", "unfilled"), reports_candidates, LOOP, verifier
    ),
    # Discrete sources (madloop.metrics.discrete): exact chain laws, held-out cross-entropy, distinct-n.
    MetricGroup(
        "chain",
        ("kl_forward", "kl_reverse", "entropy", "gini_simpson", "support", "ngram_support", "tail_lost", "zipf_fit"),
        D.chain_pair,
        PARAMS,
        D.chain_laws,
    ),
    MetricGroup("xent", ("xent", "perplexity"), D.discrete_density, PARAMS, D.heldout_xent),
    MetricGroup("kl_rate", ("kl_rate",), D.known_chain_density, PARAMS, D.kl_rate, prepare=D.truth_log_prob),
    MetricGroup("distinct", ("distinct_1",), D.discrete_source, SAMPLES, D.distinct_unigrams),
    MetricGroup("distinct_seq", ("distinct_2", "distinct_3"), D.long_rows, SAMPLES, D.distinct_ngrams),
)
