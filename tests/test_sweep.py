"""Knob sweeps inside one program and sharding of the run axis over devices."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import madloop
from madloop import config as C

GAUSS = ["data=gaussian", "model=gaussian", "eval.metrics=[trace_ratio,mean_sqerr,sw2]"]


def test_a_swept_knob_equals_separate_runs_and_gets_a_column(tiny):
    aug = GAUSS + ["regime=synthetic_augmentation"]
    swept = madloop.run_table(tiny + aug + ["sweep.bias.lam=[0.7,1.0]", "sweep.regime.real_weight=[1,3]"])
    # 2 x 2 grid points x 2 seeds x generations 0..2; knob columns after seed
    assert list(swept.columns[:4]) == ["seed", "lam", "real_weight", "generation"]
    assert len(swept) == 4 * 2 * 3
    assert sorted(swept.groupby(["lam", "real_weight"]).size().to_dict().items()) == [
        ((0.7, 1.0), 6),  # the values as given, not float32's 0.699999988
        ((0.7, 3.0), 6),
        ((1.0, 1.0), 6),
        ((1.0, 3.0), 6),
    ]
    for lam in (0.7, 1.0):
        alone = madloop.run_table(tiny + aug + [f"bias.lam={lam}", "regime.real_weight=3"])
        part = swept[(swept["lam"] == lam) & (swept["real_weight"] == 3.0)].drop(columns=["lam", "real_weight"])
        # same seeds, same keys (common random numbers), the knob traced either way
        np.testing.assert_allclose(part.to_numpy(), alone.to_numpy(), rtol=2e-6, atol=1e-7)
    # the knobs matter: lam = 0.7 shrinks the covariance, a heavier real part holds it up
    last = swept[swept["generation"] == 2].groupby(["lam", "real_weight"])["trace_ratio"].mean()
    assert last[(0.7, 1.0)] < last[(1.0, 1.0)] and last[(0.7, 1.0)] < last[(0.7, 3.0)]  # common random numbers


def test_omega_sweep_runs_in_the_loop(tiny):
    from conftest import TINY_DIFFUSION, TINY_SIMS

    table = madloop.run_table(tiny + TINY_DIFFUSION + TINY_SIMS + ["sweep.guidance.omega=[0,2]", "eval.metrics=[sw2]"])
    assert list(table.columns[:3]) == ["seed", "omega", "generation"] and len(table) == 2 * 2 * 3
    a, b = (table[table["omega"] == w]["sw2"].to_numpy() for w in (0.0, 2.0))
    assert not np.allclose(a, b)


def test_a_float64_omega_sweep_runs_in_float64(tiny):
    """``omega_sweep`` traces and runs in the config's precision: its omega = 0 column is the float64 loop's own
    generation-0 row to float64 rounding (a sweep run in float32, as it once was, is ~1e-7 apart)."""
    from conftest import TINY_DIFFUSION, TINY_SIMS

    from madloop.sweep import omega_sweep

    base = tiny + TINY_DIFFUSION + TINY_SIMS + ["loop.precision=float64", "eval.metrics=[sw2,mmd]"]
    table, _ = omega_sweep(base, (0.0, 1.5))
    assert table["sw2"].dtype == np.float64 and table["mmd"].dtype == np.float64
    plain = madloop.run_table(base + ["guidance.omega=0"])
    first = plain[plain["generation"] == 0]
    for name in ("sw2", "mmd"):
        np.testing.assert_allclose(table[table["omega"] == 0.0][name], first[name], rtol=1e-11, err_msg=name)
    assert not np.allclose(table[table["omega"] == 1.5]["sw2"], first["sw2"])


def test_an_omega_sweep_of_a_conditional_model_scores_the_samples_without_their_labels(tiny):
    """A class-conditional model's samples are rows [x, label]; the loop scores x. ``omega_sweep`` passed the whole
    rows to the metrics: sw2 failed on a shape and vendi silently counted the label column (63.99936 against the
    loop's 63.98127 at omega = 0). Its omega = 0 column must be the loop's own generation-0 row."""
    from conftest import TINY_DIFFUSION, TINY_SIMS

    from madloop.sweep import omega_sweep

    base = tiny + TINY_DIFFUSION + TINY_SIMS + ["model.classes=8", "eval.metrics=[vendi,sw2]"]
    seen = []
    table, _ = omega_sweep(base, (0.0, 1.0), lambda x, loop: seen.append(x.shape[-1]) or {})
    assert seen == [2]
    plain = madloop.run_table(base + ["guidance.omega=0"])
    first = plain[plain["generation"] == 0]
    for name in ("vendi", "sw2"):
        np.testing.assert_allclose(table[table["omega"] == 0.0][name], first[name], rtol=1e-5, err_msg=name)


def test_count_sweeps_follow_the_closed_form_and_the_largest_count_equals_a_plain_run():
    """Counts as masks over a static maximum. Gaussian MLE, fully synthetic, replace: generation 0 is fitted on
    n_r real samples and every later one on m synthetic ones, so E[tr S_g / tr S] = ((n_r-1)/n_r) ((m-1)/m)^g
    (docs/theory.md). Each swept count must follow its own law (1000 seeds, within 4.5 SE); a mask that leaked
    the unused slots would follow the buffer size's law instead."""
    base = GAUSS[:2] + ["regime=fully_synthetic", "eval.metrics=[trace_ratio]", "plots=false", "eval.n=64"]
    base += ["loop.generations=4", "data.dim=2", "regime.n_real=16", "regime.n_synth=16"]  # the counts' buffers
    swept = madloop.run_table(base + ["loop.seeds=1000", "sweep.regime.n_real=[4,16]", "sweep.regime.n_synth=[3,16]"])
    assert list(swept.columns[:4]) == ["seed", "n_real", "n_synth", "generation"]
    g = 4
    for (n_r, m), part in swept[swept["generation"] == g].groupby(["n_real", "n_synth"]):
        expected = (n_r - 1) / n_r * ((m - 1) / m) ** g
        values = part["trace_ratio"].to_numpy()
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - expected) < 4.5 * se, (n_r, m, values.mean(), expected)
    # the largest counts mask nothing: that grid point is the plain run with those counts, bit for bit
    plain = madloop.run_table(base + ["loop.seeds=4"])
    small = madloop.run_table(base + ["loop.seeds=4", "sweep.regime.n_real=[4,16]", "sweep.regime.n_synth=[3,16]"])
    part = small[(small["n_real"] == 16) & (small["n_synth"] == 16)].drop(columns=["n_real", "n_synth"])
    np.testing.assert_array_equal(part.to_numpy(), plain.to_numpy())


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["sweep.regime.n_synth=[0,4]", "regime=fully_synthetic"], "sweep.regime.n_synth=[0,4]: must be a non-empty"),
        (["sweep.regime.n_real=[1,8]", "model=gaussian"], "regime.n_real=1: must be >= 2 to fit a covariance"),
        (["sweep.regime.n_real=[1,8]", "model=kde"], "regime.n_real=1: must be >= 2 (the kernel's covariance"),
        (["sweep.regime.n_real=[1,8]", "model=kde", "model.bandwidth=0.5"], "regime.n_real=1: must be >= 2"),
        (["sweep.bias.lam=[]"], "sweep.bias.lam=[]: give at least one value"),
        (["sweep.bias.lam=[1,-1]"], "sweep.bias.lam=[1.0,-1.0]: must be a list of finite numbers, values > 0"),
        (["sweep.guidance.omega=[0,1]"], "sweep.guidance.omega=[0.0,1.0]: needs guidance=sims"),
        (["sweep.bias.lam=[0.5,0.5]"], "sweep.bias.lam=[0.5,0.5]: values must be distinct"),
        (["sweep.bias.lam=[0.7,0.70000001]"], "values must be distinct"),  # one float32 value
        (["sweep.bias.lam=[1e-46,1]"], "must stay finite and values > 0 in float32"),
        (["sweep.bias.lam=[1e39,1]"], "must stay finite and values > 0 in float32"),
        (["sweep.regime.real_weight=[1,2]"], "real_weight=[1.0,2.0]: has no effect in the fully synthetic"),
    ],
)
def test_bad_sweeps_name_the_field(overrides, message):
    with pytest.raises(C.ConfigError) as err:
        madloop.compose(overrides)
    assert message in str(err.value)


