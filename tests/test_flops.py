"""benchmarks/flops.py counts the matrix-product FLOPs that the "share of the matmul peak" rows divide by: exact
counts on programs whose count is known by hand (tracing only, nothing compiles)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from benchmarks.flops import matmul_flops
from madloop.models import diffusion as D
from madloop.models.networks import Conv3x3


def test_products_scans_conds_and_vmaps():
    a, b = jnp.ones((3, 5)), jnp.ones((5, 7))
    assert matmul_flops(jnp.matmul, a, b) == 2 * 3 * 5 * 7
    # a vmapped product carries the batch in its output shape
    assert matmul_flops(jax.vmap(jnp.matmul), jnp.ones((4, 3, 5)), jnp.ones((4, 5, 7))) == 4 * 2 * 3 * 5 * 7

    def scanned(a):
        return jax.lax.scan(lambda c, _: (c @ jnp.ones((5, 5)), None), a, length=11)[0]

    assert matmul_flops(scanned, a) == 11 * 2 * 3 * 5 * 5
    # a fori_loop with static bounds is a scan; under jit the count is the same
    assert matmul_flops(jax.jit(lambda a: jax.lax.fori_loop(0, 6, lambda i, c: c @ jnp.ones((5, 5)), a)), a) == (
        6 * 2 * 3 * 5 * 5
    )

    # a cond counts its most expensive branch
    def branch(p, a):
        return jax.lax.cond(p, lambda a: a @ jnp.ones((5, 5)) @ jnp.ones((5, 5)), lambda a: a, a)

    assert matmul_flops(branch, True, a) == 2 * (2 * 3 * 5 * 5)


def test_a_while_loop_with_products_raises_rather_than_guess():
    def loop(a):
        return jax.lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c @ jnp.ones((5, 5)), a)

    with pytest.raises(ValueError, match="while loop"):
        matmul_flops(loop, jnp.ones((3, 5)))
    # one without products is fine (it costs no matmul FLOPs)
    assert matmul_flops(lambda a: jax.lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2, a), jnp.ones(3)) == 0


def test_convolutions_in_both_forms_count_the_same():
    """A 3 x 3 'same' convolution of a batch of [h, w, c_in] images to c_out channels: 2 h w 9 c_in c_out per image,
    whether XLA's convolution (flax.linen.Conv) or madloop's patches-and-a-dot Conv3x3."""
    batch, h, w, cin, cout = 4, 8, 8, 3, 16
    x = jnp.ones((batch, h, w, cin))
    expected = batch * 2 * h * w * 9 * cin * cout
    conv = nn.Conv(cout, (3, 3))
    p = conv.init(jax.random.key(0), x)
    assert matmul_flops(conv.apply, p, x) == expected
    ours = Conv3x3(cout)
    q = ours.init(jax.random.key(0), x[0])
    assert matmul_flops(jax.vmap(ours.apply, in_axes=(None, 0)), q, x) == expected


def test_the_diffusion_mlp_training_step_counts_forward_and_backward():
    """Per training step and seed: the forward pass, the weight gradients (the same products again) and the input
    gradients of every layer but the first (nothing needs the gradient of the data and time features): 3 x forward
    minus the first layer. A count of 3 x forward (the formula the benchmark used before) is off by that layer."""
    width, depth, batch, tf, d, seeds = 64, 3, 32, 16, 2, 3
    x, w = jax.random.normal(jax.random.key(0), (256, d)), jnp.ones(256)
    fam = D.diffusion_family(D.DiffusionModel(width=width, depth=depth, batch=batch, time_features=tf))
    keys = jax.random.split(jax.random.key(1), seeds)

    def count(steps):
        return matmul_flops(jax.vmap(lambda k: fam.train(k, fam.model.init(k, x, w), x, w, steps)[1]), keys)

    first = 2 * batch * (d + tf) * width
    forward = first + 2 * batch * ((depth - 1) * width**2 + width * d)
    per_step = (count(7) - count(3)) / (4 * seeds)
    assert per_step == 3 * forward - first
    assert per_step != 3 * forward


def test_checkpointed_bodies_count_and_transposed_convolutions_refuse():
    a = jnp.ones((3, 5))
    assert matmul_flops(jax.checkpoint(lambda a: a @ jnp.ones((5, 5))), a) == 2 * 3 * 5 * 5
    x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))

    def transposed(x):
        return jax.lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    with pytest.raises(ValueError, match="lhs_dilation"):
        matmul_flops(transposed, x)


def test_diffusion_step_benchmark_writes_a_row_per_width_and_seed_count(tmp_path, monkeypatch, capsys):
    """benchmarks/diffusion_step.py: one row per width x batch x seeds, each with its traced FLOP count (the
    per-step count grows with the width and with the seeds, as the products do)."""
    import json

    from benchmarks import diffusion_step

    out = tmp_path / "steps.json"
    argv = ["diffusion_step", "--widths", "8", "16", "--seeds", "1", "2", "--batches", "8", "--steps", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--json", str(out)])
    diffusion_step.main()
    rows = json.loads(out.read_text())["rows"]
    assert [(r["size"], r["seeds"]) for r in rows] == [(8, 1), (8, 2), (16, 1), (16, 2)]
    flops = {(r["size"], r["seeds"]): r["gflop_per_step"] for r in rows}
    assert flops[(8, 2)] == pytest.approx(2 * flops[(8, 1)]) and flops[(16, 1)] > flops[(8, 1)]
    assert all(0 < r["fraction"] for r in rows) and len(capsys.readouterr().out.splitlines()) == 6
    assert all(r["options"] == (diffusion_step.preset_options() or {}) for r in rows)


def test_step_benchmark_compiles_as_the_preset_loop_does():
    """The training-step rows are timed with the compiler options the digits preset's loop compiles its programs
    with (engine.Programs.options), so the step's share of the peak is the loop's, not a differently compiled
    step's; on a tested CPU jaxlib these are YNNPACK's reductions (the preset computes pairwise metrics)."""
    import madloop
    from benchmarks import diffusion_step
    from madloop import _xla
    from madloop.engine import Programs

    options = diffusion_step.preset_options()
    assert options == Programs(madloop.compose(list(diffusion_step.PRESET))).options
    assert options == (_xla.REDUCTIONS if _xla.defaults_applied() and jax.default_backend() == "cpu" else None)
    assert diffusion_step.preset_options(("model=gaussian", "data=gaussian", "eval=closed_form")) is None
