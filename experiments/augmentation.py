"""MAD's synthetic augmentation loop against the fully synthetic loop: does a fixed real set prevent the
degradation, or only delay it? Ring of 8, GMM, 64 real samples, synthetic-to-real ratios 1, 4 and 16.

Usage: python experiments/augmentation.py [--seeds 16] [--generations 100] [--out docs/augmentation.png]

Runs ``experiment=mad_augmentation`` (n_synth a count sweep in one program) and the fully synthetic loop at
n_synth = 64, and draws recall, modes, sw2 and the held-out nll (mean and 95% CI over seeds) per generation.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import madloop  # noqa: E402
from madloop.report import summarize  # noqa: E402

METRICS = ("recall", "modes", "sw2", "nll")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--out", default="augmentation.png")
    a = p.parse_args()
    common = ["experiment=mad_augmentation", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    aug = madloop.run_table(common)
    full = madloop.run_table([*common, "regime=fully_synthetic", "regime.n_synth=64", "sweep.regime.n_synth=null"])
    seconds = time.perf_counter() - t0
    runs = {"fully synthetic, 64 synthetic": full}
    runs |= {f"augmentation, 64 real + {n} synthetic": part for n, part in aug.groupby("n_synth")}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4.0 * len(METRICS), 3.4))
    for ax, metric in zip(axes, METRICS, strict=True):
        for i, (label, table) in enumerate(runs.items()):
            s = summarize(table, metric)
            ax.plot(s.index, s["mean"], color=f"C{i}", label=label)
            ax.fill_between(s.index, s["lo"], s["hi"], color=f"C{i}", alpha=0.2)
        ax.set_title(metric)
        ax.set_xlabel("generation")
        if metric == "nll":
            ax.set_yscale("symlog")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"ring of 8, GMM, {a.seeds} seeds: a fixed real set of 64 against the fully synthetic loop", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    gens = [0, 1, 10, 50, a.generations]
    rows = {
        (label, g): table[table.generation == g][list(METRICS)].mean() for label, table in runs.items() for g in gens
    }
    print(pd.DataFrame(rows).T.round(3).to_string())
    print(f"{seconds:.1f} s (compilation included); figure: {a.out}")


if __name__ == "__main__":
    main()
