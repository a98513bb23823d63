"""Package discovery for setuptools; every other setting is in pyproject.toml.

pyproject.toml's ``packages.find`` cannot rename a folder, and the config tree lives at the top level (``conf/``)
while it ships as ``madloop.conf``. So the packages are discovered here: every package under ``madloop/`` (a new
subpackage ships without an edit) plus ``madloop.conf``, whose config groups ship as package data
(``"**/*.yaml"`` in pyproject.toml), whatever folders ``conf/`` holds.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["madloop", "madloop.*"]), "madloop.conf"])
