"""Real-data sources: toy distributions with known truth, built from a data config by its type."""

from madloop.data import images, linear  # noqa: E402, F401  (register data=digits, mnist, cifar10 and linear)
from madloop.data.toy import DataSource, make_source
from madloop.mixture import Mixture

__all__ = ["DataSource", "Mixture", "make_source"]
