"""The ground floor: config schemas, the registry of group options and the Hydra store, and ConfigError.

Each option of a config group (``data=``, ``model=``, ``regime=``, ``guidance=``, ``curation=``, ``correction=``) is
a frozen
dataclass defined by the module that implements it, registered here with one line
(``register("model", "gaussian", GaussianModel, build=..., check=..., fits=...)``) together with the functions
that build its part of a run, check its own fields, and check it against the other built parts. This module
imports nothing of madloop: every module that validates or builds something lives above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from omegaconf import MISSING, OmegaConf

# The option groups a user composes (``group=option``), in the order --help lists them.
GROUPS = ("data", "model", "regime", "guidance", "curation", "correction", "logger")


# ------------------------------------------------------------------------------------------------ the errors


class ConfigError(ValueError):
    """An invalid setting: names the field, the value and what is allowed (one line)."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={show(value)}: {allowed}")


def show(value: Any) -> str:
    """A value as a user would type it in an override (true, null, [a,b])."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(show(v) for v in value) + "]"
    return str(value)


def is_int(value: Any) -> bool:
    """An integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(key: str, value: Any, low: int, why: str = "") -> None:
    """Raises ConfigError unless ``value`` is an integer >= low."""
    if not is_int(value) or value < low:
        raise ConfigError(key, value, f"must be an integer >= {low}{why}")


def positive(key: str, value: Any, why: str = "") -> None:
    """Raises ConfigError unless ``value`` is a finite number > 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(key, value, f"must be a finite number > 0{why}")


def non_negative(key: str, value: Any, why: str = "") -> None:
    """Raises ConfigError unless ``value`` is a finite number >= 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ConfigError(key, value, f"must be a finite number >= 0{why}")


def choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raises ConfigError unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ConfigError(key, value, "allowed: " + ", ".join(allowed))


# ---------------------------------------------------------------------------------------- the option bases


@dataclass(frozen=True)
class DataConfig:
    """Base of the real-data sources (``data=``)."""


@dataclass(frozen=True)
class ModelConfig:
    """Base of the model families (``model=``)."""


@dataclass(frozen=True)
class RegimeConfig:
    """Base of the loop families (``regime=``): how generation g's training set is built.

    Attributes:
        pool: synthetic pool policy: ``replace`` | ``accumulate`` | ``accumulate_subsample``.
        n_real: real samples generation 0 is fitted on (and the real part's size where the regime has one); with
            ``sweep.regime.n_real`` the buffer size: the largest count the sweep may use.
        n_synth: synthetic samples drawn from generation g - 1 for generation g (the buffer size of a
            ``sweep.regime.n_synth``).
        subsample: size of the uniform subsample of the accumulated pool (``accumulate_subsample``);
            None means ``n_synth``.
        real_weight: frequency weight of each real sample relative to a synthetic one (1 = plain pooling).
        n_initial: real samples generation 0 is fitted on, when it differs from ``n_real`` (null = n_real): e.g.
            MAD's test that the fresh data loop forgets its initial model. The real set (``n_real`` samples, the
            fixed set of synthetic augmentation) is the same for every n_initial (common random numbers);
            generation 0 fits its first n_initial samples, or all of it plus n_initial - n_real further draws.
            A ``sweep.regime.n_real`` count then masks only later generations' real part.
    """

    pool: str = "replace"
    n_real: int = 256
    n_synth: int = 256
    subsample: int | None = None
    real_weight: float = 1.0
    n_initial: int | None = None


@dataclass(frozen=True)
class GuidanceConfig:
    """Base of the sampling-guidance options (``guidance=``)."""


@dataclass(frozen=True)
class CurationConfig:
    """Base of the curation options (``curation=``): what happens to generation g - 1's samples before they
    enter generation g's training set."""


@dataclass(frozen=True)
class CorrectionConfig:
    """Base of the correction options (``correction=``): how generation g - 1's samples are moved (after any
    curation) before they enter generation g's training set."""


# ------------------------------------------------------------------------------ loop, bias, eval (no options)


