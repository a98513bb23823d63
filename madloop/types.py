"""Type aliases, the family interface with its optional capabilities, the knobs and the loop state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

Key = jax.Array  # a PRNG key (jax.random.key or PRNGKey)
Array = jax.Array
Data = jax.Array  # Float[Array, "n d"]: a batch of samples
Weights = jax.Array  # Float[Array, "n"]: non-negative frequency weights; 0 marks an empty slot
Params = Any  # a PyTree of arrays (a model family's parameters)
Scalar = jax.Array  # Float[Array, ""]
# The traced knobs of one run, {name: scalar} (madloop.knobs.KNOBS names them): floats in the run's precision,
# counts int32. A dict, so a plug-in can add a knob with one table entry; vmapped over runs like any PyTree.
Knobs = dict[str, jax.Array]


class Density(NamedTuple):
    """A tractable density (likelihood metrics such as ``nll``).

    Attributes:
        log_prob: ``log_prob(params, x) -> [n]`` for x [n, d].
    """

    log_prob: Callable[[Params, Data], jax.Array]


class Moments(NamedTuple):
    """The fitted model's first two moments (metrics against a truth with known moments).

    Attributes:
        moments: ``moments(params) -> (mean [d], cov [d, d])`` of the model at lam = 1.
        gaussian: the fitted model is exactly N(mean, cov), so closed-form Gaussian distances (w2, kl) apply.
    """

    moments: Callable[[Params], tuple[jax.Array, jax.Array]]
    gaussian: bool = False


class Statistics(NamedTuple):
    """Sufficient statistics, so that an accumulating pool can be kept as statistics (``loop.stats_pool``):
    O(n) time per generation and O(1) memory instead of O(G n).

    Attributes:
        stats: ``stats(x, w) -> s``: the statistics (a PyTree of fixed shapes, with a ``count`` leaf: the total
            weight) of weighted data x [n, d], w [n].
        merge: ``merge(s1, s2) -> s``: the statistics of the union.
        scale: ``scale(s, c) -> s``: every weight times c.
        fit: ``fit(s) -> params``: equal to the family's ``fit`` on the data.
    """

    stats: Callable[[Data, Weights], Any]
    merge: Callable[[Any, Any], Any]
    scale: Callable[[Any, jax.Array], Any]
    fit: Callable[[Any], Params]


class Guidable(NamedTuple):
    """What SIMS negative guidance needs of a family (diffusion).

    Attributes:
        finetune: ``finetune(key, params, x, w, steps, knobs) -> params``: a copy of the fitted model trained
            for ``steps`` (static) more steps on weighted data (the auxiliary model).
        guided_sample: ``guided_sample(key, base, aux, n, knobs) -> x`` [n, d]: sampling with the extrapolated
            score (1 + omega) s_base - omega s_aux, omega = ``knobs["omega"]``.
    """

    finetune: Callable[..., Params]
    guided_sample: Callable[..., Data]


class Regression(NamedTuple):
    """A regressor of a row's last column on the others (the supervised family, ``model=linear``).

    Attributes:
        weights: ``weights(params) -> [d]``: the fitted weight vector w; the prediction for row [x, y] is x . w.
    """

    weights: Callable[[Params], jax.Array]


class Chain(NamedTuple):
    """The fitted model as an order-k Markov chain over tokens with start padding (``madloop.tokens``): exact
    sequence laws against a discrete truth (KL both ways, entropy, support kept).

    Attributes:
        order: k (static).
        trans: ``trans(params) -> [(V + 1)^k, V]``: every context's next-token probabilities at lam = 1, without
            top-k or top-p.
    """

    order: int
    trans: Callable[[Params], jax.Array]


class GenerativeModel(NamedTuple):
    """A model family as pure functions over PyTrees, with its optional capabilities.

    Attributes:
        init: ``init(key, x, w) -> params``: fresh parameters for data ``x`` [n, d] with weights ``w`` [n]
            (a family may look at the data, e.g. k-means++ seeding).
        fit: ``fit(key, params, x, w, warm, knobs) -> params``: fit to weighted data. ``warm`` is a static Python
            bool: False means ``params`` came from ``init`` and the from-scratch budget applies (generation 0,
            or every generation when ``loop.warm_start=false``); True means ``params`` are the previous
            generation's and the warm-start budget applies. ``knobs`` are the run's traced knobs (e.g. a
            learning rate).
        sample: ``sample(key, params, n, knobs) -> x`` [n, d]: ``n`` static; ``knobs["lam"]`` is the traced
            sampling bias (1 = the fitted model; < 1 colder; > 1 hotter).
        density: a log-density, or None.
        moments: the fitted moments, or None.
        statistics: sufficient statistics, or None.
        guidance: what SIMS guidance needs, or None.
        labelled: the family trains on rows [x, label] (a class-conditional model): the loop appends the truth's
            label to real samples, and the family's samples carry the label they were generated for.
        regression: the fitted weights of a regressor (rows [x, y] of a regression truth), or None.
        tokens: the family models token rows (a discrete source's; its samples are token ids and its density a
            probability mass); only such a family runs on a discrete source.
        chain: the fitted model as a Markov chain over tokens (categorical, n-gram), or None.
        warm_traced: ``fit`` also takes ``warm`` as a traced bool (a closed-form fit ignores it; EM runs a traced
            number of iterations), so the loop compiles one fit for generation 0 and the later generations.
    """

    init: Callable[..., Params]
    fit: Callable[..., Params]
    sample: Callable[..., Data]
    density: Density | None = None
    moments: Moments | None = None
    statistics: Statistics | None = None
    guidance: Guidable | None = None
    labelled: bool = False
    regression: Regression | None = None
    tokens: bool = False
    chain: Chain | None = None
    warm_traced: bool = False


class LoopState(NamedTuple):
    """Carry of the generation scan for one seed (all shapes static).

    Attributes:
        params: the current generation's model parameters (PyTree).
        real: [n_real, d] the fixed real set generation 0 was fitted on ([n_real, d + 1] for a class-conditional
            family: the label is a last column, and so in the pool).
        pool: [P, d] synthetic pool buffer (P = n_synth for replace, G * n_synth for accumulate policies), or
            for an accumulating pool kept as statistics (``loop.stats_pool``) the family's statistics of it.
        pool_w: [P] 1 where a pool slot holds a sample, 0 where it is still empty ([0] for statistics).
        snapshots: [S, m, d] model samples kept at selected generations for figures (S may be 0).
    """

    params: Params
    real: Data
    pool: Data | Any
    pool_w: Weights
    snapshots: Data
