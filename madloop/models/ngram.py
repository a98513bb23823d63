"""Categorical and n-gram language models: counts with additive smoothing, sampled with temperature, top-k, top-p.

``model=categorical`` is the maximum-likelihood categorical law of the tokens (every position of a row alike);
``model=ngram`` predicts each token from the ``order`` tokens before it, with start padding (``madloop.tokens``).
Both fit in closed form from counts, which are sufficient statistics: an accumulating pool is kept as counts
(O(1) memory in the generations). Their fitted chains give the discrete metrics exact laws.

The sampling bias acts on every next-token law: ``bias.lam`` is the temperature (p^(1/lam), renormalised: < 1
colder, > 1 hotter), then ``model.top_k`` keeps the k most probable tokens (0 = all) and ``model.top_p`` the
smallest most-probable set of mass >= p (1 = all). All three are traced knobs (``sweep.bias.lam``,
``sweep.model.top_k``, ``sweep.model.top_p``): they change no shape.

References:
    Shumailov et al. 2024, "AI models collapse when trained on recursively generated data" (Nature; the
    categorical and n-gram loops of its theory section).
    Chen & Goodman 1999, "An empirical study of smoothing techniques for language modeling" (additive smoothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import tokens as T
from madloop.types import Chain, Data, Density, GenerativeModel, Key, Knobs, Statistics, Weights

MAX_TABLE = 1 << 24  # entries of an n-gram table [(V + 1)^k, V]


@dataclass(frozen=True)
class CategoricalModel(C.ModelConfig):
    """The categorical law of the tokens, fitted by counts.

    Attributes:
        smoothing: additive smoothing alpha: p_v = (count_v + alpha) / (n + alpha V); 0 = maximum likelihood
            (a type absent from the training set gets probability 0 and is lost for good in a synthetic loop).
        top_k: sample only the k most probable tokens (0 = all); a traced knob (``sweep.model.top_k``).
        top_p: sample only the smallest most-probable set of mass >= top_p (1 = all); a traced knob.
    """

    smoothing: float = 0.0
    top_k: int = 0
    top_p: float = 1.0


@dataclass(frozen=True)
class NgramModel(CategoricalModel):
    """An n-gram model: each token's law given the ``order`` tokens before it (positions before a row's start hold
    a start symbol), fitted by counts with additive smoothing; contexts never seen back off to the token
    frequencies. ``order`` = 1 is a bigram model. The other fields are ``CategoricalModel``'s."""

    order: int = 1


class NgramParams(NamedTuple):
    """Attributes: trans [(V + 1)^k, V]: the next-token probabilities of every context (k = 0: one context)."""

    trans: jax.Array


class NgramStats(NamedTuple):
    """Attributes: count: total row weight; counts [(V + 1)^k, V]: weighted (context, next token) counts."""

    count: jax.Array
    counts: jax.Array


def order_of(m: CategoricalModel) -> int:
    """k, the context length of a model config (0 for the categorical model)."""
    return m.order if isinstance(m, NgramModel) else 0


def ngram_family(vocab: int, length: int, order: int, smoothing: float) -> GenerativeModel:
    """The pure functions of an order-k n-gram model over V tokens, for rows of L tokens (k = 0: categorical)."""

    def stats(x: Data, w: Weights) -> NgramStats:
        return NgramStats(jnp.sum(w), T.count_ngrams(T.as_tokens(x), w, vocab, order))

    def fit_stats(s: NgramStats) -> NgramParams:
        return NgramParams(T.smoothed(s.counts, smoothing))

    def init(key: Key, x: Data, w: Weights) -> NgramParams:
        del key, w
        shape = (T.n_contexts(vocab, order), vocab)
        return NgramParams(jnp.full(shape, 1.0 / vocab, x.dtype))

    def fit(key: Key, params: NgramParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> NgramParams:
        del key, params, warm, knobs  # closed form
        return fit_stats(stats(x, w))

    def sample(key: Key, params: NgramParams, n: int, knobs: Knobs) -> Data:
        log_p = T.biased_log_probs(jnp.log(params.trans), knobs["lam"], knobs["top_k"], knobs["top_p"])
        cdf, last = T.sampling_cdf(log_p)
        return T.sample_chain(key, cdf, last, n, length, vocab, order).astype(params.trans.dtype)

    def log_prob(params: NgramParams, x: Data) -> jax.Array:
        return T.log_prob(params.trans, T.as_tokens(x), vocab, order)

    return GenerativeModel(
        init=init,
        fit=fit,
        sample=sample,
        density=Density(log_prob),
        statistics=Statistics(
            stats,
            lambda a, b: jax.tree.map(jnp.add, a, b),
            lambda s, c: jax.tree.map(lambda v: v * c, s),
            fit_stats,
        ),
        tokens=True,
        chain=Chain(order, lambda p: p.trans),
        warm_traced=True,  # closed form: warm is ignored
    )


def build(cfg: CategoricalModel, source=None, scan=None) -> GenerativeModel:
    """The registered builder: the family over the source's vocabulary and row length."""
    del scan
    return ngram_family(source.tokens.vocab, source.tokens.length, order_of(cfg), cfg.smoothing)


def check_sampling(m: C.ModelConfig) -> None:
    """Checks a token model's truncation fields, ``model.top_k`` and ``model.top_p``."""
    if not (C.is_number(m.top_k) and m.top_k >= 0 and m.top_k == int(m.top_k)):
        raise C.ConfigError("model.top_k", m.top_k, "must be an integer >= 0 (0 = every token)")
    if not (C.is_number(m.top_p) and 0 < m.top_p <= 1):
        raise C.ConfigError("model.top_p", m.top_p, "must lie in (0, 1] (1 = every token)")


def check(m: CategoricalModel) -> None:
    """Field checks of ``model=categorical`` and ``model=ngram``."""
    C.non_negative("model.smoothing", m.smoothing, " (0 = maximum likelihood)")
    check_sampling(m)
    if isinstance(m, NgramModel):
        C.int_at_least("model.order", m.order, 0, " (the context length; 0 = categorical)")


def fits(m: CategoricalModel, cfg: C.Config, parts) -> None:
    """A discrete source, and an n-gram table that fits in memory."""
    del cfg
    tokens = parts.source.tokens
    name = "ngram" if isinstance(m, NgramModel) else "categorical"
    if tokens is None:
        raise C.ConfigError("model", name, "needs a discrete source (data=zipf, markov, text)")
    order = order_of(m)
    entries = T.n_contexts(tokens.vocab, order) * tokens.vocab
    if entries > MAX_TABLE:
        raise C.ConfigError(
            "model.order", order, f"(vocab + 1)^order x vocab = {entries:.3g} entries; keep <= {MAX_TABLE}"
        )


C.register("model", "categorical", CategoricalModel, build=build, check=check, fits=fits)
C.register("model", "ngram", NgramModel, build=build, check=check, fits=fits)
