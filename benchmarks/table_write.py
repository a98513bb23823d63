"""Benchmark: writing and reading a sweep-scale metrics table, CSV (pandas) against Parquet (pyarrow).

The table has the shape of docs/results.md's phase map (400 grid points x 100 seeds x 201 generations = 8.04
million rows; columns seed, lam, real_weight, generation, trace_ratio, finite), with the same dtypes as
``Result.table()``. The reference is pandas' ``to_csv`` / ``read_csv``, what ``output.format=csv`` (the default) runs;
``output.format=parquet`` runs ``to_parquet`` / ``read_parquet`` (``madloop.report.write_table`` and
``read_table``). Both round trips are checked: the Parquet table reads back equal bit for bit, the CSV one to its
printed precision. ``--every`` shows the rows an ``eval.every`` stride keeps (generations 0, every, ..., 200).

Usage: python benchmarks/table_write.py [--points 400] [--seeds 100] [--generations 200] [--every 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from madloop import report


def phase_map_table(points: int, seeds: int, generations: int, every: int) -> pd.DataFrame:
    """A table of the phase map's shape: knob-major runs, a trace ratio that decays to a per-point fixed point."""
    rng = np.random.default_rng(0)
    side = int(np.sqrt(points))
    lam = np.repeat(np.linspace(0.6, 1.0, side), side)
    weight = np.tile(np.geomspace(0.1, 10, side), side)
    gens = np.unique(np.append(np.arange(0, generations + 1, every), generations))
    runs = points * seeds
    fixed = np.repeat(weight / (weight + 1 - lam), seeds)  # [runs]
    trace = fixed[:, None] + (1 - fixed[:, None]) * np.exp(-gens[None, :] / 20.0)
    trace = trace * rng.lognormal(0.0, 0.1, size=trace.shape)
    e = len(gens)
    return pd.DataFrame(
        {
            "seed": np.repeat(np.tile(np.arange(seeds), points), e),
            "lam": np.repeat(np.repeat(lam, seeds), e),
            "real_weight": np.repeat(np.repeat(weight, seeds), e),
            "generation": np.tile(gens, runs),
            "trace_ratio": trace.reshape(-1).astype(np.float32).astype(np.float64),
            "finite": np.ones(runs * e, np.int64),
        }
    )


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=400)
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--generations", type=int, default=200)
    p.add_argument("--every", type=int, default=1)
    a = p.parse_args()
    table = phase_map_table(a.points, a.seeds, a.generations, a.every)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores; pandas {pd.__version__}")
    print(f"# table: {len(table):,} rows x {table.shape[1]} columns (eval.every={a.every})")
    with tempfile.TemporaryDirectory() as folder:
        rows = []
        for fmt in ("csv", "parquet"):
            path = Path(folder) / f"metrics.{fmt}"
            write, _ = timed(lambda path=path: report.write_table(table, path))
            read, back = timed(lambda path=path: report.read_table(path))
            if fmt == "parquet":
                pd.testing.assert_frame_equal(back, table)  # bit for bit
            else:
                pd.testing.assert_frame_equal(back, table, rtol=1e-15)  # repr round trip of float64
            rows.append((fmt, write, read, path.stat().st_size / 2**20))
    print("| format | write (s) | read (s) | size (MiB) | write ratio vs csv |")
    print("|---|---|---|---|---|")
    for fmt, write, read, size in rows:
        print(f"| {fmt} | {write:.2f} | {read:.2f} | {size:.0f} | {rows[0][1] / write:.1f}x |")
    print("agreement: both tables read back equal to the written one (Parquet bit for bit, CSV within 1e-15)")


if __name__ == "__main__":
    main()
