"""Real-data sources: toy distributions with known truth, built from a data config by its type."""

from madloop.data import images  # noqa: E402, F401  (registers data=digits, data=mnist)
from madloop.data.toy import DataSource, make_source
from madloop.mixture import Mixture

__all__ = ["DataSource", "Mixture", "make_source"]
