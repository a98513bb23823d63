"""Metrics against reference libraries (POT, prdc, scipy), hand-checkable cases, and the table of metric groups."""

import jax
import jax.numpy as jnp
import numpy as np
import ot
import prdc as prdc_ref
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from madloop import config as C
from madloop import linalg
from madloop import metrics as M
from madloop.curation import KChoiceCuration, NoCuration, make_curation
from madloop.data import make_source
from madloop.data.toy import GaussianData, MoonsData, Ring8Data
from madloop.metrics.group import SAMPLES
from madloop.mixture import Mixture, gaussian_log_prob, mixture_log_prob, mixture_moments
from madloop.models.gaussian import GaussianParams
from madloop.types import Density, GenerativeModel, Moments

KEY = jax.random.key(0)


def _unused(*args):
    raise AssertionError("metrics never fit or sample")


def family(density=None, moments=None) -> GenerativeModel:
    """A model family with only the capabilities metrics read (hand-built: the families still build the old
    interface in this branch)."""
    return GenerativeModel(_unused, _unused, _unused, density=density, moments=moments)


GAUSSIAN = family(
    Density(lambda p, x: gaussian_log_prob(x, p.mean, linalg.pivoted_cholesky(p.cov))),
    Moments(lambda p: (p.mean, p.cov), gaussian=True),
)
GMM = family(Density(mixture_log_prob), Moments(mixture_moments))
KDE = family(Density(_unused), Moments(_unused))  # availability only: a density and moments, not exactly Gaussian
DIFFUSION = family()


NO_CURATION = NoCuration()


def context(source=None, model=GAUSSIAN, curation=NO_CURATION, **eval_settings) -> M.Context:
    """The parts a metric reads: a data=gaussian source and the Gaussian family unless given."""
    source = make_source(GaussianData()) if source is None else source
    return M.Context(source, model, make_curation(curation, source), C.EvalConfig(**eval_settings))


def reference(heldout, k=5, projections=64, names=None, ctx=None) -> M.Reference:
    """make_reference over the held-out set with eval.k and eval.projections (for every metric that applies unless
    ``names`` are given)."""
    ctx = context(k=k, projections=projections) if ctx is None else ctx
    if names is None:
        names = tuple(name for name, why in M.available(ctx).items() if why is None)
    return M.make_reference(KEY, heldout, ctx, names)


def two_samples(n=300, d=3, shift=0.5):
    a = jax.random.normal(jax.random.key(1), (n, d))
    b = jax.random.normal(jax.random.key(2), (n, d)) * 1.3 + shift
    return a, b


def test_sort_floats_is_numpy_sort():
    x = jnp.array([[3.0, -1.0, 0.0, -2.5, 1e-30, -1e-30, jnp.inf, -jnp.inf, 2.0, -0.0]])
    np.testing.assert_array_equal(np.abs(np.asarray(M.sort_floats(x))), np.abs(np.sort(np.asarray(x))))
    y = jax.random.normal(KEY, (7, 1000)) * 1e3
    np.testing.assert_array_equal(M.sort_floats(y), np.sort(np.asarray(y), axis=-1))


def test_sort_floats_keeps_float64():
    """In x64 mode (loop.precision=float64) values that differ below float32's resolution keep their order and
    value: a float32 key would round 1 + 1e-12 to 1 and return float32."""
    from madloop.precision import precision

    with precision("float64"):
        x = jnp.asarray(np.array([[1.0 + 1e-12, -1e-300, 1.0, -2.0 - 1e-13, -jnp.inf, -0.0, 5e-324, -2.0]]))
        got = M.sort_floats(x)
        assert got.dtype == jnp.float64
        np.testing.assert_array_equal(np.abs(np.asarray(got)), np.abs(np.sort(np.asarray(x))))
        y = jax.random.normal(KEY, (5, 999), jnp.float64) * 1e-8 + 1.0  # equal in float32 to a few values
        np.testing.assert_array_equal(M.sort_floats(y), np.sort(np.asarray(y), axis=-1))


def test_pairwise_distances_do_not_lose_precision_away_from_the_origin():
    """|a|^2 + |b|^2 - 2 a.b of raw coordinates loses eps |x|^2: at (1000, 1000) a distance of 0.25 came out 0.
    Distances must be those of the differences, in both of the function's paths (d <= 4 and d > 4)."""
    x = jnp.array([[1000.0, 1000.0], [1000.5, 1000.0], [1000.0, 1000.25]])
    want = np.array([[0, 0.5, 0.25], [0.5, 0, np.hypot(0.5, 0.25)], [0.25, np.hypot(0.5, 0.25), 0]])
    np.testing.assert_allclose(M.pairwise_distances(x, x), want, rtol=1e-6, atol=0)
    y = jax.random.normal(KEY, (50, 8))
    for offset in (0.0, 300.0):
        got = np.asarray(M.pairwise_distances(y[:20] + offset, y + offset), np.float64)
        exact = np.linalg.norm(np.asarray(y[:20] + offset, np.float64)[:, None] - np.asarray(y + offset)[None], axis=-1)
        # sqrt of a float32 rounding of squared distances ~8 (a point to itself: up to 1e-3), and of x + 300 itself
        np.testing.assert_allclose(got, exact, atol=2e-3)


