"""Loads the modules that register config options: madloop's own, installed plug-ins, and MADLOOP_PLUGINS.

A plug-in is a module that registers options with ``madloop.config.register`` (and knobs with
``madloop.knobs.add_knob``) when imported. madloop imports, before composing a config:

- its own option modules (data sources, model families, regimes, guidance, curation, trackers, the knob table);
- every module named by an installed package's entry point in the group ``madloop.plugins``
  (``[project.entry-points."madloop.plugins"] myfamily = "mypackage.myfamily"`` in its pyproject.toml);
- every module named in the environment variable ``MADLOOP_PLUGINS`` (comma-separated, importable from the
  current directory or the Python path), e.g. ``MADLOOP_PLUGINS=tests.plugin_family python -m madloop.run ...``.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.metadata import entry_points

ENV = "MADLOOP_PLUGINS"
GROUP = "madloop.plugins"
BUILTIN = (
    "madloop.data",
    "madloop.models",
    "madloop.regimes",
    "madloop.guidance",
    "madloop.curation",
    "madloop.correction",
    "madloop.trackers",
    "madloop.knobs",
)


def plugin_modules() -> list[str]:
    """The plug-in modules to import: entry points of the group ``madloop.plugins``, then ``MADLOOP_PLUGINS``."""
    names = [ep.value for ep in entry_points(group=GROUP)]
    names += [m.strip() for m in os.environ.get(ENV, "").split(",") if m.strip()]
    return names


def load() -> None:
    """Imports madloop's option modules and the plug-ins (each import registers its options once)."""
    for name in BUILTIN:
        importlib.import_module(name)
    if "" not in sys.path and os.getcwd() not in sys.path:  # `python -m madloop.run` has the cwd; a script may not
        sys.path.append(os.getcwd())
    for name in plugin_modules():
        try:
            importlib.import_module(name)
        except ImportError as exc:
            from madloop.config import ConfigError

            raise ConfigError(ENV, name, f"cannot import this plug-in module: {exc}") from None
