"""Random draws shaped for speed under vmap.

``jax.random.normal(key, (n, d))`` inside a vmapped scan is several times slower on CPU than drawing the same
``n * d`` numbers as a flat vector and reshaping: with 1000 vmapped seeds and (100, 10) draws per generation,
1000 generations took 31.9 s against 5.9 s (jax 0.10.2, 2-core x86; d = 2: 2.4 s against 1.5 s). Threefry
produces the same bits for either shape, so the values are identical; only XLA's fusion of the reshaped
bit stream differs.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from madloop._xla import threefry_rounds
from madloop.types import Key


def normal(key: Key, shape: tuple[int, ...], dtype: jnp.dtype | None = None) -> jax.Array:
    """Standard normal draws [*shape], equal to ``jax.random.normal(key, shape, dtype)`` value for value
    (dtype None: the run's precision, float32 unless x64 is on)."""
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


# Threefry-2x32 in numpy, for the few keys a call derives before any program runs: JAX's ``fold_in`` of a threefry
# key is one hash of the counter pair (0, data) under the key, so the S run keys cost microseconds here against a
# compiled program's 0.18 s (the first call of a 1000-seed Gaussian loop, jax 0.10.2). The rounds are
# ``madloop._xla.threefry_rounds``, the ones madloop lowers on the CPU; ``tests/test_rng.py`` holds them to JAX.
def threefry2x32_np(key: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 hash of the counter pairs (x0, x1) [...] under key [2] (uint32 throughout)."""
    key, x0, x1 = np.asarray(key, np.uint32), np.asarray(x0, np.uint32), np.asarray(x1, np.uint32)
    with np.errstate(over="ignore"):  # additions are mod 2**32
        return threefry_rounds(key[0], key[1], x0, x1, numpy=True)


def fold_in_np(key_data: np.ndarray, data: np.ndarray | int) -> np.ndarray:
    """``jax.random.key_data(jax.random.fold_in(key, d))`` for a threefry key's data [2] and each d of ``data``
    [...] (uint32): [..., 2]."""
    data = np.asarray(data, np.uint32)
    x0, x1 = threefry2x32_np(key_data, np.zeros_like(data), data)
    return np.stack([x0, x1], axis=-1)
