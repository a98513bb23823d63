"""SIMS guidance: omega = 0 is plain sampling bit for bit, the auxiliary model is fitted inside the loop, and
distribution-control weights are share / target per mode."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_DIFFUSION, TINY_SIMS, in_default_xla

import madloop
from madloop import config as C
from madloop.engine import simulation
from madloop.guidance import mode_ratio_weights
from madloop.precision import precision

SIMS = TINY_SIMS


@in_default_xla
def test_omega_zero_loop_equals_the_unguided_loop_bit_for_bit(tiny):
    # The base model is fitted with the same keys with and without guidance, and (1 + 0) s_base - 0 s_aux is
    # s_base exactly, so every synthetic sample, every fit and every metric must agree exactly.
    plain = madloop.run_table(tiny + TINY_DIFFUSION + ["eval.metrics=[sw2,mmd,recall]"])
    overrides = tiny + TINY_DIFFUSION + SIMS + ["guidance.omega=0", "eval.metrics=[sw2,mmd,recall]"]
    sims = madloop.run_table(overrides)
    assert np.array_equal(plain.to_numpy(), sims.to_numpy())
    # ... and omega is traced: omega = 1 in the same compiled program changes the samples.
    cfg = madloop.compose(overrides)
    sim = simulation(cfg)  # the Simulation run_table compiled
    run_keys, knobs, _, _ = sim.runs()
    ref = sim.reference()
    with precision(cfg.loop.precision):  # the context run_table compiled in (x64 mode, matmul precision)
        outs = [sim.run_all(run_keys, {**knobs, "omega": jnp.full_like(knobs["omega"], w)}, ref)[1] for w in (0, 1.0)]
    assert [p._cache_size() for p in sim.programs.chunks.values()] == [1]  # no recompilation for a new omega
    np.testing.assert_array_equal(outs[0].metrics["sw2"], sims["sw2"].to_numpy().reshape(2, 3))
    assert not np.allclose(outs[0].metrics["sw2"], outs[1].metrics["sw2"])


def test_sims_state_carries_the_base_and_the_auxiliary_model(tiny):
    # (SIMS under every regime and every pool: tests/test_loop.py)
    overrides = ["regime=synthetic_augmentation", "regime.pool=accumulate", "eval.metrics=[sw2,modes]"]
    result = madloop.simulate(tiny + TINY_DIFFUSION + SIMS + overrides)
    table = result.table()
    assert len(table) == 2 * 3 and (table["finite"] == 1).all()
    assert np.isfinite(table["sw2"]).all()
    # The state carries the base and the auxiliary model, batched over the 2 seeds; they differ, because the
    # auxiliary model was fine-tuned on the base's samples.
    base, aux = jax.tree.leaves(result.state.params.base.ema), jax.tree.leaves(result.state.params.aux.ema)
    assert all(b.shape == a.shape and b.shape[0] == 2 for b, a in zip(base, aux, strict=True))
    assert not all(np.allclose(b, a) for b, a in zip(base, aux, strict=True))


def test_mode_ratio_weights_hand_checked():
    # Truth: 3 modes at -10, 0, 10 (1-D). Samples: 4 at mode 0, 2 at mode 1, 2 at mode 2, so shares
    # p = (0.5, 0.25, 0.25). Target (0.25, 0.5, 0.25): weights p / target = (2, 0.5, 1) per sample of each mode.
    # The weighted shares are a ~ p^2 / target = (1, 0.125, 0.25) / 1.375, and p^2 / a ~ target, as claimed.
    from madloop.mixture import Mixture

    truth = Mixture(jnp.ones(3) / 3, jnp.array([[-10.0], [0.0], [10.0]]), jnp.ones((3, 1, 1)))
    x = jnp.array([[-10.0], [-9.5], [-10.2], [-11.0], [0.1], [-0.3], [9.9], [10.4]])
    target = jnp.array([0.25, 0.5, 0.25])
    w = mode_ratio_weights(x, truth, target)
    np.testing.assert_allclose(w, [2, 2, 2, 2, 0.5, 0.5, 1, 1])
    a = np.array([4 * 2, 2 * 0.5, 2 * 1]) / np.sum(w)
    p = np.array([0.5, 0.25, 0.25])
    np.testing.assert_allclose((p**2 / a) / np.sum(p**2 / a), target, rtol=1e-6)
    # On target: uniform weights (the auxiliary model is plain SIMS's).
    np.testing.assert_allclose(mode_ratio_weights(x, truth, jnp.array([0.5, 0.25, 0.25])), np.ones(8))


def test_mode_control_runs_with_a_target(tiny):
    target = "[" + ",".join(["3"] * 4 + ["1"] * 4) + "]"
    table = madloop.run_table(
        tiny + TINY_DIFFUSION + SIMS + ["guidance.control=modes", f"guidance.target={target}", "eval.metrics=[modes]"]
    )
    assert (table["finite"] == 1).all()


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["guidance=sims"], "guidance=sims: needs model=diffusion"),
        (["model=diffusion", "guidance=sims", "guidance.omega=-1"], "guidance.omega=-1.0: must be a finite number"),
        (["model=diffusion", "guidance=sims", "guidance.n_aux=0"], "guidance.n_aux=0: must be an integer >= 1"),
        (["model=diffusion", "guidance=sims", "guidance.control=gender"], "guidance.control=gender: allowed: none"),
        (
            ["data=gaussian", "model=diffusion", "guidance=sims", "guidance.control=modes"],
            "guidance.control=modes: needs a mixture truth",
        ),
        (
            ["model=diffusion", "guidance=sims", "guidance.control=modes", "guidance.target=[1,2]"],
            "guidance.target=[1.0,2.0]: must be 8 finite weights > 0",
        ),
        (["model=diffusion", "guidance=sims", "guidance.target=[1,2]"], "only applies to guidance.control=modes"),
        (["model=diffusion", "model.sampler=euler"], "model.sampler=euler: allowed: ddpm, ddim"),
        (["model=diffusion", "model.ema=1"], "model.ema=1.0: must lie in [0, 1)"),
        (["model=diffusion", "model.time_features=7"], "model.time_features=7: must be even"),
        (["model=diffusion", "model.train_steps=0"], "model.train_steps=0: must be an integer >= 1"),
        (
            ["model=diffusion", "model.classes=3"],
            "model.classes=3: must be 0 or the truth's number of components or classes (8)",
        ),
        (["data=moons", "model=diffusion", "model.classes=2"], "model.classes=2: needs a labelled truth"),
        (["model=diffusion", "model.bias=cfg"], "model.bias=cfg: classifier-free guidance needs a conditional model"),
    ],
)
def test_bad_guidance_and_diffusion_settings_name_the_field(overrides, message):
    with pytest.raises(C.ConfigError) as err:
        madloop.compose(overrides)
    assert message in str(err.value)


def test_conditional_sims_loop_moves_labels_with_the_samples(tiny):
    # A class-conditional base with SIMS, accumulating pool: the pool holds [x, label] rows; snapshots hold x.
    overrides = ["model.classes=8", "regime.pool=accumulate", "eval.metrics=[sw2,modes]"]
    result = madloop.simulate(tiny + TINY_DIFFUSION + TINY_SIMS + overrides)
    assert (result.table()["finite"] == 1).all()
    pool, pool_w = np.asarray(result.state.pool), np.asarray(result.state.pool_w)
    assert pool.shape[-1] == 3 and result.snapshots.shape[-1] == 2
    labels = pool[..., 2][pool_w > 0]
    assert np.array_equal(labels, np.round(labels)) and labels.min() >= 0 and labels.max() <= 7
    real_labels = np.asarray(result.state.real)[..., 2]
    assert len(np.unique(real_labels)) > 4  # the truth's components