@dataclass(frozen=True)
class LoopConfig:
    """Generations, seeds and stepping.

    Attributes:
        generations: G; rows for generations 0..G are produced.
        seeds: number of seeds vmapped in one compiled program.
        seed: base seed; seed i of the run uses key fold_in(key(seed), i).
        warm_start: start generation g's fit from generation g - 1 (else refit from scratch each generation).
        chunk: generations per compiled call (progress is reported between calls); 0 = automatic
            (about 20 progress updates), and chunk >= generations runs the whole loop as one program.
        checkpoint: save every run's state after generation 0 and after every chunk (Orbax, in the run's
            output folder under ``checkpoint/``), and resume from the last one found there. ``loop.chunk=1``
            checkpoints every generation.
        stats_pool: keep an ``accumulate`` pool as the model family's sufficient statistics where the family
            has them (gaussian) and no guidance is used: the same fits up to float rounding, in O(n) time per
            generation and O(1) memory instead of O(G n). false keeps every sample.
        precision: ``float32`` (default) or ``float64``: JAX's x64 mode for this run only (data, parameters,
            samples and metrics in float64). float32 follows the Gaussian laws of means and traces at every
            horizon the docs use; the log-determinant of a collapsing covariance needs float64 after a few tens
            of generations at d >= 10 (docs/theory.md, "float32 and float64").
    """

    generations: int = 20
    seeds: int = 16
    seed: int = 0
    warm_start: bool = True
    chunk: int = 0
    checkpoint: bool = False
    stats_pool: bool = True
    precision: str = "float32"


