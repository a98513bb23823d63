"""The metrics of a run from its table of groups: which apply, the held-out reference, and one evaluation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from madloop import config as C
from madloop.metrics.group import (
    CLASSIFIER_READS,
    FEATURES,
    LOGITS,
    LOOP,
    MOMENTS,
    PARAM_READS,
    PARAMS,
    SAMPLE_READS,
    SAMPLES,
    Context,
    MetricGroup,
)
from madloop.metrics.table import GROUPS
from madloop.types import Data, Key, Params

Groups = tuple[MetricGroup, ...]


def available(ctx: Context, groups: Groups = GROUPS) -> dict[str, str | None]:
    """Every metric name -> None when it applies to the run, else why not (for error messages): every group's
    names in table order, then the columns (class_0 ...)."""
    why = {g.name: g.applies(ctx) for g in groups}
    fixed = {name: why[g.name] for g in groups for name in g.names}
    return fixed | {name: why[g.name] for g in groups if g.columns is not None for name in g.columns.names(ctx)}


def check(ctx: Context, groups: Groups = GROUPS) -> None:
    """Checks ``eval.metrics``: a non-empty list of names that exist and apply to the run.

    Raises:
        ConfigError: naming eval.metrics and the first name at fault.
    """
    names = ctx.eval.metrics
    if names is None:
        return
    avail = available(ctx, groups)
    if len(names) == 0:
        raise C.ConfigError("eval.metrics", [], "name at least one metric (or null for all that apply)")
    if not all(isinstance(name, str) for name in names):
        raise C.ConfigError("eval.metrics", list(names), "must be a list of metric names")
    for name in names:
        if name not in avail:
            raise C.ConfigError("eval.metrics", list(names), f"unknown metric {name!r}; known: " + ", ".join(avail))
        if avail[name] is not None:
            raise C.ConfigError("eval.metrics", list(names), f"{name!r} {avail[name]}")


def select(ctx: Context, groups: Groups = GROUPS) -> tuple[str, ...]:
    """The metrics a run computes: ``eval.metrics`` (in its order) or every default metric that applies (groups
    with ``default=False`` only where ``eval.metrics`` names them)."""
    if ctx.eval.metrics is not None:
        return tuple(ctx.eval.metrics)
    opt_in = {name for g in groups if not g.default for name in g.all_names(ctx)}
    return tuple(name for name, why in available(ctx, groups).items() if why is None and name not in opt_in)


def group_of(name: str, groups: Groups = GROUPS) -> MetricGroup | None:
    """The group that computes the metric ``name``, or None for an unknown name."""
    return next((g for g in groups if g.holds(name)), None)


def selected_groups(names: tuple[str, ...], groups: Groups = GROUPS) -> Groups:
    """The groups (in table order) that compute at least one of ``names``."""
    return tuple(g for g in groups if any(g.holds(name) for name in names))


def is_sample_metric(name: str, groups: Groups = GROUPS) -> bool:
    """Whether a metric reads model samples."""
    group = group_of(name, groups)
    return group is not None and group.reads in SAMPLE_READS


def needs_samples(names: tuple[str, ...], groups: Groups = GROUPS) -> bool:
    """Whether any of the metrics reads model samples."""
    return any(is_sample_metric(name, groups) for name in names)


def needs_pairwise(names: tuple[str, ...], groups: Groups = GROUPS) -> bool:
    """Whether any of the metrics reduces matrices over pairs of samples (``MetricGroup.pairwise``)."""
    return any(g.pairwise for g in selected_groups(names, groups))


def needs_classifier(names: tuple[str, ...], groups: Groups = GROUPS) -> bool:
    """Whether any of the metrics reads the feature classifier on an image source (its features or logits)."""
    return any(g.reads in CLASSIFIER_READS for g in selected_groups(names, groups))


class Reference(NamedTuple):
    """The held-out set and the statistics the selected groups prepared from it, computed once per run and shared
    by every seed and generation (a PyTree).

    Attributes:
        heldout: [n, d] held-out real samples.
        features: [n, f] their feature-classifier features, when a selected group reads FEATURES on an image
            source, else None.
        classifier: the feature classifier's weights, when a selected group reads it on an image source, else None.
        stats: {group name: what its ``prepare`` returned}, for the selected groups that prepare something.
    """

    heldout: Data
    features: jax.Array | None
    classifier: Params | None
    stats: dict[str, Any]

    def real(self, reads: str) -> Data:
        """The held-out set as a group that reads ``reads`` compares with: its features for FEATURES on an image
        source, else the held-out samples."""
        return self.features if reads == FEATURES and self.features is not None else self.heldout


def make_reference(key: Key, heldout: Data, ctx: Context, names: tuple[str, ...], groups: Groups = GROUPS) -> Reference:
    """Precomputes the held-out statistics that the metrics ``names`` read (one call per run), so a run of
    parameter metrics does not pay for the held-out set's pairwise distances and sorts.

    On an image source whose selected metrics read the feature classifier, it is trained (or loaded from its disk
    cache) here, on first use, also when this function is being traced by ``jax.jit``.

    Args:
        key: the reference key (the sliced-W2 directions).
        heldout: [n, d] held-out real samples.
        ctx: the run's parts.
        names: the selected metrics; statistics no selected group reads are not computed.
        groups: the table of metric groups.
    """
    selected = selected_groups(names, groups)
    features, params = None, None
    if ctx.source.classifier is not None and needs_classifier(names, groups):
        with jax.ensure_compile_time_eval():  # a first call trains or loads eagerly, even inside a trace
            classifier = ctx.source.classifier()
        params = classifier.params
        if any(g.reads == FEATURES for g in selected):
            features = classifier.apply(params, heldout)[0]
    ref = Reference(heldout, features, params, {})
    stats = {g.name: g.prepare(key, ref.real(g.reads), ctx) for g in selected if g.prepare is not None}
    return ref._replace(stats=stats)


def _scores(selected: Groups, inputs: dict[str, Any], names: tuple[str, ...], ctx: Context, ref: Reference) -> dict:
    """Each selected group's metrics on its input, the selected names only (in the order of ``names``)."""
    out: dict[str, jax.Array] = {}
    for g in selected:
        out.update(g.compute(inputs[g.reads], ref.real(g.reads), ref.stats.get(g.name), ctx))
    return {name: out[name] for name in names if name in out}


