"""The training scan the neural families share: AdamW with a traced learning rate, cosine decay, weight EMA.

A family supplies its loss and its minibatch draw; ``train`` runs ``steps`` optimiser steps as one scan, so a
generation's fit stays inside the compiled program and vmaps over seeds and knobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from madloop.types import Key, Params, Weights

if TYPE_CHECKING:
    import optax


def adamw(lr: float, weight_decay: float) -> optax.GradientTransformation:
    """Global-norm clipping at 1, then AdamW whose learning rate is injected state (set per fit, traced)."""
    import optax

    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.inject_hyperparams(optax.adamw)(learning_rate=lr, weight_decay=weight_decay),
    )


def with_learning_rate(opt: Any, lr: jax.Array | float) -> Any:
    """The optimiser state of ``adamw`` with its injected learning rate set to ``lr`` (a traced knob)."""
    clip_state, state = opt
    rate = jnp.asarray(lr, state.hyperparams["learning_rate"].dtype)
    return clip_state, state._replace(hyperparams={**state.hyperparams, "learning_rate": rate})


def row_sampler(w: Weights) -> Callable[[Key, int], jax.Array]:
    """``draw(key, batch) -> [batch]`` row indices drawn with probability proportional to the weights w [n]
    (inverse-CDF sampling, so zero-weight rows, the empty slots of a pool, are never drawn)."""
    cdf = jnp.cumsum(w) / jnp.sum(w)
    # The last row with weight: in float32 the cumulative sum and the total round differently, so the cdf can stop a
    # few ulps below 1 and the largest uniforms fell past every weighted row onto the empty slots after it (about 3
    # in 10^7 draws with a pool's trailing empty slots).
    last = w.shape[0] - 1 - jnp.argmax(w[::-1] > 0)

    def draw(key: Key, batch: int) -> jax.Array:
        return jnp.minimum(jnp.searchsorted(cdf, jax.random.uniform(key, (batch,)), side="right"), last)

    return draw


def ema_update(decay: jax.Array, ema: Params, net: Params) -> Params:
    """decay * ema + (1 - decay) * net, leaf by leaf."""
    return jax.tree.map(lambda e, v: decay * e + (1 - decay) * v, ema, net)


def train(
    tx: optax.GradientTransformation,
    loss: Callable[..., jax.Array],
    minibatch: Callable[[jax.Array], tuple],
    params: Any,
    steps: int,
    *,
    ema: jax.Array | float,
    scan: Callable,
) -> tuple[Any, jax.Array]:
    """``steps`` optimiser steps of ``loss(net, *minibatch(i))``; returns (params, losses [steps]).

    ``params`` is a NamedTuple with fields ``net`` (trained), ``ema`` (the average that samples) and ``opt``
    (the state of ``tx``, its learning rate already set, see ``with_learning_rate``); other fields pass through.
    Each step scales the update by a cosine decay over the fit, 0.5 (1 + cos(pi i / steps)) (scaling AdamW's
    update scales its learning rate), and the EMA decay warms up as min(ema, (1 + i) / (10 + i)).

    Args:
        tx: the optimiser (``adamw``).
        loss: ``loss(net, *batch) -> []``.
        minibatch: ``minibatch(i) -> batch``: step i's arguments of ``loss`` (keys derived from i).
        params: the NamedTuple described above.
        steps: static number of steps.
        ema: the EMA decay (a traced knob).
        scan: ``scan(step, carry, steps) -> (carry, outputs)`` (the engine's progress-reporting scan, or
            ``jax.lax.scan`` over ``jnp.arange(steps)``).
    """
    import optax

    def step(p: Any, i: jax.Array) -> tuple[Any, jax.Array]:
        value, grads = jax.value_and_grad(loss)(p.net, *minibatch(i))
        updates, opt = tx.update(grads, p.opt, p.net)
        decay_lr = 0.5 * (1 + jnp.cos(jnp.pi * i / steps))
        net = optax.apply_updates(p.net, jax.tree.map(lambda u: decay_lr * u, updates))
        decay = jnp.minimum(ema, (1.0 + i) / (10.0 + i))
        return p._replace(net=net, ema=ema_update(decay, p.ema, net), opt=opt), value

    return scan(step, params, steps)


def plain_scan(step: Callable, carry: Any, steps: int):
    """``jax.lax.scan`` of ``step`` over the step indices 0..steps-1 (the scan without progress reports)."""
    return jax.lax.scan(step, carry, jnp.arange(steps))