@dataclass(frozen=True)
class BiasConfig:
    """Sampling bias ``lam``: 1 = unbiased, < 1 favours quality over diversity, > 1 samples hotter."""

    lam: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    Attributes:
        n: model samples per generation for sample-based metrics, and the size of the held-out real set.
        metrics: names of the metrics to compute; None = every default metric that applies (docs/metrics.md).
        k: nearest neighbours for precision / recall / density / coverage.
        projections: directions for the sliced Wasserstein distance.
        mode_share: a mode counts as covered when it holds at least this share of the samples (times K w_k for a
            truth with unequal weights w; docs/metrics.md).
        snapshots: generations (besides 0 and G) whose samples are kept for samples.png.
        snapshot_n: samples kept per snapshot.
        floors: write floors.csv (each sample metric of eval.n real samples against the held-out set, per seed:
            the real-vs-real floor at the run's sample size) and draw it on metrics.png.
        every: evaluate (and write rows for) every ``every``-th generation only, and always generation G: the
            metrics of the generations in between are not computed (the loop still runs every generation), and
            the snapshot generations round to the stride. 1 = every generation.
    """

    n: int = 1000
    metrics: list[str] | None = None
    k: int = 5
    projections: int = 128
    mode_share: float = 0.01
    snapshots: int = 3
    snapshot_n: int = 500
    floors: bool = True
    every: int = 1


@dataclass(frozen=True)
class OutputConfig:
    """How a run writes its tables.

    Attributes:
        format: ``csv`` (metrics.csv, floors.csv) or ``parquet`` (metrics.parquet, floors.parquet: a 40,000-run
            sweep's 8 million rows write in seconds instead of minutes; needs pyarrow, ``pip install
            'madloop[parquet]'``). ``python -m madloop.report`` reads either.
    """

    format: str = "csv"


@dataclass(frozen=True)
class Config:
    """The whole experiment; JAX code only ever sees this frozen object.

    ``sweep`` holds the knobs swept inside one program (``sweep.bias.lam=[0.5,1.0]``); its schema is built from
    the knob table (``madloop.knobs``), so it is typed Any here.
    """

    data: Any = MISSING
    model: Any = MISSING
    regime: Any = MISSING
    loop: LoopConfig = field(default_factory=LoopConfig)
    bias: BiasConfig = field(default_factory=BiasConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    guidance: Any = MISSING
    curation: Any = MISSING
    correction: Any = MISSING
    logger: Any = MISSING
    sweep: Any = MISSING
    output: OutputConfig = field(default_factory=OutputConfig)
    plots: bool = True


def check_fields(cfg: Config) -> None:
    """Checks the fields of the nodes defined here (loop, bias, eval); each option checks its own node."""
    lp = cfg.loop
    int_at_least("loop.generations", lp.generations, 1)
    int_at_least("loop.seeds", lp.seeds, 1)
    int_at_least("loop.seed", lp.seed, 0)
    if lp.seed >= 2**32:
        raise ConfigError("loop.seed", lp.seed, "must be an integer < 2**32 (a 32-bit key seed)")
    int_at_least("loop.chunk", lp.chunk, 0)
    choice("loop.precision", lp.precision, ("float32", "float64"))
    positive("bias.lam", cfg.bias.lam, " (1 = unbiased, < 1 colder, > 1 hotter)")
    ev = cfg.eval
    int_at_least("eval.k", ev.k, 1)
    int_at_least("eval.n", ev.n, ev.k + 1, f" (more than eval.k={ev.k} neighbours)")
    int_at_least("eval.projections", ev.projections, 1)
    int_at_least("eval.snapshots", ev.snapshots, 0)
    int_at_least("eval.snapshot_n", ev.snapshot_n, 1)
    if not 0 < ev.mode_share <= 1:
        raise ConfigError("eval.mode_share", ev.mode_share, "must lie in (0, 1]")
    int_at_least("eval.every", ev.every, 1, " (evaluate every generation: 1)")
    choice("output.format", cfg.output.format, ("csv", "parquet"))
    if cfg.output.format == "parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise ConfigError("output.format", "parquet", "needs pyarrow (pip install 'madloop[parquet]'); or csv")


# ------------------------------------------------------------------------------------- the registry and store


class Option(NamedTuple):
    """One option of a config group, as its module registers it.

    Attributes:
        schema: the frozen dataclass of its node (``conf/<group>/<name>.yaml`` extends it, when there is one).
        build: builds the option's part of a run (a data source, a model family, ...) from its node and the parts
            built before it (the signature is the group's: see ``madloop.parts``); None for nothing to build.
        check: ``check(node)``: its own fields, raising ConfigError; runs before anything is built.
        fits: ``fits(node, cfg, parts)``: checks against the other groups and the parts built so far (the data
            source, the model family...), raising ConfigError; runs before the option's own part is built.
    """

    schema: type
    build: Callable[..., Any] | None = None
    check: Callable[[Any], None] | None = None
    fits: Callable[[Any, Config, Any], None] | None = None


OPTIONS: dict[str, dict[str, Option]] = {group: {} for group in GROUPS}
# Further nodes of the store, {path: schema}: e.g. "sweep", whose schema the knob table builds.
NODES: dict[str, type] = {}


def register(
    group: str,
    name: str,
    schema: type,
    *,
    build: Callable[..., Any] | None = None,
    check: Callable[[Any], None] | None = None,
    fits: Callable[[Any, Config, Any], None] | None = None,
) -> Option:
    """Registers an option of a config group (one line in the module that implements it); returns it.

    Registering the same name again replaces the option (a module reloaded in a notebook).
    """
    if group not in OPTIONS:
        raise ValueError(f"unknown config group {group!r}; groups: {', '.join(GROUPS)}")
    option = Option(schema, build, check, fits)
    OPTIONS[group][name] = option
    return option


def options_built_with(group: str, has: Callable[[Any], bool], *args: Any) -> list[str]:
    """The registered options of a group whose default build (``build(schema(), *args)``) satisfies ``has``: a
    capability read from the families themselves, for error messages. An option that cannot build so is left out."""
    names = []
    for name, opt in OPTIONS[group].items():
        try:
            built = opt.build(opt.schema(), *args) if opt.build is not None else None
        except Exception:  # noqa: BLE001 (e.g. a family that needs another kind of data source)
            continue
        if built is not None and has(built):
            names.append(name)
    return names


def option_of(group: str, node: Any) -> tuple[str, Option]:
    """The (name, option) of a group's config node, by its type."""
    for name, option in OPTIONS[group].items():
        if type(node) is option.schema:
            return name, option
    raise TypeError(f"{type(node).__name__} is not a registered {group} option")


def option_name(group: str, node: Any) -> str:
    """The group option name of a config node, e.g. ``option_name("regime", FullySynthetic())``."""
    return option_of(group, node)[0]


def schemas(group: str) -> dict[str, type]:
    """{option name: schema} of a group."""
    return {name: option.schema for name, option in OPTIONS[group].items()}


def _node(cls: type) -> Any:
    # Frozen dataclasses become read-only OmegaConf nodes, which Hydra could not merge YAML or overrides into;
    # the schema node is made writable, and OmegaConf.to_object still builds the frozen dataclass.
    node = OmegaConf.structured(cls)
    _writable(node)
    return node


def _writable(node: Any) -> None:
    from omegaconf import DictConfig

    OmegaConf.set_readonly(node, False)
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            _writable(child)


def register_configs(yaml_options: dict[str, set[str]] | None = None) -> None:
    """Stores the schemas in Hydra's ConfigStore under ``schema/`` (idempotent).

    Args:
        yaml_options: {group: option names that have a YAML file in the config folder}. Every other registered
            option (a plug-in's) is also stored as ``<group>/<name>`` itself, so ``model=<name>`` composes
            without a YAML file.
    """
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(group="schema", name="config", node=_node(Config))
    for path, cls in NODES.items():
        cs.store(group="schema", name=path, node=_node(cls))
    for group, options in OPTIONS.items():
        for name, option in options.items():
            cs.store(group=f"schema/{group}", name=name, node=_node(option.schema))
            if yaml_options is not None and name not in yaml_options.get(group, set()):
                cs.store(group=group, name=name, node=_node(option.schema))
