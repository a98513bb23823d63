"""GAN family (WGAN-GP): the gradient penalty by hand, truncation, fitting a Gaussian, weights, warm start, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import madloop
from madloop import config as C
from madloop import rng
from madloop.models import gan as G
from madloop.models.gan import GANModel

KEY = jax.random.key(0)
TINY_NET = dict(width=32, depth=2, latent=2, batch=64, lr=1e-3, ema=0.99)


def knobs(cfg: GANModel, lam: float = 1.0) -> dict[str, jax.Array]:
    """The traced knobs a GAN fit and sample read (the values a run of this config would trace)."""
    return {"lam": jnp.float32(lam), "lr": jnp.float32(cfg.lr), "ema": jnp.float32(cfg.ema)}


def same(a, b) -> bool:
    return jax.tree.all(jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a, b))


# ------------------------------------------------------------------------------------------ gradient penalty


def test_gradient_penalty_of_a_linear_critic_is_exact():
    """f(x) = a.x has gradient a at every point, so the penalty is (|a| - 1)^2 whatever the interpolates: with
    a = (3, 4), |a| = 5 and the weighted penalty 10 (5 - 1)^2 = 160."""
    real, fake = jax.random.normal(KEY, (32, 2)), 3.0 + jax.random.normal(jax.random.key(1), (32, 2))
    eps = jax.random.uniform(jax.random.key(2), (32, 1))
    a = jnp.array([3.0, 4.0])
    assert float(10 * G.gradient_penalty(lambda x: a @ x, real, fake, eps)) == pytest.approx(160.0, rel=1e-6)
    # a unit-norm slope costs nothing
    assert float(G.gradient_penalty(lambda x: a @ x / 5.0, real, fake, eps)) == pytest.approx(0.0, abs=1e-6)


def test_gradient_penalty_is_taken_at_the_interpolates():
    """f(x) = |x|^2 / 2 has gradient x, so the penalty is mean (|x^| - 1)^2 at x^ = eps x + (1 - eps) x~,
    computed here in numpy; interpolating the other way round (x^ = (1 - eps) x + eps x~) gives another value."""
    real, fake = jax.random.normal(KEY, (64, 3)), 2.0 + jax.random.normal(jax.random.key(1), (64, 3))
    eps = jax.random.uniform(jax.random.key(2), (64, 1))
    got = float(G.gradient_penalty(lambda x: 0.5 * jnp.sum(x**2), real, fake, eps))
    r, f, e = (np.asarray(v, np.float64) for v in (real, fake, eps))
    want = np.mean((np.linalg.norm(e * r + (1 - e) * f, axis=1) - 1) ** 2)
    swapped = np.mean((np.linalg.norm((1 - e) * r + e * f, axis=1) - 1) ** 2)
    assert got == pytest.approx(want, rel=1e-5)
    assert abs(swapped - want) > 0.1 * want  # the power check: the swapped interpolation is told apart


def test_critic_loss_is_the_paper_objective():
    """The family's critic loss is mean D(fake) - mean D(real) + gp_weight * penalty (Algorithm 1, line 7):
    checked with the family's own critic weights against the pieces computed separately."""
    cfg = GANModel(**TINY_NET, gp_weight=10.0)
    fam = G.gan_family(cfg)
    x = jax.random.normal(KEY, (16, 2))
    eps = jax.random.uniform(jax.random.key(2), (16, 1))

    @jax.jit
    def pieces(key):
        p = fam.model.init(key, x, jnp.ones(16))
        fake = fam.generate(p.gen, jax.random.normal(jax.random.key(1), (16, 2)))
        w_est = jnp.mean(fam.critic(p.critic, x)) - jnp.mean(fam.critic(p.critic, fake))
        penalty = G.gradient_penalty(lambda xi: fam.critic_one(p.critic, xi), x, fake, eps)
        return fam.critic_loss(p.critic, x, fake, eps), (-w_est + 10.0 * penalty, w_est)

    got, want = pieces(KEY)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert abs(float(want[0] + want[1])) > 1e-3  # the penalty term is not negligible here


# ------------------------------------------------------------------------------------------------ truncation


