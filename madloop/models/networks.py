"""The neural families' networks (Flax linen): per-example modules, batched with vmap at the call site."""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def time_embedding(t: jax.Array, features: int, scale: float = 1000.0) -> jax.Array:
    """Sinusoidal features [features] of a diffusion time t, multiplied by ``scale`` first: 1000 for t in [0, 1]
    (as in DDPM); 1 for an input that is already on the network's scale (EDM's c_noise, Karras et al. 2022).

    References:
        Vaswani et al. 2017, Sec. 3.5; Ho et al. 2020, Appendix B.
    """
    half = features // 2
    freqs = jnp.exp(-jnp.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / half)
    angle = scale * t * freqs
    return jnp.concatenate([jnp.sin(angle), jnp.cos(angle)])


class MLPDenoiser(nn.Module):
    """An MLP denoiser for vectors: [x, emb(t), onehot(y)] -> depth x (Dense(width), SiLU) -> Dense(d).

    Attributes:
        dim: d, the data dimension (the output size).
        width: hidden units per layer.
        depth: hidden layers.
        time_features: sinusoidal features of t.
        classes: C class labels (0 = unconditional); label C is the null label of classifier-free guidance.
        time_scale: t is multiplied by it before the sinusoidal features (1000: t in [0, 1]; see
            ``time_embedding``).
    """

    dim: int
    width: int
    depth: int
    time_features: int
    classes: int = 0
    time_scale: float = 1000.0

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """x [d], t [], y [] int (a class in 0..C-1, or C for none) -> the prediction [d] (noise or clean sample)."""
        parts = [x, time_embedding(t, self.time_features, self.time_scale)]
        if self.classes:
            parts.append(jax.nn.one_hot(y, self.classes + 1, dtype=x.dtype))
        h = jnp.concatenate(parts)
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        return nn.Dense(self.dim)(h)


