"""Model families: ``make_model(model_cfg, source, scan) -> GenerativeModel`` by the config's registered option.

Each family is one module that defines its config schema and registers it with one line
(``config.register("model", name, schema, build=..., check=..., fits=...)``); importing the module registers it.
"""

from collections.abc import Callable

from madloop import config as C
from madloop.types import GenerativeModel


def make_model(cfg: C.ModelConfig, source=None, scan: Callable | None = None) -> GenerativeModel:
    """Builds the family's pure functions for a model config.

    Args:
        cfg: the model config (its type picks the family).
        source: the data source (``madloop.data.DataSource``), for a family that reads its event shape (an image
            network) or its classes; None for a family that does not.
        scan: ``scan(step, carry, steps) -> (carry, outputs)``, the training scan a neural family runs (the
            engine hands in one that reports progress); None for ``jax.lax.scan`` over the step indices.
    """
    return C.option_of("model", cfg)[1].build(cfg, source, scan)


# One name per family: importing the module registers it.
from madloop.models import (  # noqa: E402, F401
    diffusion,
    edm,
    flow,
    flow_matching,
    gan,
    gaussian,
    gmm,
    kde,
    linear,
    ngram,
    transformer,
)

__all__ = ["make_model"]