@pytest.mark.parametrize("dim,offset", [(2, 1000.0), (8, 300.0)])
def test_k_nn_metrics_do_not_move_with_the_origin(dim, offset):
    """precision, recall, density, coverage and authenticity read distances only, so shifting the held-out set and
    the samples together leaves them unchanged (uncentred products gave 0.25 / 0.25 / 0.10 / 0.14 for the
    held-out set against itself at offset 1000, where 1 / 1 / 1 / 1 / 0 is exact)."""
    names = ("precision", "recall", "density", "coverage", "authenticity")
    real = jax.random.normal(jax.random.key(3), (500, dim))
    fake = 1.2 * jax.random.normal(jax.random.key(4), (400, dim)) + 0.3
    ctx = context(source=make_source(GaussianData(dim=dim)))
    at = lambda shift, x: M.evaluate_samples(names, x + shift, ctx, M.make_reference(KEY, real + shift, ctx, names))
    itself = at(offset, real)
    assert {k: float(v) for k, v in itself.items()} == {**dict.fromkeys(names[:4], 1.0), "authenticity": 0.0}
    near, far = at(0.0, fake), at(offset, fake)
    for name in names:
        assert abs(float(far[name]) - float(near[name])) <= 0.005, (name, float(near[name]), float(far[name]))


