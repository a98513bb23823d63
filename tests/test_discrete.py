"""Discrete sources, the categorical and n-gram families, the sampling bias and the discrete metrics, against
brute-force enumeration and plain numpy references (no statistics: tests/test_discrete_laws.py has those)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import config as C
from madloop import theory
from madloop import tokens as T
from madloop.data import make_source
from madloop.data.discrete import MarkovData, TextData, ZipfData
from madloop.precision import precision

jax.config.update("jax_enable_x64", False)


def chain_prob(trans: np.ndarray, row: tuple[int, ...], vocab: int, order: int) -> float:
    """P(row) under a padded chain, by walking the row with a list of symbols (the plain reading of the layout)."""
    symbols = [vocab] * order
    prob = 1.0
    for x in row:
        ctx = 0
        for s in symbols[len(symbols) - order :] if order else []:
            ctx = ctx * (vocab + 1) + s
        prob *= trans[ctx, x]
        symbols.append(x)
    return prob


def enumerate_rows(trans: np.ndarray, vocab: int, order: int, length: int) -> tuple[list, np.ndarray]:
    rows = list(itertools.product(range(vocab), repeat=length))
    return rows, np.array([chain_prob(trans, r, vocab, order) for r in rows])


def random_padded(vocab: int, order: int, seed: int, zeros: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    trans = rng.dirichlet(np.ones(vocab), size=(vocab + 1) ** order)
    if zeros:  # some transitions impossible (a sparse chain)
        trans[rng.random(trans.shape) < 0.3] = 0.0
        trans[:, 0] += 1e-3
        trans /= trans.sum(axis=1, keepdims=True)
    return trans


@pytest.mark.parametrize("order_p,order_q", [(0, 0), (1, 1), (2, 1), (0, 2)])
def test_sequence_laws_equal_enumeration_over_every_row(order_p, order_q):
    # V = 3, L = 4: 81 rows, each probability a product of L transition entries.
    v, length = 3, 4
    p, q = random_padded(v, order_p, 1), random_padded(v, order_q, 2)
    rows, pp = enumerate_rows(p, v, order_p, length)
    _, qq = enumerate_rows(q, v, order_q, length)
    assert pp.sum() == pytest.approx(1.0) and qq.sum() == pytest.approx(1.0)
    kl = np.sum(pp * np.log(pp / qq)) / length
    jp, jq = jnp.asarray(p, jnp.float32), jnp.asarray(q, jnp.float32)
    assert float(T.sequence_kl(jp, jq, v, order_p, order_q, length)) == pytest.approx(kl, rel=1e-4)
    assert float(T.sequence_entropy(jp, v, order_p, length)) == pytest.approx(
        -np.sum(pp * np.log(pp)) / length, rel=1e-5
    )
    marginal = np.zeros(v)
    for r, prob in zip(rows, pp, strict=True):
        for x in r:
            marginal[x] += prob / length
    np.testing.assert_allclose(T.token_marginal(jp, v, order_p, length), marginal, rtol=1e-5)
    x = jnp.asarray(np.array(rows[:20]))
    np.testing.assert_allclose(T.log_prob(jp, x, v, order_p), np.log(pp[:20]), rtol=1e-5)


def test_kl_is_infinite_where_the_model_lost_a_reachable_token_and_finite_where_it_is_unreachable():
    v = 3
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.9, 0.1, 0.0]])
    assert np.isfinite(float(T.sequence_kl(jnp.asarray(p), jnp.asarray(q), v, 0, 0, 1)))
    assert float(T.sequence_kl(jnp.asarray(q), jnp.asarray(p[:, [0, 2, 1]]), v, 0, 0, 1)) == np.inf


def test_padded_markov_truth_is_stationary_at_every_position():
    # A row's first k tokens follow the stationary law, so every position has the same token marginal.
    cfg = MarkovData(vocab=3, order=2, length=5, alpha=1.0, support=2, layout_seed=3)
    src = make_source(cfg)
    trans = np.asarray(src.tokens.trans, np.float64)
    rows, pp = enumerate_rows(trans, 3, 2, 5)
    per_position = np.zeros((5, 3))
    for r, prob in zip(rows, pp, strict=True):
        per_position[np.arange(5), r] += prob
    np.testing.assert_allclose(per_position, np.broadcast_to(per_position[0], (5, 3)), atol=1e-6)
    # sparse rows: every real context gives mass to exactly `support` tokens
    real = T.random_chain(3, 2, 1.0, 2, 3)
    assert ((real > 0).sum(axis=1) == 2).all()


def test_zipf_source_and_exponent():
    src = make_source(ZipfData(vocab=100, alpha=1.3))
    p = np.asarray(src.tokens.trans[0])
    np.testing.assert_allclose(p, (np.arange(100) + 1.0) ** -1.3 / np.sum((np.arange(100) + 1.0) ** -1.3), rtol=1e-5)
    assert float(T.zipf_exponent(jnp.asarray(p))) == pytest.approx(1.3, rel=1e-4)
    # a law collapsed onto one type has no slope (it was 0, the exponent of a flat law); two types do
    assert np.isnan(float(T.zipf_exponent(jnp.array([0.0, 1.0, 0.0, 0.0]))))
    assert float(T.zipf_exponent(jnp.array([0.8, 0.0, 0.2, 0.0]))) == pytest.approx(np.log(4) / np.log(2), rel=1e-5)
    x = src.sample(jax.random.key(0), 50)
    assert x.shape == (50, 1) and x.dtype == jnp.float32 and float(x.min()) >= 0 and float(x.max()) < 100


def test_a_small_chain_kl_in_float32_equals_float64_on_the_same_rows():
    """KL of a well-fitted chain is small against its rows' entropy: as sum p log p - sum p log q (two entropy-sized
    sums) it erred in float32 by 16% at 4e-7 and 230% at 4e-8. On the same float32 rows, the float32 KL is within
    1e-4 of float64's; the entropy difference (the power check) is not."""
    vocab, order, length = 16, 2, 32
    p = T.padded_chain(T.random_chain(vocab, order, 1.0, None, 0), vocab, order)
    rng = np.random.default_rng(0)
    for eps in (1e-3, 3e-4):
        q = p * np.exp(eps * rng.standard_normal(p.shape))
        q /= q.sum(axis=1, keepdims=True)
        p32, q32 = (jnp.asarray(a, jnp.float32) for a in (p, q))
        with precision("float64"):
            p64, q64 = (jnp.asarray(a, jnp.float64) for a in (p32, q32))
            want = float(T.sequence_kl(p64, q64, vocab, order, order, length))
        got = float(T.sequence_kl(p32, q32, vocab, order, order, length))
        assert got == pytest.approx(want, rel=1e-4)
        occ = T.occupancy(p32, vocab, order, length)
        entropy_difference = T._xlogy_rows(p32, p32) - T._xlogy_rows(p32, q32)
        old = float(jnp.sum(occ * entropy_difference) / length)
        assert abs(old / want - 1) > 0.01


