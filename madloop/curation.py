"""Curation of the synthetic samples before they re-enter training (``curation=``).

K-choice curation (Ferbach et al. 2024, "Self-Consuming Generative Models with Curated Data Provably Optimize
Human Preferences"): a user shown k samples of the current model keeps one, sample j with probability
softmax(r(x_j) / temperature)_j (a Bradley-Terry / Plackett-Luce choice under the reward r). Retraining on curated
samples alone maximises the expected reward and concentrates the model on the reward's maximisers; mixing real
data back in keeps it close to the data distribution (their Theorems 2.1 and 2.4).

In the loop, generation g - 1 draws k * n_synth samples and the curation keeps n_synth of them (one per group of
k consecutive samples); the evaluation draws the model's own, uncurated samples, so the ``reward`` metric is the
model's expected reward E_{p_g}[r(x)].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.types import Data, Key


@dataclass(frozen=True)
class NoCuration(C.CurationConfig):
    """Every synthetic sample enters the pool."""


@dataclass(frozen=True)
class KChoiceCuration(C.CurationConfig):
    """K-choice curation (Ferbach et al. 2024, after the Bradley-Terry / Plackett-Luce choice model): each of the
    ``regime.n_synth`` synthetic samples is chosen from ``k`` fresh model samples, sample j with probability
    softmax(r(x_j) / temperature). Evaluation samples (the model's own distribution) are not curated.

    Attributes:
        k: candidates per kept sample (1 = no curation); the model draws k * n_synth samples per generation.
        temperature: of the choice; -> 0 keeps the best of k, -> inf picks uniformly. Traced (vmappable with
            ``sweep.curation.temperature``).
        reward: ``mode``: minus the distance to the centre of component ``mode`` of a mixture truth;
            ``point``: minus the distance to ``target``; ``class``: the log-probability of class ``label``
            under the feature classifier of an image source (data=digits, mnist, cifar10).
        mode: the component of the truth (``reward=mode``).
        target: a point with ``data``'s dimension (``reward=point``).
        label: the class (``reward=class``).
    """

    k: int = 4
    temperature: float = 1.0
    reward: str = "mode"
    mode: int = 0
    target: list[float] | None = None
    label: int = 0


class Curation(NamedTuple):
    """A curation rule as pure functions.

    Attributes:
        k: model samples drawn per kept sample (1 = no curation: ``select`` returns its input).
        select: ``select(key, x, temperature) -> x[::k]-shaped`` keeps one row of every k consecutive rows of
            x [k n, d'] (d' >= d: a conditional family's label column rides along); ``temperature`` is traced.
        reward: ``reward(x) -> [n]`` of samples x [n, d] (the data columns only), or None without curation.
    """

    k: int
    select: Callable[[Key, Data, jax.Array], Data]
    reward: Callable[[Data], jax.Array] | None


def k_choice(key: Key, x: Data, rewards: jax.Array, k: int, temperature: jax.Array | float) -> Data:
    """Keeps one of every k consecutive rows, row j of a group with probability softmax(rewards / temperature)_j.

    Args:
        key: the choice's key.
        x: [k n, d'] candidates, in n groups of k consecutive rows.
        rewards: [k n] their rewards.
        k: group size (static).
        temperature: > 0; small values keep the group's best row (exact ties: one of them at random).

    Returns:
        [n, d'] the chosen rows.
    """
    n = x.shape[0] // k
    r = rewards.reshape(n, k)
    # The same softmax with the group's best at 0: large rewards over a small temperature keep float32 resolution.
    logits = (r - jnp.max(r, axis=1, keepdims=True)) / temperature
    choice = jax.random.categorical(key, logits, axis=1)  # [n]
    return jnp.take_along_axis(x.reshape(n, k, x.shape[1]), choice[:, None, None], axis=1)[:, 0]


def distance_reward(centre: jax.Array) -> Callable[[Data], jax.Array]:
    """r(x) = -||x - centre|| for x [n, d] (the reward of ``reward=mode`` and ``reward=point``)."""

    def reward(x: Data) -> jax.Array:
        return -jnp.sqrt(jnp.sum((x - centre) ** 2, axis=1))

    return reward


def class_reward(source: DataSource, label: int) -> Callable[[Data], jax.Array]:
    """r(x) = log p(label | x) under the image source's feature classifier (its weights are constants of the
    compiled program)."""
    clf = source.classifier()

    def reward(x: Data) -> jax.Array:
        logits = clf.apply(clf.params, x)[1]
        return jax.nn.log_softmax(logits, axis=1)[:, label]

    return reward


def make_curation(cfg: C.CurationConfig, source: DataSource) -> Curation:
    """The curation rule of a validated ``curation`` config, for the data source (its registered ``build``)."""
    return C.option_of("curation", cfg)[1].build(cfg, source)


def no_curation(cfg: NoCuration, source: DataSource) -> Curation:
    """Every synthetic sample enters the pool."""
    del cfg, source

    def select(key: Key, x: Data, temperature: jax.Array) -> Data:
        del key, temperature
        return x

    return Curation(1, select, None)


def k_choice_curation(cfg: KChoiceCuration, source: DataSource) -> Curation:
    """K-choice curation under the configured reward."""
    dim = source.dim
    if cfg.reward == "mode":
        reward = distance_reward(source.mixture.means[cfg.mode])
    elif cfg.reward == "point":
        reward = distance_reward(jnp.asarray(cfg.target, jnp.float32))
    else:
        reward = class_reward(source, cfg.label)

    def select(key: Key, x: Data, temperature: jax.Array) -> Data:
        return k_choice(key, x, reward(x[:, :dim]), cfg.k, temperature)

    return Curation(cfg.k, select, reward)


def check_k_choice(c: KChoiceCuration) -> None:
    """Field checks of ``curation=k_choice``."""
    C.int_at_least("curation.k", c.k, 1, " (candidates per kept sample)")
    C.positive("curation.temperature", c.temperature, " (-> 0 keeps the best of k)")
    if c.temperature < 1e-30:
        raise C.ConfigError("curation.temperature", c.temperature, "must be >= 1e-30 (float32 resolution)")
    C.choice("curation.reward", c.reward, ("mode", "point", "class"))


def fits_k_choice(c: KChoiceCuration, cfg: C.Config, parts) -> None:
    """Synthetic samples to curate, and a reward the data source defines."""
    if cfg.regime.n_synth < 1:
        raise C.ConfigError("curation", "k_choice", "needs regime.n_synth >= 1 (synthetic samples to curate)")
    source = parts.source
    if c.reward == "mode":
        mix = source.mixture
        if mix is None or mix.weights.shape[0] < 2:
            raise C.ConfigError("curation.reward", "mode", "needs a mixture truth with >= 2 modes (ring8, grid25, ...)")
        k = mix.weights.shape[0]
        if not C.is_int(c.mode) or not 0 <= c.mode < k:
            raise C.ConfigError(
                "curation.mode", c.mode, f"must be an integer in [0, {k - 1}] (a component of the truth)"
            )
    elif c.reward == "point":
        t = None if c.target is None else list(c.target)
        if t is None or len(t) != source.dim or not all(C.is_number(v) for v in t):
            raise C.ConfigError(
                "curation.target", t, f"must be {source.dim} finite numbers (a point of the data space)"
            )
    else:
        if source.classifier is None:
            raise C.ConfigError(
                "curation.reward", "class", "needs an image source with a classifier (digits, mnist, cifar10)"
            )
        if not C.is_int(c.label) or not 0 <= c.label < source.classes:
            raise C.ConfigError("curation.label", c.label, f"must be an integer in [0, {source.classes - 1}] (a class)")


C.register("curation", "none", NoCuration, build=no_curation)
C.register("curation", "k_choice", KChoiceCuration, build=k_choice_curation, check=check_k_choice, fits=fits_k_choice)
