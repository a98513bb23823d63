"""Validation in two rounds and the parts built once; the knob table and what derives from it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from madloop import api, knobs, parts, report
from madloop import config as C
from madloop.engine import simulation

SMALL = ["loop.generations=2", "loop.seeds=2", "eval.n=100", "eval.snapshots=0", "eval.snapshot_n=4"]


def test_the_data_source_is_built_once_per_run(monkeypatch):
    api.register()
    calls = []
    option = C.OPTIONS["data"]["moons"]

    def counting(cfg):
        calls.append(cfg)
        return option.build(cfg)

    monkeypatch.setitem(C.OPTIONS["data"], "moons", option._replace(build=counting))
    parts._CACHE.clear()
    cfg = api.compose(["data=moons", "model=kde", "regime.n_real=50", "regime.n_synth=50", *SMALL])
    table = simulation(cfg)().table()
    assert parts.parts_of(cfg) is simulation(cfg).programs.parts  # the report and figures reuse them
    assert len(table) == 2 * 3
    assert len(calls) == 1  # compose's validation, the programs and the outputs share one build


def test_fields_are_checked_before_anything_is_built(monkeypatch):
    api.register()
    option = C.OPTIONS["data"]["moons"]

    def fail(cfg):
        raise AssertionError("built before the field checks")

    monkeypatch.setitem(C.OPTIONS["data"], "moons", option._replace(build=fail))
    parts._CACHE.clear()
    with pytest.raises(C.ConfigError, match=r"^model\.components=0: must be an integer >= 1$"):
        api.compose(["data=moons", "model=gmm", "model.components=0"])
    with pytest.raises(C.ConfigError, match=r"^loop\.seeds=0: "):
        api.compose(["data=moons", "loop.seeds=0"])


def test_cross_group_checks_run_against_the_built_parts():
    # gmm's K against the smallest training set (a swept count at its smallest value), sims against the family
    with pytest.raises(
        C.ConfigError, match=r"^model\.components=8: must be <= the smallest training set \(4 samples\)$"
    ):
        api.compose(["model=gmm", "regime.n_real=64", "sweep.regime.n_real=[4,64]"])
    with pytest.raises(C.ConfigError, match=r"^guidance=sims: needs model=diffusion"):
        api.compose(["model=gmm", "guidance=sims"])


def test_count_sweeps_name_their_buffer():
    with pytest.raises(C.ConfigError) as err:
        api.compose(["data=gaussian", "model=gaussian", "regime.n_real=32", "sweep.regime.n_real=[16,64]"])
    assert str(err.value) == (
        "sweep.regime.n_real=[16,64]: values must be <= regime.n_real=32, the buffer they mask: set regime.n_real=64"
    )
    cfg = api.compose(["data=gaussian", "model=gaussian", "regime.n_real=64", "sweep.regime.n_real=[16,64]"])
    assert cfg.regime.n_real == 64  # the composed config is the config that runs


def test_knob_table_derives_the_sweep_schema_grid_and_columns():
    api.register()
    sweep_fields = {
        f"sweep.{group.name}.{f.name}"
        for group in dataclasses.fields(C.NODES["sweep"])
        for f in dataclasses.fields(group.type if isinstance(group.type, type) else group.default_factory)
    }
    assert sweep_fields == {k.sweep for k in knobs.KNOBS}
    assert report.knob_names() == tuple(k.name for k in knobs.KNOBS)
    cfg = api.compose(
        ["data=gaussian", "model=gaussian", "regime=synthetic_augmentation", "sweep.bias.lam=[0.5,1.0]"]
        + ["sweep.regime.real_weight=[1,2,3]"]
    )
    grid, columns = knobs.knob_grid(cfg)
    assert set(grid) == {k.name for k in knobs.KNOBS} and set(columns) == {"lam", "real_weight"}
    # the Cartesian product in table order: lam major, real_weight minor
    np.testing.assert_array_equal(columns["lam"], [0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(columns["real_weight"], [1, 2, 3, 1, 2, 3])
    assert knobs.grid_points(cfg) == 6


def test_a_knob_needs_its_field():
    # the families with a learning rate, read from the registered schemas: diffusion among them, gmm not
    with pytest.raises(C.ConfigError, match=r"^sweep\.model\.lr=\[0\.1\]: needs model=[a-z_|]+$") as err:
        api.compose(["model=gmm", "sweep.model.lr=[0.1]"])
    families = str(err.value).rsplit("model=", 1)[1].split("|")
    assert "diffusion" in families and "gmm" not in families
    with pytest.raises(C.ConfigError, match=r"^sweep\.guidance\.omega=\[1\.0\]: needs guidance=sims$"):
        api.compose(["sweep.guidance.omega=[1.0]"])
    with pytest.raises(C.ConfigError, match=r"^sweep\.model\.ema=\[1\.0\]: must be a list of finite numbers, "):
        api.compose(["model=diffusion", "sweep.model.ema=[1.0]"])


def test_static_config_ignores_every_float_knob_and_keeps_counts():
    a = api.compose(["model=diffusion", "bias.lam=0.5", "model.lr=0.01", "model.ema=0.9", "regime.real_weight=2"])
    b = api.compose(["model=diffusion", "bias.lam=0.7", "model.lr=0.02", "model.ema=0.99"])
    assert knobs.static_config(a) == knobs.static_config(b)
    c = api.compose(["model=diffusion", "regime.n_real=100"])
    assert knobs.static_config(c) != knobs.static_config(b)


TINY_DIFFUSION = [
    "data=ring8",
    "model=diffusion",
    "model.width=16",
    "model.depth=2",
    "model.time_features=8",
    "model.train_steps=20",
    "model.finetune_steps=10",
    "model.sample_steps=6",
    "model.batch=32",
    "regime.n_real=64",
    "regime.n_synth=64",
    "eval.metrics=[sw2,mmd]",
    "loop.chunk=2",  # the whole loop as one program
    *SMALL,
]


def test_traced_learning_rate_sweep_is_one_program_and_matches_plain_runs():
    swept = simulation(api.compose([*TINY_DIFFUSION, "sweep.model.lr=[0.001,0.005]", "sweep.model.ema=[0.9]"]))()
    table = swept.table()
    assert sorted(set(table.lr)) == pytest.approx([0.001, 0.005])
    assert np.allclose(table.ema, 0.9)
    plain = {}
    for lr in (0.001, 0.005):
        sim = simulation(api.compose([*TINY_DIFFUSION, f"model.lr={lr}", "model.ema=0.9"]))
        plain[lr] = sim().table()
        # Configs that differ only in the learning rate share one compiled program (no recompilation).
        assert sim.programs is simulation(api.compose(TINY_DIFFUSION)).programs
        assert [p._cache_size() for p in sim.programs.chunks.values()] == [1]
    for lr, want in plain.items():
        got = table[np.isclose(table.lr, lr)].drop(columns=["lr", "ema"]).reset_index(drop=True)
        np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-4, atol=1e-6)
    # Power: the two learning rates train different models (the knob reaches the optimiser).
    assert not np.allclose(plain[0.001].sw2.to_numpy()[2:], plain[0.005].sw2.to_numpy()[2:], rtol=1e-3)
