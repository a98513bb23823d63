"""The traced knobs in one table: knob values, the sweep schema and grid, program reuse and the report's columns.

A knob is a number that changes no array shape, so it is a traced array: runs that differ only in knob values
share one compiled program, and a ``sweep.*`` list vmaps its values inside one program. A count knob
(``n_real``, ``n_synth``) is a mask over a static buffer: the config's count is the buffer size, and a swept count
gives weight only to its first ``count`` samples.

Adding a knob is one entry in ``KNOBS`` (a plug-in may call ``add_knob`` before the config store is filled):
its config path, its sweep path (``sweep.<path>``), its type and its check.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from madloop import config as C
from madloop.precision import float_dtype
from madloop.types import Knobs


class Knob(NamedTuple):
    """One traced knob.

    Attributes:
        name: the key in ``Knobs`` and the column of metrics.csv when swept.
        path: the config field it comes from (``bias.lam``); its sweep is ``sweep.<path>``.
        count: an integer count (a mask over the static buffer ``path``), else a float.
        check: ``check(value) -> bool`` for every value of a sweep list (the config field itself is checked by
            its owner).
        allowed: what ``check`` allows, for the error message ("values > 0").
        absent: the value when the config has no such field (``guidance.omega`` without guidance: 0).
        needs: what the config needs for the field to exist, for the error message ("guidance=sims"); empty: the
            registered options of the field's group that have it (``model=diffusion|edm`` for ``model.lr``).
    """

    name: str
    path: str
    count: bool
    check: Callable[[Any], bool]
    allowed: str
    absent: float = 0.0
    needs: str = ""

    @property
    def sweep(self) -> str:
        """The sweep path: ``sweep.`` + path."""
        return "sweep." + self.path


KNOBS: list[Knob] = [
    Knob("lam", "bias.lam", False, lambda v: v > 0, "values > 0"),
    Knob("real_weight", "regime.real_weight", False, lambda v: v > 0, "values > 0"),
    Knob("omega", "guidance.omega", False, lambda v: v >= 0, "values >= 0", 0.0, "guidance=sims"),
    Knob("n_real", "regime.n_real", True, lambda v: v >= 1, "integers >= 1"),
    Knob("n_synth", "regime.n_synth", True, lambda v: v >= 0, "integers >= 0"),
    Knob(
        "temperature", "curation.temperature", False, lambda v: v >= 1e-30, "values >= 1e-30", 1.0, "curation=k_choice"
    ),
    Knob("verifier_noise", "curation.noise", False, lambda v: v >= 0, "values >= 0", 0.0, "curation=verifier"),
    Knob("gamma", "correction.gamma", False, lambda v: 0 <= v <= 1, "values in [0, 1]", 0.0, "correction=toward_truth"),
    Knob("lr", "model.lr", False, lambda v: v > 0, "values > 0", 0.0),
    Knob("ema", "model.ema", False, lambda v: 0 <= v < 1, "values in [0, 1)", 0.0),
    # A discrete model's truncation of every next-token law (madloop.tokens.biased_log_probs): floats, since a
    # mask over the sorted vocabulary changes no shape; 0 and 1 keep every token.
    Knob("top_k", "model.top_k", False, lambda v: v >= 0 and v == int(v), "integers >= 0 (0 = every token)", 0.0),
    Knob("top_p", "model.top_p", False, lambda v: 0 < v <= 1, "values in (0, 1] (1 = every token)", 1.0),
]


def add_knob(knob: Knob) -> None:
    """Adds a knob to the table (a plug-in's hyperparameter); call before the config store is filled."""
    KNOBS[:] = [k for k in KNOBS if k.name != knob.name] + [knob]


_MISSING = object()


def options_with(path: str) -> str:
    """``group=a|b``: the registered options of a dotted path's group whose schema has its field."""
    group, name = path.split(".", 1)
    have = [
        o for o, opt in C.OPTIONS.get(group, {}).items() if name in {f.name for f in dataclasses.fields(opt.schema)}
    ]
    return f"{group}={'|'.join(have)}"


def get(cfg: Any, path: str) -> Any:
    """The value at a dotted path of a config, or a sentinel when a node has no such field."""
    node = cfg
    for part in path.split("."):
        node = getattr(node, part, _MISSING)
        if node is _MISSING:
            return _MISSING
    return node


def _set(cfg: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    child = getattr(cfg, head)
    return dataclasses.replace(cfg, **{head: _set(child, rest, value) if rest else value})


# ------------------------------------------------------------------------------------------- the sweep schema


def sweep_schema() -> type:
    """The ``sweep`` node's dataclass, built from the table: ``sweep.<group>.<field>: list | None`` per knob."""
    groups: dict[str, list[tuple[str, Any, Any]]] = {}
    for k in KNOBS:
        group, _, name = k.path.partition(".")
        kind = list[int] | None if k.count else list[float] | None
        groups.setdefault(group, []).append((name, kind, dataclasses.field(default=None)))
    nodes = []
    for group, members in groups.items():
        node = dataclasses.make_dataclass(f"Sweep{group.title()}", members, frozen=True)
        nodes.append((group, node, dataclasses.field(default_factory=node)))
    schema = dataclasses.make_dataclass("SweepConfig", [(g, t, f) for g, t, f in nodes], frozen=True)
    schema.__doc__ = (
        "Knobs swept inside one compiled program (e.g. sweep.bias.lam=[0.5,0.8,1.0]): the grid is the Cartesian "
        "product of the given lists; every grid point runs loop.seeds seeds with the same keys."
    )
    return schema


_SCHEMAS: dict[tuple, type] = {}


def register_sweep() -> None:
    """Puts the sweep schema into the config store's nodes (``schema/sweep``): the same class while the table is
    unchanged, so configs composed before and after compare equal."""
    key = tuple((k.path, k.count) for k in KNOBS)
    if key not in _SCHEMAS:
        _SCHEMAS[key] = sweep_schema()
    C.NODES["sweep"] = _SCHEMAS[key]


register_sweep()


def swept(cfg: C.Config) -> dict[str, list]:
    """{knob name: its sweep list} for the knobs the config sweeps."""
    out = {}
    for k in KNOBS:
        values = get(cfg, k.sweep)
        if values is not _MISSING and values is not None:
            out[k.name] = list(values)
    return out


# ------------------------------------------------------------------------------------------------ validation


def check(cfg: C.Config) -> None:
    """Checks every sweep list against its knob: numbers of the right kind, the knob's range, a config that has
    the knob's field, and a count no larger than its buffer (the config's count).

    Raises:
        ConfigError: naming the sweep path, the list and what is allowed.
    """
    for k in KNOBS:
        values = get(cfg, k.sweep)
        if values is _MISSING or values is None:
            continue
        vals = list(values)
        if k.count:
            if not vals or any(not C.is_int(v) or not k.check(v) for v in vals):
                raise C.ConfigError(k.sweep, vals, f"must be a non-empty list of {k.allowed}")
        else:
            if not vals:
                raise C.ConfigError(k.sweep, vals, "give at least one value (or null for no sweep)")
            if any(not C.is_number(v) or not k.check(v) for v in vals):
                raise C.ConfigError(k.sweep, vals, f"must be a list of finite numbers, {k.allowed}")
            # the values as the run computes with them: a float32 run cannot tell 0.7 from 0.70000001, and runs
            # 1e39 as inf and 1e-46 as 0
            run = np.float64 if get(cfg, "loop.precision") == "float64" else np.float32
            with np.errstate(over="ignore", under="ignore"):
                rounded = [float(run(v)) for v in vals]
            tiny = float(np.finfo(run).tiny)
            lost = [v for v, r in zip(vals, rounded, strict=True) if not (np.isfinite(r) and k.check(r))]
            if lost or any(v != 0 and abs(r) < tiny for v, r in zip(vals, rounded, strict=True)):
                raise C.ConfigError(
                    k.sweep, vals, f"each must stay finite and {k.allowed} in {np.dtype(run).name} (loop.precision)"
                )
            vals_run = rounded
        if len(set(vals if k.count else vals_run)) < len(vals):
            raise C.ConfigError(k.sweep, vals, "values must be distinct (a repeated point counts its seeds twice)")
        base = get(cfg, k.path)
        if base is _MISSING:
            raise C.ConfigError(k.sweep, vals, f"needs {k.needs or options_with(k.path)}")
        if k.count and C.is_int(base) and max(vals) > base:
            raise C.ConfigError(
                k.sweep, vals, f"values must be <= {k.path}={base}, the buffer they mask: set {k.path}={max(vals)}"
            )


def smallest(cfg: C.Config) -> C.Config:
    """The config with every swept count at its smallest value (the smallest training set a model must fit)."""
    for k in KNOBS:
        values = get(cfg, k.sweep)
        if k.count and values is not _MISSING and values is not None:
            cfg = _set(cfg, k.path, min(values))
    return cfg


# ------------------------------------------------------------------------------------------- values and grid


def knobs_of(cfg: C.Config) -> Knobs:
    """The config's knobs as scalars: floats in the run's precision (``float_dtype``), counts as int32."""
    out = {}
    for k in KNOBS:
        value = get(cfg, k.path)
        value = k.absent if value is _MISSING else value
        out[k.name] = np.int32(value) if k.count else np.asarray(value, float_dtype())
    return out


def knob_grid(cfg: C.Config) -> tuple[Knobs, dict[str, np.ndarray]]:
    """The swept knobs' grid: Knobs of arrays [K] (the Cartesian product of the ``sweep.*`` lists in table
    order; K = 1 without a sweep) and the swept columns {name: [K]} for the table."""
    base, lists = knobs_of(cfg), swept(cfg)
    axes = [np.asarray(lists.get(k.name, [base[k.name].item()]), base[k.name].dtype) for k in KNOBS]
    mesh = np.meshgrid(*axes, indexing="ij")
    flat = {k.name: m.reshape(-1) for k, m in zip(KNOBS, mesh, strict=True)}
    # The table's columns hold the values as given (float64), not as the run computes with them: a float32 lam of
    # 0.7 is 0.699999988..., which a filter lam == 0.7 would miss.
    given = [np.asarray(lists.get(k.name, [0]), np.int64 if k.count else np.float64) for k in KNOBS]
    exact = {k.name: m.reshape(-1) for k, m in zip(KNOBS, np.meshgrid(*given, indexing="ij"), strict=True)}
    columns = {k.name: exact[k.name] for k in KNOBS if k.name in lists}
    return {k.name: flat[k.name] for k in KNOBS}, columns


def grid_points(cfg: C.Config) -> int:
    """K, the knob grid's size: the product of the sweep lists' lengths (1 without a sweep)."""
    return math.prod(len(v) for v in swept(cfg).values())


def static_config(cfg: C.Config) -> C.Config:
    """The config with its float knobs, ``loop.seed``, the output switches and the tracker set to fixed values:
    configs that agree here run the same compiled programs (counts stay: they are buffer sizes)."""
    for k in KNOBS:
        if not k.count and get(cfg, k.path) is not _MISSING:
            cfg = _set(cfg, k.path, 1.0)
    loop = dataclasses.replace(cfg.loop, seed=0, checkpoint=False)
    ev = dataclasses.replace(cfg.eval, floors=True)
    return dataclasses.replace(cfg, loop=loop, plots=True, eval=ev, logger=None, output=C.OutputConfig())


def columns() -> tuple[str, ...]:
    """The knob columns a metrics table may have, in table order."""
    return tuple(k.name for k in KNOBS)
