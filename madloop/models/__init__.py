"""Model families: ``make_model(model_cfg) -> GenerativeModel``, dispatched on the config's type."""

import functools

from madloop.config import DiffusionModel, ModelConfig
from madloop.types import GenerativeModel


@functools.singledispatch
def make_model(cfg: ModelConfig, shape: tuple[int, ...] | None = None) -> GenerativeModel:
    """Builds the family's pure functions for a model config.

    Args:
        cfg: the model config (its type picks the family).
        shape: the data's event shape (h, w, c) for an image source whose rows are flattened images, else None
            (only an image network, ``model.network=unet``, reads it).
    """
    raise TypeError(f"no model family for {type(cfg).__name__}")


# One line per family: importing the module registers its make_model overload.
from madloop.models import gaussian, gmm, kde  # noqa: E402, F401


@make_model.register
def _(cfg: DiffusionModel, shape: tuple[int, ...] | None = None) -> GenerativeModel:
    """The diffusion family is imported on first use (Flax and Optax add 0.4 s to every process's start-up);
    importing it replaces this overload with its own."""
    from madloop.models import diffusion  # noqa: F401

    return make_model(cfg, shape)


__all__ = ["make_model"]
