"""Benchmark: each metric group's share of a loop's steady time, and YNNPACK's reductions on and off.

For every metric group of an experiment (the default one unless overrides are given) the loop runs with that
group's metrics alone, compiled twice in this one process: with the compiler options madloop gives a program
that computes pairwise sample metrics (``madloop._xla.program_options``: YNNPACK's reductions on jaxlib 0.10's CPU) and
without them (XLA's own reduction loops, the reference). Each row prints both steady times (median of
``--repeats`` calls after a first one), their ratio, and the largest relative difference between the two tables
(the same computation summed in another order: float32 rounding, amplified where an estimate cancels, e.g. MMD).
The held-out statistics (a separate small program) are computed with madloop's options in both.

Usage: python benchmarks/metric_groups.py [--repeats 3] [overrides ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import jax
import numpy as np

import madloop
from madloop import _xla
from madloop import metrics as M
from madloop.engine import Programs, Result, Simulation


def steady(sim: Simulation, repeats: int) -> tuple[float, Result]:
    """The median of ``repeats`` calls after a first (compiling) one, and the last result."""
    result = sim()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = sim()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| / |b| elementwise (b = 0: against 1e-30)."""
    return np.abs(a - b) / np.maximum(np.abs(b), 1e-30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args()
    names = Simulation(madloop.compose(a.overrides)).loop.names
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(M.group_of(name).name, []).append(name)
    print(f"# {platform.machine()} {os.cpu_count()} cores; {jax.devices()[0].device_kind}; jax {jax.__version__}")
    print(f"# overrides: {' '.join(a.overrides) or '(the default experiment)'}; median of {a.repeats} steady calls")
    print("| metric group | pairwise | steady, madloop's options (s) | steady, XLA's reductions (s) | ratio "
          "| max relative difference |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for group, members in groups.items():
        cfg = madloop.compose([*a.overrides, f"eval.metrics=[{','.join(members)}]"])
        ours = Programs(cfg)
        plain = Programs(cfg)
        plain.options = None  # before any program is built: XLA's own reductions
        t_ours, r_ours = steady(Simulation(cfg, ours), a.repeats)
        t_plain, r_plain = steady(Simulation(cfg, plain), a.repeats)
        rel = max(float(np.nanmax(relative(r_ours.metrics[k], r_plain.metrics[k]))) for k in members)
        pairwise = M.needs_pairwise(tuple(members))
        option = "YNNPACK reductions" if ours.options == _xla.REDUCTIONS else "none"
        print(f"| {group} ({', '.join(members)}) | {'yes' if pairwise else 'no'} ({option}) | {t_ours:.2f} | "
              f"{t_plain:.2f} | {t_plain / t_ours:.2f}x | {rel:.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
