"""madloop: self-consuming training loops of generative models, jitted and vmapped in JAX."""

from madloop import _xla

_xla.apply_defaults()  # before anything creates the JAX backend
_xla.unroll_threefry()

# ruff: noqa: E402

from madloop.api import compose, parameter_path, run_table, simulate
from madloop.config import Config, ConfigError

__all__ = ["Config", "ConfigError", "compose", "parameter_path", "run_table", "simulate"]
__version__ = "0.1.0"
