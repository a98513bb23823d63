"""Token sequences as order-k Markov chains with start padding: exact sequence laws, sampling bias, n-gram counts.

A chain of order k over V tokens draws each token of a row of L tokens from the k symbols before it. Positions
before the row's start hold the start symbol BOS = V, so a context is k symbols of an alphabet of B = V + 1 and a
chain is one matrix ``trans`` [B^k, V] of next-token probabilities (a context's index reads its symbols as a
base-B number, the most recent last; order 0 is a categorical distribution, one context). The truths of
``data=zipf`` and ``data=markov`` and the n-gram family are such chains, so the laws below (KL both ways,
entropy, token marginals, support) are exact for rows of L tokens, with no estimation.

References:
    Cover & Thomas 2006, Elements of Information Theory, ch. 4 (entropy rates of Markov chains) and eq. 2.67
    (the chain rule of relative entropy, which makes the sequence KL a sum over positions).
    Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration" (top-p, nucleus sampling).
    Fan, Lewis & Dauphin 2018, "Hierarchical Neural Story Generation" (top-k sampling).
    Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models" (distinct-n).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from madloop.types import Data, Key, Weights


class Tokens(NamedTuple):
    """What a discrete source tells families and metrics (``DataSource.tokens``).

    Attributes:
        vocab: V, token ids 0..V-1 (stored as floats in the rows of the loop).
        length: L, tokens per row (d = L).
        trans: [(V + 1)^k, V] the truth as a chain of order ``order`` (exact laws), or None where the truth is
            not known (text).
        order: k of the truth's chain (0 without one).
        symbols: the string of each token id (text), or None.
    """

    vocab: int
    length: int
    trans: jax.Array | None = None
    order: int = 0
    symbols: tuple[str, ...] | None = None


# ------------------------------------------------------------------------------------------------- contexts


def n_contexts(vocab: int, order: int) -> int:
    """B^k: the contexts of an order-k chain over V tokens (B = V + 1 with the start symbol)."""
    return (vocab + 1) ** order


def start_context(vocab: int, order: int) -> int:
    """The index of the all-BOS context, where every row starts: B^k - 1."""
    return n_contexts(vocab, order) - 1


def row_contexts(x: jax.Array, vocab: int, order: int) -> jax.Array:
    """[n, L] int32: the context index of every position of token rows x [n, L] (int)."""
    n, length = x.shape
    if order == 0:
        return jnp.zeros((n, length), jnp.int32)
    b = vocab + 1
    padded = jnp.concatenate([jnp.full((n, order), vocab, jnp.int32), x.astype(jnp.int32)], axis=1)
    ctx = jnp.zeros((n, length), jnp.int32)
    for j in range(order):  # the symbol j + 1 places back has weight B^j
        ctx = ctx + padded[:, order - 1 - j : order - 1 - j + length] * b**j
    return ctx


def lift(trans: jax.Array, vocab: int, order: int, to: int) -> jax.Array:
    """The same chain as one of order ``to`` >= ``order`` [B^to, V]: a context's row is its last k symbols' row."""
    if to == order:
        return trans
    return trans[jnp.arange(n_contexts(vocab, to)) % n_contexts(vocab, order)]


def occupancy(trans: jax.Array, vocab: int, order: int, length: int) -> jax.Array:
    """[B^k]: the expected number of positions of a row of ``length`` tokens at which each context is the current
    one (summed over the positions; the row starts in the all-BOS context).

    One step moves the mass of context c = (s_1 .. s_k) and next token x to context (s_2 .. s_k, x): with c read
    as s_1 B^(k-1) + r, the new index is r B + x, so summing the mass over s_1 and appending x is a reshape.
    """
    if order == 0:
        return jnp.full((1,), float(length), trans.dtype)
    c, b = n_contexts(vocab, order), vocab + 1
    d0 = jnp.zeros((c,), trans.dtype).at[c - 1].set(1.0)

    def step(d, _):
        mass = (d[:, None] * trans).reshape(b, c // b, vocab).sum(axis=0)  # [B^(k-1), V]
        new = jnp.pad(mass, ((0, 0), (0, 1))).reshape(c)  # x is never BOS
        return new, d

    _, ds = jax.lax.scan(step, d0, None, length=length)
    return ds.sum(axis=0)


def _xlogy_rows(p: jax.Array, q: jax.Array) -> jax.Array:
    """[C]: sum_x p log q per row, with 0 log q = 0 (also where q = 0)."""
    return jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, q, 1.0)), 0.0), axis=-1)


def sequence_kl(p: jax.Array, q: jax.Array, vocab: int, order_p: int, order_q: int, length: int) -> jax.Array:
    """KL(P || Q) per token of rows of ``length`` tokens, exactly: by the chain rule,
    KL = sum_t E_{c_t ~ P} KL(P(. | c_t) || Q(. | c_t)) / L. Infinite where Q gives zero to a token P can reach.

    Args:
        p, q: [(V + 1)^k, V] the two chains, of orders ``order_p`` and ``order_q`` (both are lifted to the larger).
    """
    order = max(order_p, order_q)
    p, q = lift(p, vocab, order_p, order), lift(q, vocab, order_q, order)
    occ = occupancy(p, vocab, order, length)
    row = _xlogy_rows(p, p) - _xlogy_rows(p, q)
    return jnp.sum(jnp.where(occ > 0, occ * row, 0.0)) / length


def sequence_entropy(trans: jax.Array, vocab: int, order: int, length: int) -> jax.Array:
    """H(X_1 .. X_L) / L in nats per token, exactly (the chain rule of entropy over the row's positions)."""
    occ = occupancy(trans, vocab, order, length)
    return -jnp.sum(occ * _xlogy_rows(trans, trans)) / length


def token_marginal(trans: jax.Array, vocab: int, order: int, length: int) -> jax.Array:
    """[V]: the share of a row's tokens that are each token, in expectation (the unigram law of the rows)."""
    return occupancy(trans, vocab, order, length) @ trans / length


def ngram_mass(trans: jax.Array, vocab: int, order: int, length: int) -> jax.Array:
    """[B^k, V]: the expected count per row of each (context, next token) pair."""
    return occupancy(trans, vocab, order, length)[:, None] * trans


def log_prob(trans: jax.Array, x: jax.Array, vocab: int, order: int) -> jax.Array:
    """[n]: log P(row) of token rows x [n, L] (int) under the chain trans [B^k, V]."""
    ctx = row_contexts(x, vocab, order)
    return jnp.sum(jnp.log(trans[ctx, x.astype(jnp.int32)]), axis=1)


def zipf_exponent(probs: jax.Array) -> jax.Array:
    """The Zipf exponent a of probabilities [V]: minus the least-squares slope of log p_(r) on log r over the ranks
    r = 1, 2, ... of the positive entries, sorted in decreasing order (a exactly for p_r ~ r^-a); NaN when fewer
    than two entries are positive (a collapsed law has no slope: it was 0, a flat law's exponent)."""
    desc = -jnp.sort(-probs)
    rank = jnp.arange(1, probs.shape[0] + 1, dtype=probs.dtype)
    on = desc > 0
    m = jnp.maximum(jnp.sum(on), 1)
    lx = jnp.where(on, jnp.log(rank), 0.0)
    ly = jnp.where(on, jnp.log(jnp.where(on, desc, 1.0)), 0.0)
    mx, my = jnp.sum(lx) / m, jnp.sum(ly) / m
    cov = jnp.sum(jnp.where(on, (lx - mx) * (ly - my), 0.0))
    var = jnp.sum(jnp.where(on, (lx - mx) ** 2, 0.0))
    return jnp.where(var > 0, -cov / jnp.where(var > 0, var, 1.0), jnp.nan)


# ------------------------------------------------------------------------------------ sampling bias and draws


def _threshold(ok, active: jax.Array, inactive: jax.Array) -> jax.Array:
    """The smallest t in [0, 2^31 - 1] with ok(t) True, for ok monotone (False then True) in t, by bisection where
    ``active``; ``inactive`` (no pass over the law) where not.

    The bisection (over the bit patterns of non-negative float32, monotone as int32) halves a range of 2^31 values
    at each step, so it ends after exactly 31 steps. As a
    while loop that stops when its range is one value, it takes those steps where active and none where it starts
    at [inactive, inactive]; vmapped over runs, it takes none when no run truncates (the loop's default: a
    categorical loop at V = 10^4 spent 40% of its time in these 62 passes over V per run and generation).
    """

    def step(bounds):
        lo, hi = bounds
        mid = lo + (hi - lo) // 2
        good = ok(mid)
        return jnp.where(good, lo, mid + 1), jnp.where(good, mid, hi)

    start = (jnp.where(active, 0, inactive).astype(jnp.int32), jnp.where(active, 2**31 - 1, inactive).astype(jnp.int32))
    lo, _ = jax.lax.while_loop(lambda bounds: bounds[0] < bounds[1], step, start)
    return lo


def _ties_first(top: jax.Array, tied: jax.Array, room: jax.Array) -> jax.Array:
    """Keep every ``top`` entry and the first ``room`` ``tied`` ones in index order (ties toward the lower id)."""
    return top | (tied & (jnp.cumsum(tied) <= room))


def _truncation(q: jax.Array, top_k: jax.Array, top_p: jax.Array) -> jax.Array:
    """[V] bool: the tokens of a law q [V] that top-k and then top-p keep, without sorting (XLA's CPU sort of 10^4
    floats cost twice the draws of 10^4 tokens): each threshold is found by bisection over the bit patterns of
    the probabilities (31 passes over V), and ties at a threshold are broken toward the lower id, as a stable sort
    in decreasing order would. The order is that of the probabilities rounded to float32, in float64 runs too:
    two probabilities within float32's resolution of each other (6e-8 relative) count as a tie there."""
    v = q.shape[0]
    bits = jax.lax.bitcast_convert_type(q.astype(jnp.float32), jnp.int32)
    # top-k: the k-th largest probability t is the largest t with #(q >= t) >= k, i.e. one below the smallest t
    # with #(q >= t) < k; keep q > t and the first k - #(q > t) of the ties.
    truncated = (top_k >= 1) & (top_k < v)
    k = jnp.where(truncated, top_k, v).astype(jnp.int32)
    # k = V: the smallest t with #(q >= t) < V is min(bits) + 1, and every token is kept
    t_k = _threshold(lambda t: jnp.sum(bits >= t) < k, truncated, jnp.min(bits) + 1) - 1
    above = bits > t_k
    keep = _ties_first(above, bits == t_k, k - jnp.sum(above))
    # top-p on the renormalised kept law: the last kept probability t is the smallest t with mass(q > t) < p; a tie
    # at t is kept while the mass before it (the larger ones, then the lower ids) is < p.
    r = jnp.where(keep, q, 0.0)
    r = r / jnp.sum(r)
    bits = jax.lax.bitcast_convert_type(r.astype(jnp.float32), jnp.int32)
    # p >= 1 keeps every token whatever t_p is (the return below)
    t_p = _threshold(lambda t: jnp.sum(jnp.where(bits > t, r, 0.0)) < top_p, top_p < 1, 0)
    above = bits > t_p
    tied = bits == t_p
    before = jnp.sum(jnp.where(above, r, 0.0)) + r * (jnp.cumsum(tied) - 1)
    nucleus = above | (tied & (before < top_p))
    return keep & (nucleus | (top_p >= 1))


def biased_log_probs(log_p: jax.Array, lam: jax.Array, top_k: jax.Array, top_p: jax.Array) -> jax.Array:
    """Next-token log-probabilities [..., V] after the sampling bias: temperature lam (p^(1/lam), renormalised),
    then top-k (the k most probable tokens; ties broken toward the lower id; k <= 0 or >= V keeps all), then top-p
    (the smallest set of most probable tokens whose mass reaches p; p >= 1 keeps all). Dropped tokens get -inf.

    The order (temperature, top-k, top-p) is the common one of language-model samplers (Holtzman et al. 2020).
    """

    def one(row: jax.Array) -> jax.Array:
        logits = row / lam
        keep = _truncation(jax.nn.softmax(logits), top_k, top_p)
        return jax.nn.log_softmax(jnp.where(keep, logits, -jnp.inf))

    flat = log_p.reshape(-1, log_p.shape[-1])
    return jax.vmap(one)(flat).reshape(log_p.shape)


def sampling_cdf(log_p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(cdf [..., V], last [...]): cumulative probabilities of log-probability rows and the index of each row's
    last token with positive probability (inverse-CDF draws are clamped to it, so rounding in the cumulative sum
    never draws a token of zero probability)."""
    p = jnp.exp(log_p)
    v = p.shape[-1]
    last = (v - 1 - jnp.argmax(jnp.flip(p > 0, axis=-1), axis=-1)).astype(jnp.int32)  # int64 in x64 mode
    return jnp.cumsum(p, axis=-1), last


# Runs whose cdfs are searched together, on the CPU, when the search is vmapped over runs. A binary search over a
# batch of cdfs reads every run's cdf in each of its log2 V rounds: at V = 10^4 and 1000 runs, 40 MB per round,
# more than this CPU's caches hold. Over blocks of 50 runs at a time (``lax.map``), one generation's draws of
# n = 10^4 tokens for 1000 runs took 0.13 s instead of 0.37 s (2-core x86, jax 0.10.2; the same tokens; one run
# at a time took 0.17 s). On other backends the batch is searched at once.
SEARCH_BLOCK = 50


def _search(cdf: jax.Array, u: jax.Array) -> jax.Array:
    return jnp.searchsorted(cdf, u * cdf[-1], side="right")


@jax.custom_batching.custom_vmap
def _blocked_search(cdf: jax.Array, u: jax.Array) -> jax.Array:
    """``_search``, vmapped over runs in blocks of SEARCH_BLOCK runs on the CPU."""
    return _search(cdf, u)


@_blocked_search.def_vmap
def _blocked_search_vmap(axis_size: int, in_batched: list[bool], cdf: jax.Array, u: jax.Array):
    cdf_batched, u_batched = in_batched
    if not cdf_batched:  # one cdf for every run: nothing to keep in cache per run
        return jax.vmap(_search, in_axes=(None, 0 if u_batched else None), axis_size=axis_size)(cdf, u), u_batched
    if not u_batched:
        u = jnp.broadcast_to(u, (axis_size, *u.shape))
    if axis_size <= SEARCH_BLOCK or jax.default_backend() != "cpu":
        return jax.vmap(_search)(cdf, u), True
    blocks = -(-axis_size // SEARCH_BLOCK)
    pad = blocks * SEARCH_BLOCK - axis_size  # < SEARCH_BLOCK < axis_size: the first runs again, then dropped
    cdf, u = (jnp.concatenate([a, a[:pad]]) for a in (cdf, u))
    split = lambda a: a.reshape(blocks, SEARCH_BLOCK, *a.shape[1:])
    out = jax.lax.map(lambda a: jax.vmap(_search)(*a), (split(cdf), split(u)))
    return out.reshape(blocks * SEARCH_BLOCK, *out.shape[2:])[:axis_size], True


def invert(cdf: jax.Array, last: jax.Array, u: jax.Array) -> jax.Array:
    """The token of uniform u under one row's cdf [V]: the number of cdf entries <= u cdf[-1] (a token of zero
    probability adds no step, so it is never drawn). Vmapped over runs, the CPU searches blocks of runs' cdfs at a
    time (``SEARCH_BLOCK``)."""
    return jnp.minimum(_blocked_search(cdf, u), last).astype(jnp.int32)


def sample_chain(key: Key, cdf: jax.Array, last: jax.Array, n: int, length: int, vocab: int, order: int) -> jax.Array:
    """n rows of ``length`` tokens [n, L] (int32) from a chain given as its per-context cdf [B^k, V] and last
    positive token [B^k] (``sampling_cdf``): one uniform per token, inverted by each context's cdf."""
    u = jax.random.uniform(key, (n * length,), cdf.dtype).reshape(n, length)
    if order == 0:
        return invert(cdf[0], last[0], u)
    b, c = vocab + 1, n_contexts(vocab, order)

    def step(ctx, u_t):
        rows = cdf[ctx]  # [n, V]
        x = jnp.sum(rows <= (u_t * rows[:, -1])[:, None], axis=1).astype(jnp.int32)
        x = jnp.minimum(x, last[ctx])
        return (ctx * b + x) % c, x

    _, xs = jax.lax.scan(step, jnp.full((n,), c - 1, jnp.int32), u.T)
    return xs.T


# ---------------------------------------------------------------------------------------- counts and fits


def count_ngrams(x: jax.Array, w: Weights, vocab: int, order: int) -> jax.Array:
    """[B^k, V]: the weighted count of every (context, next token) pair in token rows x [n, L] (int), row i
    weighing w_i."""
    ctx = row_contexts(x, vocab, order)
    flat = (ctx * vocab + x.astype(jnp.int32)).reshape(-1)
    weights = jnp.broadcast_to(w[:, None], x.shape).reshape(-1)
    return jnp.zeros((n_contexts(vocab, order) * vocab,), w.dtype).at[flat].add(weights).reshape(-1, vocab)


def smoothed(counts: jax.Array, alpha: float) -> jax.Array:
    """[C, V] next-token probabilities from counts with additive (Lidstone) smoothing alpha:
    (counts + alpha) / (row total + alpha V). A context never seen (a zero row, alpha = 0) backs off to the
    smoothed token frequencies over all contexts (uniform when there are no counts at all)."""
    v = counts.shape[-1]
    total = counts.sum(axis=-1, keepdims=True)
    unigram = counts.sum(axis=0) + alpha
    unigram = jnp.where(unigram.sum() > 0, unigram / jnp.where(unigram.sum() > 0, unigram.sum(), 1.0), 1.0 / v)
    seen = total + alpha * v > 0
    return jnp.where(seen, (counts + alpha) / jnp.where(seen, total + alpha * v, 1.0), unigram)


def as_tokens(x: Data) -> jax.Array:
    """Token ids [n, L] int32 of rows of floats (the loop's representation of a token)."""
    return jnp.round(x).astype(jnp.int32)


def distinct_n(x: jax.Array, vocab: int, n: int) -> jax.Array:
    """distinct-n of token rows x [m, L] (int): distinct n-grams within rows over all n-grams (Li et al. 2016).
    Needs V^n < 2^31 (each n-gram is one int32 code)."""
    m, length = x.shape
    code = jnp.zeros((m, length - n + 1), jnp.int32)
    for j in range(n):
        code = code * vocab + x[:, j : length - n + 1 + j].astype(jnp.int32)
    flat = jnp.sort(code.reshape(-1))
    return (1 + jnp.sum(flat[1:] != flat[:-1])) / flat.shape[0]


# ------------------------------------------------------------------------------------------- truths (numpy)


def zipf_probs(vocab: int, alpha: float) -> np.ndarray:
    """[V] Zipf probabilities p_r ~ (r + 1)^-alpha, token 0 the most frequent (float64)."""
    p = (np.arange(vocab) + 1.0) ** -float(alpha)
    return p / p.sum()


def stationary(trans: np.ndarray, vocab: int, order: int, tol: float = 1e-14, max_iter: int = 200_000) -> np.ndarray:
    """[V^k] a stationary law of the k-token contexts of an order-k chain given on real contexts [V^k, V] (float64),
    by power iteration of the lazy chain (pi + pi P) / 2, which has the same stationary laws and converges for
    every finite chain (periodic ones included), from the uniform law."""
    c = vocab**order
    pi = np.full(c, 1.0 / c)
    for _ in range(max_iter):
        new = 0.5 * (pi + (pi[:, None] * trans).reshape(vocab, c // vocab, vocab).sum(axis=0).reshape(c))
        if np.abs(new - pi).max() < tol:
            return new / new.sum()
        pi = new
    return pi / pi.sum()


def padded_chain(trans: np.ndarray, vocab: int, order: int) -> np.ndarray:
    """[(V + 1)^k, V]: a stationary order-k chain on real contexts [V^k, V] written with start padding.

    The first k tokens of a row follow the chain's stationary law pi of k consecutive tokens: token j + 1 after the
    prefix x_1 .. x_j (context BOS^(k - j) x_1 .. x_j) has probability pi_(j+1)(x_1 .. x_j, x) / pi_j(x_1 .. x_j),
    with pi_j the law of the first j tokens. Contexts with BOS after a token are never reached (uniform rows)."""
    b = vocab + 1
    out = np.full((b**order, vocab), 1.0 / vocab)
    if order == 0:
        return np.asarray(trans, float).reshape(1, vocab)
    pi = stationary(trans, vocab, order).reshape((vocab,) * order)
    for j in range(order):  # rows of contexts with j real tokens after k - j BOS
        joint = pi.sum(axis=tuple(range(j + 1, order))) if j + 1 < order else pi  # law of the first j + 1
        joint = joint.reshape(vocab**j, vocab)
        total = joint.sum(axis=1, keepdims=True)
        rows = np.where(total > 0, joint / np.where(total > 0, total, 1.0), 1.0 / vocab)
        prefix = np.arange(vocab**j)
        digits = [(prefix // vocab ** (j - 1 - i)) % vocab for i in range(j)]  # x_1 .. x_j
        index = np.zeros(vocab**j, dtype=np.int64)
        for i in range(order):  # symbol i of the context (most recent last): BOS for i < k - j
            sym = np.full(vocab**j, vocab) if i < order - j else digits[i - (order - j)]
            index = index * b + sym
        out[index] = rows
    full = np.arange(vocab**order)
    index = np.zeros(vocab**order, dtype=np.int64)
    for i in range(order):
        index = index * b + (full // vocab ** (order - 1 - i)) % vocab
    out[index] = trans
    return out


def random_chain(vocab: int, order: int, alpha: float, support: int | None, seed: int) -> np.ndarray:
    """[V^k, V] an order-k chain whose every row is Zipf(alpha) over its own random ranking of the tokens,
    restricted to the ``support`` highest ranks (None = all V): Zipf or sparse rows (float64)."""
    rng = np.random.default_rng(seed)
    keep = vocab if support is None else support
    weights = np.zeros(vocab)
    weights[:keep] = zipf_probs(keep, alpha)
    trans = np.empty((vocab**order, vocab))
    for c in range(vocab**order):
        trans[c, rng.permutation(vocab)] = weights
    return trans
