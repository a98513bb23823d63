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

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop.data import DataSource
from madloop.types import Data, Key


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


@functools.singledispatch
def make_curation(cfg: C.CurationConfig, source: DataSource) -> Curation:
    """The curation rule of a validated ``curation`` config, for the data source's dimension."""
    raise TypeError(f"unknown curation {type(cfg).__name__}")


@make_curation.register
def _(cfg: C.NoCuration, source: DataSource) -> Curation:
    del source

    def select(key: Key, x: Data, temperature: jax.Array) -> Data:
        del key, temperature
        return x

    return Curation(1, select, None)


@make_curation.register
def _(cfg: C.KChoiceCuration, source: DataSource) -> Curation:
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
