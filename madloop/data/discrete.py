"""Discrete sources: Zipf tokens and Markov-chain sequences with exact truths, and character-level local text.

A token is its integer id stored as a float in a row: ``data=zipf`` rows are L i.i.d. tokens (d = L, 1 by
default), ``data=markov`` rows are L tokens of a stationary order-k chain, ``data=text`` rows are L consecutive
characters of a user's file. ``DataSource.tokens`` carries the vocabulary, the row length and, where the truth is
known, its chain (``madloop.tokens``), from which the discrete metrics compute exact laws.

References:
    Zipf 1949, "Human Behavior and the Principle of Least Effort" (p_r ~ r^-alpha).
    Dohmatob et al. 2024, "A Tale of Tails: Model Collapse as a Change of Scaling Laws" (Zipf data).
    Seddik et al. 2024, "How Bad is Training on Synthetic Data? A Statistical Analysis of Language Model
    Collapse" (categorical and Markov truths).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from madloop import config as C
from madloop import tokens as T
from madloop.data.toy import DataSource
from madloop.precision import float_dtype
from madloop.types import Data, Key

MAX_CHAIN = 1 << 24  # entries of a truth chain [(V + 1)^k, V]
MAX_TEXT_VOCAB = 4096  # distinct characters of a text source


@dataclass(frozen=True)
class ZipfData(C.DataConfig):
    """Tokens drawn i.i.d. from a Zipf law over ``vocab`` types, p_r ~ (r + 1)^-alpha (token 0 the most frequent),
    in rows of ``length`` tokens (1: one token per sample, the categorical loop)."""

    vocab: int = 1000
    alpha: float = 1.1
    length: int = 1


@dataclass(frozen=True)
class MarkovData(C.DataConfig):
    """Rows of ``length`` tokens from a stationary order-``order`` Markov chain over ``vocab`` tokens.

    Every context's next-token law is Zipf(``alpha``) over its own random ranking of the tokens (drawn from
    ``layout_seed``), restricted to its ``support`` highest ranks (null = all: Zipf rows; a small support: sparse
    rows). A row's first ``order`` tokens follow the chain's stationary law, so every position has the same law and
    the entropy per token is exact (``madloop.tokens.sequence_entropy``).
    """

    vocab: int = 16
    order: int = 1
    length: int = 32
    alpha: float = 1.0
    support: int | None = None
    layout_seed: int = 0


@dataclass(frozen=True)
class TextData(C.DataConfig):
    """Character-level text from a user's local UTF-8 file (never downloaded): each distinct character is a token
    (ids in sorted order), a row is ``length`` consecutive characters starting anywhere in the training part (the
    first 1 - ``heldout`` of the file); the evaluation's reference set is up to ``heldout_n`` consecutive
    non-overlapping rows of the held-out part (the rest)."""

    path: str | None = None
    length: int = 64
    heldout: float = 0.1
    heldout_n: int = 1000


def chain_source(trans: np.ndarray, vocab: int, order: int, length: int) -> DataSource:
    """A source of rows of ``length`` tokens from a padded chain trans [(V + 1)^k, V] (float64, numpy), drawn by
    Walker's alias method from tables built in float64 (``tokens.alias_tables``): a float32 inverse cdf misdrew
    every type below about 1e-7 (the tail a Zipf experiment studies)."""
    chain = jnp.asarray(trans, float_dtype())
    tables = T.AliasTables(*(jax.device_put(a) for a in T.alias_tables(trans)))

    def sample(key: Key, n: int) -> Data:
        return T.sample_chain_alias(key, tables, n, length, vocab, order).astype(float_dtype())

    return DataSource(dim=length, sample=sample, tokens=T.Tokens(vocab, length, chain, order))


def zipf_source(cfg: ZipfData) -> DataSource:
    return chain_source(T.zipf_probs(cfg.vocab, cfg.alpha)[None], cfg.vocab, 0, cfg.length)


def markov_source(cfg: MarkovData) -> DataSource:
    trans = T.random_chain(cfg.vocab, cfg.order, cfg.alpha, cfg.support, cfg.layout_seed)
    return chain_source(T.padded_chain(trans, cfg.vocab, cfg.order), cfg.vocab, cfg.order, cfg.length)


@functools.lru_cache(maxsize=4)
def read_text(path: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """(token ids [N] int32, the character of each id) of a UTF-8 text file, ids in sorted character order."""
    text = Path(path).expanduser().read_text(encoding="utf-8")
    symbols = tuple(sorted(set(text)))
    lookup = {ch: i for i, ch in enumerate(symbols)}
    return np.fromiter((lookup[ch] for ch in text), np.int32, len(text)), symbols


def text_parts(cfg: TextData) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(training ids, held-out rows [m, L], symbols) of a text config."""
    ids, symbols = read_text(cfg.path)
    cut = int(round(len(ids) * (1 - cfg.heldout)))
    held = ids[cut:]
    m = min(cfg.heldout_n, len(held) // cfg.length)
    return ids[:cut], held[: m * cfg.length].reshape(m, cfg.length), symbols


def text_source(cfg: TextData) -> DataSource:
    train, held, symbols = text_parts(cfg)
    ids = jnp.asarray(train)
    starts = len(train) - cfg.length + 1

    def sample(key: Key, n: int) -> Data:
        first = jax.random.randint(key, (n,), 0, starts)
        return ids[first[:, None] + jnp.arange(cfg.length)].astype(float_dtype())

    return DataSource(
        dim=cfg.length,
        sample=sample,
        heldout=jnp.asarray(held, float_dtype()),
        tokens=T.Tokens(len(symbols), cfg.length, None, 0, symbols),
    )


def _vocab_and_length(d: ZipfData | MarkovData) -> None:
    C.int_at_least("data.vocab", d.vocab, 2)
    C.int_at_least("data.length", d.length, 1)
    if not (C.is_number(d.alpha) and d.alpha >= 0):
        raise C.ConfigError("data.alpha", d.alpha, "must be a finite number >= 0 (0 = uniform)")


def check_zipf(d: ZipfData) -> None:
    """Field checks of ``data=zipf``: the rarest type's probability must be a normal float32 (>= 1e-30)."""
    _vocab_and_length(d)
    if d.vocab > MAX_CHAIN:
        raise C.ConfigError("data.vocab", d.vocab, f"must be <= {MAX_CHAIN}")
    rarest = T.zipf_probs(d.vocab, d.alpha)[-1]
    if rarest < 1e-30:
        raise C.ConfigError("data.alpha", d.alpha, f"gives the rarest type probability {rarest:.1e}; keep >= 1e-30")


def check_markov(d: MarkovData) -> None:
    """Field checks of ``data=markov``."""
    _vocab_and_length(d)
    C.int_at_least("data.order", d.order, 0)
    C.int_at_least("data.layout_seed", d.layout_seed, 0)
    if d.support is not None and (not C.is_int(d.support) or not 1 <= d.support <= d.vocab):
        raise C.ConfigError("data.support", d.support, f"must be an integer in [1, data.vocab={d.vocab}] or null")
    if d.length <= d.order:
        raise C.ConfigError("data.length", d.length, f"must be > data.order={d.order} (a row holds a transition)")
    if T.n_contexts(d.vocab, d.order) * d.vocab > MAX_CHAIN:
        raise C.ConfigError("data.order", d.order, f"(vocab + 1)^order x vocab must be <= {MAX_CHAIN} entries")


def check_text(d: TextData) -> None:
    """Field checks of ``data=text``, then that ``data.path`` is a readable UTF-8 file long enough for one training
    row and one held-out row."""
    C.int_at_least("data.length", d.length, 1)
    C.int_at_least("data.heldout_n", d.heldout_n, 1)
    if not isinstance(d.heldout, int | float) or not 0 < d.heldout < 1:
        raise C.ConfigError("data.heldout", d.heldout, "must lie in (0, 1) (the held-out share at the file's end)")
    if d.path is None or not Path(d.path).expanduser().is_file():
        why = "required: a local UTF-8 text file" if d.path is None else "no such file"
        raise C.ConfigError("data.path", d.path, f"{why}; madloop never downloads data")
    try:
        train, held, symbols = text_parts(d)
    except (OSError, UnicodeDecodeError) as exc:
        raise C.ConfigError("data.path", d.path, f"unreadable as UTF-8 text: {exc}") from None
    if len(symbols) < 2 or len(symbols) > MAX_TEXT_VOCAB:
        raise C.ConfigError("data.path", d.path, f"has {len(symbols)} distinct characters; 2 to {MAX_TEXT_VOCAB}")
    if len(train) < d.length or len(held) == 0:
        raise C.ConfigError(
            "data.length", d.length, f"the file's training part ({len(train)} characters) and held-out part must "
            "each hold a row"
        )  # fmt: skip


C.register("data", "zipf", ZipfData, build=zipf_source, check=check_zipf)
C.register("data", "markov", MarkovData, build=markov_source, check=check_markov)
C.register("data", "text", TextData, build=text_source, check=check_text)