def evaluate_params(
    names: tuple[str, ...], params: Params, ctx: Context, ref: Reference, groups: Groups = GROUPS
) -> dict[str, jax.Array]:
    """The metrics among ``names`` that read the fitted parameters (of the base family): moments against the
    truth's, closed-form w2 / kl, held-out nll."""
    selected = tuple(g for g in selected_groups(names, groups) if g.reads in PARAM_READS)
    inputs: dict[str, Any] = {PARAMS: params}
    if any(g.reads == MOMENTS for g in selected):
        inputs[MOMENTS] = ctx.model.moments.moments(params)
    return _scores(selected, inputs, names, ctx, ref)


def evaluate_samples(
    names: tuple[str, ...], samples: Data, ctx: Context, ref: Reference, groups: Groups = GROUPS
) -> dict[str, jax.Array]:
    """The metrics among ``names`` that read model samples [m, d] (against the held-out reference). The feature
    classifier reads the samples once (image sources), for every group that reads its features or logits."""
    selected = tuple(g for g in selected_groups(names, groups) if g.reads in SAMPLE_READS)
    inputs: dict[str, Any] = {SAMPLES: samples, FEATURES: samples}
    if ref.classifier is not None and any(g.reads in CLASSIFIER_READS for g in selected):
        inputs[FEATURES], inputs[LOGITS] = ctx.source.classifier().apply(ref.classifier, samples)
    return _scores(selected, inputs, names, ctx, ref)


def evaluate_loop(
    names: tuple[str, ...], report: dict[str, jax.Array], ctx: Context, ref: Reference, groups: Groups = GROUPS
) -> dict[str, jax.Array]:
    """The metrics among ``names`` that read the loop's report of the generation (a verifier's kept share and
    error rates)."""
    selected = tuple(g for g in selected_groups(names, groups) if g.reads == LOOP)
    return _scores(selected, {LOOP: report}, names, ctx, ref)