def test_a_few_far_off_samples_leave_the_k_nn_metrics_of_the_bulk_exact():
    """A diverging generation can put a few finite samples far off. Above 4 dimensions the distances are a matrix
    product of centred sets, whose error is eps |x - centre|^2: centred on the samples' mean, 5% of samples at 3e4
    (d = 8) moved the centre to 1500 and made density 3.69 for 0.957 and recall 0.563 for 0.947. Centred on their
    coordinate-wise median, precision, recall, density and coverage equal float64 numpy's (strict balls, the k-th
    neighbour after the point itself), in blocks as in the loop; the mean centre, passed explicitly, fails."""
    from scipy.spatial.distance import cdist

    from madloop.metrics import distances as D

    d, n, k = 8, 600, 5
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, d)).astype(np.float32)
    fake = rng.normal(size=(n, d))
    fake[: n // 20] += 3e4
    fake = fake.astype(np.float32)
    rr, ff = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    drr, drf = cdist(rr, rr), cdist(rr, ff)
    real_radii, fake_radii = np.sort(drr, 1)[:, k], np.sort(cdist(ff, ff), 1)[:, k]
    balls = (drf < real_radii[:, None]).sum(0)
    exact = {
        "precision": (balls > 0).mean(),
        "recall": (drf < fake_radii[None, :]).any(1).mean(),
        "density": balls.mean() / k,
        "coverage": (drf.min(1) < real_radii).mean(),
    }
    radii = D.kth_neighbour_distance(jnp.asarray(real), k)
    np.testing.assert_allclose(radii, real_radii, rtol=1e-5)
    got = {name: float(v) for name, v in D.prdc(radii, jnp.asarray(real), jnp.asarray(fake), k).items()}
    assert got == pytest.approx(exact, abs=1e-6), (got, exact)
    # power: the samples' mean as the centre of the real rows' distances to them
    mean = jnp.mean(jnp.asarray(fake), axis=0)
    wrong = np.asarray(D.pairwise_distances(jnp.asarray(real), jnp.asarray(fake), mean))
    assert abs((wrong < real_radii[:, None]).sum(0).mean() / k - exact["density"]) > 0.5


def test_kth_smallest_keeps_ties():
    v = jnp.array([[5.0, 1.0, 1.0, 3.0, 1.0, 2.0]])
    # sorted: 1 1 1 2 3 5
    assert [float(M.kth_smallest(v, k)[0]) for k in range(6)] == [1, 1, 1, 2, 3, 5]


def test_kth_smallest_equals_sorting_on_tied_and_infinite_rows():
    # Rows of few distinct values (heavy ties, -inf and inf among them), every position k: the masked-min and
    # count rounds must give the sorted row's entry (a round that skipped -inf, or counted ties once, fails).
    rng = np.random.default_rng(0)
    levels = np.array([-np.inf, 0.0, 0.5, 1.0, 2.0, np.inf], np.float32)
    for m in (1, 2, 7, 30):
        rows = levels[rng.integers(0, len(levels), size=(50, m))]
        for k in range(m):
            np.testing.assert_array_equal(np.asarray(M.kth_smallest(jnp.asarray(rows), k)), np.sort(rows, -1)[:, k])
    # no order in a row with NaN, no position k >= m: NaN
    assert np.isnan(M.kth_smallest(jnp.array([[np.nan, 1.0, 2.0]]), 1)[0])
    assert np.isnan(M.kth_smallest(jnp.array([[1.0, 2.0]]), 2)[0])


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 8 rows for the 30-column matrices below (row_block = max(8, 64 // m)) on any backend, so that the
    small sets of these tests run through the loop over blocks, its padded last block included."""
    from madloop.metrics import distances as D

    monkeypatch.setattr(D, "BLOCK_ENTRIES", {"cpu": 64})
    monkeypatch.setattr(D, "BLOCK_ENTRIES_ACCELERATOR", 64)
    assert M.row_block(30) == 8


def collapsing(n, m, d=3):
    """a [n, d] and b [m, d] as a collapsing loop makes them: a third of each set one repeated point (shared by
    both), the rest spread; distances tie and reach 0 exactly. Integer coordinates, so that every squared distance
    is exact in float32: a block's matrix product can round differently from the whole matrix's (another kernel for
    another shape), and these tests check the blocking, not the product."""
    a = np.round(3 * np.asarray(jax.random.normal(jax.random.key(5), (n, d))))
    b = np.round(3 * np.asarray(jax.random.normal(jax.random.key(6), (m, d))))
    a[: n // 3], b[: m // 3] = a[0], a[0]
    return jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)


@pytest.mark.parametrize("n", [5, 8, 9, 29, 30])  # one short block, one full, a full + a padded one, many
def test_blocked_kth_distance_is_the_whole_matrix_s_exactly(small_blocks, n):
    a, b = collapsing(n, 30)
    whole = M.pairwise_distances(a, b)
    for k in (0, 3, 12):
        np.testing.assert_array_equal(np.asarray(M.kth_distance(a, b, k)), np.asarray(M.kth_smallest(whole, k)))
    # a NaN row stays NaN (no order) and leaves the other rows as they were, also when it is the padding's row 0
    for bad in (0, n - 1):
        a_nan = a.at[bad, 0].set(jnp.nan)
        got, want = M.kth_distance(a_nan, b, 3), M.kth_smallest(M.pairwise_distances(a_nan, b), 3)
        assert np.isnan(got[bad])
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def prdc_whole(real_radii, real, fake, k):
    """prdc's four numbers from whole float32 distance matrices (numpy reductions over madloop's distances)."""
    d_rf = np.asarray(M.pairwise_distances(real, fake))
    fake_radii = np.asarray(M.kth_smallest(M.pairwise_distances(fake, fake), k))
    inside = d_rf < np.asarray(real_radii)[:, None]
    return {
        "precision": inside.any(0).mean(),
        "recall": (d_rf < fake_radii[None, :]).any(1).mean(),
        "density": inside.sum(0).mean() / k,
        "coverage": (d_rf.min(1) < np.asarray(real_radii)).mean(),
    }


def test_blocked_prdc_counts_every_ball_once(small_blocks):
    # 29 real rows = 3 blocks of 8 + 5 rows and 3 padding copies of row 0. Row 0's ball holds every fake sample,
    # so a block loop that counted its padding would add 3 / k to density: the check below shows it does not.
    real, fake = collapsing(29, 30)
    k = 3
    radii = M.kth_neighbour_distance(real, k).at[0].set(100.0)
    ours = M.prdc(radii, real, fake, k)
    want = prdc_whole(radii, real, fake, k)
    for name, value in want.items():
        assert float(ours[name]) == pytest.approx(value, abs=1e-7), name
    unmasked = M.row_blocks(
        lambda _, __, rows, r: ((), jnp.sum(M.pairwise_distances(rows, fake) < r[:, None], axis=0)), (real, radii), 30
    )[1]
    assert float(jnp.mean(unmasked)) / k == pytest.approx(want["density"] + 3 / k, abs=1e-6)
    # collapse: every fake sample one real point (precision 1, coverage of that point's neighbourhood only), and
    # copies of the real set
    for fake_case in (jnp.broadcast_to(real[0], (30, 3)), real[:29]):
        ours, want = M.prdc(radii, real, fake_case, k), prdc_whole(radii, real, fake_case, k)
        for name, value in want.items():
            assert float(ours[name]) == pytest.approx(value, abs=1e-7), name


@pytest.mark.parametrize("n", [8, 16, 20, 29, 40])  # 1 to 5 blocks of 8: an even and an odd count, padded or not
def test_blocked_kernel_means_match_float64(small_blocks, n):
    # Both kernels, with and without the diagonal: float64 numpy over every pair. A sum that counted the padding
    # (3 copies of row 0 at n = 29) or the diagonal would be off by about 10% and 3%, and one over a set with itself
    # that counted a pair of blocks once, or the pair at distance count / 2 twice, by a block's share: far
    # outside 1e-5.
    a, b = collapsing(n, 30)
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    h = np.array([0.3, 1.0, 3.0])
    for x, xn, exclude in ((a, an, True), (b, bn, True), (a, an, False)):
        sq = cdist(xn, bn, "sqeuclidean") if not exclude else cdist(xn, xn, "sqeuclidean")
        other = b if not exclude else x
        keep = ~np.eye(len(xn), dtype=bool) if exclude else np.ones(sq.shape, bool)
        rbf = [np.exp(-sq / (2 * s * s))[keep].mean() for s in h]
        got = M.rbf_kernel_means(x, other, jnp.asarray(h, jnp.float32), exclude)
        np.testing.assert_allclose(np.asarray(got), rbf, rtol=1e-5)
        poly = ((xn @ (bn if not exclude else xn).T / 3 + 1) ** 3)[keep].mean()
        got = M.kernel_means(lambda rows, cols: ((rows @ cols.T / 3 + 1) ** 3,), x, other, exclude)[0]
        assert float(got) == pytest.approx(poly, rel=1e-5)
    # "i != j" pairs one set with itself: a second set would silently be ignored, so it is refused
    with pytest.raises(ValueError, match="exclude_diagonal"):
        M.rbf_mean(a, a + 1.0, 1.0, exclude_diagonal=True)


def test_sliced_w2_matches_pot_with_the_same_directions():
    a, b = two_samples()
    ref = reference(a, 5, 64).stats["sw2"]
    ours = M.sliced_w2(ref.proj_sorted, b, ref.directions)
    theirs = ot.sliced_wasserstein_distance(
        np.asarray(a, np.float64), np.asarray(b, np.float64), projections=np.asarray(ref.directions, np.float64).T, p=2
    )
    assert float(ours) == pytest.approx(float(theirs), rel=1e-4)


def test_one_dimensional_sliced_w2_is_exact_w2():
    a = jax.random.normal(jax.random.key(1), (200, 1))
    b = jax.random.exponential(jax.random.key(2), (200, 1))
    ref = reference(a, 5, 3).stats["sw2"]  # in 1-D every direction is +-1: SW2 = W2
    exact = np.sqrt(ot.emd2([], [], ot.dist(np.asarray(a, np.float64), np.asarray(b, np.float64))))
    assert float(M.sliced_w2(ref.proj_sorted, b, ref.directions)) == pytest.approx(exact, rel=1e-4)


def test_sliced_w2_of_unequal_sizes_matches_pot():
    """Different sample sizes (a fixed held-out set against eval.n model samples): the merged-breakpoint
    quantile integral equals POT's sliced W2 and, in 1-D, the exact optimal-transport W2."""
    a = jax.random.normal(jax.random.key(3), (90, 3))
    b = 0.5 + jax.random.exponential(jax.random.key(4), (140, 3))
    ref = reference(a, 5, 32, ("sw2",)).stats["sw2"]
    theirs = ot.sliced_wasserstein_distance(
        np.asarray(a, np.float64), np.asarray(b, np.float64), projections=np.asarray(ref.directions, np.float64).T, p=2
    )
    assert float(M.sliced_w2(ref.proj_sorted, b, ref.directions)) == pytest.approx(float(theirs), rel=1e-4)
    a1, b1 = a[:, :1], b[:, :1]
    ref1 = reference(a1, 5, 3, ("sw2",)).stats["sw2"]
    exact = np.sqrt(ot.emd2([], [], ot.dist(np.asarray(a1, np.float64), np.asarray(b1, np.float64))))
    assert float(M.sliced_w2(ref1.proj_sorted, b1, ref1.directions)) == pytest.approx(exact, rel=1e-4)


def test_prdc_matches_reference_package():
    a, b = two_samples(n=400, d=4, shift=0.7)
    for k in (3, 5):
        ref = reference(a, k, 8)
        ours = M.prdc(ref.stats["prdc"], a, b, k)
        theirs = prdc_ref.compute_prdc(np.asarray(a, np.float64), np.asarray(b, np.float64), k)
        for name in ("precision", "recall", "density", "coverage"):
            # float32 vs float64 distances can flip a ball membership that sits on the boundary: allow 2 of 400
            assert float(ours[name]) == pytest.approx(theirs[name], abs=2 / 400), name


def test_mmd_matches_numpy_reference_and_is_unbiased():
    a, b = two_samples(n=250, d=2)
    ctx = context(n=250, k=5, projections=8)
    ref = reference(a, ctx=ctx)
    s = float(ref.stats["mmd"].bandwidths[0])
    an, bn = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert s == pytest.approx(np.median(cdist(an, an)[np.triu_indices(250, 1)]), rel=1e-5)
    kxx, kyy, kxy = (np.exp(-cdist(u, v, "sqeuclidean") / (2 * s * s)) for u, v in ((an, an), (bn, bn), (an, bn)))
    m = 250
    expected = (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )
    ours = M.evaluate_samples(("mmd",), b, ctx, ref)["mmd"]
    assert float(ours) == pytest.approx(expected, rel=1e-3)

    # Unbiased: over fresh pairs of samples from one law, the mean of MMD^2 is 0 within its standard error
    # (the biased V-statistic would sit near +2 (1 - E k) / n instead).
    def fresh_pair(k):
        k1, k2 = jax.random.split(k)
        r = reference(jax.random.normal(k1, (100, 2)), ctx=ctx)
        return M.evaluate_samples(("mmd",), jax.random.normal(k2, (100, 2)), ctx, r)["mmd"]

    vals = np.asarray(jax.vmap(fresh_pair)(jax.random.split(jax.random.key(9), 400)))
    assert abs(vals.mean()) < 4.5 * vals.std(ddof=1) / np.sqrt(len(vals))


def test_frechet_distance_matches_scipy_sqrtm():
    a, b = two_samples(d=4)
    mu1, mu2 = np.asarray(a.mean(0), np.float64), np.asarray(b.mean(0), np.float64)
    c1, c2 = np.cov(np.asarray(a, np.float64).T), np.cov(np.asarray(b, np.float64).T)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(c1 @ c2)))
    ours = M.frechet_distance(jnp.asarray(mu1), jnp.asarray(c1), jnp.asarray(mu2), jnp.asarray(c2))
    assert float(ours) == pytest.approx(expected, rel=1e-4)


