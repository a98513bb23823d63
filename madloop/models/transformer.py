"""A small causal transformer language model (Flax linen, Optax): token rows, trained per generation with the
shared training scan, sampled autoregressively with temperature, top-k and top-p.

The network reads a row of L tokens shifted right behind a start symbol (BOS = V) and predicts every token from
the ones before it (pre-LayerNorm blocks of causal multi-head self-attention and a 4x MLP; learned token and
position embeddings). Training minimises the cross-entropy of minibatches of rows drawn in proportion to the
training-set weights (``madloop.models.training``: AdamW with a traced learning rate, cosine decay, weight EMA);
a generation fits from scratch or from the previous generation's weights (``loop.warm_start``). Sampling runs L
forward passes (each position's law from the prefix so far, then the sampling bias of ``madloop.tokens``): no
key-value cache, which at the short rows this family is meant for (L <= 64) costs less than it would complicate.

References:
    Vaswani et al. 2017, "Attention Is All You Need" (the blocks); Radford et al. 2019 (GPT-2: pre-LayerNorm,
    learned positions).
    Gerstgrasser et al. 2024, "Is Model Collapse Inevitable?" (accumulate vs replace for transformers).
    Shumailov et al. 2024 (language models in a self-consuming loop).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from madloop import config as C
from madloop import tokens as T
from madloop.models import training as TR
from madloop.models.ngram import check_sampling
from madloop.precision import as_float_dtype
from madloop.types import Data, Density, GenerativeModel, Key, Knobs, Params, Weights

if TYPE_CHECKING:
    import optax


@dataclass(frozen=True)
class TransformerModel(C.ModelConfig):
    """A causal transformer LM over a discrete source's rows.

    Attributes:
        width: the model width (embedding and residual stream).
        depth: transformer blocks.
        heads: attention heads (must divide ``width``).
        train_steps: optimiser steps of a fit from scratch (generation 0, or each generation without warm start).
        finetune_steps: optimiser steps of a warm-started generation.
        batch: rows per minibatch, drawn with probability proportional to the training-set weights.
        lr: AdamW learning rate, a traced knob (``sweep.model.lr``).
        weight_decay: AdamW weight decay.
        ema: EMA decay of the weights that sample and score (0 = the trained weights), a traced knob.
        top_k: sample only the k most probable tokens at each position (0 = all); a traced knob.
        top_p: sample only the smallest most-probable set of mass >= top_p (1 = all); a traced knob.
    """

    width: int = 64
    depth: int = 2
    heads: int = 4
    train_steps: int = 1000
    finetune_steps: int = 250
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    ema: float = 0.0
    top_k: int = 0
    top_p: float = 1.0


class TransformerParams(NamedTuple):
    """Attributes: net: the trained weights; ema: their moving average (the weights that sample and score);
    opt: the AdamW state."""

    net: Params
    ema: Params
    opt: optax.OptState


def transformer_family(cfg: TransformerModel, vocab: int, length: int, scan: Callable | None = None) -> GenerativeModel:
    """The pure functions of the transformer LM family for rows of ``length`` tokens over ``vocab``."""
    from madloop.models.lm_network import CausalLM  # Flax loads when a transformer is built

    scan = scan if scan is not None else TR.plain_scan
    module = CausalLM(vocab, length, cfg.width, cfg.depth, cfg.heads)
    tx = TR.adamw(cfg.lr, cfg.weight_decay)

    def logits(net: Params, x: jax.Array) -> jax.Array:
        """[n, L, V] for token rows x [n, L] (the per-row module, vmapped)."""
        return jax.vmap(lambda row: module.apply({"params": net}, row))(x)

    def loss(net: Params, x: jax.Array) -> jax.Array:
        log_q = jax.nn.log_softmax(logits(net, x))
        return -jnp.mean(jnp.take_along_axis(log_q, x[..., None], axis=-1))

    def init(key: Key, x: Data, w: Weights) -> TransformerParams:
        del w
        net = as_float_dtype(module.init(key, T.as_tokens(x[:1])[0])["params"])
        return TransformerParams(net, net, tx.init(net))

    def fit(key: Key, params: TransformerParams, x: Data, w: Weights, warm: bool, knobs: Knobs) -> TransformerParams:
        rows = TR.row_sampler(w)
        tokens = T.as_tokens(x)
        params = params._replace(opt=TR.with_learning_rate(params.opt, knobs["lr"]))

        def minibatch(i: jax.Array) -> tuple:
            return (tokens[rows(jax.random.fold_in(key, i), cfg.batch)],)

        steps = cfg.finetune_steps if warm else cfg.train_steps
        return TR.train(tx, loss, minibatch, params, steps, ema=knobs["ema"], scan=scan)[0]

    def sample(key: Key, params: TransformerParams, n: int, knobs: Knobs) -> Data:
        u = jax.random.uniform(key, (length * n,)).reshape(length, n)

        def step(x: jax.Array, t: jax.Array) -> tuple[jax.Array, None]:
            log_q = jax.nn.log_softmax(logits(params.ema, x)[:, t])  # [n, V]: position t's law given x[:, :t]
            cdf, last = T.sampling_cdf(T.biased_log_probs(log_q, knobs["lam"], knobs["top_k"], knobs["top_p"]))
            tok = jax.vmap(T.invert)(cdf, last, u[t])
            return x.at[:, t].set(tok), None

        x, _ = jax.lax.scan(step, jnp.zeros((n, length), jnp.int32), jnp.arange(length))
        return x.astype(jnp.zeros(()).dtype)  # the run's precision

    def log_prob(params: TransformerParams, x: Data) -> jax.Array:
        tokens = T.as_tokens(x)
        log_q = jax.nn.log_softmax(logits(params.ema, tokens))
        return jnp.sum(jnp.take_along_axis(log_q, tokens[..., None], axis=-1)[..., 0], axis=1)

    return GenerativeModel(init, fit, sample, density=Density(log_prob), tokens=True)


def build(cfg: TransformerModel, source=None, scan: Callable | None = None) -> GenerativeModel:
    """The registered builder: the family over the source's vocabulary and row length, with the engine's scan."""
    return transformer_family(cfg, source.tokens.vocab, source.tokens.length, scan)


def check(m: TransformerModel) -> None:
    """Field checks of ``model=transformer``."""
    for name in ("width", "depth", "heads", "train_steps", "finetune_steps", "batch"):
        C.int_at_least(f"model.{name}", getattr(m, name), 1)
    if m.width % m.heads:
        raise C.ConfigError("model.heads", m.heads, f"must divide model.width={m.width}")
    C.positive("model.lr", m.lr)
    C.non_negative("model.weight_decay", m.weight_decay)
    if not isinstance(m.ema, int | float) or not 0 <= m.ema < 1:
        raise C.ConfigError("model.ema", m.ema, "must lie in [0, 1) (0 = the trained weights)")
    check_sampling(m)


def fits(m: TransformerModel, cfg: C.Config, parts) -> None:
    """A discrete source."""
    del m, cfg
    if parts.source.tokens is None:
        raise C.ConfigError("model", "transformer", "needs a discrete source (data=zipf, markov, text)")


C.register("model", "transformer", TransformerModel, build=build, check=check, fits=fits)