def test_truncation_scales_the_latent_exactly():
    z = jax.random.normal(KEY, (100, 3))
    for psi in (0.0, 0.5, 1.0, 1.7):
        np.testing.assert_array_equal(G.truncate(z, psi), psi * z)
    mean = jnp.array([1.0, -2.0, 0.5])  # toward a mean latent: z_mean + psi (z - z_mean)
    np.testing.assert_allclose(G.truncate(z, 0.3, mean), mean + 0.3 * (z - mean), rtol=1e-6)
    np.testing.assert_array_equal(G.truncate(z, 0.0, mean), jnp.broadcast_to(mean, z.shape))


def test_sampling_bias_is_the_truncation_psi():
    """sample(lam) = G_ema(lam z) with z the sampler's own latents: lam = 0 gives G(0) for every sample, lam > 1
    spreads the latents (the samples of a generator that is not constant spread with them)."""
    cfg = GANModel(**TINY_NET)
    fam = G.gan_family(cfg)
    x = jax.random.normal(KEY, (32, 2))
    key, lams = jax.random.key(5), jnp.array([0.0, 0.5, 1.0, 1.5, 2.0])

    @jax.jit
    def draws(p):
        z = rng.normal(key, (2000, cfg.latent))
        sampled = jax.vmap(lambda lam: fam.model.sample(key, p, 2000, knobs(cfg, lam)))(lams)
        by_hand = jax.vmap(lambda lam: fam.generate(p.ema, lam * z))(lams)
        return sampled, by_hand, fam.generate(p.ema, jnp.zeros((1, cfg.latent)))

    sampled, by_hand, at_zero = draws(fam.model.init(KEY, x, jnp.ones(32)))
    np.testing.assert_allclose(sampled, by_hand, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sampled[0], np.broadcast_to(at_zero, (2000, 2)), rtol=1e-6, atol=1e-6)
    spread = [float(np.trace(np.cov(np.asarray(s).T))) for s in sampled]
    assert spread[0] < 1e-10 and spread[1] < spread[2] < spread[3] < spread[4], spread


# ------------------------------------------------------------------------------------------------- training

MEAN, SD = np.array([2.0, -1.0]), np.array([1.5, 1.0])


