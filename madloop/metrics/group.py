"""A metric group declared as data: its names, when it applies, what it reads, prepares and computes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from madloop import config as C
from madloop.curation import Curation
from madloop.data import DataSource
from madloop.types import GenerativeModel

# What a group's ``compute`` scores (its first argument). The evaluator computes each once per call and shares it
# between the groups that read it.
PARAMS = "params"  # the fitted parameters (of the base family, without sampling guidance)
MOMENTS = "moments"  # (mean [d], cov [d, d]) of the fitted model (``model.moments``)
SAMPLES = "samples"  # [m, d] model samples
FEATURES = "features"  # [m, f] the samples' feature-classifier features on an image source, else the samples
LOGITS = "logits"  # [m, C] the feature classifier's logits of the samples (image sources)
LOOP = "loop"  # {name: scalar} what the loop's curation reported of this generation's candidates (NaN at 0)
PARAM_READS = (PARAMS, MOMENTS)
SAMPLE_READS = (SAMPLES, FEATURES, LOGITS)
CLASSIFIER_READS = (FEATURES, LOGITS)  # the groups that read the feature classifier on an image source


class Context(NamedTuple):
    """What a metric group may read besides the parameters or samples it scores: the parts of one run, built once.

    Attributes:
        source: the real-data source (its truth, its feature classifier).
        model: the model family (its optional ``density`` and ``moments`` capabilities).
        curation: the curation rule (``reward`` is None without curation).
        eval: the evaluation settings (``k``, ``projections``, ``mode_share``, ``metrics``).
    """

    source: DataSource
    model: GenerativeModel
    curation: Curation
    eval: C.EvalConfig


class Columns(NamedTuple):
    """Names whose number depends on the run, ``{prefix}0`` ... ``{prefix}{count - 1}`` (one per class): listed
    after every group's fixed names, and recognised by their prefix without a context.

    Attributes:
        prefix: e.g. ``class_``.
        count: ``count(ctx) -> int``.
    """

    prefix: str
    count: Callable[[Context], int]

    def names(self, ctx: Context) -> tuple[str, ...]:
        """The column names of this run."""
        return tuple(f"{self.prefix}{i}" for i in range(self.count(ctx)))

    def holds(self, name: str) -> bool:
        """Whether ``name`` is one of these columns (for some run)."""
        return name.startswith(self.prefix) and name[len(self.prefix) :].isdigit()


class MetricGroup(NamedTuple):
    """Metrics computed together from one input: one entry of ``madloop.metrics.table.GROUPS``.

    Attributes:
        name: the group's key in ``Reference.stats``.
        names: the metric names it computes (in the order ``available`` lists them).
        applies: ``applies(ctx) -> None | reason``: None when the group applies to the run, else why not (the end
            of the ``eval.metrics`` error message, e.g. "needs a model with a log-density").
        reads: what ``compute`` scores: PARAMS, MOMENTS, SAMPLES, FEATURES, LOGITS or LOOP (above).
        compute: ``compute(x, real, stats, ctx) -> {name: scalar}`` with x what it reads, real the held-out set
            [n, d] (its classifier features [n, f] when it reads FEATURES on an image source), stats what
            ``prepare`` returned (None without it). It returns every one of its names; the evaluator keeps the
            selected ones (the others are dead code in a compiled program).
        prepare: ``prepare(key, real, ctx) -> stats`` (a PyTree), the held-out statistics it needs, computed once
            per run; key is the run's reference key, real as for ``compute``. None when it needs none.
        columns: further names that depend on the run (the class histogram), or None.
        default: whether ``eval.metrics=null`` computes it (where it applies). Costly or specialised groups (the
            Vendi score's eigenvalues, memorisation metrics) are False: a run computes them when
            ``eval.metrics`` names them.
        pairwise: its compute reduces [n, m] matrices over pairs of samples (kernel means, k-NN counts): a program
            that computes it is compiled with YNNPACK's reductions on the CPU (``madloop._xla.program_options``).
    """

    name: str
    names: tuple[str, ...]
    applies: Callable[[Context], str | None]
    reads: str
    compute: Callable[[Any, jax.Array, Any, Context], dict[str, jax.Array]]
    prepare: Callable[[jax.Array, jax.Array, Context], Any] | None = None
    columns: Columns | None = None
    default: bool = True
    pairwise: bool = False

    def all_names(self, ctx: Context) -> tuple[str, ...]:
        """Its fixed names and this run's columns."""
        return self.names + (self.columns.names(ctx) if self.columns is not None else ())

    def holds(self, name: str) -> bool:
        """Whether the group computes the metric ``name`` (in some run)."""
        return name in self.names or (self.columns is not None and self.columns.holds(name))


def always(ctx: Context) -> str | None:
    """Applies to every run of continuous data (sample metrics against the held-out set): a discrete source's
    token ids are not points in space."""
    if ctx.source.tokens is not None:
        return "needs continuous data (a discrete source's rows are token ids)"
    return None
