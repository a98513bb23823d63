"""Replace vs accumulate vs accumulate-subsample on the ring of 8 (GMM, fully synthetic loop).

Usage: python experiments/pools.py [--generations 30] [--seeds 16] [--out pools.png]
Common random numbers: every policy starts from the same generation-0 real data for each seed.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import madloop  # noqa: E402
from madloop.report import summarize  # noqa: E402

POOLS = ("replace", "accumulate", "accumulate_subsample")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--out", default="pools.png")
    a = p.parse_args()
    tables = {}
    for pool in POOLS:
        tables[pool] = madloop.run_table(
            [
                f"regime.pool={pool}",
                f"loop.generations={a.generations}",
                f"loop.seeds={a.seeds}",
                "regime.n_real=128",
                "regime.n_synth=128",
                "eval.metrics=[recall,modes,sw2]",
            ]
        )
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, metric in zip(axes, ("recall", "modes", "sw2"), strict=True):
        for pool, table in tables.items():
            s = summarize(table, metric)
            ax.plot(s.index, s["mean"], label=pool)
            ax.fill_between(s.index, s["lo"], s["hi"], alpha=0.25)
        ax.set_title(metric)
        ax.set_xlabel("generation")
    axes[0].legend()
    fig.suptitle(f"ring of 8, GMM, fully synthetic, n = 128, {a.seeds} seeds (mean, 95% CI)", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    last = pd.DataFrame(
        {pool: t[t.generation == a.generations][["recall", "modes", "sw2"]].mean() for pool, t in tables.items()}
    ).T
    print(f"generation {a.generations}, mean over seeds:\n{last.round(3).to_string()}")
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
