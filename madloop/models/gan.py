"""Wasserstein GAN with gradient penalty (WGAN-GP): MLP or convolutional networks, generator EMA, truncation bias.

A fit is ``steps`` iterations of Algorithm 1 of Gulrajani et al.: ``n_critic`` critic updates on real minibatches
(drawn with probability ~ the training-set weights) against fresh generator samples, then one generator update.
Both networks, both Adam states and the generator's weight EMA are the family's parameters, so a warm-started
generation continues the whole game. Everything is a ``lax.scan``, vmappable over seeds and knobs.

References:
    Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville 2017, "Improved Training of Wasserstein GANs", Algorithm 1
        (critic loss D(x~) - D(x) + lambda (||grad D(x^)|| - 1)^2, x^ = eps x + (1 - eps) x~, eps ~ U[0, 1]).
    Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN" (the critic's Kantorovich-Rubinstein estimate).
    Karras, Laine & Aila 2019 (StyleGAN), Sec. 3 / Appendix B; Brock et al. 2019 (BigGAN), Sec. 3.1: truncation.
    Alemohammad et al. 2023, "Self-Consuming Generative Models Go MAD", Sec. 2.3 (sampling bias of a GAN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import rng
from madloop.models import training as T
from madloop.precision import as_float_dtype
from madloop.types import Data, GenerativeModel, Key, Knobs, Params, Weights

if TYPE_CHECKING:  # Flax and Optax load when a GAN family is built
    import optax


@dataclass(frozen=True)
class GANModel(C.ModelConfig):
    """WGAN-GP (Gulrajani et al. 2017) with an MLP or convolutional generator and critic.

    Attributes:
        network: ``mlp`` (vectors, or flattened images), ``conv`` (a convolutional generator and critic over the
            image shape; needs an image source, data=digits or mnist) or ``auto`` (conv for image sources, mlp
            for vectors).
        latent: k, the latent dimension; z ~ N(0, I_k).
        width: hidden units per layer of the MLP generator and critic.
        depth: hidden layers of the MLP generator and critic.
        channels: the convolutional networks' channels per resolution level, finest first (2 x 2 pooling or
            upsampling between levels, and one more below the last: the image side must be divisible by
            2^len(channels)).
        n_critic: critic updates per generator update (Algorithm 1: 5).
        gp_weight: weight of the gradient penalty; null = 10 for image sources (Algorithm 1, the paper's MNIST and
            CIFAR-10 runs) and 0.1 for vectors (the paper's released toy code: "smaller lambda seems to help for
            toy tasks"; at 10 a 2-D critic whose slope points the wrong way is held there by the penalty's barrier
            at zero gradient, see docs/models.md).
        train_steps: generator updates of a fit from scratch (each after ``n_critic`` critic updates).
        finetune_steps: generator updates of a warm-started generation (both networks and both optimiser states
            continue from the previous generation).
        batch: minibatch size of real rows (drawn with probability ~ the training-set weights) and of latents.
        lr: Adam's learning rate for both networks, constant within a fit: a traced knob (``sweep.model.lr``).
        beta1: Adam's beta1 (0 in Algorithm 1; 0.5 in the paper's released MNIST and toy code).
        beta2: Adam's beta2 (0.9 in the paper).
        decay: the learning rate's schedule within each fit (a factor on both networks' updates at step i of
            ``steps``): ``constant`` (Algorithm 1), ``linear`` (1 - i / steps, to 0, as the paper's CIFAR-10 runs)
            or ``cosine`` (0.5 (1 + cos(pi i / steps)), the diffusion family's).
        ema: EMA decay of the generator weights that sample, warming up as min(ema, (1 + i) / (10 + i)) at step
            i of each fit. A traced knob (``sweep.model.ema``); 0 samples with the trained weights.
    """

    network: str = "auto"
    latent: int = 16
    width: int = 128
    depth: int = 2
    channels: list[int] = field(default_factory=lambda: [32, 64])
    n_critic: int = 5
    gp_weight: float | None = None
    train_steps: int = 2000
    finetune_steps: int = 500
    batch: int = 64
    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    decay: str = "constant"
    ema: float = 0.999


class GANParams(NamedTuple):
    """Parameters of the GAN family: the whole state of the two-player game.

    Attributes:
        gen: the generator's trained weights (a Flax params PyTree).
        critic: the critic's weights.
        gen_opt: the generator's Adam state (moments, count, injected learning rate).
        critic_opt: the critic's Adam state.
        ema: the exponential moving average of ``gen``: the weights that sample.
    """

    gen: Params
    critic: Params
    gen_opt: optax.OptState
    critic_opt: optax.OptState
    ema: Params


class Losses(NamedTuple):
    """Per-step training curves (each [steps]).

    Attributes:
        critic: the last critic update's loss, D(fake) - D(real) + penalty, averaged over the minibatch.
        wasserstein: that update's estimate mean D(real) - mean D(fake) (no penalty).
        gen: the generator's loss -mean D(G(z)).
    """

    critic: jax.Array
    wasserstein: jax.Array
    gen: jax.Array


class GANFamily(NamedTuple):
    """The pieces a test or a benchmark may want beside the GenerativeModel.

    Attributes:
        model: the GenerativeModel.
        generate: ``generate(gen, z [n, k]) -> x [n, d]``.
        critic: ``critic(weights, x [n, d]) -> scores [n]``.
        critic_one: ``critic_one(weights, x [d]) -> []`` (per example: what the gradient penalty differentiates).
        critic_loss: ``critic_loss(weights, real [n, d], fake [n, d], eps [n, 1]) -> (loss, Wasserstein estimate)``.
        train: ``train(key, params, x, w, steps, knobs=None) -> (params, Losses)``.
        latent: k.
    """

    model: GenerativeModel
    generate: Callable[[Params, jax.Array], Data]
    critic: Callable[[Params, Data], jax.Array]
    critic_one: Callable[[Params, jax.Array], jax.Array]
    critic_loss: Callable[..., tuple[jax.Array, jax.Array]]
    train: Callable[..., tuple[GANParams, Losses]]
    latent: int


# The learning-rate schedule within a fit, as a factor on both networks' Adam updates at step i of ``steps``.
DECAY: dict[str, Callable[[jax.Array, int], jax.Array]] = {
    "constant": lambda i, steps: jnp.ones((), jnp.float32),  # Algorithm 1
    "linear": lambda i, steps: 1.0 - i / steps,  # the paper's CIFAR-10 runs: linear decay to 0
    "cosine": lambda i, steps: 0.5 * (1 + jnp.cos(jnp.pi * i / steps)),  # training.train's schedule
}


def adam(lr: float, b1: float, b2: float) -> optax.GradientTransformation:
    """Adam with an injected (traced) learning rate, no clipping and no weight decay, as WGAN-GP trains.

    Chained after an identity so that its state has ``training.adamw``'s layout and ``training.with_learning_rate``
    sets its rate.
    """
    import optax

    return optax.chain(optax.identity(), optax.inject_hyperparams(optax.adam)(learning_rate=lr, b1=b1, b2=b2))


def truncate(z: jax.Array, psi: jax.Array | float, z_mean: jax.Array | float = 0.0) -> jax.Array:
    """The truncation trick: z_mean + psi (z - z_mean). psi < 1 pulls latents toward the mean latent (quality
    over diversity), psi = 0 maps every latent to it, psi > 1 spreads them.

    References:
        Karras et al. 2019 (StyleGAN), eq. in Appendix B (there in W space, w' = w_mean + psi (w - w_mean)).
    """
    return z_mean + psi * (z - z_mean)


def gradient_penalty(critic_one: Callable[[jax.Array], jax.Array], real: Data, fake: Data, eps: jax.Array) -> jax.Array:
    """mean over the batch of (||grad_x D(x^)||_2 - 1)^2 at x^ = eps x + (1 - eps) x~ (Algorithm 1, lines 6-7).

    Args:
        critic_one: D, one example's score: ``critic_one(x [d]) -> []``.
        real: x [n, d].
        fake: x~ [n, d].
        eps: [n, 1] interpolation weights (eps ~ U[0, 1] in training).

    Returns:
        the unweighted penalty [] (the critic loss multiplies it by ``gp_weight``).
    """
    x_hat = eps * real + (1 - eps) * fake
    grads = jax.vmap(jax.grad(critic_one))(x_hat)
    # a tiny floor keeps the norm's gradient finite where grad D = 0 exactly (e.g. at a ReLU critic's dead point)
    norm = jnp.sqrt(jnp.sum(grads**2, axis=-1) + 1e-12)
    return jnp.mean((norm - 1.0) ** 2)


def _networks(cfg: GANModel, dim: int, shape: tuple[int, ...] | None) -> tuple[Any, Any]:
    """The (generator, critic) modules for rows of d = ``dim`` values (images of ``shape`` for conv)."""
    from madloop.models.networks import MLP, ConvCritic, ConvGenerator

    if _conv(cfg, shape):
        if shape is None or math.prod(shape) != dim:
            raise ValueError(f"model.network=conv needs the image shape of rows of {dim} values, got {shape}")
        return ConvGenerator(tuple(shape), tuple(cfg.channels)), ConvCritic(tuple(shape), tuple(cfg.channels))
    gen = MLP(out=dim, width=cfg.width, depth=cfg.depth, squash=shape is not None)
    return gen, MLP(out=1, width=cfg.width, depth=cfg.depth, slope=0.2)


def penalty_weight(cfg: GANModel, shape: tuple[int, ...] | None) -> float:
    """The gradient penalty's weight: the config's, or 10 for images and 0.1 for vectors when it is null."""
    if cfg.gp_weight is not None:
        return float(cfg.gp_weight)
    return 10.0 if shape is not None else 0.1


def _conv(cfg: GANModel, shape: tuple[int, ...] | None) -> bool:
    return cfg.network == "conv" or (cfg.network == "auto" and shape is not None)


def gan_family(cfg: GANModel, shape: tuple[int, ...] | None = None, scan: Callable | None = None) -> GANFamily:
    """Builds the family's pure functions for a GAN config.

    Rows of an image source (``shape`` = (h, w, c), pixels in [-1, 1]) get a tanh output; the convolutional
    networks reshape rows to images and back, so the loop, its pools and its metrics keep carrying rows.

    ``scan(step, carry, steps)`` runs the training scan (the engine hands in one that reports progress); None is
    ``jax.lax.scan`` over the step indices.
    """
    scan = scan if scan is not None else T.plain_scan
    tx = adam(cfg.lr, cfg.beta1, cfg.beta2)
    k, b = cfg.latent, cfg.batch
    gp_weight = penalty_weight(cfg, shape)

    def modules(dim: int):
        return _networks(cfg, dim, shape)

    def generate(gen: Params, z: jax.Array) -> Data:
        module = modules(math.prod(shape) if _conv(cfg, shape) else _out_dim(gen))[0]
        return jax.vmap(lambda zi: module.apply({"params": gen}, zi))(z)

    def critic_one(weights: Params, x: jax.Array) -> jax.Array:
        score = modules(x.shape[-1])[1].apply({"params": weights}, x)
        return score.reshape(())

    def critic(weights: Params, x: Data) -> jax.Array:
        return jax.vmap(lambda xi: critic_one(weights, xi))(x)

    def critic_loss(weights: Params, real: Data, fake: Data, eps: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Algorithm 1, line 7, averaged over the batch; returns (loss, Wasserstein estimate)."""
        w_est = jnp.mean(critic(weights, real)) - jnp.mean(critic(weights, fake))
        penalty = gradient_penalty(lambda xi: critic_one(weights, xi), real, fake, eps)
        return -w_est + gp_weight * penalty, w_est

    def gen_loss(gen: Params, weights: Params, z: jax.Array) -> jax.Array:
        """Algorithm 1, line 11: -mean D(G(z))."""
        return -jnp.mean(critic(weights, generate(gen, z)))

    def train(key: Key, params: GANParams, x: Data, w: Weights, steps: int, knobs: Knobs | None = None):
        """``steps`` iterations of Algorithm 1 on real rows of x [n, d] drawn with probability ~ w.

        Step i's keys: fold_in(key, i), then fold_in(., j) for critic update j < n_critic (row indices, latents,
        interpolation weights) and fold_in(., n_critic) for the generator's latents. The learning rate and EMA
        decay are the traced knobs ``lr`` and ``ema`` (the config's values without knobs).
        """
        import optax

        lr, ema = (cfg.lr, cfg.ema) if knobs is None else (knobs["lr"], knobs["ema"])
        rows = T.row_sampler(w)
        params = params._replace(
            gen_opt=T.with_learning_rate(params.gen_opt, lr), critic_opt=T.with_learning_rate(params.critic_opt, lr)
        )

        def critic_update(p: GANParams, step_key: Key, scale: jax.Array, j: jax.Array) -> tuple[GANParams, tuple]:
            k_idx, k_z, k_eps = jax.random.split(jax.random.fold_in(step_key, j), 3)
            real = x[rows(k_idx, b)]
            fake = generate(p.gen, rng.normal(k_z, (b, k)))
            eps = jax.random.uniform(k_eps, (b, 1), dtype=x.dtype)
            (loss, w_est), grads = jax.value_and_grad(critic_loss, has_aux=True)(p.critic, real, fake, eps)
            updates, opt = tx.update(grads, p.critic_opt, p.critic)
            critic = optax.apply_updates(p.critic, jax.tree.map(lambda u: scale * u, updates))
            return p._replace(critic=critic, critic_opt=opt), (loss, w_est)

        def step(p: GANParams, i: jax.Array) -> tuple[GANParams, Losses]:
            step_key = jax.random.fold_in(key, i)
            scale = DECAY[cfg.decay](i, steps)
            p, (c_loss, w_est) = jax.lax.scan(
                lambda q, j: critic_update(q, step_key, scale, j), p, jnp.arange(cfg.n_critic)
            )
            z = rng.normal(jax.random.fold_in(step_key, cfg.n_critic), (b, k))
            g_loss, grads = jax.value_and_grad(gen_loss)(p.gen, p.critic, z)
            updates, opt = tx.update(grads, p.gen_opt, p.gen)
            gen = optax.apply_updates(p.gen, jax.tree.map(lambda u: scale * u, updates))
            decay = jnp.minimum(ema, (1.0 + i) / (10.0 + i))
            p = p._replace(gen=gen, gen_opt=opt, ema=T.ema_update(decay, p.ema, gen))
            return p, Losses(c_loss[-1], w_est[-1], g_loss)

        return scan(step, params, steps)

    def init(key: Key, x: Data, w: Weights) -> GANParams:
        del w
        gen_module, critic_module = modules(x.shape[1])
        k_gen, k_critic = jax.random.split(key)
        gen = as_float_dtype(gen_module.init(k_gen, jnp.zeros((k,), x.dtype))["params"])
        weights = as_float_dtype(critic_module.init(k_critic, x[0])["params"])
        return GANParams(gen, weights, tx.init(gen), tx.init(weights), gen)

    def fit(key: Key, params: GANParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> GANParams:
        return train(key, params, x, w, cfg.finetune_steps if warm else cfg.train_steps, knobs)[0]

    def sample(key: Key, params: GANParams, n: int, knobs: Knobs) -> Data:
        """n rows G_ema(z_mean + lam (z - z_mean)), z ~ N(0, I_k), z_mean = 0: the truncation trick with
        psi = lam (MAD's sampling bias of a GAN)."""
        z = rng.normal(key, (n, k))
        return generate(params.ema, truncate(z, knobs["lam"]))

    model = GenerativeModel(init, fit, sample)
    return GANFamily(model, generate, critic, critic_one, critic_loss, train, k)


def _out_dim(gen: Params) -> int:
    """d, read from the MLP generator's output layer (its last Dense's bias)."""
    last = max((name for name in gen if name.startswith("Dense_")), key=lambda name: int(name.split("_")[1]))
    return gen[last]["bias"].shape[-1]


def build(cfg: GANModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family for a data source's event shape, with the engine's training scan."""
    return gan_family(cfg, None if source is None else source.shape, scan).model


def check(m: GANModel) -> None:
    """Field checks of ``model=gan``."""
    C.choice("model.network", m.network, ("auto", "mlp", "conv"))
    ok = isinstance(m.channels, list | tuple) and len(m.channels) > 0
    if not ok or not all(C.is_int(c) and c >= 1 for c in m.channels):
        raise C.ConfigError("model.channels", m.channels, "must be a non-empty list of integers >= 1 (one per level)")
    for name in ("latent", "width", "depth", "n_critic", "train_steps", "finetune_steps", "batch"):
        C.int_at_least(f"model.{name}", getattr(m, name), 1)
    if m.gp_weight is not None:
        C.non_negative("model.gp_weight", m.gp_weight, " (or null: 10 for images, 0.1 for vectors)")
    C.choice("model.decay", m.decay, tuple(DECAY))
    C.positive("model.lr", m.lr)
    for name in ("beta1", "beta2"):
        value = getattr(m, name)
        if not C.is_number(value) or not 0 <= value < 1:
            raise C.ConfigError(f"model.{name}", value, "must lie in [0, 1)")
    if not C.is_number(m.ema) or not 0 <= m.ema < 1:
        raise C.ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = no averaging)")


def fits(m: GANModel, cfg: C.Config, parts) -> None:
    """Convolutional networks need an image source whose side 2^len(channels) divides."""
    del cfg
    shape = parts.source.shape
    if m.network == "conv" and shape is None:
        raise C.ConfigError("model.network", "conv", "needs an image source (data=digits, mnist); use mlp for vectors")
    if not _conv(m, shape):
        return
    factor = 2 ** len(m.channels)
    if shape[0] % factor or shape[1] % factor:
        raise C.ConfigError(
            "model.channels",
            list(m.channels),
            f"{len(m.channels)} levels and the base map scale by {factor}, which must divide the image side {shape[0]}",
        )


C.register("model", "gan", GANModel, build=build, check=check, fits=fits)
