"""Real-data sources: toy distributions with known truth, built from a data config by its type."""

from madloop.data import discrete, images  # noqa: E402, F401  (registers data=zipf, markov, text; digits, mnist)
from madloop.data.toy import DataSource, make_source
from madloop.mixture import Mixture

__all__ = ["DataSource", "Mixture", "make_source"]
