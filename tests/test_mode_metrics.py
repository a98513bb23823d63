"""The mode, tail and multi-bandwidth MMD metrics: hand-checked cases, closed forms with a power check, the
mixture truths with unequal weights (data.weights, data.zipf), and the real-vs-real floors of a run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from madloop import config as C
from madloop import metrics as M
from madloop.api import compose
from madloop.data import make_source
from madloop.data.toy import GaussianData, Ring8Data, mode_weights
from madloop.engine import simulation
from madloop.metrics.distances import rare_modes
from madloop.metrics.table import TAIL_LEVEL
from madloop.parts import parts_of
from tests.test_metrics import GAUSSIAN, GMM, context

KEY = jax.random.key(0)


def ring_points(source, spec):
    """Rows: (mode, count, offset [2]) -> points at the mode's mean plus the offset."""
    means = np.asarray(source.mixture.means)
    return jnp.asarray(np.concatenate([np.repeat(means[[k]] + off, n, 0) for k, n, off in spec]), jnp.float32)


def test_nearest_mode_counts_keep_blur_apart_from_quality():
    src = make_source(Ring8Data())
    # 60 samples on mode 0; 30 blurred 0.5 off mode 3 (10 sigma: outside 3 sigma, still nearest to mode 3);
    # 10 inside 3 sigma of mode 5.
    pts = ring_points(src, [(0, 60, [0.0, 0.0]), (3, 30, [0.0, 0.5]), (5, 10, [0.1, 0.0])])
    out = M.mode_stats(pts, src, share=0.05)
    assert float(out["modes"]) == 3  # modes 0, 3, 5 are the nearest mode of >= 5% of the samples
    assert float(out["modes_hq"]) == 2  # mode 3's samples are off the mode: not high quality
    assert float(out["hq"]) == pytest.approx(0.7)
    # shares (0.6, 0.3, 0.1 on modes 0, 3, 5; 0 elsewhere) against 1/8 each: TV = (0.475 + 0.175 + 0.025 + 5/8) / 2
    assert float(out["mode_tv"]) == pytest.approx((0.475 + 0.175 + 0.025 + 5 / 8) / 2, rel=1e-6)
    # the truth itself: every mode, TV of a multinomial sample only
    real = src.sample(jax.random.key(3), 4000)
    out = M.mode_stats(real, src, share=0.01)
    assert float(out["modes"]) == 8 and float(out["modes_hq"]) == 8 and float(out["mode_tv"]) < 0.05


def test_zipf_and_explicit_weights_build_the_truth():
    np.testing.assert_allclose(
        mode_weights(Ring8Data(zipf=1.0), 8), (1 / np.arange(1, 9)) / np.sum(1 / np.arange(1, 9))
    )
    np.testing.assert_allclose(mode_weights(Ring8Data(), 8), np.full(8, 1 / 8))
    src = make_source(Ring8Data(weights=[8, 4, 2, 1, 1, 1, 1, 1]))
    np.testing.assert_allclose(np.asarray(src.mixture.weights), np.array([8, 4, 2, 1, 1, 1, 1, 1]) / 19, rtol=1e-6)
    x, labels = src.sample_labeled(jax.random.key(1), 19000)
    shares = np.bincount(np.asarray(labels), minlength=8) / 19000
    np.testing.assert_allclose(shares, np.array([8, 4, 2, 1, 1, 1, 1, 1]) / 19, atol=4.5 * np.sqrt(0.42 * 0.58 / 19000))
    assert list(rare_modes(np.asarray(src.mixture.weights))) == [3, 4]  # the ceil(8/4) lightest, ties by index
    assert list(rare_modes(np.array([0.5, 0.5]))) == [0]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data=ring8", "data.weights=[1,2]"], "data.weights=[1.0,2.0]: must have one weight per mode (8)"),
        (["data=grid25", "data.zipf=-1"], "data.zipf=-1.0: must be a finite number >= 0 (0 = equal weights)"),
        (["data=ring8", "data.zipf=100"], "data.zipf=100.0: gives the rarest mode weight"),
        # refused by the mode count, in a second (it used to build 10^9 weights for a minute and blame data.zipf)
        (["data=mixture", "data.components=1000000000"], "data.components=1000000000: gives 1000000000 modes"),
        (["data=grid25", "data.side=2000"], "data.side=2000: gives 4000000 modes"),
        (
            ["data=ring8", "data.zipf=1", "data.weights=[1,1,1,1,1,1,1,1]"],
            "data.weights=[1.0,1.0,1.0,1.0,1.0,1.0,1.0,1.0]: give",
        ),
        (
            ["data=ring8", "data.weights=[1,1,1,1,1,1,1,0]"],
            "data.weights=[1.0,1.0,1.0,1.0,1.0,1.0,1.0,0.0]: must be finite",
        ),
    ],
)
def test_bad_weights_fail_with_one_line(overrides, message):
    with pytest.raises(C.ConfigError) as err:
        compose([*overrides, "model=gmm"])
    assert str(err.value).startswith(message), str(err.value)


