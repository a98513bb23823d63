"""The Python API that mirrors the CLI: the same override strings give the same table."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import pandas as pd
from omegaconf import OmegaConf

from madloop import config as C

CONFIG_MODULE = "madloop.conf"
CONFIG_NAME = "config"


def _group_options(group: str) -> list[str]:
    from hydra.core.global_hydra import GlobalHydra

    loader = GlobalHydra.instance().config_loader()
    return sorted(loader.get_group_options(group))


def _one_line(exc: Exception, overrides: Sequence[str]) -> C.ConfigError:
    """Turns a Hydra / OmegaConf composition error into one line naming the field, value and what is allowed."""
    from hydra.errors import MissingConfigException

    msg = str(exc)
    cause = exc.__cause__ or exc
    full_key = getattr(cause, "full_key", None) or ""
    given = {o.split("=", 1)[0].lstrip("+~"): o.split("=", 1)[1] for o in overrides if "=" in o}
    m = re.search(r"Could not find '([^']+)/([^'/]+)'", msg)
    if isinstance(exc, MissingConfigException) or m:
        if m:
            group, name = m.group(1), m.group(2)
            return C.ConfigError(group, name, "unknown option; allowed: " + ", ".join(_group_options(group)))
    m = re.search(r"Key '([^']+)' not in '([^']+)'", msg) or re.search(r"Key '([^']+)' is not in struct", msg)
    if m:
        key = full_key or m.group(1)
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        allowed = _fields_of(parent)
        return C.ConfigError(key, given.get(key, "?"), "unknown field" + (f"; allowed: {allowed}" if allowed else ""))
    m = re.search(r"Value '([^']*)' of type '([^']+)' could not be converted to (\w+)", msg)
    if m:
        return C.ConfigError(full_key or "?", m.group(1), f"must be of type {m.group(3).lower()}")
    m = re.search(r"Invalid type assigned: (\w+) is not a subclass of (\w+)", msg)
    if m:
        return C.ConfigError(full_key or "?", given.get(full_key, "?"), f"must be a {m.group(2)}")
    if "Error parsing override" in msg or "mismatched input" in msg or "no viable alternative" in msg:
        bad = [o for o in overrides if "=" not in o and not o.startswith("~")]
        return C.ConfigError("override", bad[0] if bad else " ".join(overrides),
                             "could not parse; expected key=value (e.g. loop.seeds=8)")
    first = next((ln.strip() for ln in msg.splitlines() if ln.strip()), type(exc).__name__)
    return C.ConfigError(full_key or "config", given.get(full_key, "?"), first)


def _fields_of(path: str) -> str:
    import dataclasses

    node: object = C.Config
    for part in [p for p in path.split(".") if p]:
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

    C.register_configs()
    overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        try:
            node = hydra_compose(config_name=CONFIG_NAME, overrides=list(overrides))
        except Exception as exc:  # every composition failure becomes one line
            raise _one_line(exc, overrides) from exc
        return to_config(node, overrides)


def to_config(node, overrides: Sequence[str] = ()) -> C.Config:
    """Converts a composed DictConfig once into the frozen Config and validates it."""
    try:
        cfg = OmegaConf.to_object(node)
    except Exception as exc:
        raise _one_line(exc, overrides) from exc
    return C.validate(cfg)


def simulate(overrides: Sequence[str] = (), progress: Callable[[int, int, float], None] | None = None):
    """Runs an experiment from override strings and returns its ``Result`` (see ``madloop.loop.Result``)."""
    from madloop.loop import simulation

    return simulation(compose(overrides))(progress)


def run_table(overrides: Sequence[str] = ()) -> pd.DataFrame:
    """The metrics table (the CLI's metrics.csv) for a list of override strings, e.g.
    ``run_table(["model=gaussian", "data=gaussian", "loop.generations=50"])``."""
    return simulate(overrides).table()
