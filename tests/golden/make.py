"""Regenerates (or checks) the golden metrics tables: ``python -m tests.golden.make [--check] [names...]``.

With ``--check`` nothing is written: each case is run and compared with its golden file, and the largest
absolute and relative differences are printed (0 for a refactoring that leaves results unchanged); ``--strict``
also exits with status 1 when a case is outside rtol 1e-4 / atol 1e-6 (but for at most one cell in 200 within 2e-3,
another CPU's rounding: see ``LOOSE_RTOL``). It runs with the test suite's XLA settings
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
# ... except in a few cells: one k-NN point crossing a radius moves a PRDC density by 1 / (k m) (0.935 -> 0.934), and
# a collapsed GMM's NLL moved 4e-4 relative, between the Intel machines that wrote the files and an AMD EPYC (AVX2,
# no AVX-512) one. A changed computation moves many cells; another CPU's rounding moved one per table.
LOOSE_RTOL, LOOSE_SHARE = 2e-3, 0.005  # at most max(1, 0.5% of the cells) beyond RTOL / ATOL, each within 2e-3


def outside(name: str, table: pd.DataFrame) -> list[str] | None:
    """The cells of a case's table beyond RTOL / ATOL of its golden file, as "column[row]: value (file)" (NaN must
    be where the file has NaN); None when a golden column is missing or the rows differ."""
    gold, table = aligned(name, table)
    if gold is None:
        return None
    a, b = table.to_numpy(np.float64), gold.to_numpy(np.float64)
    bad = ~np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True)
    return [f"{gold.columns[j]}[{i}]: {a[i, j]:.9g} ({b[i, j]:.9g})" for i, j in zip(*np.nonzero(bad), strict=True)]


def within_tolerance(name: str, table: pd.DataFrame) -> bool:
    """Whether a case's table matches its golden file: every cell within RTOL / ATOL (NaN where the file has NaN),
    except at most max(1, LOOSE_SHARE of the cells) within LOOSE_RTOL (another CPU's rounding; see above)."""
    gold, table = aligned(name, table)
    cells = outside(name, table)
    if gold is None or cells is None:
        return False
    a, b = table.to_numpy(np.float64), gold.to_numpy(np.float64)
    loose = np.isclose(a, b, rtol=LOOSE_RTOL, atol=ATOL, equal_nan=True)
    return bool(loose.all()) and len(cells) <= max(1, int(LOOSE_SHARE * a.size))


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
            for cell in (outside(name, table) or [])[:5]:
                print(f"    beyond rtol={RTOL}, atol={ATOL}: {cell}")
        else:
            table.to_csv(path(name), index=False, float_format="%.17g")
            print(f"{name:45s} {len(table)} rows  ({time.perf_counter() - t0:.1f} s)")
    if check:
        print(f"largest absolute difference over {len(names)} cases: {worst:.3g}")
    if failed:
        print(f"outside rtol={RTOL}, atol={ATOL} (but for a few cells within {LOOSE_RTOL}): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