def test_rare_modes_survival_hand_checked():
    src = make_source(Ring8Data(weights=[8, 4, 2, 1, 1, 1, 1, 1]))
    # rare modes: 3 and 4 (weights 1/19 each). 10% of the samples on mode 3, none near mode 4.
    pts = ring_points(src, [(0, 70, [0.0, 0.0]), (1, 20, [0.0, 0.0]), (3, 10, [0.0, 0.0])])
    out = M.tail_stats(pts, src, share=0.01)
    assert float(out["rare_mass"]) == pytest.approx(0.1 / (2 / 19), rel=1e-5)
    assert float(out["rare_modes"]) == 0.5
    # a plausible wrong rule, the heaviest quarter, would give (0.7 + 0.2) / (12 / 19): far from this
    assert abs(float(out["rare_mass"]) - 0.9 / (12 / 19)) > 0.4
    ctx = context(src, GMM)
    assert "rare_mass" in M.select(ctx) and "rare_mass" not in M.select(context(make_source(Ring8Data()), GMM))


def tail_mass_of_scaled_gaussians(scale: float, keys: int = 64, m: int = 1000) -> np.ndarray:
    """tail_mass of N(0, scale^2 I) samples (m per key) against the truth N(0, I), d = 2."""
    ctx = context(make_source(GaussianData()), GAUSSIAN, n=m)
    ref = M.make_reference(KEY, ctx.source.sample(jax.random.key(5), m), ctx, ("tail_mass",))

    def one(k):
        return M.evaluate_samples(("tail_mass",), scale * jax.random.normal(k, (m, 2)), ctx, ref)["tail_mass"]

    return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(8), keys)))


@pytest.mark.parametrize("scale", [0.8, 1.0, 1.2])
def test_tail_mass_follows_its_closed_form(scale):
    """For N(0, I) in 2-D the lowest-density 5% is ||x||^2 > -2 ln 0.05, which N(0, s^2 I) enters with probability
    0.05^(1 / s^2): tail_mass = 0.05^(1 / s^2 - 1). Mean over 64 x 1000 samples within 4.5 SE (the threshold's own
    Monte Carlo error, about 0.4% of the level, is added to the SE)."""
    vals = tail_mass_of_scaled_gaussians(scale)
    law = TAIL_LEVEL ** (1 / scale**2 - 1)
    se = np.hypot(vals.std(ddof=1) / np.sqrt(len(vals)), 0.01 * law)
    assert abs(vals.mean() - law) < 4.5 * se, (vals.mean(), law, se)
    if scale != 1.0:  # power: a law in the sd instead of the variance (0.05^(1/s - 1)) is rejected
        assert abs(vals.mean() - TAIL_LEVEL ** (1 / scale - 1)) > 4.5 * se