def test_gaussian_kl_closed_form():
    mu_p, mu_q = np.array([0.0, 1.0]), np.array([1.0, -1.0])
    cp, cq = np.array([[2.0, 0.3], [0.3, 1.0]]), np.array([[1.0, -0.2], [-0.2, 0.5]])
    iq = np.linalg.inv(cq)
    dmu = mu_q - mu_p
    expected = 0.5 * (np.trace(iq @ cp) + dmu @ iq @ dmu - 2 + np.log(np.linalg.det(cq) / np.linalg.det(cp)))
    ours = M.gaussian_kl(*(jnp.asarray(v) for v in (mu_p, cp, mu_q, cq)))
    assert float(ours) == pytest.approx(expected, rel=1e-5)
    assert float(M.gaussian_kl(*(jnp.asarray(v) for v in (mu_p, cp, mu_p, cp)))) == pytest.approx(0, abs=1e-6)


def test_gaussian_kl_is_infinite_for_a_singular_model():
    """KL(truth || model) of a nonsingular truth against a collapsed model (zero, rank-1 covariance) is +inf; the
    whitening's division by zero pivots gave NaN."""
    for cov_q, mu_q in ((np.diag([1.0, 0.0]), np.zeros(2)), (np.zeros((2, 2)), np.ones(2))):
        got = M.gaussian_kl(*(jnp.asarray(v, jnp.float32) for v in (np.zeros(2), np.eye(2), mu_q, cov_q)))
        assert float(got) == np.inf
    nearly = M.gaussian_kl(
        *(jnp.asarray(v, jnp.float32) for v in (np.zeros(2), np.eye(2), np.zeros(2), np.diag([1, 1e-3])))
    )
    assert float(nearly) == pytest.approx(0.5 * (1e3 - 1 + np.log(1e-3)), rel=1e-4)  # finite and right below it


