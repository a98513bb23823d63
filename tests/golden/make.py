"""Regenerates (or checks) the golden metrics tables: ``python -m tests.golden.make [--check] [names...]``.

With ``--check`` nothing is written: each case is run and compared with its golden file, and the largest
absolute and relative differences are printed (0 for a refactoring that leaves results unchanged); ``--strict``
also exits with status 1 when a case is outside rtol 1e-4 / atol 1e-6. It runs with the test suite's XLA settings
(tests/xla_flags.py) unless XLA_FLAGS is set: other settings round differently, which can move a k-NN count by one
sample.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.xla_flags import suite_xla_flags

# The files are written and checked with the test suite's XLA settings (optimisation level 0: a check compiles in
# about half the time of madloop's defaults, which the golden tables were written with until 2026-11-27); set
# before JAX starts.
os.environ.setdefault("XLA_FLAGS", suite_xla_flags())

from madloop.api import run_table  # noqa: E402
from tests.golden.cases import CASES  # noqa: E402

FOLDER = Path(__file__).parent


def path(name: str) -> Path:
    """The golden file of a case."""
    return FOLDER / f"{name}.csv"


def aligned(name: str, table: pd.DataFrame) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    """The golden file and the table's same columns, in the file's order; (None, table) when the table lacks a
    golden column or has another row count. Columns the table adds (a metric added after the file was written)
    are not compared: a new metric is tested by its own tests, and the golden files keep checking the old ones."""
    gold = pd.read_csv(path(name))
    if not set(gold.columns) <= set(table.columns) or len(gold) != len(table):
        return None, table
    return gold, table[list(gold.columns)]


def compare(name: str, table: pd.DataFrame) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / |b|) over the numeric columns of a case's table and its golden file."""
    gold, table = aligned(name, table)
    if gold is None:
        raise AssertionError(f"{name}: a golden column is missing or the rows differ: {list(table.columns)}")
    # float32 runs: 9 significant digits in the file identify the float32 value, so compare in float32.
    dtype = np.float64 if "loop.precision=float64" in CASES[name] else np.float32
    a, b = table.to_numpy(np.float64).astype(dtype), gold.to_numpy(np.float64).astype(dtype)
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a - b))
    rel = diff / np.maximum(np.abs(b), 1e-30)
    return float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))), float(
        np.nanmax(np.where(np.isnan(rel), np.inf, rel))
    )


RTOL, ATOL = 1e-4, 1e-6  # --strict: another CPU's rounding passes, a changed computation does not


def within_tolerance(name: str, table: pd.DataFrame) -> bool:
    """Whether a case's table matches its golden file within RTOL / ATOL (NaN where the file has NaN)."""
    gold, table = aligned(name, table)
    if gold is None:
        return False
    return bool(
        np.allclose(table.to_numpy(np.float64), gold.to_numpy(np.float64), rtol=RTOL, atol=ATOL, equal_nan=True)
    )


def main(argv: list[str]) -> int:
    check, strict = "--check" in argv, "--strict" in argv
    names = [a for a in argv if not a.startswith("--")] or list(CASES)
    worst, failed = 0.0, []
    for name in names:
        t0 = time.perf_counter()
        table = run_table(CASES[name])
        if check:
            diff, rel = compare(name, table)
            worst = max(worst, diff)
            if strict and not within_tolerance(name, table):
                failed.append(name)
            print(f"{name:45s} max abs diff {diff:.3g}  max rel diff {rel:.3g}  ({time.perf_counter() - t0:.1f} s)")
        else:
            table.to_csv(path(name), index=False, float_format="%.17g")
            print(f"{name:45s} {len(table)} rows  ({time.perf_counter() - t0:.1f} s)")
    if check:
        print(f"largest absolute difference over {len(names)} cases: {worst:.3g}")
    if failed:
        print(f"outside rtol={RTOL}, atol={ATOL}: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