def alias_law(threshold: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The exact law [C, V] that alias tables draw: slot j keeps j with probability t_j / 2^32, else its alias."""
    c, v = threshold.shape
    keep = threshold.astype(np.float64) / 2**32
    law = keep.copy()
    for r in range(c):
        np.add.at(law[r], alias[r], 1.0 - keep[r])
    return law / v


def float32_inverse_cdf_law(p: np.ndarray) -> np.ndarray:
    """The exact law of a float32 inverse cdf (the truth's earlier sampler): uniforms k / 2^23, the token the number
    of float32 cumulative sums <= u total."""
    cdf = np.asarray(T.sampling_cdf(jnp.log(jnp.asarray(p, jnp.float32)))[0], np.float64)
    steps = np.ceil(cdf / cdf[-1] * 2**23)  # uniforms below each cumulative sum
    return np.diff(np.concatenate([[0.0], np.minimum(steps, 2**23)])) / 2**23


@pytest.mark.parametrize(("vocab", "alpha"), [(10_000, 1.5), (10_000, 2.0), (1000, 3.0)])
def test_the_truth_draws_its_zipf_tail_at_its_probability(vocab, alpha):
    """The Zipf truth is drawn by alias tables built in float64 (``tokens.alias_tables``): every type's probability
    to 1e-3 relative, down to the rarest (3.9e-7 for the tail-cutting preset's V = 10^4, alpha = 1.5; 8e-10 at
    V = 1000, alpha = 3). The float32 inverse cdf it replaced (the power check) drew over 1000 tail types of the
    preset more than 10% off, and at alpha = 3 never drew hundreds of types that the exact metrics count."""
    p = T.zipf_probs(vocab, alpha)
    law = alias_law(*T.alias_tables(p[None]))[0]
    np.testing.assert_allclose(law, p, rtol=1e-3, atol=0)
    old = float32_inverse_cdf_law(p)
    assert np.sum(np.abs(old / p - 1) > 0.1) > 1000 if alpha == 1.5 else np.sum(old == 0) > 100


def test_alias_tables_of_many_rows_and_their_draws():
    """Rows at once (Vose's pairing vectorised over rows, above 16 rows) and row by row give each row's law to
    1e-9, zero-probability tokens included (never drawn), and a chain's draws follow it: 200k tokens of a
    two-token-context chain against the exact transition law by a chi-square test."""
    rng = np.random.default_rng(0)
    p = rng.random((300, 17)) ** 4
    p[:, 3] = 0.0
    p[5] = 0.0
    p[5, 7] = 1.0  # one certain token
    p /= p.sum(axis=1, keepdims=True)
    many = T.alias_tables(p)
    np.testing.assert_allclose(alias_law(*many), p, rtol=0, atol=1e-9)
    few = T.alias_tables(p[:10])
    np.testing.assert_allclose(alias_law(*few), p[:10], rtol=0, atol=1e-9)
    assert not alias_law(*many)[:, 3].any()
    # draws of a padded order-1 chain over V = 4 from the alias tables of its rows
    trans = rng.random((4, 4)) ** 3
    trans[:, 0] = 0.0
    trans /= trans.sum(axis=1, keepdims=True)
    padded = T.padded_chain(trans, 4, 1)
    tables = T.AliasTables(*(jnp.asarray(a) for a in T.alias_tables(padded)))
    x = np.asarray(T.sample_chain_alias(jax.random.key(3), tables, 5000, 40, 4, 1))
    assert x.shape == (5000, 40) and not (x == 0).any()
    pairs = np.zeros((4, 4))
    np.add.at(pairs, (x[:, :-1].ravel(), x[:, 1:].ravel()), 1)
    seen = pairs.sum(axis=1) > 0
    expected = pairs.sum(axis=1, keepdims=True) * trans
    cells = (expected > 0) & seen[:, None]
    chi2 = float(np.sum((pairs[cells] - expected[cells]) ** 2 / expected[cells]))
    dof = int(cells.sum() - seen.sum())
    assert chi2 < dof + 4.5 * np.sqrt(2 * dof)
    # the power check: the same draws scored against another chain (rows permuted) fail it
    other = pairs.sum(axis=1, keepdims=True) * trans[[1, 2, 3, 0]]
    assert float(np.sum((pairs[cells] - other[cells]) ** 2 / np.maximum(other[cells], 1e-9))) > dof + 4.5 * np.sqrt(
        2 * dof
    )


def numpy_bias(log_p: np.ndarray, lam: float, top_k: int, top_p: float) -> np.ndarray:
    return theory.truncate(theory.temperature_map(np.exp(log_p), lam), top_k, top_p)


@pytest.mark.parametrize(
    "lam,top_k,top_p", [(1.0, 0, 1.0), (0.5, 0, 1.0), (2.0, 3, 1.0), (1.0, 0, 0.65), (1.5, 4, 0.7)]
)
def test_sampling_bias_equals_the_plain_reference(lam, top_k, top_p):
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(8), size=3)
    p[1, 2] = p[1, 5] = 0.0  # zero-probability tokens stay at zero
    # ties: top-k and top-p break them toward the lower id (top_p = 0.65 keeps 0.3, 0.3 and the first 0.1; no
    # threshold sits exactly on a cumulative sum, where float32 rounding would decide)
    p[2, :] = [0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05, 0.0]
    p /= p.sum(axis=1, keepdims=True)
    got = np.exp(np.asarray(T.biased_log_probs(jnp.log(jnp.asarray(p, jnp.float32)), lam, top_k, top_p)))
    want = np.stack([numpy_bias(np.log(row), lam, top_k, top_p) for row in p])
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_sampling_bias_vmapped_over_runs_that_do_and_do_not_truncate():
    """Runs vmapped together, some truncating and some not (the bisections run while any run needs them, and
    start collapsed in the others), give each run's own law bit for bit, and the plain reference's; the same for a
    batch in which no run truncates (where the bisections take no step)."""
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(12) * 0.5, size=4)
    p[0, 3] = p[2, 7] = 0.0
    p /= p.sum(axis=1, keepdims=True)
    log_p = jnp.log(jnp.asarray(p, jnp.float32))
    knobs = [(1.0, 0, 1.0), (1.5, 4, 0.7), (0.7, 0, 0.6), (1.0, 11, 1.0), (1.2, 12, 1.0), (1.0, 3, 1.0)]
    for batch in (knobs, [k for k in knobs if (k[1] < 1 or k[1] >= 12) and k[2] >= 1]):
        lam, top_k, top_p = (jnp.asarray([k[i] for k in batch], jnp.float32) for i in range(3))
        got = np.asarray(jax.jit(jax.vmap(T.biased_log_probs, in_axes=(None, 0, 0, 0)))(log_p, lam, top_k, top_p))
        for i, (lam_i, k_i, p_i) in enumerate(batch):
            alone = np.asarray(T.biased_log_probs(log_p, jnp.float32(lam_i), jnp.float32(k_i), jnp.float32(p_i)))
            np.testing.assert_array_equal(got[i], alone)
            want = np.stack([numpy_bias(np.log(row), lam_i, k_i, p_i) for row in p])
            np.testing.assert_allclose(np.exp(got[i]), want, atol=1e-6)


@pytest.mark.parametrize("runs", [7, 73, 100])
def test_inverse_cdf_draws_vmapped_over_runs_equal_each_run_s_own(runs):
    """``invert`` vmapped over runs (searched in blocks of SEARCH_BLOCK runs on the CPU, the last block padded with
    the first runs and dropped) gives each run's own tokens, for runs below, off and on a multiple of the block, and
    with the uniforms shared by every run."""
    rng = np.random.default_rng(runs)
    p = rng.dirichlet(np.ones(30) * 0.3, size=runs)
    p[:, 4] = 0.0
    cdf, last = T.sampling_cdf(jnp.log(jnp.asarray(p, jnp.float32)))
    u = jnp.asarray(rng.uniform(size=(runs, 40, 2)), jnp.float32)
    got = np.asarray(jax.jit(jax.vmap(T.invert))(cdf, last, u))
    shared = np.asarray(jax.jit(jax.vmap(T.invert, in_axes=(0, 0, None)))(cdf, last, u[0]))
    for i in range(runs):
        np.testing.assert_array_equal(got[i], T.invert(cdf[i], last[i], u[i]))
        np.testing.assert_array_equal(shared[i], T.invert(cdf[i], last[i], u[0]))
    assert not (got == 4).any()  # a token of zero probability is never drawn


def test_temperature_map_limits():
    p = np.array([0.5, 0.3, 0.2, 0.0])
    np.testing.assert_allclose(theory.temperature_map(p, 1.0), p)
    np.testing.assert_allclose(theory.temperature_map(p, 1e-3), [1, 0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(theory.temperature_map(p, 1e4), [1 / 3, 1 / 3, 1 / 3, 0], atol=1e-4)
    tie = np.array([0.4, 0.4, 0.2])
    np.testing.assert_allclose(theory.temperature_map(tie, 1e-3), [0.5, 0.5, 0], atol=1e-12)
    ts = np.geomspace(0.05, 50, 40)
    h = [-np.sum(q[q > 0] * np.log(q[q > 0])) for q in (theory.temperature_map(p, t) for t in ts)]
    assert np.all(np.diff(h) > 0)  # entropy rises with the temperature
    # the family's sampler at lam = T applies the same map (float32, all the way to the limits)
    for t in (0.02, 0.5, 3.0, 200.0):
        got = np.exp(np.asarray(T.biased_log_probs(jnp.log(jnp.asarray(p, jnp.float32)), t, 0, 1.0)))
        np.testing.assert_allclose(got, theory.temperature_map(p, t), atol=2e-6)


def test_inverse_cdf_never_draws_a_token_of_zero_probability():
    # float32 cumulative sums end below 1: uniforms above the total must not fall on the trailing zeros.
    p = np.zeros(1000)
    p[:7] = 1 / 7
    cdf, last = T.sampling_cdf(jnp.log(jnp.asarray(p[None], jnp.float32)))
    assert int(last[0]) == 6
    x = T.sample_chain(jax.random.key(0), cdf, last, 20000, 1, 1000, 0)
    assert int(x.max()) <= 6
    u = jnp.array([0.0, 0.5, 1.0 - 2**-24, 1.0])  # including u = 1 (rounding of u * total)
    assert [int(T.invert(cdf[0], last[0], ui)) for ui in u] == [0, 3, 6, 6]


def test_counts_and_smoothing_by_hand():
    # rows (0 1 1) and (1 0) with weights 2 and 1 at order 1, V = 2 (B = 3, BOS = 2):
    # pairs (BOS,0) (0,1) (1,1) weigh 2; (BOS,1) (1,0) weigh 1.
    x = jnp.array([[0, 1, 1], [1, 0, 0]])[:, :3]
    x = jnp.array([[0.0, 1, 1], [1.0, 0, 0]])
    w = jnp.array([2.0, 1.0])
    counts = T.count_ngrams(T.as_tokens(x)[:, :], w, 2, 1)
    want = np.zeros((3, 2))
    for row, weight in (([0, 1, 1], 2), ([1, 0, 0], 1)):
        prev = 2
        for tok in row:
            want[prev, tok] += weight
            prev = tok
    np.testing.assert_array_equal(counts, want)
    np.testing.assert_allclose(T.smoothed(counts, 0.5), (want + 0.5) / (want.sum(1, keepdims=True) + 1.0))
    empty = jnp.zeros((3, 2)).at[0].set(jnp.array([3.0, 1.0]))  # contexts 1 and 2 never seen
    np.testing.assert_allclose(T.smoothed(empty, 0.0), [[0.75, 0.25]] * 3)  # back off to token frequencies


def test_weighted_counts_in_float32_are_exact_at_loop_sizes():
    """A pool's weights are rarely 1 (real_weight 2 over equal parts: 1.333 and 0.667) and a large loop counts
    millions of tokens. A float32 scatter-add, a sequential sum, rounded each added weight to the spacing of the
    entry's running total: 2.4% high for a weight of 0.3 over 3.2M tokens, and an entry stopped at 2^24. The
    integer parts (``count_ngrams``) are within 1e-6 of numpy's float64 counts; the float32 scatter (the power
    check) is not, by 1e-4 at 3.2M tokens."""
    rng = np.random.default_rng(0)
    n, length = 100_000, 32
    x = jnp.asarray((rng.random((n, length)) < 0.3).astype(np.int32))
    w = np.where(np.arange(n) < n // 2, 4 / 3, 2 / 3).astype(np.float32)  # real rows, then synthetic rows
    want = np.bincount(np.asarray(x).ravel(), weights=np.repeat(w.astype(np.float64), length), minlength=2)
    got = np.asarray(jax.jit(T.count_ngrams, static_argnums=(2, 3))(x, jnp.asarray(w), 2, 0))[0]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    flat = jnp.zeros(2, jnp.float32).at[x.reshape(-1)].add(jnp.repeat(jnp.asarray(w), length))
    assert np.max(np.abs(np.asarray(flat) / want - 1)) > 1e-4
    # weight 1 past 2^24 in one entry (where float32 stops counting), and a context table of order 1
    ones = jnp.zeros((2**24 // 64 + 8192, 64), jnp.int32)  # 17.0M tokens after context 0
    counts = np.asarray(T.count_ngrams(ones, jnp.ones(ones.shape[0], jnp.float32), 2, 1))
    assert counts.sum() == ones.size and counts[0, 0] == ones.size - ones.shape[0]  # the start symbol's row aside


def test_distinct_n_equals_python_sets():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 4, size=(6, 7))
    for n in (1, 2, 3):
        grams = [tuple(r[i : i + n]) for r in x for i in range(7 - n + 1)]
        assert float(T.distinct_n(jnp.asarray(x), 4, n)) == pytest.approx(len(set(grams)) / len(grams))


def test_ngram_family_fits_counts_and_its_chain_metrics_match_numpy():
    table = madloop.simulate(
        ["data=markov", "data.vocab=5", "data.length=6", "model=ngram", "model.order=1", "model.smoothing=0.1"]
        + ["loop.generations=1", "loop.seeds=2", "regime.n_real=40", "eval.metrics=[kl_forward,entropy,support]"]
        + ["eval.n=64", "eval.snapshot_n=8", "plots=false"]
    )
    real = np.asarray(table.state.real[0]).astype(int)  # generation 0's real rows [40, 6]
    counts = np.zeros((6, 5))
    for row in real:
        prev = 5
        for tok in row:
            counts[prev, tok] += 1
            prev = tok
    q0 = (counts + 0.1) / (counts.sum(1, keepdims=True) + 0.5)
    src = make_source(MarkovData(vocab=5, length=6))
    p = np.asarray(src.tokens.trans, np.float64)
    rows, pp = enumerate_rows(p, 5, 1, 6)
    qq = np.array([chain_prob(q0, r, 5, 1) for r in rows])
    kl = np.sum(pp * np.log(pp / qq)) / 6
    assert table.metrics["kl_forward"][0, 0] == pytest.approx(kl, rel=1e-3)
    assert table.metrics["entropy"][0, 0] == pytest.approx(-np.sum(qq * np.log(qq)) / 6, rel=1e-4)
    assert table.metrics["support"][0, 0] == 1.0  # smoothing keeps every token


def test_categorical_counts_pool_equals_the_sample_pool():
    # Counts are sufficient statistics: an accumulate pool kept as counts fits what refitting every sample fits.
    base = ["data=zipf", "data.vocab=30", "model=categorical", "model.smoothing=0.3", "regime.pool=accumulate"]
    base += ["regime=fresh_data", "regime.real_weight=2", "loop.generations=6", "loop.seeds=3", "regime.n_real=20"]
    base += ["regime.n_synth=25", "eval.metrics=[kl_forward,gini_simpson]", "eval.n=64", "plots=false"]
    stats, samples = madloop.simulate(base), madloop.simulate([*base, "loop.stats_pool=false"])
    assert stats.state.pool.counts.shape == (3, 1, 30)
    for name in stats.names:
        np.testing.assert_allclose(stats.metrics[name], samples.metrics[name], rtol=1e-5)


def test_text_source_reads_a_local_file(tmp_path):
    text = "abracadabra " * 50
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    src = make_source(TextData(path=str(path), length=8, heldout=0.2, heldout_n=5))
    assert src.tokens.symbols == (" ", "a", "b", "c", "d", "r") and src.tokens.vocab == 6
    rows = np.asarray(src.sample(jax.random.key(0), 30)).astype(int)
    for r in rows:
        assert "".join(src.tokens.symbols[i] for i in r) in text[: int(round(len(text) * 0.8))]
    held = np.asarray(src.heldout).astype(int)
    assert held.shape == (5, 8)
    assert "".join(src.tokens.symbols[i] for i in held[0]) == text[480:488]


@pytest.mark.parametrize(
    "overrides,match",
    [
        (["data=text"], "data.path=null: required: a local UTF-8 text file"),
        (["data=text", "data.path=/nonexistent.txt"], "no such file"),
        (["data=markov", "data.length=1"], "data.length=1: must be > data.order=1"),
        (["data=markov", "data.support=40"], "data.support=40"),
        (["data=gaussian", "model=ngram"], "model=ngram: needs a discrete source"),
        (["data=zipf", "model=categorical", "model.top_p=0"], "model.top_p=0.0: must lie in"),
        (["data=zipf", "model=categorical", "sweep.model.top_k=[1.5]"], "sweep.model.top_k"),
        (["data=zipf", "model=categorical", "eval.metrics=[sw2]"], "'sw2' needs continuous data"),
        (["data=gaussian", "model=gaussian", "eval.metrics=[kl_forward]"], "'kl_forward' needs data=zipf or markov"),
        (
            ["data=zipf", "model=gaussian"],
            r"^model=gaussian: a discrete source needs a token model \(model=categorical\|",
        ),
        # (a family with a d >= 2 check of its own is refused as a continuous family first)
        (["data=zipf", "model=flow"], "model=flow: a discrete source needs a token model"),
        (["data=markov", "model=ngram", "curation=k_choice"], "curation=k_choice: needs continuous data or images"),
    ],
)
def test_config_errors_name_the_field(overrides, match):
    with pytest.raises(C.ConfigError, match=match):
        madloop.simulate([*overrides, "loop.generations=1", "loop.seeds=1", "plots=false"])