def test_mode_counts_on_a_hand_made_sample():
    src = make_source(Ring8Data(radius=2.0, std=0.05))
    means = np.asarray(src.mixture.means)
    # 60 samples on mode 0, 30 on mode 3, 9 inside 3 sigma of mode 5 (radius 0.15), 1 far away.
    pts = np.concatenate(
        [
            np.repeat(means[[0]], 60, 0),
            np.repeat(means[[3]], 30, 0),
            np.repeat(means[[5]] + [0.1, 0.0], 9, 0),
            [[0.0, 0.0]],
        ]
    )
    out = M.mode_stats(jnp.asarray(pts, jnp.float32), src, share=0.1)
    assert float(out["modes"]) == 2  # mode 5 holds 9% < 10%
    assert float(out["hq"]) == pytest.approx(0.99)
    out = M.mode_stats(jnp.asarray(pts, jnp.float32), src, share=0.05)
    assert float(out["modes"]) == 3


def test_real_vs_real_metrics_are_near_their_floor():
    src = make_source(Ring8Data())
    real = src.sample(jax.random.key(1), 1000)
    other = src.sample(jax.random.key(2), 1000)
    names = ("sw2", "mmd", "fd", "precision", "recall", "density", "coverage", "modes", "hq")
    ctx = context(src, GMM)
    ref = M.make_reference(KEY, real, ctx, names)
    out = M.evaluate_samples(names, other, ctx, ref)
    assert float(out["modes"]) == 8 and float(out["hq"]) > 0.98
    assert abs(float(out["mmd"])) < 2e-3 and float(out["fd"]) < 0.02
    for name in ("precision", "recall", "coverage"):
        assert float(out[name]) > 0.9, name
    collapsed = jnp.broadcast_to(src.mixture.means[0], (1000, 2))
    worse = M.evaluate_samples(names, collapsed, ctx, ref)
    assert float(worse["modes"]) == 1 and float(worse["recall"]) < 0.2 and float(worse["sw2"]) > 5 * float(out["sw2"])


# ---------------------------------------------------------------------------------------- the table of groups

