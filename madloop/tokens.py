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
    return jnp.sum(jnp.where(occ > 0, occ * _kl_rows(p, q), 0.0)) / length


def _kl_rows(p: jax.Array, q: jax.Array) -> jax.Array:
    """[C]: KL(p || q) of each row, +inf where q = 0 < p, as sum_{p > 0} q h((p - q) / q) + sum_{p > 0} (p - q) with
    h(e) = (1 + e) log1p(e) - e >= 0 (a series for |e| < 0.1): sums of small terms, where sum p log p - sum p log q
    subtracts two entropy-sized sums and sum p log(p / q) cancels its first-order terms. In float32 the difference
    erred by 2% at a KL of 4e-6 and 230% at 4e-8 (an order-2 chain over V = 16); this is within 1e-4 of the float64
    KL of the same float32 rows. (Those rows are themselves the float64 chains rounded to float32, which moves a KL
    of 4e-8 by 19%: below about 1e-6, compare chains in ``loop.precision=float64``.)"""
    live = p > 0
    lost = live & (q <= 0)
    safe_q = jnp.where(live & ~lost, q, 1.0)
    e = (jnp.where(live, p, 1.0) - safe_q) / safe_q
    series = e * e * (1 / 2 - e * (1 / 6 - e * (1 / 12 - e * (1 / 20 - e * (1 / 30 - e / 42)))))
    h = jnp.where(jnp.abs(e) < 0.1, series, (1.0 + e) * jnp.log1p(e) - e)
    keep = live & ~lost
    kl = jnp.sum(jnp.where(keep, safe_q * h, 0.0), axis=-1) + jnp.sum(jnp.where(keep, p - q, 0.0), axis=-1)
    return jnp.where(jnp.any(lost, axis=-1), jnp.inf, kl)


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


class AliasTables(NamedTuple):
    """Walker's alias tables of the rows of a fixed chain [C, V] (``alias_tables``).

    Attributes:
        threshold: [C, V] uint32: slot j of row c keeps token j when 32 random bits are below it, else gives
            ``alias[c, j]``.
        alias: [C, V] int32: the token a slot gives otherwise.
    """

    threshold: jax.Array
    alias: jax.Array