class Conv3x3(nn.Module):
    """A 3 x 3 'same' convolution of one image [h, w, c_in] -> [h, w, features], as patches @ kernel.

    The nine shifted copies of the zero-padded image are concatenated ([h, w, 9 c_in]) and multiplied by the
    kernel [9 c_in, features]: the same function as ``nn.Conv(features, (3, 3))``, written with slices and a dot.
    Why: on XLA's CPU backend the weight gradient of a convolution inside a ``lax.scan`` (every training loop
    here) ran 25-35x slower than outside one (two 32-channel layers, batch 128 at 8 x 8: 317 ms against 9 ms
    per step for this form; jaxlib 0.10.2), and slices and dots are fast on every backend.
    """

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, w, c = x.shape
        kernel = self.param("kernel", self.kernel_init, (9 * c, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
        patches = jnp.concatenate([padded[i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=-1)
        return patches @ kernel + bias


class GroupNorm(nn.Module):
    """Group normalisation of one image [h, w, c]: statistics over the pixels and the channels of each group.

    References:
        Wu & He 2018, "Group Normalization".
    """

    groups: int = 8
    eps: float = 1e-5

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h, w, c = x.shape
        g = math.gcd(self.groups, c)  # groups must divide the channels (e.g. 12 concatenated channels: 4 groups)
        z = x.reshape(h, w, g, c // g)
        mean = jnp.mean(z, axis=(0, 1, 3), keepdims=True)
        var = jnp.mean((z - mean) ** 2, axis=(0, 1, 3), keepdims=True)
        z = ((z - mean) / jnp.sqrt(var + self.eps)).reshape(h, w, c)
        return z * self.param("scale", nn.initializers.ones, (c,)) + self.param("bias", nn.initializers.zeros, (c,))


class ResBlock(nn.Module):
    """GroupNorm, SiLU, Conv3x3, then GroupNorm modulated by the embedding (h * (1 + scale) + shift), SiLU,
    Conv3x3, plus a skip (a 1 x 1 projection when the channel count changes): [h, w, c_in], emb [e] ->
    [h, w, channels].

    The embedding enters after the normalisation: added before it, as in the original DDPM block, a per-channel
    shift is removed by GroupNorm whenever a group holds one channel (narrow networks), and the block would
    ignore t and the label.

    References:
        Ho et al. 2020, Appendix B (the Wide-ResNet blocks); Dhariwal & Nichol 2021, Sec. 3 (adaptive group
        normalisation, AdaGN).
    """

    channels: int

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        h = Conv3x3(self.channels)(nn.silu(GroupNorm()(x)))
        scale, shift = jnp.split(nn.Dense(2 * self.channels)(nn.silu(emb)), 2)
        h = GroupNorm()(h) * (1.0 + scale) + shift
        h = Conv3x3(self.channels)(nn.silu(h))
        skip = x if x.shape[-1] == self.channels else nn.Dense(self.channels, use_bias=False)(x)
        return skip + h


def downsample(x: jax.Array) -> jax.Array:
    """2 x 2 mean pooling of [h, w, c] (h, w even) -> [h / 2, w / 2, c]."""
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).mean(axis=(1, 3))


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling of [h, w, c] -> [2 h, 2 w, c]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)


class UNetDenoiser(nn.Module):
    """A small U-Net denoiser for images carried as rows: x [h w c] -> the prediction [h w c].

    Levels of ``blocks`` ResBlocks at ``channels[l]`` channels, 2 x 2 mean pooling between levels, a middle block,
    and the mirror path with nearest upsampling and skip connections (concatenated). The time embedding
    (sinusoidal, then Dense-SiLU-Dense) plus a learned class embedding (C + 1 entries, the last the null label
    of classifier-free guidance) enters every block.

    Attributes:
        shape: the image shape (h, w, c); h and w must be divisible by 2^(len(channels) - 1).
        channels: channels per resolution level, e.g. (32, 64): 8 x 8 -> 4 x 4, or 28 x 28 -> 14 x 14.
        blocks: ResBlocks per level on the way down (one more on the way up, as in DDPM).
        time_features: sinusoidal features of t.
        classes: C class labels (0 = unconditional).
        time_scale: t is multiplied by it before the sinusoidal features (see ``time_embedding``).

    References:
        Ronneberger et al. 2015 (U-Net); Ho et al. 2020, Appendix B; Ho & Salimans 2022 (classifier-free
        guidance's null label).
    """

    shape: tuple[int, int, int]
    channels: tuple[int, ...] = (32, 64)
    blocks: int = 1
    time_features: int = 32
    classes: int = 0
    time_scale: float = 1000.0

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """x [h w c], t [], y [] int (a class in 0..C-1, or C for none) -> the prediction [h w c]."""
        width = 4 * self.channels[0]
        emb = nn.Dense(width)(nn.silu(nn.Dense(width)(time_embedding(t, self.time_features, self.time_scale))))
        if self.classes:
            emb = emb + nn.Embed(self.classes + 1, width)(jnp.asarray(y, jnp.int32))
        h = Conv3x3(self.channels[0])(x.reshape(self.shape))
        skips = [h]
        last = len(self.channels) - 1
        for level, ch in enumerate(self.channels):
            for _ in range(self.blocks):
                h = ResBlock(ch)(h, emb)
                skips.append(h)
            if level < last:
                h = downsample(h)
                skips.append(h)
        h = ResBlock(self.channels[-1])(h, emb)
        for level in reversed(range(len(self.channels))):
            for _ in range(self.blocks + 1):
                h = ResBlock(self.channels[level])(jnp.concatenate([h, skips.pop()], axis=-1), emb)
            if level > 0:
                h = upsample(h)
        out = Conv3x3(self.shape[-1], kernel_init=nn.initializers.zeros)(nn.silu(GroupNorm()(h)))
        return out.reshape(-1)


class MLP(nn.Module):
    """A plain MLP on one vector: depth x (Dense(width), activation) -> Dense(out), optionally squashed by tanh.

    The GAN's generator (latent [k] -> row [d]) and critic (row [d] -> score [1]) for vectors.

    Attributes:
        out: output size.
        width: hidden units per layer.
        depth: hidden layers.
        slope: negative slope of the leaky ReLU (0 = ReLU).
        squash: tanh on the output (rows of an image source, pixels in [-1, 1]).
    """

    out: int
    width: int
    depth: int
    slope: float = 0.0
    squash: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x [k] -> [out]."""
        h = x
        for _ in range(self.depth):
            h = nn.leaky_relu(nn.Dense(self.width)(h), self.slope)
        h = nn.Dense(self.out)(h)
        return jnp.tanh(h) if self.squash else h


class ConvGenerator(nn.Module):
    """A convolutional generator: latent [k] -> Dense to a low-resolution map [h / 2^L, w / 2^L, channels[-1]],
    then per level (deepest first) nearest 2x upsampling and Conv3x3(channels[l]) with ReLU, then Conv3x3 to the
    image's channels and tanh (pixels in [-1, 1]); returns the image as a row [h w c].

    Attributes:
        shape: the image shape (h, w, c); h and w divisible by 2^L, L = len(channels).
        channels: channels per resolution level, finest first (as the critic's).

    References:
        Radford et al. 2016 (DCGAN: ReLU generator, tanh output); Gulrajani et al. 2017, Appendix (ResNet-free
        variant with nearest upsampling).
    """

    shape: tuple[int, int, int]
    channels: tuple[int, ...] = (32, 64)

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        """z [k] -> the image row [h w c] in [-1, 1]."""
        h, w, c = self.shape
        f = 2 ** len(self.channels)
        x = nn.relu(nn.Dense((h // f) * (w // f) * self.channels[-1])(z)).reshape(h // f, w // f, -1)
        for ch in reversed(self.channels):
            x = nn.relu(Conv3x3(ch)(upsample(x)))
        return jnp.tanh(Conv3x3(c)(x)).reshape(-1)


class ConvCritic(nn.Module):
    """A convolutional critic without normalisation (WGAN-GP penalises the gradient of each example's score,
    which batch normalisation would couple across the batch): per level Conv3x3(channels[l]) with a leaky ReLU
    (slope 0.2) and 2 x 2 mean pooling, then Dense(1) of the flattened map: an image row [h w c] -> a score [].

    Attributes:
        shape: the image shape (h, w, c); h and w divisible by 2^L, L = len(channels).
        channels: channels per resolution level, finest first.

    References:
        Gulrajani et al. 2017, Sec. 4 ("No critic batch normalization").
    """

    shape: tuple[int, int, int]
    channels: tuple[int, ...] = (32, 64)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x [h w c] -> the critic's score []."""
        h = x.reshape(self.shape)
        for ch in self.channels:
            h = downsample(nn.leaky_relu(Conv3x3(ch)(h), 0.2))
        return nn.Dense(1)(h.reshape(-1))[0]
