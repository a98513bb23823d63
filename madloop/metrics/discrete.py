"""Metrics of discrete sources: exact chain laws against the truth, held-out cross-entropy, distinct-n.

A discrete source (``DataSource.tokens``) carries its vocabulary V, row length L and, for a known truth, its chain;
a categorical or n-gram family exposes its fitted chain (``GenerativeModel.chain``). Every law here is per token
of a row of L tokens, in nats, and exact (``madloop.tokens``), except ``kl_rate`` (a held-out estimate, for any
model with a density) and distinct-n (of the model's samples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from madloop import tokens as T
from madloop.metrics.group import Context
from madloop.types import Data, Key, Params

DISTINCT_SEQ = (2, 3)  # distinct-n for n-grams within rows (n = 1 is its own group: rows of one token have it)


# ----------------------------------------------------------------------------------------- when a group applies


def discrete_source(ctx: Context) -> str | None:
    """The source is discrete (token rows)."""
    return None if ctx.source.tokens is not None else "needs a discrete source (data=zipf, markov, text)"


def chain_pair(ctx: Context) -> str | None:
    """The truth is a known chain and the model a chain (exact laws)."""
    tokens = ctx.source.tokens
    if tokens is None or tokens.trans is None or ctx.model.chain is None:
        return "needs data=zipf or markov and model=categorical or ngram (exact chain laws)"
    return None


def discrete_density(ctx: Context) -> str | None:
    """A discrete source and a model with a log-likelihood of token rows."""
    if discrete_source(ctx) is not None or ctx.model.density is None or not ctx.model.tokens:
        return "needs a discrete source and a model with a likelihood (model=categorical, ngram, transformer)"
    return None


def known_chain_density(ctx: Context) -> str | None:
    """A known truth chain and a model with a log-likelihood of token rows."""
    tokens = ctx.source.tokens
    if tokens is None or tokens.trans is None or ctx.model.density is None or not ctx.model.tokens:
        return "needs data=zipf or markov and a model with a likelihood (model=categorical, ngram, transformer)"
    return None


def long_rows(ctx: Context) -> str | None:
    """Rows of at least 3 tokens over a vocabulary whose trigrams have int32 codes."""
    tokens = ctx.source.tokens
    if tokens is None or tokens.length < max(DISTINCT_SEQ) or tokens.vocab ** max(DISTINCT_SEQ) >= 2**31:
        return "needs a discrete source with rows of >= 3 tokens and vocab^3 < 2^31 (data=markov, text)"
    return None


# ---------------------------------------------------------------------------------------------------- metrics


def chain_laws(params: Params, real: Data, stats: None, ctx: Context) -> dict:
    """The fitted chain Q against the truth's chain P, exactly, per token of a row of L tokens.

    - ``kl_forward``: KL(P || Q), the excess code length of the model on real data (infinite once the model gives
      zero probability to something real: a lost type or transition).
    - ``kl_reverse``: KL(Q || P), the model's mass outside or away from the truth (finite while Q stays on P's
      support).
    - ``entropy``: H(Q), the model's entropy per token (the truth's is ``tokens.sequence_entropy`` of P).
    - ``gini_simpson``: 1 - sum_v q_v^2 of the model's token marginal (the heterozygosity of Wright-Fisher
      theory: for the categorical MLE loop E[1 - sum q^2] decays by (1 - 1/n) per generation).
    - ``support``: the share of the truth's tokens (positive marginal) that the model's marginal keeps.
    - ``ngram_support``: the share of the truth's (context, token) pairs reachable in a row that the model
      reaches (the k + 1-grams with mass, k the larger order); equals ``support`` for order 0.
    - ``tail_lost``: the truth's marginal mass on tokens the model gives zero (the tail the loop has cut).
    - ``zipf_fit``: the Zipf exponent fitted to the model's marginal (ranks of its positive entries).
    """
    del real, stats
    tokens, chain = ctx.source.tokens, ctx.model.chain
    v, length = tokens.vocab, tokens.length
    p, q = tokens.trans, chain.trans(params)
    kp, kq = tokens.order, chain.order
    order = max(kp, kq)
    marginal_p = T.token_marginal(p, v, kp, length)
    marginal_q = T.token_marginal(q, v, kq, length)
    pairs_p = T.ngram_mass(T.lift(p, v, kp, order), v, order, length) > 0
    pairs_q = T.ngram_mass(T.lift(q, v, kq, order), v, order, length) > 0
    on_p = marginal_p > 0
    return {
        "kl_forward": T.sequence_kl(p, q, v, kp, kq, length),
        "kl_reverse": T.sequence_kl(q, p, v, kq, kp, length),
        "entropy": T.sequence_entropy(q, v, kq, length),
        "gini_simpson": 1.0 - jnp.sum(marginal_q**2),
        "support": jnp.sum(on_p & (marginal_q > 0)) / jnp.sum(on_p),
        "ngram_support": jnp.sum(pairs_p & pairs_q) / jnp.sum(pairs_p),
        "tail_lost": jnp.sum(jnp.where(marginal_q > 0, 0.0, marginal_p)),
        "zipf_fit": T.zipf_exponent(marginal_q),
    }


def heldout_xent(params: Params, real: Data, stats: None, ctx: Context) -> dict:
    """``xent``: the model's cross-entropy on the held-out real rows, nats per token; ``perplexity``: exp(xent)."""
    del stats
    xent = -jnp.mean(ctx.model.density.log_prob(params, real)) / ctx.source.tokens.length
    return {"xent": xent, "perplexity": jnp.exp(xent)}


def truth_log_prob(key: Key, real: Data, ctx: Context) -> jax.Array:
    """[n] the truth's log-probability of each held-out row."""
    del key
    tokens = ctx.source.tokens
    return T.log_prob(tokens.trans, T.as_tokens(real), tokens.vocab, tokens.order)


def kl_rate(params: Params, real: Data, log_p: jax.Array, ctx: Context) -> dict:
    """``kl_rate``: KL(truth || model) per token estimated on the held-out real rows, mean of
    (log p(x) - log q(x)) / L: unbiased for any model with a likelihood (the transformer), exact in expectation
    where ``kl_forward`` is known (its standard error shrinks as 1 / sqrt(eval.n))."""
    log_q = ctx.model.density.log_prob(params, real)
    return {"kl_rate": jnp.mean(log_p - log_q) / ctx.source.tokens.length}


def distinct_unigrams(samples: Data, real: Data, stats: None, ctx: Context) -> dict:
    """``distinct_1``: distinct tokens over all tokens of the model's samples (Li et al. 2016)."""
    del real, stats
    return {"distinct_1": T.distinct_n(T.as_tokens(samples), ctx.source.tokens.vocab, 1)}


def distinct_ngrams(samples: Data, real: Data, stats: None, ctx: Context) -> dict:
    """``distinct_2``, ``distinct_3``: distinct n-grams within rows over all n-grams of the model's samples."""
    del real, stats
    x, v = T.as_tokens(samples), ctx.source.tokens.vocab
    return {f"distinct_{n}": T.distinct_n(x, v, n) for n in DISTINCT_SEQ}