SHARDED = """
import sys
import jax
import madloop
from madloop.engine import shard_runs
assert jax.device_count() == 8, jax.devices()
assert len(shard_runs(jax.numpy.arange(6.0)).sharding.device_set) == 8  # the run axis really is split
overrides = sys.argv[2:]
madloop.run_table(overrides).to_csv(sys.argv[1], index=False)
"""


def test_eight_devices_give_the_one_device_results(tiny, tmp_path):
    # 3 grid points x 2 seeds = 6 runs, padded to 8 and sharded over 8 host devices; the stepped (chunked) path.
    overrides = tiny + GAUSS + ["sweep.bias.lam=[0.5,0.8,1.0]", "loop.generations=3", "loop.chunk=1"]
    one = madloop.run_table(overrides)
    env = {**os.environ, "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"}
    out = tmp_path / "eight.csv"
    subprocess.run([sys.executable, "-c", SHARDED, str(out), *overrides], check=True, env=env, timeout=300)
    eight = pd.read_csv(out)
    assert list(eight.columns) == list(one.columns)
    np.testing.assert_allclose(eight.to_numpy(), one.to_numpy(), rtol=1e-6, atol=1e-7)


def test_omega_sweep_refuses_a_knob_sweep(tiny):
    from conftest import TINY_DIFFUSION, TINY_SIMS

    from madloop.sweep import omega_sweep

    with pytest.raises(C.ConfigError, match="omega_sweep runs no knob sweep"):
        omega_sweep(tiny + TINY_DIFFUSION + TINY_SIMS + ["sweep.bias.lam=[0.5,1.0]"], (0.0, 1.0))