MOMENT_NAMES = ("trace_ratio", "mean_sqerr", "logdet_ratio")
SAMPLE_NAMES = ("sw2", "mmd", "mmd_local", "mmd_multi", "fd", "precision", "recall", "density", "coverage", "kid")
OPT_IN_NAMES = ("vendi", "vendi2", "alpha_precision", "beta_recall", "authenticity")  # default=False groups
MODE_NAMES = ("modes", "modes_hq", "hq", "mode_tv")
CLASS_NAMES = tuple(f"class_{c}" for c in range(10))
RARE_NAMES = ("rare_mass", "rare_modes")
EVERY_NAME = (*MOMENT_NAMES, "w2", "kl", *SAMPLE_NAMES, *OPT_IN_NAMES, *MODE_NAMES, *RARE_NAMES, "tail_mass", "nll")
EVERY_NAME += ("test_error", "weight_error", "class_entropy", "confidence", "reward")
VERIFIER_NAMES = ("kept_share", "false_accept", "false_reject", "unfilled")
CHAIN_NAMES = ("kl_forward", "kl_reverse", "entropy", "gini_simpson", "support", "ngram_support", "tail_lost")
CHAIN_NAMES += ("zipf_fit",)
TOKEN_NAMES = (*CHAIN_NAMES, "xent", "perplexity", "kl_rate", "distinct_1", "distinct_2", "distinct_3")
EVERY_NAME += (*VERIFIER_NAMES, *TOKEN_NAMES)
WHY_MOMENTS = "needs a truth with known moments (data=gaussian, ring8, grid25, mixture, rosenbrock, linear)"
WHY_PAIR = "needs model=gaussian and data=gaussian (closed form)"
WHY_MODES = "needs a mixture truth with >= 2 modes (data=ring8, grid25, mixture)"
WHY_DENSITY = "needs a model with a log-density"
WHY_RARE = "needs a mixture truth with unequal weights (data.weights or data.zipf)"
WHY_TRUTH = "needs a truth with a known density (data=gaussian, ring8, grid25, mixture, rosenbrock, moons, ...)"
WHY_IMAGE = "needs an image source with a feature classifier (data=digits, mnist, cifar10)"
WHY_CURATION = "needs curation=k_choice (the reward it curates by)"
NOT_IMAGE = {"class_entropy": WHY_IMAGE, "confidence": WHY_IMAGE, "reward": WHY_CURATION}
NOT_IMAGE |= {name: WHY_IMAGE for name in CLASS_NAMES}
# (and none of these continuous cases is a regression, verified or token run)
WHY_REGRESSION = "needs model=linear and data=linear (a regressor of a regression truth)"
NOT_IMAGE |= dict.fromkeys(("test_error", "weight_error"), WHY_REGRESSION)
NOT_IMAGE |= dict.fromkeys(VERIFIER_NAMES, "needs curation=verifier (its report on each generation's candidates)")
NOT_IMAGE |= dict.fromkeys(CHAIN_NAMES, "needs data=zipf or markov and model=categorical or ngram (exact chain laws)")
WHY_XENT = "needs a discrete source and a model with a likelihood (model=categorical, ngram, transformer)"
NOT_IMAGE |= dict.fromkeys(("xent", "perplexity"), WHY_XENT)
NOT_IMAGE["kl_rate"] = "needs data=zipf or markov and a model with a likelihood (model=categorical, ngram, transformer)"
NOT_IMAGE["distinct_1"] = "needs a discrete source (data=zipf, markov, text)"
WHY_LONG = "needs a discrete source with rows of >= 3 tokens and vocab^3 < 2^31 (data=markov, text)"
NOT_IMAGE |= dict.fromkeys(("distinct_2", "distinct_3"), WHY_LONG)
NO_PAIR = {"w2": WHY_PAIR, "kl": WHY_PAIR}
NO_MODES = dict.fromkeys(MODE_NAMES + RARE_NAMES, WHY_MODES)
NO_RARE = dict.fromkeys(RARE_NAMES, WHY_RARE)
NO_MOMENTS = dict.fromkeys(MOMENT_NAMES, WHY_MOMENTS)
# (model, data) -> (the names that apply, in order; why the others do not), as available_metrics(cfg) listed them
# before the metrics became groups.
AVAILABLE = {
    ("gaussian", "gaussian"): ((*MOMENT_NAMES, "w2", "kl", *SAMPLE_NAMES, "tail_mass", "nll"), NO_MODES),
    ("gaussian", "ring8"): ((*MOMENT_NAMES, *SAMPLE_NAMES, *MODE_NAMES, "tail_mass", "nll"), NO_PAIR | NO_RARE),
    ("gmm", "gaussian"): ((*MOMENT_NAMES, *SAMPLE_NAMES, "tail_mass", "nll"), NO_PAIR | NO_MODES),
    ("gmm", "ring8"): ((*MOMENT_NAMES, *SAMPLE_NAMES, *MODE_NAMES, "tail_mass", "nll"), NO_PAIR | NO_RARE),
    ("kde", "gaussian"): ((*MOMENT_NAMES, *SAMPLE_NAMES, "tail_mass", "nll"), NO_PAIR | NO_MODES),
    ("kde", "ring8"): ((*MOMENT_NAMES, *SAMPLE_NAMES, *MODE_NAMES, "tail_mass", "nll"), NO_PAIR | NO_RARE),
    # (moons' density by quadrature along its curve)
    ("kde", "moons"): ((*SAMPLE_NAMES, "tail_mass", "nll"), NO_MOMENTS | NO_PAIR | NO_MODES),
    ("diffusion", "ring8"): (
        (*SAMPLE_NAMES, *MODE_NAMES, "tail_mass"),
        NO_MOMENTS | NO_PAIR | NO_RARE | {"nll": WHY_DENSITY},
    ),
}
FAMILIES = {"gaussian": GAUSSIAN, "gmm": GMM, "kde": KDE, "diffusion": DIFFUSION}
SOURCES = {"gaussian": GaussianData(), "ring8": Ring8Data(), "moons": MoonsData()}