def test_mmd_bandwidth_family_matches_numpy():
    src = make_source(Ring8Data())
    real, fake = src.sample(jax.random.key(1), 300), src.sample(jax.random.key(2), 300) * 1.02
    ctx = context(src, GMM, n=300, k=5)
    ref = M.make_reference(KEY, real, ctx, ("mmd",))
    out = M.evaluate_samples(("mmd", "mmd_local", "mmd_multi"), fake, ctx, ref)
    a, b = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    d_aa = cdist(a, a)
    wide = np.median(d_aa[np.triu_indices(300, 1)])
    local = np.median(np.sort(d_aa, axis=1)[:, 5])
    hs = wide ** (1 - np.arange(4) / 3) * local ** (np.arange(4) / 3)
    np.testing.assert_allclose(np.asarray(ref.stats["mmd"].bandwidths), hs, rtol=1e-4)  # float32 distances

    def mmd2(h):
        kxx, kyy, kxy = (np.exp(-cdist(u, v, "sqeuclidean") / (2 * h * h)) for u, v in ((a, a), (b, b), (a, b)))
        m = 300
        return (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()

    want = [mmd2(h) for h in hs]
    assert float(out["mmd"]) == pytest.approx(want[0], rel=2e-3, abs=2e-6)
    assert float(out["mmd_local"]) == pytest.approx(want[-1], rel=2e-3, abs=2e-6)
    assert float(out["mmd_multi"]) == pytest.approx(sum(want), rel=2e-3, abs=2e-6)


def test_local_mmd_sees_within_mode_collapse_that_the_median_bandwidth_misses():
    """Ring of 8 (mode sd 0.05): samples whose modes shrink to sd 0.025. Over 32 seeds the local-bandwidth MMD moves
    by many standard errors of its real-vs-real spread, the median-bandwidth MMD by less than a tenth as many."""
    src = make_source(Ring8Data())
    ctx = context(src, GMM, n=1000)
    names = ("mmd", "mmd_local")
    ref = M.make_reference(KEY, src.sample(jax.random.key(1), 1000), ctx, names)
    means = src.mixture.means

    def pair(k):
        k1, k2 = jax.random.split(k)
        real = src.sample(k1, 1000)
        _, lab = src.sample_labeled(k2, 1000)
        shrunk = means[lab] + 0.5 * (src.sample_labeled(k2, 1000)[0] - means[lab])
        a = M.evaluate_samples(names, real, ctx, ref)
        b = M.evaluate_samples(names, shrunk, ctx, ref)
        return jnp.stack([a["mmd"], a["mmd_local"]]), jnp.stack([b["mmd"], b["mmd_local"]])

    floor, shrunk = (np.asarray(v) for v in jax.jit(jax.vmap(pair))(jax.random.split(jax.random.key(4), 32)))
    z = (shrunk.mean(0) - floor.mean(0)) / np.sqrt(floor.var(0, ddof=1) / 32 + shrunk.var(0, ddof=1) / 32)
    assert z[1] > 20, z
    assert z[0] < z[1] / 10, z


def test_floors_are_what_a_perfect_model_scores():
    """A Gaussian fitted on 10^5 real samples is the truth to 0.3%: its generation-0 sample metrics, over 16 seeds,
    agree with the run's real-vs-real floors within 4.5 SE of the difference; a fit on 20 samples does not."""
    base = ["data=gaussian", "model=gaussian", "loop.generations=1", "loop.seeds=16", "eval.n=500"]
    names = ("sw2", "mmd", "mmd_local", "fd", "precision", "recall", "coverage")
    for n_real, agree in ((100000, True), (20, False)):
        cfg = compose(
            [*base, f"regime.n_real={n_real}", f"regime.n_synth={n_real}", f"eval.metrics=[{','.join(names)}]"]
        )
        sim = simulation(cfg)
        table, floors = sim().table(), sim.floors()
        assert list(floors.columns) == ["seed", *names] and len(floors) == 16
        first = table[table.generation == 0]
        worst = 0.0
        for name in names:
            a, b = first[name].to_numpy(), floors[name].to_numpy()
            se = np.sqrt(a.var(ddof=1) / 16 + b.var(ddof=1) / 16)
            worst = max(worst, abs(a.mean() - b.mean()) / se)
        assert (worst < 4.5) == agree, (n_real, worst)
    assert parts_of(cfg).metrics == names
