"""Real-data sources: toy distributions with known truth, built from a data config by its type."""

# (registers data=zipf, markov, text; digits, mnist, cifar10; linear)
from madloop.data import discrete, images, linear  # noqa: E402, F401
from madloop.data.toy import DataSource, make_source
from madloop.mixture import Mixture

__all__ = ["DataSource", "Mixture", "make_source"]