@pytest.mark.parametrize("case", list(AVAILABLE), ids="-".join)
def test_available_lists_every_name_in_order_with_the_reasons_of_before(case):
    model, data = case
    ctx = context(make_source(SOURCES[data]), FAMILIES[model])
    avail = M.available(ctx)
    assert tuple(avail) == (*EVERY_NAME, *CLASS_NAMES)
    applies, why = AVAILABLE[case]
    assert M.select(ctx) == applies
    assert {name: reason for name, reason in avail.items() if reason is not None} == why | NOT_IMAGE
    curated = ctx._replace(curation=make_curation(KChoiceCuration(reward="point", target=[0.0, 0.0]), ctx.source))
    assert M.select(curated) == (*applies, "reward")
    assert M.select(ctx._replace(eval=C.EvalConfig(metrics=["sw2", "trace_ratio"]))) == ("sw2", "trace_ratio")
    assert M.available(ctx._replace(source=ctx.source._replace(log_prob=None)))["tail_mass"] == WHY_TRUTH


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ([], "eval.metrics=[]: name at least one metric (or null for all that apply)"),
        ([["sw2"]], "eval.metrics=[[sw2]]: must be a list of metric names"),
        (["sw2", "fid"], "eval.metrics=[sw2,fid]: unknown metric 'fid'; known: trace_ratio, mean_sqerr, "),
        (["sw2", "w2"], f"eval.metrics=[sw2,w2]: 'w2' {WHY_PAIR}"),
        (["class_3"], f"eval.metrics=[class_3]: 'class_3' {WHY_IMAGE}"),
        (["reward"], f"eval.metrics=[reward]: 'reward' {WHY_CURATION}"),
    ],
)
def test_check_names_the_first_metric_at_fault(metrics, message):
    ctx = context(make_source(Ring8Data()), GMM, metrics=metrics)
    with pytest.raises(C.ConfigError) as err:
        M.check(ctx)
    assert str(err.value).startswith(message), str(err.value)
    M.check(ctx._replace(eval=C.EvalConfig(metrics=["modes", "nll"])))
    M.check(ctx._replace(eval=C.EvalConfig()))


def test_what_the_metrics_read():
    names = ("trace_ratio", "kl", "nll", "sw2", "hq", "reward", "class_7", "nope")
    assert {name for name in names if M.is_sample_metric(name)} == {"sw2", "hq", "reward", "class_7"}
    assert not M.needs_samples(("trace_ratio", "nll")) and M.needs_samples(("trace_ratio", "mmd"))
    assert not M.needs_classifier(("sw2", "mmd", "modes", "reward")) and M.needs_classifier(("sw2", "fd"))
    assert M.needs_classifier(("class_0",)) and M.needs_classifier(("confidence",))
    assert M.group_of("class_12").name == "classifier" and M.group_of("class_x") is None
    assert M.ALL_METRICS == EVERY_NAME
    # Only the selected groups' held-out statistics are computed.
    ref = reference(jax.random.normal(KEY, (50, 2)), names=("trace_ratio", "mmd", "precision"))
    assert set(ref.stats) == {"mmd", "prdc"} and ref.features is None and ref.classifier is None