def gaussian_check(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Mean within 0.3 (0.2 to 0.3 truth sds) per coordinate and sd within 30% of the truth's: the tolerance is
    the fit's error, not sampling noise (4000 samples: SE 0.024 on the mean, 1.1% on the sd). Measured over
    training keys 0-5 (300 steps): mean errors <= 0.08, sd ratios 1.06 to 1.26."""
    err, ratio = y.mean(0) - MEAN, y.std(0) / SD
    return err, ratio, bool(np.all(np.abs(err) < 0.3) and np.all(np.abs(ratio - 1) < 0.3))


def test_wgan_gp_fits_a_gaussian_and_the_untrained_generator_does_not():
    cfg = GANModel(**TINY_NET, train_steps=300)
    model = G.gan_family(cfg).model
    x = jnp.asarray(MEAN + SD * np.asarray(jax.random.normal(jax.random.key(1), (2000, 2))), jnp.float32)
    w = jnp.ones((2000,))

    @jax.jit
    def run(key):
        p0 = model.init(key, x, w)
        p = model.fit(key, p0, x, w, False, knobs(cfg))
        return model.sample(jax.random.key(9), p0, 4000, knobs(cfg)), model.sample(
            jax.random.key(9), p, 4000, knobs(cfg)
        )

    untrained, trained = (np.asarray(y) for y in run(jax.random.key(3)))
    err, ratio, ok = gaussian_check(trained)
    assert ok, (err, ratio)
    err0, ratio0, ok0 = gaussian_check(untrained)  # the power check: the initial generator fails it
    assert not ok0, (err0, ratio0)


def test_zero_weight_rows_are_never_drawn():
    """Rows of weight 0 (a pool's empty slots) never enter a minibatch: setting them to NaN changes no weight of
    either network, bit for bit (one NaN drawn would make every later weight NaN)."""
    cfg = GANModel(**TINY_NET, train_steps=20, n_critic=2)
    fam = G.gan_family(cfg)
    x = jax.random.normal(KEY, (40, 2))
    w = jnp.where(jnp.arange(40) % 3 == 0, 0.0, 1.0)
    poisoned = jnp.where((w == 0)[:, None], jnp.nan, x)
    params = fam.model.init(KEY, x, w)
    fit = jax.jit(lambda data, weights: fam.model.fit(KEY, params, data, weights, False, knobs(cfg)))
    a, b = fit(x, w), fit(poisoned, w)
    assert same(a, b) and all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(b))
    # the power check: with all weights 1 the NaN rows are drawn
    assert not np.isfinite(np.asarray(jax.tree.leaves(fit(poisoned, jnp.ones(40)).gen)[0])).all()


def test_warm_start_continues_both_networks_and_both_optimisers():
    """fit(warm=True) runs finetune_steps more steps from the previous generation's generator, critic and both
    Adam states (their step counts add up: 7 + 3 generator updates, n_critic = 2 critic updates each); a fit from
    scratch runs train_steps from init. A generation that restarted its critic (or only the critic's Adam state,
    or the generator) would train differently."""
    cfg = GANModel(**TINY_NET, train_steps=7, finetune_steps=3, n_critic=2)
    fam = G.gan_family(cfg)
    x, w = jax.random.normal(KEY, (32, 2)), jnp.ones((32,))
    p0 = fam.model.init(KEY, x, w)
    cold = jax.jit(lambda p: fam.model.fit(KEY, p, x, w, False, knobs(cfg)))
    warm = jax.jit(lambda p: fam.model.fit(KEY, p, x, w, True, knobs(cfg)))
    p1 = cold(p0)
    p2 = warm(p1)

    def counts(p):
        return [int(jax.tree.leaves(o[1].inner_state)[0]) for o in (p.gen_opt, p.critic_opt)]

    assert counts(p1) == [7, 14] and counts(p2) == [10, 20]
    for forgot in (
        p1._replace(critic=p0.critic, critic_opt=p0.critic_opt),  # a fresh critic
        p1._replace(critic_opt=p0.critic_opt),  # the critic's Adam moments lost
        p1._replace(gen=p0.gen, gen_opt=p0.gen_opt, ema=p0.ema),  # a fresh generator
    ):
        assert not same(warm(forgot).gen, p2.gen)
    assert same(cold(p0), p1)  # deterministic: the same key gives the same fit


# --------------------------------------------------------------------------------------------- image networks


def test_convolutional_networks_map_image_rows():
    """On 8 x 8 x 1 rows (data=digits): the generator maps latents to rows of 64 pixels in [-1, 1], the critic
    rows to one score each, with no normalisation layer (WGAN-GP penalises each example's gradient). An MLP
    generator on image rows squashes its output to [-1, 1] too (even with latents spread 50-fold)."""
    cfg = GANModel(network="auto", channels=[4, 8], latent=8, batch=8)
    conv = G.gan_family(cfg, shape=(8, 8, 1))
    mlp = G.gan_family(GANModel(network="mlp", width=8, depth=1, latent=4), shape=(8, 8, 1))
    x = jax.random.uniform(KEY, (16, 64), minval=-1, maxval=1)

    @jax.jit
    def run(key):
        p = conv.model.init(key, x, jnp.ones(16))
        q = mlp.model.init(key, x, jnp.ones(16))
        out = (conv.model.sample(key, p, 10, knobs(cfg)), conv.critic(p.critic, x))
        return jax.tree.map(jnp.shape, p.critic), out, mlp.model.sample(key, q, 10, knobs(cfg, 50.0))

    critic_shapes, (images, scores), squashed = run(KEY)
    assert set(critic_shapes) == {"Conv3x3_0", "Conv3x3_1", "Dense_0"}
    assert images.shape == (10, 64) and float(jnp.max(jnp.abs(images))) <= 1.0
    assert scores.shape == (16,)
    assert squashed.shape == (10, 64) and float(jnp.max(jnp.abs(squashed))) <= 1.0


def test_penalty_weight_defaults_to_the_papers_choices():
    assert G.penalty_weight(GANModel(), (8, 8, 1)) == 10.0 and G.penalty_weight(GANModel(), None) == 0.1
    assert G.penalty_weight(GANModel(gp_weight=3.0), None) == 3.0


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["model.network=conv"], "model.network"),  # vectors: no image shape
        (["data=digits", "model.channels=[4,8,8,8]"], "model.channels"),  # 2^4 does not divide 8
        (["model.n_critic=0"], "model.n_critic"),
        (["model.beta2=1.0"], "model.beta2"),
        (["model.gp_weight=-1"], "model.gp_weight"),
        (["model.decay=step"], "model.decay"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(C.ConfigError, match=field.replace(".", r"\.")):
        madloop.simulate(["data=ring8", "model=gan", "loop.generations=1", *overrides])
