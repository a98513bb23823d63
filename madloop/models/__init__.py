"""Model families: ``make_model(model_cfg) -> GenerativeModel``, dispatched on the config's type."""

import functools

from madloop.config import ModelConfig
from madloop.types import GenerativeModel


@functools.singledispatch
def make_model(cfg: ModelConfig) -> GenerativeModel:
    """Builds the family's pure functions for a model config."""
    raise TypeError(f"no model family for {type(cfg).__name__}")


# One line per family: importing the module registers its make_model overload.
from madloop.models import diffusion, gaussian, gmm, kde  # noqa: E402, F401

__all__ = ["make_model"]
