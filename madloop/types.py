"""Type aliases and the two protocols every part of madloop shares: a generative model and the loop state."""

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


class GenerativeModel(NamedTuple):
    """A model family as pure functions over PyTrees.

    Attributes:
        init: ``init(key, x, w) -> params``: fresh parameters for data ``x`` [n, d] with weights ``w`` [n]
            (a family may look at the data, e.g. k-means++ seeding).
        fit: ``fit(key, params, x, w, warm) -> params``: fit to weighted data. ``warm`` is a static Python
            bool: False means ``params`` came from ``init`` and the from-scratch budget applies (generation 0,
            or every generation when ``loop.warm_start=false``); True means ``params`` are the previous
            generation's and the warm-start budget applies.
        sample: ``sample(key, params, n, lam) -> x`` [n, d]: ``n`` static, ``lam`` the traced sampling bias
            (1 = the fitted model; < 1 colder; > 1 hotter).
        log_prob: ``log_prob(params, x) -> [n]`` or None when the family has no tractable density.
        moments: ``moments(params) -> (mean [d], cov [d, d])`` of the fitted model at lam = 1, or None.
        finetune: ``finetune(key, params, x, w, steps) -> params``: a copy of the fitted model trained for
            ``steps`` (static) more steps on weighted data, or None (neural families; SIMS's auxiliary model).
        guided_sample: ``guided_sample(key, base, aux, n, lam, omega) -> x`` [n, d]: sampling with the
            extrapolated score (1 + omega) s_base - omega s_aux, or None (diffusion families).
        stats: ``stats(x, w) -> s``: sufficient statistics (a PyTree of fixed shapes) of weighted data, or None.
            With ``merge(s1, s2) -> s`` (the statistics of the union), ``scale(s, c) -> s`` (every weight times
            c) and ``fit_stats(s) -> params`` (equal to ``fit`` on the data), an accumulating pool is kept as
            statistics: O(n) per generation and O(1) memory instead of O(G n).
    """

    init: Callable[..., Params]
    fit: Callable[..., Params]
    sample: Callable[..., Data]
    log_prob: Callable[..., jax.Array] | None = None
    moments: Callable[..., tuple[jax.Array, jax.Array]] | None = None
    finetune: Callable[..., Params] | None = None
    guided_sample: Callable[..., Data] | None = None
    stats: Callable[..., Any] | None = None
    merge: Callable[..., Any] | None = None
    scale: Callable[..., Any] | None = None
    fit_stats: Callable[..., Params] | None = None


class Knobs(NamedTuple):
    """Knobs of an experiment, traced (so they can be vmapped in one program without recompiling).

    Counts are masks over a static maximum: the loop draws the buffer size (``regime.n_real`` /
    ``regime.n_synth``) and gives weight 0 to the slots at and beyond the count.

    Attributes:
        lam: sampling bias (bias.lam).
        real_weight: relative weight of a real sample (regime.real_weight).
        omega: SIMS guidance strength (guidance.omega; 0 without guidance).
        n_real: int32 number of real samples used (<= regime.n_real).
        n_synth: int32 number of synthetic samples per generation used (<= regime.n_synth).
        temperature: the curation's choice temperature (curation.temperature; 1 without curation).
    """

    lam: jax.Array
    real_weight: jax.Array
    omega: jax.Array
    n_real: jax.Array
    n_synth: jax.Array
    temperature: jax.Array


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
