"""Speed settings that must not change results: shaped normal draws, and the XLA default set on import."""

import importlib.metadata
import json
import os
import subprocess
import sys

import jax
import jax.extend.random
import numpy as np
import pytest

import madloop
from madloop import _xla, rng


def test_flat_draws_reshaped_equal_the_shaped_draws():
    key = jax.random.key(7)
    for shape in [(5,), (100, 2), (7, 10), (3, 4, 5)]:
        np.testing.assert_array_equal(np.asarray(rng.normal(key, shape)), np.asarray(jax.random.normal(key, shape)))
    batched = jax.vmap(lambda k: rng.normal(k, (100, 10)))(jax.random.split(key, 4))
    reference = jax.vmap(lambda k: jax.random.normal(k, (100, 10)))(jax.random.split(key, 4))
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(reference))


# Random123's known answers for Threefry-2x32, 20 rounds (Salmon et al. 2011, "Parallel random numbers: as easy
# as 1, 2, 3"; its kat_vectors file): (key, counter) -> output.
THREEFRY_KAT = [
    ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]

# Draws of every kind the loops make, as integers: JAX's own CPU lowering (a loop) and madloop's (unrolled) must
# give these bit for bit.
DRAWS = """
import json, sys, jax, jax.numpy as jnp, numpy as np
import madloop
key = jax.random.key(11)
keys = jax.random.split(key, 3)
f = jax.jit(lambda k: dict(
    split=jax.random.key_data(jax.random.split(k, 5)),
    fold=jax.random.key_data(jax.random.fold_in(k, 123456)),
    bits=jax.random.bits(k, (7, 3)),
    normal=jax.lax.bitcast_convert_type(jax.random.normal(k, (1001,)), jnp.uint32),
    uniform=jax.lax.bitcast_convert_type(jax.random.uniform(k, (5, 2)), jnp.uint32),
    categorical=jax.random.categorical(k, jnp.log(jnp.arange(1.0, 9.0)), shape=(33,)),
))
out = jax.vmap(f)(keys)
print(json.dumps({k: np.asarray(v).astype(np.int64).ravel().tolist() for k, v in out.items()}))
print(" while(" in f.lower(key).compile().as_text())
"""


def test_the_threefry_hash_is_unrolled_on_the_cpu_and_gives_the_same_bits():
    """import madloop lowers Threefry unrolled on the CPU (no while loop per draw) on tested JAX versions. The
    hash gives Random123's known answers, and every kind of draw equals JAX's own looped lowering's bit for bit
    (MADLOOP_XLA_DEFAULTS=0 keeps JAX's lowering)."""
    for key, count, expected in THREEFRY_KAT:
        out = jax.jit(jax.extend.random.threefry_2x32)(np.uint32(key), np.uint32(count))
        assert [int(v) for v in np.asarray(out)] == list(expected)
    env = {k: v for k, v in os.environ.items() if k != "MADLOOP_XLA_DEFAULTS"}
    run = lambda extra: subprocess.run(
        [sys.executable, "-c", DRAWS], env={**env, **extra}, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    mine, theirs = run({}), run({"MADLOOP_XLA_DEFAULTS": "0"})
    assert json.loads(mine[0]) == json.loads(theirs[0])
    tested = tuple(int(p) for p in importlib.metadata.version("jax").split(".")[:2]) in _xla.TESTED_JAX
    assert mine[1] == str(not tested) and theirs[1] == "True"  # JAX's CPU lowering is a loop per draw


def test_the_xla_default_is_set_on_import_and_accepted_by_this_jaxlib():
    """import madloop adds the YNNPACK fusion flag for tested jaxlib versions, XLA accepts it (it aborts on an
    unknown flag), and MADLOOP_XLA_DEFAULTS=0 or a user's own setting leaves XLA_FLAGS alone."""
    code = (
        "import os, madloop, jax; jax.numpy.ones(3).sum().block_until_ready(); print(os.environ.get('XLA_FLAGS', ''))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MADLOOP_XLA_DEFAULTS")}
    run = lambda extra: subprocess.run(
        [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, check=True
    ).stdout.strip()
    tested = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) in _xla.TESTED_JAXLIB
    assert run({}) == (_xla.FLAG if tested else "")
    assert run({"MADLOOP_XLA_DEFAULTS": "0"}) == ""
    own = "--xla_cpu_experimental_ynn_fusion_type=individual_dot,reduce"
    assert run({"XLA_FLAGS": own}) == own


