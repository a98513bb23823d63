"""curation=verifier (Feng et al. 2024): the fill rule, the report, the label and density verdicts against closed
forms, and the truths' log-densities it thresholds."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.special import i0e
from scipy.stats import norm

import madloop
from madloop.curation import fill_slots, verdict_report, verifier_curation
from madloop.data import make_source
from madloop.data.toy import CirclesData, MoonsData, Ring8Data, SwissRollData
from madloop.knobs import knobs_of
from madloop.parts import parts_of
from tests.test_gaussian_laws import Z


def test_fill_rule_and_report_by_hand():
    # accepted (F, T, F, T, T, F), 3 slots: rows 1, 3, 4; 4 slots: rows 1, 3, 4, then the first rejected row 0.
    x = jnp.arange(6.0)[:, None]
    acc = jnp.array([False, True, False, True, True, False])
    np.testing.assert_array_equal(fill_slots(x, acc, 3)[:, 0], [1, 3, 4])
    np.testing.assert_array_equal(fill_slots(x, acc, 4)[:, 0], [1, 3, 4, 0])
    # noiseless verdict (T, T, F, F, T, F): the noisy one accepts row 3 (a false accept, 1 of 3 bad) and rejects
    # row 0 (a false reject, 1 of 3 good); 3 of 6 accepted; 4 slots, 3 accepted: 1 slot of 4 unfilled.
    clean = jnp.array([True, True, False, False, True, False])
    report = {k: float(v) for k, v in verdict_report(clean, acc, jnp.int32(4)).items()}
    assert report == pytest.approx({"kept_share": 0.5, "false_accept": 1 / 3, "false_reject": 1 / 3, "unfilled": 0.25})
    none_bad = verdict_report(jnp.ones(6, bool), acc, jnp.int32(2))
    assert np.isnan(float(none_bad["false_accept"])) and float(none_bad["unfilled"]) == 0


def label_candidates(n: int, offsets: np.ndarray):
    """The data=linear source (d = 2) and rows [x, w* . x + delta] with the given label offsets delta."""
    cfg = madloop.compose(["data=linear", "data.dim=2", "model=linear", "curation=verifier"])
    source = make_source(cfg.data)
    x = np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32)
    y = x @ np.asarray(source.linear.weights) + offsets
    return cfg, source, jnp.asarray(np.concatenate([x, y[:, None]], axis=1), jnp.float32)


def test_label_verifier_error_rates_follow_the_normal_law():
    """Label offsets delta in {0.5, 1.5} (accepted / rejected by the noiseless verdict at tolerance 1): with noise s
    the verifier accepts with probability Phi((1 - delta) / s) - Phi((-1 - delta) / s), so its false reject rate is
    1 - that at delta = 0.5 and its false accept rate that at delta = 1.5 (20,000 candidates, 4.5 SE)."""
    n, s = 20000, 0.7
    offsets = np.where(np.arange(n) % 2 == 0, 0.5, 1.5).astype(np.float32)
    cfg, source, x = label_candidates(n, offsets)
    cur = verifier_curation(cfg.curation, source)
    knobs = knobs_of(cfg) | {"verifier_noise": jnp.float32(s), "n_synth": jnp.int32(n // 2)}
    kept, report = jax.jit(cur.select)(jax.random.key(3), x, knobs)
    accept = lambda delta: norm.cdf((1 - delta) / s) - norm.cdf((-1 - delta) / s)
    for name, p in (("false_reject", 1 - accept(0.5)), ("false_accept", accept(1.5))):
        assert abs(float(report[name]) - p) < Z * np.sqrt(p * (1 - p) / (n / 2)), name
    assert abs(float(report["false_reject"]) - (1 - accept(0.0))) > Z * 0.005  # power: not the offset-0 law
    # noiseless: exactly the rows with offset 0.5 are kept, in order, and every slot is filled by them
    kept0, report0 = jax.jit(cur.select)(jax.random.key(3), x, knobs | {"verifier_noise": jnp.float32(0.0)})
    np.testing.assert_array_equal(kept0, x[::2])
    assert float(report0["kept_share"]) == 0.5 and float(report0["unfilled"]) == 0.0


@pytest.mark.parametrize(
    "data", ["moons", *(pytest.param(d, marks=pytest.mark.slow) for d in ("ring8", "swissroll", "circles", "gaussian"))]
)
def test_density_threshold_rejects_its_quantile_of_real_samples(data):
    """A null threshold is the truth's 5% quantile of its own log-density: the noiseless verifier accepts 95% of
    fresh truth samples (binomial 4.5 SE over 8192); not 90% (power)."""
    cfg = madloop.compose([f"data={data}", "model=kde", "curation=verifier"])
    parts = parts_of(cfg)  # the parts validation built (the threshold is computed once)
    cur = parts.curation
    x = parts.source.sample(jax.random.key(11), 8192)
    knobs = knobs_of(cfg) | {"n_synth": jnp.int32(4096)}
    share = float(jax.jit(cur.select)(jax.random.key(1), x, knobs)[1]["kept_share"])
    se = np.sqrt(0.95 * 0.05 / 8192)
    assert abs(share - 0.95) < Z * se and abs(share - 0.90) > Z * se


def test_curve_log_densities_are_normalised_and_match_the_circles_closed_form():
    """The noisy curves' quadrature log-densities integrate to 1 on a grid; for circles they equal the closed form
    p(x) = sum_r (1/2) exp(-(rho^2 + r^2) / (2 s^2)) I0(rho r / s^2) / (2 pi s^2), rho = |x|; a point of the
    noiseless curve projects to itself."""
    s = 0.1
    circles = make_source(CirclesData(factor=0.5, noise=s))
    x = np.random.default_rng(0).uniform(-1.4, 1.4, (2000, 2)).astype(np.float32)
    rho = np.linalg.norm(x.astype(float), axis=1)
    ref = sum(0.5 * i0e(rho * r / s**2) * np.exp(-((rho - r) ** 2) / (2 * s**2)) for r in (1.0, 0.5)) / (
        2 * np.pi * s**2
    )
    got = np.exp(np.asarray(circles.log_prob(jnp.asarray(x)), float))
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=1e-6)
    h = 0.04  # the midpoint rule's error on a Gaussian of sd >= 0.05 is below exp(-2 pi^2 0.05^2 / h^2) = 5e-14
    ticks = np.arange(-3.5, 3.5, h) + h / 2
    grid = jnp.asarray(np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2), jnp.float32)
    for cfg in (MoonsData(noise=0.1), SwissRollData(noise=0.1), CirclesData(noise=0.1), Ring8Data()):
        src = make_source(cfg)
        density = jax.jit(lambda x, f=src.log_prob: jnp.sum(jnp.exp(f(x))))
        mass = sum(float(density(part)) for part in jnp.array_split(grid, 8)) * h * h
        assert mass == pytest.approx(1.0, abs=5e-3), type(cfg).__name__
        on_curve = make_source(type(cfg)(**{**cfg.__dict__, "noise": 0.0})) if hasattr(cfg, "noise") else None
        if on_curve is not None:
            pts = on_curve.sample(jax.random.key(2), 256)
            moved = np.linalg.norm(np.asarray(src.project(pts)) - np.asarray(pts), axis=1)
            assert moved.max() < 0.5 * 0.5 * s + 1e-5  # half the node spacing (0.5 noise sds)


# The must-show (a noiseless label verifier holds the supervised loop at its generation-0 error while the unverified
# loop grows at law 12's rate) runs in one program with the correction's laws:
# tests/test_regression_laws.py::test_engine_follows_law_12_with_and_without_correction_and_a_noiseless_verifier_...


def test_curve_log_density_in_blocks_equals_the_whole_matrix():
    """More rows than one block (the tail metric's 65,536 draws): the blocked log-density equals the one-matrix
    formula to float32 rounding, padding rows included in no result (a wrong reshape or pad would shift rows)."""
    from madloop.data import toy

    curve = toy._curve(toy._swissroll_curve(0.05), 0.05)
    x = make_source(SwissRollData(noise=0.05)).sample(jax.random.key(4), 2 * toy.CURVE_BLOCK + 37)
    whole = jax.nn.logsumexp(curve.log_w - 0.5 * toy._node_sqdist(curve, x) / 0.05**2, axis=1)
    whole = whole - jnp.log(2 * jnp.pi * 0.05**2)
    blocked = toy.curve_log_prob(curve, x)
    assert blocked.shape == (x.shape[0],)
    np.testing.assert_allclose(np.asarray(blocked), np.asarray(whole), rtol=1e-5, atol=1e-4)
    assert float(jnp.max(jnp.abs(blocked[1:] - whole[:-1]))) > 0.1  # power: one row off is far off


def test_a_count_sweep_point_verifies_what_a_run_with_that_count_verifies(tiny):
    """A swept n_synth = 8 (buffer 48) verifies the first draws x 8 candidates, as the run with n_synth = 8 does:
    ranking all 2 x 48 filled every slot with accepted ones (unfilled 0 against 0.75 for the run) and curated
    harder (sw2 1.51 against 0.90)."""
    run = tiny + ["data=ring8", "model=gmm", "model.components=4", "model.init_iters=20", "model.iters=3"]
    run += ["regime=fully_synthetic", "curation=verifier", "curation.quantile=0.5"]
    run += ["eval.metrics=[sw2,kept_share,false_accept,false_reject,unfilled]"]
    swept = madloop.run_table(run + ["regime.n_synth=48", "sweep.regime.n_synth=[8,48]"])
    for count in (8, 48):
        plain = madloop.run_table(run + [f"regime.n_synth={count}"])
        part = swept[swept["n_synth"] == count].drop(columns=["n_synth"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(part, plain, rtol=1e-5, check_dtype=False)
