"""The Python API that mirrors the CLI: the same override strings give the same table."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from omegaconf import OmegaConf

from madloop import config as C

if TYPE_CHECKING:
    import pandas as pd

CONFIG_MODULE = "madloop.conf"
CONFIG_NAME = "config"


def _group_options(group: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    return sorted(loader.get_group_options(group))


def one_line_error(exc: BaseException, overrides: Sequence[str]) -> C.ConfigError:
    """Turns a Hydra / OmegaConf composition error into one line naming the field, value and what is allowed."""
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    msg = "\n".join(str(e) for e in chain)
    full_key = next((k for e in reversed(chain) if (k := getattr(e, "full_key", None))), "")
    given = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides if "=" in o}
    value = given.get(full_key, "?")
    if m := re.search(r"Could not find '([^']+)/([^'/]+)'", msg):
        group, name = m.group(1), m.group(2)
        return C.ConfigError(group, name, "unknown option; allowed: " + ", ".join(_group_options(group)))
    if m := (
        re.search(r"Key '([^']+)' not in '([^']+)'", msg)
        or re.search(r"Key '([^']+)' is not in struct", msg)
        or re.search(r"cannot assign to field '([^']+)'", msg)
    ):
        key = full_key or next((k for k in given if k.split(".")[-1] == m.group(1)), m.group(1))
        allowed = _fields_of(key.rsplit(".", 1)[0] if "." in key else "", given)
        return C.ConfigError(key, given.get(key, "?"), "unknown field" + (f"; allowed: {allowed}" if allowed else ""))
    if m := re.search(r"Value '([^']*)' (?:of type '[^']+' )?could not be converted to (\w+)", msg):
        return C.ConfigError(full_key or "?", m.group(1), f"must be of type {m.group(2).lower()}")
    if m := re.search(r"Value '([^']*)' is not a valid bool", msg):
        return C.ConfigError(full_key or "?", m.group(1), "must be true or false")
    if re.search(r"Invalid value assigned: \w+ is not a ListConfig|not a subclass|is not a list", msg):
        return C.ConfigError(full_key or "?", value, "must be a list, e.g. [a,b]")
    if "Error parsing override" in msg or "mismatched input" in msg or "no viable alternative" in msg:
        bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
        return C.ConfigError(
            "override",
            bad[0] if bad else " ".join(overrides),
            "could not parse; expected key=value (e.g. loop.seeds=8)",
        )
    last = next((ln.strip() for ln in str(chain[-1]).splitlines() if ln.strip()), type(exc).__name__)
    return C.ConfigError(full_key or "config", value, last)


def yaml_options() -> dict[str, set[str]]:
    """{group: option names with a YAML file in the package's config folder}."""
    from importlib.resources import files

    folder = files(CONFIG_MODULE)
    return {
        group: {f.name.removesuffix(".yaml") for f in folder.joinpath(group).iterdir() if f.name.endswith(".yaml")}
        for group in C.GROUPS
    }


def register() -> None:
    """Loads the option modules and plug-ins and fills Hydra's config store (idempotent)."""
    from madloop import plugins

    plugins.load()
    from madloop import knobs

    knobs.register_sweep()  # after the plug-ins: they may add knobs
    C.register_configs(yaml_options())


def _default_option(group: str) -> str:
    from importlib.resources import files

    text = files(CONFIG_MODULE).joinpath("config.yaml").read_text()
    defaults = OmegaConf.to_container(OmegaConf.create(text))["defaults"]
    return next((d[group] for d in defaults if isinstance(d, dict) and group in d), "")


def _fields_of(path: str, given: dict[str, str] | None = None) -> str:
    import dataclasses

    parts = [p for p in path.split(".") if p]
    if parts and parts[0] in C.OPTIONS:  # a group: the chosen option's schema
        option = (given or {}).get(parts[0]) or _default_option(parts[0])
        cls = C.schemas(parts[0]).get(option)
        return ", ".join(f.name for f in dataclasses.fields(cls)) if cls and len(parts) == 1 else ""
    node: object = C.Config
    if parts and parts[0] == "sweep":
        node, parts = C.NODES["sweep"], parts[1:]
    for part in parts:
        hints = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in hints:
            return ""
        default = hints[part].default_factory() if hints[part].default_factory is not dataclasses.MISSING else None
        node = type(default) if default is not None else None
        if node is None:
            return ""
    return ", ".join(f.name for f in dataclasses.fields(node)) if dataclasses.is_dataclass(node) else ""


def compose(overrides: Sequence[str] = ()) -> C.Config:
    """The validated, frozen config for a list of Hydra override strings.

    Raises:
        ConfigError: one line naming the invalid field, its value and what is allowed.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        try:
            node = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        except Exception as exc:  # every composition failure becomes one line
            raise one_line_error(exc, overrides) from exc
        return to_config(node, overrides)


def to_config(node, overrides: Sequence[str] = ()) -> C.Config:
    """Converts a composed DictConfig once into the frozen Config and validates it."""
    from madloop.parts import validate

    try:
        cfg = OmegaConf.to_object(node)
    except Exception as exc:
        raise one_line_error(exc, overrides) from exc
    return validate(cfg)


def simulate(
    overrides: Sequence[str] = (),
    progress: Callable[[int, int, float], None] | None = None,
    checkpoint: str | Path | None = None,
):
    """Runs an experiment from override strings and returns its ``Result`` (see ``madloop.engine.Result``).

    ``checkpoint``: a folder to checkpoint into and resume from (see ``madloop.engine.Simulation.__call__``).
    """
    from madloop.engine import simulation

    result = simulation(compose(overrides))(progress, checkpoint)
    if (message := result.divergence()) is not None:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return result


def run_table(overrides: Sequence[str] = ()) -> pd.DataFrame:
    """The metrics table (the CLI's metrics.csv) for a list of override strings, e.g.
    ``run_table(["model=gaussian", "data=gaussian", "loop.generations=50"])``."""
    return simulate(overrides).table()


class ParameterPath(NamedTuple):
    """The fitted parameters of every generation of every run (numpy arrays, runs first, knob-major as in
    ``Result``).

    Attributes:
        params: the family's parameter PyTree with leaves [B, G + 1, ...] (generation 0 first).
        metrics: {name: [B, G + 1]} the same rows as ``simulate(...).metrics`` (with ``eval.every`` > 1 the
            generations that are not evaluated are NaN here, and absent from ``simulate``'s columns).
        seed: [B] each run's seed index.
        knobs: {swept knob: [B]} each run's value (empty without a sweep).
    """

    params: Any
    metrics: dict[str, Any]
    seed: Any
    knobs: dict[str, Any]


def parameter_path(overrides: Sequence[str] = ()) -> ParameterPath:
    """Runs an experiment from override strings and keeps every generation's fitted parameters, for statistics of
    the parameter trajectory itself (e.g. the autocorrelation of the fitted mean, docs/theory.md law 10).

    The runs are those of ``simulate(overrides)`` (the same keys, so the same models and metrics), stepped by the
    same generation function (``madloop.loop.Loop.generation``) as one compiled scan that stacks the
    parameters; the program is kept with the experiment's compiled programs (a second call with other traced
    values does not recompile). It holds (G + 1) copies of the parameters per run: meant for the closed-form
    families (Gaussian, GMM, KDE), not for a network's weights. The runs are not sharded over devices.
    """
    import jax
    import numpy as np

    from madloop.engine import simulation
    from madloop.precision import precision

    cfg = compose(overrides)
    sim = simulation(cfg)
    with precision(cfg.loop.precision):
        run_keys, knobs, seed, columns = sim.runs()
        ref = sim.reference()
        params, metrics = sim.programs.path_fn()(run_keys, knobs, ref)
        params, metrics = jax.tree.map(np.asarray, (params, metrics))
    return ParameterPath(params, metrics, seed, columns)