def test_a_child_process_compiles_with_the_same_program_options():
    """A process started from one that imported madloop (a launcher's job, a resumed run) inherits XLA_FLAGS with
    madloop's flag in it: it must still give sample-metric programs the same options, or its numbers differ (an
    MMD moved by 4e-3 relative); the same flag set by a user, without madloop's mark, is left alone."""
    code = "import madloop; from madloop import _xla; print(_xla.program_options(True))"
    run = lambda env: subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    here = _xla.program_options(True)
    assert run(dict(os.environ)) == str(here)  # inherits this process's XLA_FLAGS and mark
    user = {k: v for k, v in os.environ.items() if k != _xla.MARK}
    user["XLA_FLAGS"] = _xla.FLAG
    assert run(user) == "None"


def test_programs_with_pairwise_metrics_get_ynnpack_reductions_and_xla_accepts_them(tiny):
    """A loop program that computes pairwise sample metrics is compiled with YNNPACK's reductions (madloop._xla:
    its [n, n] sums run 4-7x faster there), one with parameter metrics or small sample metrics alone is not; this
    jaxlib accepts the option
    (an unknown enum name is an error at compile time), and both programs run."""
    from madloop.engine import simulation

    tested = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) in _xla.TESTED_JAXLIB
    base = tiny + ["data=gaussian", "model=gaussian", "loop.generations=2"]
    samples = simulation(madloop.compose(base + ["eval.metrics=[trace_ratio,mmd,recall]"]))
    params = simulation(madloop.compose(base + ["eval.metrics=[trace_ratio]"]))
    small = simulation(madloop.compose(base + ["eval.metrics=[trace_ratio,sw2]"]))  # a sample metric, not pairwise
    assert samples.programs.options == (_xla.REDUCTIONS if tested and _xla.defaults_applied() else None)
    assert params.programs.options is None and small.programs.options is None
    a, b = samples(), params()
    # the parameter metric is the same computation in both programs (one the option does not touch)
    np.testing.assert_allclose(a.metrics["trace_ratio"], b.metrics["trace_ratio"], rtol=1e-6)
    assert np.isfinite(a.metrics["mmd"]).all() and np.isfinite(a.metrics["recall"]).all()


def test_the_reference_program_is_compiled_for_compile_speed_and_gives_the_same_statistics(tiny):
    """The held-out reference runs once, so on a tested CPU jaxlib it is compiled without LLVM's optimisations and
    XLA's fusion emitters (madloop._xla.ONE_SHOT) for a held-out set of up to ONE_SHOT_MAX_POINTS points; a user's
    own setting of either in XLA_FLAGS (as this suite's) is left alone. XLA accepts the options, and in a process
    with madloop's own XLA settings every statistic of the reference (the MMD's and KID's held-out kernel means
    included, which cancel in the metrics) equals that of the fully optimised program to float32 rounding."""
    code = (
        "import json, sys, jax, numpy as np, madloop; from madloop import _xla; from madloop.engine import Simulation\n"
        "print(_xla.one_shot_options(None, 1000), _xla.one_shot_options(None, _xla.ONE_SHOT_MAX_POINTS + 1))\n"
        "cfg = madloop.compose(sys.argv[1:])\n"
        "fast = Simulation(cfg).reference()\n"
        "_xla.ONE_SHOT_MAX_POINTS = 0\n"
        "optimised = Simulation(cfg).reference()\n"
        "leaves = zip(jax.tree.leaves(fast.stats), jax.tree.leaves(optimised.stats))\n"
        "as_list = lambda x: np.asarray(x, np.float64).tolist()\n"
        "print(json.dumps([[as_list(a), as_list(b)] for a, b in leaves]))"
    )
    base = tiny + ["data=gaussian", "model=gaussian", "eval.n=300", "eval.metrics=[mmd,recall,kid]"]
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", _xla.MARK, "MADLOOP_XLA_DEFAULTS")}
    out = subprocess.run(
        [sys.executable, "-c", code, *base], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    tested = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2]) in _xla.TESTED_JAXLIB
    small, large = (_xla.ONE_SHOT, None) if tested and jax.default_backend() == "cpu" else (None, None)
    assert out[0] == f"{small} {large}"
    assert _xla.one_shot_options(None, 1000) is None  # the suite sets the optimisation level in XLA_FLAGS
    pairs = json.loads(out[1])
    assert len(pairs) == 5  # the MMD bandwidths and kernel means, the k-NN radii, KID's centre and kernel mean
    for fast, optimised in pairs:
        np.testing.assert_allclose(fast, optimised, rtol=2e-5, atol=1e-7)


