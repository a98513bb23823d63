"""Class-conditional rows [x, label] for the neural families: the split, the label frequencies, label dropout.

A conditional family (``model.classes = C > 0``) sees its data as [n, d + 1], the samples and their class label
(a float) in a last column; label C is the null label of classifier-free guidance (Ho & Salimans 2022).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from madloop.types import Data, Key, Weights


def split_labels(x: Data, classes: int) -> tuple[Data, jax.Array]:
    """Samples [n, d] and int labels [n] of rows x [n, d + 1] (x [n, d] and zeros when ``classes`` is 0)."""
    if classes:
        return x[:, :-1], x[:, -1].astype(jnp.int32)
    return x, jnp.zeros(x.shape[:1], jnp.int32)


def label_frequencies(x: Data, w: Weights, classes: int) -> jax.Array:
    """The weighted class frequencies [C] of rows x [n, d + 1] with weights w [n] ([1.0] when unconditional)."""
    if not classes:
        return jnp.ones((1,), jnp.float32)
    counts = jnp.sum(w[:, None] * jax.nn.one_hot(split_labels(x, classes)[1], classes, dtype=w.dtype), axis=0)
    return counts / jnp.sum(counts)


def drop_labels(key: Key, y: jax.Array, classes: int, rate: float) -> jax.Array:
    """Labels y [n] each replaced by the null label ``classes`` with probability ``rate``."""
    return jnp.where(jax.random.bernoulli(key, rate, y.shape), jnp.int32(classes), y)


def draw_labels(key: Key, freq: jax.Array, n: int, classes: int) -> jax.Array:
    """n int labels [n] drawn from the class frequencies freq [C] (zeros when unconditional)."""
    if not classes:
        return jnp.zeros((n,), jnp.int32)
    return jax.random.categorical(key, jnp.log(freq), shape=(n,)).astype(jnp.int32)