def alias_tables(trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(threshold [C, V] uint32, alias [C, V] int32): Walker's alias tables of probability rows trans [C, V]
    (numpy; built in float64, each row normalised), by Vose's pairing of a slot below 1/V with one above, every row
    at once.

    Token j's probability is (t_j + sum over the slots aliased to j of (2^32 - t_i)) / (V 2^32), so each slot
    holds its share to 2^-32 of 1/V: a Zipf tail type of probability 4e-7 at V = 10^4 is drawn at its probability
    to 1e-4 relative, where a float32 inverse cdf (spacing 6e-8 near 1, uniforms in steps of 2^-23) drew the tail of
    ``data=zipf vocab=10000 alpha=1.5`` up to 31% off and the rarest types of steeper laws never. A token of
    probability 0 is never drawn (its slot's threshold is 0 and its alias a token of positive probability).

    References:
        Walker 1977, "An Efficient Method for Generating Discrete Random Variables with General Distributions";
        Vose 1991, "A Linear Algorithm for Generating Random Numbers with a Given Distribution".
    """
    p = np.asarray(trans, np.float64)
    c, v = p.shape
    q = p * (v / p.sum(axis=1, keepdims=True))  # each slot's share, in units of 1/V
    threshold = np.ones((c, v))
    alias = np.broadcast_to(np.arange(v), (c, v)).copy()
    if c <= 16:  # a few long rows (a Zipf law): row by row (a V = 10^4 row in 10 ms, not 0.7 s of numpy steps)
        for r in range(c):
            _vose_row(q[r].copy(), threshold[r], alias[r])
        return _alias_bits(threshold), alias.astype(np.int32)
    # per row: a stack of the slots below 1 and one of the slots at or above 1 (rows at once, each its own depth)
    small = q < 1.0
    order = np.argsort(~small, axis=1, kind="stable")  # the small slots first, then the large, in index order
    n_small = small.sum(axis=1)
    smalls, larges = order.copy(), order.copy()  # smalls[r, :ns] and larges[r, ns:] (popped from the end)
    ns, nl = n_small.copy(), np.full(c, v)
    rows = np.arange(c)
    while True:
        live = rows[(ns > 0) & (nl > n_small)]
        if live.size == 0:
            break
        s = smalls[live, ns[live] - 1]
        big = larges[live, nl[live] - 1]
        ns[live] -= 1
        threshold[live, s], alias[live, s] = q[live, s], big
        q[live, big] += q[live, s] - 1.0
        fell = q[live, big] < 1.0  # the large slot gave more than its excess: now a small one
        if fell.any():
            r = live[fell]
            nl[r] -= 1
            smalls[r, ns[r]] = big[fell]
            ns[r] += 1
    # the slots left unpaired keep their own token (their share is 1 up to rounding)
    return _alias_bits(threshold), alias.astype(np.int32)


def _alias_bits(threshold: np.ndarray) -> np.ndarray:
    """Thresholds in [0, 1] as 32-bit integers (a slot keeps its token when 32 random bits are below)."""
    return np.minimum(np.floor(threshold * 2.0**32), 2.0**32 - 1).astype(np.uint32)


def _vose_row(q: np.ndarray, threshold: np.ndarray, alias: np.ndarray) -> None:
    """Vose's pairing for one row of shares q [V] (units of 1/V), written into threshold and alias."""
    shares = q.tolist()
    small = [j for j, x in enumerate(shares) if x < 1.0]
    large = [j for j, x in enumerate(shares) if x >= 1.0]
    while small and large:
        s, big = small.pop(), large.pop()
        threshold[s], alias[s] = shares[s], big
        shares[big] += shares[s] - 1.0
        (small if shares[big] < 1.0 else large).append(big)


def alias_draw(tables: AliasTables, ctx: jax.Array, slot: jax.Array, bits: jax.Array) -> jax.Array:
    """Tokens [n] (int32) of contexts ctx [n] (int) from uniform slots [n] in [0, V) and 32 random bits [n]."""
    keep = bits < tables.threshold[ctx, slot]
    return jnp.where(keep, slot, tables.alias[ctx, slot]).astype(jnp.int32)


def sample_chain_alias(key: Key, tables: AliasTables, n: int, length: int, vocab: int, order: int) -> jax.Array:
    """n rows of ``length`` tokens [n, L] (int32) from a fixed chain given as the alias tables of its per-context
    rows [B^k, V] (``alias_tables``): a uniform slot and 32 random bits per token (a chain's first ``order``
    tokens from its all-start context, as ``sample_chain``)."""
    k_slot, k_bits = jax.random.split(key)
    slot = jax.random.randint(k_slot, (length, n), 0, vocab, jnp.int32)
    bits = jax.random.bits(k_bits, (length, n), jnp.uint32)
    if order == 0:
        return alias_draw(tables, jnp.zeros((length, n), jnp.int32), slot, bits).T
    b, c = vocab + 1, n_contexts(vocab, order)

    def step(ctx, draw):
        x = alias_draw(tables, ctx, *draw)
        return (ctx * b + x) % c, x

    _, xs = jax.lax.scan(step, jnp.full((n,), c - 1, jnp.int32), (slot, bits))
    return xs.T


# ---------------------------------------------------------------------------------------- counts and fits


def count_ngrams(x: jax.Array, w: Weights, vocab: int, order: int) -> jax.Array:
    """[B^k, V]: the weighted count of every (context, next token) pair in token rows x [n, L] (int), row i
    weighing w_i.

    In float32 the weights are added as integers: each w_i is split into three int32 parts of s bits each
    (w_i 2^s = h_i + l_i 2^-s + m_i 2^-2s + a remainder under 2^-2s / 2, every step exact), with 2^s the largest
    power of 2 that keeps every table sum under 2^31, and the three int32 tables are combined once at the end. A
    float32 scatter-add is a sequential sum: once an entry is large, each added weight rounds to float32's spacing
    there, the same way every time, so a weight of 0.3 summed over 3.2M tokens was counted 2.4% high, and an entry
    of weight-1 tokens stopped at 2^24 (16,777,216).
    """
    ctx = row_contexts(x, vocab, order)
    flat = (ctx * vocab + x.astype(jnp.int32)).reshape(-1)
    size = n_contexts(vocab, order) * vocab
    if jnp.finfo(w.dtype).bits > 32:  # float64: 53 bits, a sequential sum is accurate at any loop's size
        weights = jnp.broadcast_to(w[:, None], x.shape).reshape(-1)
        return jnp.zeros((size,), w.dtype).at[flat].add(weights).reshape(-1, vocab)
    n, length = x.shape
    # 2^s * max(L sum |w|, n L) <= 2^30: the h sums stay under 2^30 + n L / 2, the l and m sums under 2^29
    scale = jnp.exp2(jnp.floor(30.0 - jnp.log2(jnp.maximum(jnp.sum(jnp.abs(w)), n) * length)))
    parts, rest = [], w * scale
    for _ in range(3):
        part = jnp.round(rest)
        parts.append(part.astype(jnp.int32))
        rest = (rest - part) * scale  # exact: |rest - part| <= 1/2, and rest, part within 2x of each other
    per_token = jnp.broadcast_to(jnp.stack(parts, axis=1)[:, None, :], (n, length, 3)).reshape(-1, 3)
    sums = jnp.zeros((size, 3), jnp.int32).at[flat].add(per_token).astype(w.dtype)
    counts = (sums[:, 0] + (sums[:, 1] + sums[:, 2] / scale) / scale) / scale
    return counts.reshape(-1, vocab)


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
