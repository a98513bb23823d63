"""Bertrand et al.'s iterative retraining with a flow matching model: generation 0 against the last, per ratio.

Usage: python experiments/bertrand_flow_matching.py [--csv docs/data/bertrand_flow_matching.csv] [overrides...]

Runs experiment=bertrand_flow_matching (OT-CFM on the ring of 8; 256 fixed real samples plus lambda x 256
synthetic samples of the previous generation, fine-tuned from it; lambda in {0, 0.25, 4} swept in one program)
and prints, per ratio, each metric at generation 0 and at the last generation (mean and 95% t-interval over seeds)
and the paired change last - 0 (mean and 95% interval of the per-seed differences: generation 0 is the same model
for every ratio of a seed, so the change is the effect of the loop).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import stdtrit

import madloop
from madloop.report import summarize

METRICS = ("sw2", "mmd_multi", "precision", "recall")


def paired_change(table: pd.DataFrame, metric: str, last: int) -> tuple[float, float]:
    """Mean and 95% half-width of the per-seed difference metric[last] - metric[0]."""
    wide = table.pivot(index="seed", columns="generation", values=metric)
    diff = (wide[last] - wide[0]).dropna().to_numpy()
    half = diff.std(ddof=1) / np.sqrt(len(diff)) * stdtrit(len(diff) - 1, 0.975)
    return float(diff.mean()), float(half)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", default="docs/data/bertrand_flow_matching.csv")
    a, rest = p.parse_known_args()
    t0 = time.perf_counter()
    table = madloop.run_table(["experiment=bertrand_flow_matching", "plots=false", *rest])
    seconds = time.perf_counter() - t0
    cfg = madloop.compose(["experiment=bertrand_flow_matching", *rest])
    table = table.assign(ratio=table["n_synth"] / cfg.regime.n_real)
    table.to_csv(a.csv, index=False)
    last = int(table["generation"].max())
    print(f"{seconds:.0f} s; {table['seed'].nunique()} seeds; generation 0 -> {last}: mean [95% CI]; change [95% CI]")
    for ratio, t in table.groupby("ratio"):
        cells = []
        for m in METRICS:
            s = summarize(t, m)
            change, half = paired_change(t, m, last)
            cells.append(
                f"{m} {s['mean'][0]:.4g} [{s['lo'][0]:.4g}, {s['hi'][0]:.4g}] -> "
                f"{s['mean'][last]:.4g} [{s['lo'][last]:.4g}, {s['hi'][last]:.4g}], change {change:+.3g} +- {half:.2g}"
            )
        print(f"lambda = {ratio:g}:\n  " + "\n  ".join(cells))
    print(f"wrote {a.csv}")


if __name__ == "__main__":
    main()
