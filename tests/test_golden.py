"""The golden metrics tables (tests/golden/): a refactoring leaves every number where it was.

The slow tier runs a covering subset (every family in every regime, every family with every pool, every regime
with every pool, and every special case); ``python -m tests.golden.make --check`` runs all 50 and prints the largest
differences (0 on the machine that wrote them). The tolerance allows for another CPU's rounding in a few
training steps, far below what a changed computation moves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from madloop.api import run_table
from tests.golden.cases import CASES, FAMILIES, POOLS, REGIMES
from tests.golden.make import path

GRID = {
    f"{family}-{regime}-{POOLS[(i + j) % len(POOLS)]}"
    for i, family in enumerate(FAMILIES)
    for j, regime in enumerate(REGIMES)
}
ALL_GRID = {f"{f}-{r}-{p}" for f in FAMILIES for r in REGIMES for p in POOLS}
SPECIAL = [name for name in CASES if name not in ALL_GRID]
COVERED = sorted(GRID) + SPECIAL


def test_the_subset_covers_every_pair():
    parts = [name.split("-") for name in GRID]
    assert {(f, r) for f, r, _ in parts} == {(f, r) for f in FAMILIES for r in REGIMES}
    assert {(f, p) for f, _, p in parts} == {(f, p) for f in FAMILIES for p in POOLS}
    assert {(r, p) for _, r, p in parts} == {(r, p) for r in REGIMES for p in POOLS}
    assert all(name in CASES for name in COVERED) and len(SPECIAL) == len(CASES) - 36


@pytest.mark.slow
@pytest.mark.parametrize("name", COVERED)
def test_golden_table(name):
    table = run_table(CASES[name])
    gold = pd.read_csv(path(name))
    assert list(table.columns) == list(gold.columns)
    np.testing.assert_allclose(table.to_numpy(np.float64), gold.to_numpy(np.float64), rtol=1e-4, atol=1e-6)
