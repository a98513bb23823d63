"""Pool and weight bookkeeping, by hand: what each regime x pool policy puts in generation g's training set."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import config as C
from madloop import pools
from madloop import regimes as R
from madloop.data import make_source
from madloop.data.toy import GaussianData
from madloop.engine import Simulation
from madloop.knobs import knobs_of
from madloop.loop import make_loop
from madloop.parts import parts_of
from madloop.regimes import FreshData, FullySynthetic, SyntheticAugmentation

KEY = jax.random.key(0)
SRC = make_source(GaussianData(dim=1))


def batch(value: float, n: int = 2):
    """n one-dimensional 'samples' that all equal value, so slots can be read off by eye."""
    return jnp.full((n, 1), value)


def policy(r: C.RegimeConfig, generations: int) -> pools.Pool:
    """The pool ``r.pool`` names, for training sets of T slots (the regime's training-set size)."""
    size = R.train_size(r, R.make_regime(r), pools.synth_slots(r, generations))
    return pools.POLICIES[r.pool].make(r, generations, size)


def synthetic_part(pool: pools.Pool, key, x, w, count):
    """The synthetic part [S, d], [S] of a training set: ``Pool.train`` with no real part and a fit that returns
    the training set it is handed (its first S slots are the synthetic part; 0/1 weights keep their values)."""
    knobs = {"n_synth": count, "real_weight": 1.0}
    x_set, w_set = pool.train(key, x, w, jnp.zeros((0, 1)), jnp.zeros((0,)), knobs, lambda x, w: (x, w))
    return x_set[: pool.slots], w_set[: pool.slots]


def test_replace_keeps_only_the_last_generation():
    r = FullySynthetic(pool="replace", n_real=3, n_synth=2)
    p = policy(r, generations=4)
    pool, w = p.empty(1, jnp.float32)
    assert pool.shape == (2, 1)  # P = n_synth
    for g in (1, 2, 3):
        pool, w = p.add(pool, w, batch(10.0 * g), jnp.int32(g), r.n_synth)
    x, ws = synthetic_part(p, KEY, pool, w, r.n_synth)
    np.testing.assert_array_equal(x[:, 0], [30, 30])  # only generation 2's samples (entering at g = 3)
    np.testing.assert_array_equal(ws, [1, 1])


def test_accumulate_fills_slots_in_generation_order():
    r = FullySynthetic(pool="accumulate", n_real=3, n_synth=2)
    p = policy(r, generations=4)
    pool, w = p.empty(1, jnp.float32)
    assert pool.shape == (8, 1)  # P = G * n_synth = 4 * 2
    for g in (1, 2, 3):
        pool, w = p.add(pool, w, batch(10.0 * g), jnp.int32(g), r.n_synth)
    # slots [(g-1) n_synth, g n_synth): g=1 -> 0,1; g=2 -> 2,3; g=3 -> 4,5; 6,7 still empty
    np.testing.assert_array_equal(pool[:, 0], [10, 10, 20, 20, 30, 30, 0, 0])
    np.testing.assert_array_equal(w, [1, 1, 1, 1, 1, 1, 0, 0])


def test_count_masks_weigh_only_the_first_samples():
    """A swept n_synth is a mask over the static buffer: accumulate leaves the masked slots at weight 0, and a
    subsample that follows n_synth keeps only `count` of its picks, all of them filled slots."""
    r = FullySynthetic(pool="accumulate", n_real=3, n_synth=3)
    p = policy(r, generations=3)
    pool, w = p.empty(1, jnp.float32)
    for g in (1, 2):
        pool, w = p.add(pool, w, jnp.array([[g + 0.1], [g + 0.2], [g + 0.3]]), jnp.int32(g), 2)
    np.testing.assert_array_equal(w, [1, 1, 0, 1, 1, 0, 0, 0, 0])
    p = policy(FullySynthetic(pool="accumulate_subsample", n_real=3, n_synth=3), generations=3)
    for seed in range(50):
        x, ws = synthetic_part(p, jax.random.key(seed), pool, w, 2)
        assert x.shape == (3, 1) and float(ws.sum()) == 2
        assert set(np.rint(10 * np.asarray(x[ws > 0, 0])).astype(int).tolist()) <= {11, 12, 21, 22}


def test_accumulate_subsample_draws_distinct_filled_slots():
    r = FullySynthetic(pool="accumulate_subsample", n_real=3, n_synth=2, subsample=3)
    p = policy(r, generations=4)
    pool, w = p.empty(1, jnp.float32)
    pool, w = p.add(pool, w, jnp.array([[1.0], [2.0]]), jnp.int32(1), r.n_synth)
    # generation 1: only 2 filled slots for a subsample of 3 -> both, plus one empty slot of weight 0
    x, ws = synthetic_part(p, KEY, pool, w, r.n_synth)
    assert x.shape == (3, 1) and float(ws.sum()) == 2
    assert sorted(np.asarray(x[ws > 0, 0]).tolist()) == [1.0, 2.0]
    for g in (2, 3, 4):
        pool, w = p.add(pool, w, jnp.array([[2.0 * g - 1], [2.0 * g]]), jnp.int32(g), r.n_synth)
    # g = 2, 3, 4 add (3, 4), (5, 6), (7, 8): 8 filled slots holding 1..8;
    # the subsample is 3 distinct values, each slot equally likely
    counts = np.zeros(9)
    for seed in range(800):
        x, ws = synthetic_part(p, jax.random.key(seed), pool, w, r.n_synth)
        vals = np.asarray(x[:, 0]).astype(int)
        assert len(set(vals)) == 3 and float(ws.sum()) == 3
        counts[vals] += 1
    # each of 8 slots is picked with prob. 3/8: expected 300 of 800, SE sqrt(800 * 3/8 * 5/8) = 13.7
    assert np.all(np.abs(counts[1:] - 300) < 4.5 * 13.7)


def test_a_subsample_above_the_pools_capacity_takes_every_filled_slot():
    """regime.subsample S above the buffer's G n_synth slots (a short run of a preset) crashed in top_k after the
    config was accepted. Every filled slot is taken then, the other picks are empty slots of weight 0, and the loop
    equals the accumulate pool (the same samples, in another order) to float rounding."""
    r = FullySynthetic(pool="accumulate_subsample", n_real=3, n_synth=2, subsample=7)
    p = policy(r, generations=3)
    pool, w = p.empty(1, jnp.float32)
    for g in (1, 2, 3):
        pool, w = p.add(pool, w, jnp.array([[2.0 * g - 1], [2.0 * g]]), jnp.int32(g), r.n_synth)
    x, ws = synthetic_part(p, KEY, pool, w, r.n_synth)
    assert x.shape == (7, 1) and float(ws.sum()) == 6
    assert sorted(np.asarray(x[ws > 0, 0]).tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    base = ["data=gaussian", "model=gaussian", "regime=synthetic_augmentation", "regime.n_real=8", "regime.n_synth=4"]
    base += ["loop.generations=3", "loop.seeds=2", "eval=closed_form", "loop.stats_pool=false"]
    over = madloop.run_table([*base, "regime.pool=accumulate_subsample", "regime.subsample=20"])
    whole = madloop.run_table([*base, "regime.pool=accumulate"])
    np.testing.assert_allclose(over["trace_ratio"], whole["trace_ratio"], rtol=1e-5)


def test_parameter_path_of_a_float64_sample_pool():
    """A float64 run's accumulate pool of samples took its slot offset as int32 beside an int64 0, and
    ``parameter_path`` (whose generation counter is int32) failed to trace; it equals the loop's run now."""
    base = ["data=gaussian", "model=gaussian", "regime.n_real=5", "regime.n_synth=3", "loop.generations=3"]
    base += ["loop.seeds=2", "eval=closed_form", "loop.stats_pool=false", "loop.precision=float64"]
    for pool in ("accumulate", "accumulate_subsample"):
        path = madloop.parameter_path([*base, f"regime.pool={pool}"])
        run = madloop.simulate([*base, f"regime.pool={pool}"])
        assert path.metrics["trace_ratio"].dtype == np.float64
        np.testing.assert_allclose(path.metrics["trace_ratio"], run.metrics["trace_ratio"], rtol=1e-12)


@pytest.mark.parametrize(
    "regime, expected",
    [
        (FullySynthetic(n_real=2, n_synth=2), []),
        (SyntheticAugmentation(n_real=2, n_synth=2), [1, 1]),
        (FreshData(n_real=2, n_synth=2), [1, 1]),
    ],
)
def test_real_part_per_regime(regime, expected):
    real = batch(7.0)
    x, w = R.make_regime(regime).real_part(KEY, real, SRC)
    np.testing.assert_array_equal(w, expected)
    if isinstance(regime, FreshData):
        assert not np.allclose(x, real)  # new real samples from the source
    elif isinstance(regime, SyntheticAugmentation):
        np.testing.assert_array_equal(x, real)  # the fixed real set
    else:
        assert x.shape == (0, 1)  # no real slots after generation 0


def test_training_set_weights_are_relative_and_keep_the_sample_count():
    # 2 real (weight 1 each), 3 synthetic of which 1 slot is empty, real_weight 3, padded to 6 slots:
    # raw (3, 3, 1, 1, 0), sum 8, present count 4 -> scale 1/2 -> (1.5, 1.5, .5, .5, 0) + one pad slot 0
    x, w = pools.training_set(batch(1.0), jnp.ones(2), batch(2.0, 3), jnp.array([1.0, 1.0, 0.0]), 3.0, size=6)
    assert x.shape == (6, 1)
    np.testing.assert_allclose(w, [1.5, 1.5, 0.5, 0.5, 0.0, 0.0])


@pytest.mark.parametrize(
    "regime, expected",
    [
        (FullySynthetic(n_real=5, n_synth=3), 5),  # max(n_real, S): no real slots after generation 0
        (FullySynthetic(n_real=2, n_synth=3, pool="accumulate"), 12),  # S = G n_synth = 4 * 3
        (SyntheticAugmentation(n_real=5, n_synth=3), 8),  # n_real + S
        (FreshData(n_real=5, n_synth=3, pool="accumulate_subsample", subsample=4), 9),  # n_real + subsample
    ],
)
def test_training_set_size(regime, expected):
    assert R.train_size(regime, R.make_regime(regime), pools.synth_slots(regime, generations=4)) == expected


@pytest.mark.parametrize("regime_name", ["fully_synthetic", "synthetic_augmentation", "fresh_data"])
@pytest.mark.parametrize("pool", ["replace", "accumulate", "accumulate_subsample"])
def test_loop_state_bookkeeping(regime_name, pool):
    # Step the per-seed loop by hand for 3 generations and read the pool off the state.
    cfg = madloop.compose(
        [
            "data=gaussian",
            "data.dim=1",
            "model=gaussian",
            f"regime={regime_name}",
            f"regime.pool={pool}",
            "regime.n_real=4",
            "regime.n_synth=3",
            "loop.generations=3",
            "eval.n=16",
            "eval.metrics=[trace_ratio]",
            "eval.snapshot_n=2",
        ]
    )
    for stats in (False, True):  # the sample buffer, and (accumulate only) the pool kept as statistics
        if stats and pool != "accumulate":
            continue
        cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, stats_pool=stats))
        loop = make_loop(cfg, parts_of(cfg))
        ref = Simulation(cfg).reference()
        knobs = knobs_of(cfg)
        state, _ = loop.start(KEY, knobs, ref)
        real0 = state.real
        for g in (1, 2, 3):
            state, _ = loop.step(KEY, knobs, ref, state, jnp.int32(g))
            filled = float(state.pool.count if stats else state.pool_w.sum())
            assert filled == (3 if pool == "replace" else 3 * g)  # replace keeps 3; accumulate* has 3 g
        np.testing.assert_array_equal(state.real, real0)  # the fixed real set never changes
