"""The run's floating-point precision: float32 by default, float64 (JAX's x64 mode) for one run only.

float32 follows the Gaussian loop's trace and mean laws at every horizon the docs use (docs/theory.md, "float32
and float64"), but a collapsing covariance's eigenvalues spread below float32's resolution (about 1e-6 of the
largest) within tens of generations at d >= 10, and from then on its log-determinant is -inf in float32.
``loop.precision=float64`` resolves spreads to about 1e-14.

Every run also computes its matrix products at its dtype's full precision: on GPUs JAX's default lets float32
products use TF32 (a 10-bit mantissa), which would round a collapsed covariance's entries (differences of products
of coordinates) at about 1e-3. (On an H100 the benchmark Gaussian and GMM loops gave the same model trajectories
with and without it; the setting is a guarantee, not a measured fix.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np

PRECISIONS = ("float32", "float64")


def float_dtype() -> jnp.dtype:
    """The float dtype of arrays made now: float64 inside ``precision("float64")``, float32 otherwise."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def as_float_dtype(tree):
    """``tree`` with its floating leaves in ``float_dtype()`` (others unchanged). Flax initialises parameters in
    float32 whatever the x64 mode; a float64 run's parameters, optimiser state and EMA must be float64 for its
    training scan's carry to keep one type."""
    dtype = float_dtype()
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)


def on_device(x, dtype=None) -> jax.Array:
    """Host data x (numpy or Python) as a device array of ``dtype`` (default: x's own), made by a transfer.

    The dtype is canonicalised in numpy first (float64 -> float32 and int64 -> int32 outside x64 mode), and the
    array is put with ``jax.device_put``: ``jnp.asarray`` of host data compiles a small program for each shape and
    dtype (jax 0.10.2: 6-25 ms each; 21 of them in the Gaussian loop's first call, 0.33 s of compilation).
    """
    a = np.asarray(x, dtype=dtype)
    return jax.device_put(a.astype(jax.dtypes.canonicalize_dtype(a.dtype), copy=False))


@contextlib.contextmanager
def precision(name: str) -> Iterator[None]:
    """Runs the block with JAX's x64 mode on for ``name == "float64"`` and off for ``"float32"``, and matrix
    products at the dtype's full precision (``jax.default_matmul_precision("highest")``: no TF32 or bfloat16 passes
    on GPUs and TPUs), restoring the previous settings afterwards (a notebook's next run is not affected)."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
    with jax.enable_x64(name == "float64"), jax.default_matmul_precision("highest"):
        yield
