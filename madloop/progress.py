"""Progress inside long compiled fits without per-step host callbacks.

A neural family's training scan is split into at most ``TICKS`` chunks; after each chunk one host callback
(``jax.debug.callback`` with unbatched arguments, so it fires once per chunk however many runs are vmapped)
reports ``(steps, done)`` to the listener installed with ``listen``. With no listener the callback does nothing;
the compiled program is the same either way, so installing one never recompiles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp

TICKS = 10  # host callbacks per training scan at most

_listener: Callable[[int, int], None] | None = None


@contextlib.contextmanager
def listen(fn: Callable[[int, int], None]) -> Iterator[None]:
    """Calls ``fn(steps, done)`` after each chunk of every training scan run inside the block."""
    global _listener
    previous, _listener = _listener, fn
    try:
        yield
    finally:
        _listener = previous


def _emit(steps, done) -> None:
    if _listener is not None:
        _listener(int(steps), int(done))


def tick_chunks(steps: int, ticks: int = TICKS) -> int:
    """The number of chunks: the largest divisor of ``steps`` that is at most ``ticks`` (so chunks are equal)."""
    return max(c for c in range(1, min(ticks, steps) + 1) if steps % c == 0)


def scan_with_ticks(step: Callable, carry, steps: int, ticks: int = TICKS):
    """``jax.lax.scan(step, carry, jnp.arange(steps))`` as a scan over equal chunks, with one progress callback
    after each chunk. Same steps, same step indices, same results; stacked outputs have shape [steps, ...]."""
    n = tick_chunks(steps, ticks) if steps > 0 else 1
    size = steps // n

    def chunk(c, k):
        c, ys = jax.lax.scan(step, c, k * size + jnp.arange(size))
        jax.debug.callback(_emit, steps, (k + 1) * size)
        return c, ys

    carry, ys = jax.lax.scan(chunk, carry, jnp.arange(n))
    return carry, jax.tree.map(lambda a: a.reshape(steps, *a.shape[2:]), ys)
