"""Validation and the parts of a run, built once per static config and carried to whoever needs them.

A config is checked in two rounds. First each node's own fields, by its owner (``config.register(...,
check=...)``), the loop / bias / eval fields, the sweep lists against the knob table, and the memory estimate;
nothing is built yet. Then the parts are built in order (data source, regime, model family, guidance, curation,
correction, metrics, pool), and before each is built its option's cross-group check runs against the parts built so
far.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp

from madloop import config as C
from madloop import knobs as K
from madloop import metrics as M
from madloop import pools, regimes
from madloop.correction import Correction, make_correction
from madloop.curation import Curation, make_curation
from madloop.data import DataSource, make_source
from madloop.guidance import Guided, make_guidance
from madloop.models import make_model
from madloop.precision import precision
from madloop.progress import scan_with_ticks
from madloop.types import GenerativeModel, Key


class Parts(NamedTuple):
    """What one run is built from (fields are None while validation builds them in order).

    Attributes:
        source: the real-data source.
        train_source: the source the loop trains on: ``source``, or for a class-conditional family its samples
            with their label as a last column (which pools and regimes move along with the samples).
        regime: the regime's real part.
        smallest: (size, field) of the smallest training set a model is fitted on (with swept counts at their
            smallest values).
        model: the model family (handed the engine's training scan, which reports progress).
        guided: the family with its sampling guidance (what the loop fits and samples).
        curation: the curation of the synthetic samples.
        correction: the correction of the (curated) synthetic samples.
        metrics: the metric names a run computes, in column order.
        context: what the metrics read (``madloop.metrics.Context``).
        train_size: T, the slots of every training set.
        pool: the synthetic pool.
    """

    source: DataSource
    train_source: DataSource | None = None
    regime: regimes.Regime | None = None
    smallest: tuple[int, str] | None = None
    model: GenerativeModel | None = None
    guided: Guided | None = None
    curation: Curation | None = None
    correction: Correction | None = None
    metrics: tuple[str, ...] | None = None
    context: M.Context | None = None
    train_size: int | None = None
    pool: pools.Pool | None = None


def check_fields(cfg: C.Config) -> None:
    """The first round: every node's own fields, the sweep lists and the memory estimate (nothing is built).

    Raises:
        ConfigError: naming the first invalid field, its value and what is allowed.
    """
    for group in C.GROUPS:
        node = getattr(cfg, group)
        options = C.schemas(group)
        if type(node) not in options.values():
            raise C.ConfigError(group, node, "allowed: " + ", ".join(options))
        check = C.option_of(group, node)[1].check
        if check is not None:
            check(node)
    C.check_fields(cfg)
    K.check(cfg)
    from madloop.memory import check_memory  # before the data source is built: it may hold a d x d truth

    check_memory(cfg)


def _fits(group: str, cfg: C.Config, parts: Parts, node: Any = None) -> None:
    node = getattr(cfg, group) if node is None else node
    fits = C.option_of(group, node)[1].fits
    if fits is not None:
        fits(node, cfg, parts)


def _labeled_rows(sample_labeled: Callable) -> Callable:
    """``sample(key, n) -> [n, d + 1]``: a labelled source's samples with their label as a last (float) column."""

    def sample(key: Key, n: int):
        x, y = sample_labeled(key, n)
        return jnp.concatenate([x, y[:, None].astype(x.dtype)], axis=1)

    return sample


def token_families(source: DataSource) -> list[str]:
    """The registered model families that model token rows (``GenerativeModel.tokens``), read from each family's
    default build for a discrete source."""
    return C.options_built_with("model", lambda m: m.tokens, source)


def build_parts(cfg: C.Config) -> Parts:
    """Checks a config and builds its parts (in the run's precision), with each cross-group check run against
    the parts built before it.

    Raises:
        ConfigError: naming the first invalid field, its value and what is allowed.
    """
    check_fields(cfg)
    with precision(cfg.loop.precision):  # the source's truth and the evaluator's constants
        parts = Parts(make_source(cfg.data))
        _fits("data", cfg, parts)
        smallest = K.smallest(cfg)  # the smallest training set under a count sweep
        _fits("regime", cfg, parts)
        regime = regimes.make_regime(cfg.regime)
        parts = parts._replace(regime=regime, smallest=regimes.smallest_training_set(smallest.regime, regime))
        name = C.option_name("model", cfg.model)
        if parts.source.tokens is not None and name not in (
            tokens := token_families(parts.source)
        ):  # (before the family's own checks)
            # a continuous density on token ids means nothing
            raise C.ConfigError("model", name, f"a discrete source needs a token model (model={'|'.join(tokens)})")
        _fits("model", cfg, parts)
        model = make_model(cfg.model, parts.source, scan_with_ticks)
        source = parts.source
        # A class-conditional family trains on [x, label] rows; metrics and snapshots see x only.
        train_source = (
            source._replace(sample=_labeled_rows(source.sample_labeled), dim=source.dim + 1)
            if model.labelled
            else source
        )
        parts = parts._replace(model=model, train_source=train_source)
        _fits("guidance", cfg, parts)
        parts = parts._replace(guided=make_guidance(cfg.guidance, model, source))
        _fits("curation", cfg, parts)
        parts = parts._replace(curation=make_curation(cfg.curation, source))
        _fits("correction", cfg, parts)
        parts = parts._replace(correction=make_correction(cfg.correction, source))
        context = M.Context(source, model, parts.curation, cfg.eval)
        M.check(context)
        parts = parts._replace(metrics=M.select(context), context=context)
        guided = parts.guided.fit is not model.fit  # guidance fits more than the family (SIMS: an auxiliary model)
        stats = pools.keeps_statistics(cfg, model, guided)
        slots = 0 if stats else pools.synth_slots(cfg.regime, cfg.loop.generations)
        size = regimes.train_size(cfg.regime, regime, slots)
        return parts._replace(train_size=size, pool=pools.make_pool(cfg, model, size, guided))


_CACHE: OrderedDict[str, Parts] = OrderedDict()
_CACHE_SIZE = 16


def parts_of(cfg: C.Config) -> Parts:
    """The parts of a config, built once per static config (``knobs.static_config``): configs that differ only
    in traced values share them, as they share compiled programs. The 16 most recent are kept."""
    key = repr(K.static_config(cfg))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    parts = build_parts(cfg)
    _CACHE[key] = parts
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return parts


def validate(cfg: C.Config) -> C.Config:
    """Checks every field before anything is computed (building the parts once; ``parts_of`` reuses them).

    Raises:
        ConfigError: naming the first invalid field, its value and what is allowed.
    """
    if repr(K.static_config(cfg)) in _CACHE:  # its static twin was built: its own (traced) fields still need a check
        check_fields(cfg)
    parts_of(cfg)  # otherwise building checks the fields once
    return cfg


__all__ = ["Parts", "build_parts", "check_fields", "parts_of", "validate"]