@pytest.mark.parametrize("partitionable", [False, True])
def test_the_run_keys_hashed_in_numpy_equal_jax_fold_in_bit_for_bit(partitionable):
    """``engine._run_keys`` hashes threefry keys in numpy; they must be the compiled fold_in keys (madloop's CPU
    lowering, which the known answers and the draws test above tie to JAX's own), bit for bit, at the
    seeds' extremes (0, 2**32 - 1) and with either threefry mode (a wrong rotation, key schedule or counter pair
    changes every bit)."""
    from madloop.engine import _run_keys, _run_keys_compiled

    with jax.threefry_partitionable(partitionable):
        for seed, seeds, repeats in [(0, 1, 1), (7, 1000, 1), (2**32 - 1, 5, 3), (123456789, 64, 2)]:
            got = _run_keys(seed, seeds, repeats)
            want = _run_keys_compiled(jax.numpy.uint32(seed), seeds, repeats)
            for g, w in zip(got, want, strict=True):
                assert g.dtype == w.dtype and g.shape == w.shape
                np.testing.assert_array_equal(jax.random.key_data(g), jax.random.key_data(w))
    with jax.default_prng_impl("rbg"):  # another key implementation: its own keys, from the compiled program
        keys = _run_keys(3, 4, 2)[0]
        assert str(jax.random.key_impl(keys)) == "rbg" and keys.shape == (8,)
    for key, count, expected in THREEFRY_KAT:  # the numpy hash itself: Random123's known answers
        out = rng.threefry2x32_np(np.uint32(key), np.uint32(count[0]), np.uint32(count[1]))
        assert tuple(int(v) for v in out) == expected


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64", "uint32"])
def test_materialised_returns_every_value_bit_for_bit(dtype):
    """_xla.materialised (a reduction XLA does not fuse into a consumer) is the identity, bit for bit, on the
    values a draw or a collapsing loop makes: signed zeros, infinities, NaN, the extremes. A subnormal comes back
    unchanged or flushed to zero (XLA's CPU kernels may run with flush-to-zero, as for any float operation)."""
    import jax.numpy as jnp

    with jax.enable_x64(dtype == "float64"):
        if dtype == "uint32":
            x = np.array([0, 1, 2**31, 2**32 - 1, 12345], np.uint32)
        else:
            info = jnp.finfo(dtype)
            x = np.array([-0.0, 0.0, -np.inf, np.inf, np.nan, float(info.max), float(info.min), 1.0, -3.5], dtype)
        y = np.asarray(jax.jit(_xla.materialised)(jnp.asarray(x)))
        assert y.dtype == x.dtype
        np.testing.assert_array_equal(y.view(f"u{x.itemsize}"), x.view(f"u{x.itemsize}"))
        if dtype != "uint32":
            tiny = np.array([float(jnp.finfo(dtype).smallest_subnormal)] * 3, dtype)
            assert set(np.asarray(jax.jit(_xla.materialised)(jnp.asarray(tiny))).tolist()) <= {0.0, float(tiny[0])}
