"""Bertrand et al.'s iterative retraining with a neural family: generation 0 against the last, per ratio.

Usage: python experiments/bertrand_ratio.py [--preset NAME] [--csv FILE] [overrides...]

Runs one of the ratio presets, each a fixed real set plus lambda x n_real synthetic samples of the previous
generation, fine-tuned from it, with lambda = n_synth / n_real swept in one program:
- bertrand_flow_matching (the default): OT-CFM on the ring of 8, lambda in {0, 0.25, 4}, 8 seeds x 8 generations;
- bertrand_edm: EDM (Karras et al.'s preconditioning, Heun's sampler) on the ring of 8, the same setup;
- bertrand_digits_flow_matching, bertrand_digits_edm: the same families on scikit-learn's digits (the MLP),
  lambda in {0, 0.25, 1, 4}, 4 seeds x 8 generations, image metrics in the digits classifier's features.

It prints, per ratio, each of the preset's metrics at generation 0 and at the last generation (mean and 95%
t-interval over seeds) and the paired change last - 0 (mean and 95% interval of the per-seed differences:
generation 0 is the same model for every ratio of a seed, so the change is the effect of the loop), and writes every
run's metrics to docs/data/<preset>.csv.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from scipy.special import stdtrit

import madloop
from madloop.report import summarize


def paired_change(table: pd.DataFrame, metric: str, last: int) -> tuple[float, float]:
    """Mean and 95% half-width of the per-seed difference metric[last] - metric[0]."""
    wide = table.pivot(index="seed", columns="generation", values=metric)
    diff = (wide[last] - wide[0]).dropna().to_numpy()
    half = diff.std(ddof=1) / np.sqrt(len(diff)) * stdtrit(len(diff) - 1, 0.975)
    return float(diff.mean()), float(half)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="bertrand_flow_matching")
    p.add_argument("--csv", default=None, help="default: docs/data/<preset>.csv")
    a, rest = p.parse_known_args()
    csv = a.csv or f"docs/data/{a.preset}.csv"
    cfg = madloop.compose([f"experiment={a.preset}", *rest])
    t0 = time.perf_counter()
    table = madloop.run_table([f"experiment={a.preset}", "plots=false", *rest])
    seconds = time.perf_counter() - t0
    table = table.assign(ratio=table["n_synth"] / cfg.regime.n_real)
    table.to_csv(csv, index=False)
    last = int(table["generation"].max())
    print(f"{seconds:.0f} s; {table['seed'].nunique()} seeds; generation 0 -> {last}: mean [95% CI]; change [95% CI]")
    for ratio, t in table.groupby("ratio"):
        cells = []
        for m in cfg.eval.metrics:
            s = summarize(t, m)
            change, half = paired_change(t, m, last)
            cells.append(
                f"{m} {s['mean'][0]:.4g} [{s['lo'][0]:.4g}, {s['hi'][0]:.4g}] -> "
                f"{s['mean'][last]:.4g} [{s['lo'][last]:.4g}, {s['hi'][last]:.4g}], change {change:+.3g} +- {half:.2g}"
            )
        print(f"lambda = {ratio:g}:\n  " + "\n  ".join(cells))
    print(f"wrote {csv}")


if __name__ == "__main__":
    main()