def test_a_new_group_is_one_entry_in_the_table():
    """A metric added as one more entry of a copy of the table is listed, selected, prepared and computed, by
    parameters or by samples, beside the groups that were there."""

    def spread(samples, real, stats, ctx):  # mean distance to the held-out centre, against the held-out spread
        del ctx
        return {"spread": jnp.mean(jnp.linalg.norm(samples - stats["centre"], axis=1)) / stats["scale"]}

    def centre(key, real, ctx):
        del key, ctx
        c = jnp.mean(real, 0)
        return {"centre": c, "scale": jnp.mean(jnp.linalg.norm(real - c, axis=1))}

    def needs_ring(ctx):
        return None if ctx.source.mixture.weights.shape[0] >= 2 else "needs a ring"

    groups = (*M.GROUPS, M.MetricGroup("spread", ("spread",), needs_ring, SAMPLES, spread, prepare=centre))
    ctx = context(make_source(Ring8Data()), GMM)
    assert tuple(M.available(ctx, groups))[-12:-9] == ("distinct_3", "spread", "class_0")
    assert M.select(ctx, groups) == (*M.select(ctx), "spread")
    assert M.available(context(), groups)["spread"] == "needs a ring"
    M.check(ctx._replace(eval=C.EvalConfig(metrics=["spread", "sw2"])), groups)
    assert M.is_sample_metric("spread", groups) and M.needs_samples(("spread",), groups)
    real = ctx.source.sample(jax.random.key(1), 400)
    names = ("nll", "spread", "sw2")
    ref = M.make_reference(KEY, real, ctx, names, groups)
    assert set(ref.stats) == {"spread", "sw2"}
    wider = jnp.mean(real, 0) + 2.0 * (real - jnp.mean(real, 0))  # twice the spread about the same centre
    out = M.evaluate_samples(names, wider, ctx, ref, groups)
    assert list(out) == ["spread", "sw2"] and float(out["spread"]) == pytest.approx(2.0, rel=1e-5)
    assert list(M.evaluate_params(names, ctx.source.mixture, ctx, ref, groups)) == ["nll"]


def evaluate(ctx, params, names, n=500):
    """Parameter and sample metrics of samples 1.1 x + 0.05 (x fresh from the truth) against n held-out draws."""
    held = ctx.source.sample(jax.random.key(11), n)
    samples = ctx.source.sample(jax.random.key(12), n) * 1.1 + 0.05
    ref = jax.jit(lambda h: M.make_reference(jax.random.key(3), h, ctx, names))(held)
    out = jax.jit(lambda p, r: M.evaluate_params(names, p, ctx, r))(params, ref)
    return out | jax.jit(lambda s, r: M.evaluate_samples(names, s, ctx, r))(samples, ref)


def test_the_groups_give_the_numbers_of_before():
    """Fixed cases, with the values params_metrics and sample_metrics (and the loop's reward) gave before the
    metrics became groups (float32, jitted)."""
    params = GaussianParams(jnp.array([0.1, -0.2, 0.05]), jnp.array([[1.2, 0.3, 0], [0.3, 0.9, 0.1], [0, 0.1, 1.1]]))
    ctx = context(make_source(GaussianData(dim=3)), GAUSSIAN, n=500)
    want = {
        "trace_ratio": 1.066666603088379,
        "mean_sqerr": 0.052500005811452866,
        "logdet_ratio": 0.07417924702167511,
        "w2": 0.33982130885124207,
        "kl": 0.10207346826791763,
        "sw2": 0.1238054409623146,
        "mmd": -0.00031937158200889826,
        # 0.029584884643554688 until the Gaussian family's small products became broadcast sums (2026-11-28):
        # the samples and their moments moved at float32 rounding, and fd = tr C1 + tr C2 - 2 tr (C1 C2)^(1/2)
        # (traces about 3.2, fd 0.03) cancels that rounding up to a few 1e-6
        "fd": 0.0295867919921875,
        "precision": 0.9780000448226929,
        "recall": 0.984000027179718,
        "density": 0.9728000164031982,
        "coverage": 0.9880000352859497,
        "nll": 4.39741325378418,
    }
    got = evaluate(ctx, params, M.select(ctx))
    assert set(got) == set(want) | {"mmd_local", "mmd_multi", "tail_mass", "kid"}  # the metrics added since
    np.testing.assert_allclose([float(got[k]) for k in want], list(want.values()), rtol=1e-6, atol=1e-6)

    source = make_source(Ring8Data())
    mix = source.mixture
    ctx = context(source, GMM, KChoiceCuration(reward="mode", mode=2), n=500)
    want = {
        "trace_ratio": 1.1029961109161377,
        "mean_sqerr": 0.0,
        "logdet_ratio": 0.19606029987335205,
        "sw2": 0.38916099071502686,
        "mmd": 0.0068549602292478085,
        "fd": 0.12749767303466797,
        "precision": 0.3680000305175781,
        "recall": 0.42000001668930054,
        "density": 0.1420000046491623,
        "coverage": 0.1420000046491623,
        "modes_hq": 5.0,  # "modes" before nearest-mode counts: modes holding 1% of the samples within 3 sigma
        "hq": 0.164000004529953,
        "nll": 0.3125550150871277,
        "reward": -2.5879642963409424,
    }
    got = evaluate(ctx, Mixture(mix.weights, mix.means * 1.05, mix.covs * 1.5), M.select(ctx))
    assert set(got) == set(want) | {"mmd_local", "mmd_multi", "modes", "mode_tv", "tail_mass", "kid"}
    np.testing.assert_allclose([float(got[k]) for k in want], list(want.values()), rtol=1e-6, atol=1e-6)
