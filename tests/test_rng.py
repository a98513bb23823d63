"""The shaped normal draws equal jax.random.normal value for value (the speed-up must not change a stream)."""

import jax
import numpy as np

from madloop import rng


def test_flat_draws_reshaped_equal_the_shaped_draws():
    key = jax.random.key(7)
    for shape in [(5,), (100, 2), (7, 10), (3, 4, 5)]:
        np.testing.assert_array_equal(np.asarray(rng.normal(key, shape)), np.asarray(jax.random.normal(key, shape)))
    batched = jax.vmap(lambda k: rng.normal(k, (100, 10)))(jax.random.split(key, 4))
    reference = jax.vmap(lambda k: jax.random.normal(k, (100, 10)))(jax.random.split(key, 4))
    np.testing.assert_array_equal(np.asarray(batched), np.asarray(reference))
