"""Replace vs accumulate vs accumulate-subsample on the ring of 8 (GMM, fully synthetic loop), and on a Gaussian
against the exact laws of the mean's error and the covariance (``madloop.theory.pool_moments``).

Usage: python experiments/pools.py [--generations 30] [--seeds 16] [--gaussian-seeds 2000] [--out pools.png]
Common random numbers: every policy starts from the same generation-0 real data for each seed.

Gaussian row: d = 2, n = 100 real samples at generation 0 and 100 synthetic per generation, unbiased estimator,
100 generations; E ||mu_g - mu||^2 / tr Sigma and E tr Sigma_g / tr Sigma (mean and 95% CI over seeds) with the
replace and accumulate laws as lines, and the median trace ratio (replace's paths collapse, accumulate's do not).
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import madloop  # noqa: E402
from madloop import theory  # noqa: E402
from madloop.report import summarize  # noqa: E402

POOLS = ("replace", "accumulate", "accumulate_subsample")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--gaussian-seeds", type=int, default=2000)
    p.add_argument("--gaussian-generations", type=int, default=100)
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
    gauss = gaussian_tables(a.gaussian_seeds, a.gaussian_generations)
    fig, grid = plt.subplots(2, 3, figsize=(12, 6.6))
    axes = grid[0]
    for ax, metric in zip(axes, ("recall", "modes", "sw2"), strict=True):
        for pool, table in tables.items():
            s = summarize(table, metric)
            ax.plot(s.index, s["mean"], label=pool)
            ax.fill_between(s.index, s["lo"], s["hi"], alpha=0.25)
        ax.set_title(metric)
        ax.set_xlabel("generation")
        ax.set_title(f"ring of 8, GMM, n = 128: {metric}", fontsize=9)
    axes[0].legend()
    draw_gaussian(grid[1], gauss, a.gaussian_generations)
    fig.suptitle(
        f"fully synthetic loop: ring of 8 ({a.seeds} seeds) and Gaussian d = 2 ({a.gaussian_seeds} seeds); 95% CI",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    last = pd.DataFrame(
        {pool: t[t.generation == a.generations][["recall", "modes", "sw2"]].mean() for pool, t in tables.items()}
    ).T
    print(f"generation {a.generations}, mean over seeds:\n{last.round(3).to_string()}")
    g = a.gaussian_generations
    for pool, table in gauss.items():
        last = table[table.generation == g]
        line = f"Gaussian {pool}, generation {g}: mean error {last['mean_err'].mean():.3f}"
        line += f", trace ratio mean {last['trace_ratio'].mean():.3f} median {last['trace_ratio'].median():.3g}"
        if pool in LAW_POOLS:
            t, m = theory.pool_moments(g, GAUSS_N, GAUSS_N, 2, pool)
            z = gap_in_se(table, t, m)
            line += f" (laws {m[-1]:.3f}, {t[-1]:.3f}; largest gap over all generations {z:.1f} SE)"
        print(line)
    print(f"figure: {a.out}")


# n = 100: the replace loop's mean trace is then carried by typical paths (at n = 10 its law, E = 1, is carried by
# paths too rare for 2000 seeds to sample by generation 100: the sample mean was 0.3 while the median was 2e-5).
GAUSS_N = 100
LAW_POOLS = ("replace", "accumulate")  # accumulate_subsample has no closed form here


def gaussian_tables(seeds: int, generations: int) -> dict[str, pd.DataFrame]:
    """The Gaussian loop per pool: {pool: table with mean_err = ||mu_g - mu||^2 / tr Sigma}."""
    out = {}
    for pool in POOLS:
        t = madloop.run_table(
            [
                "data=gaussian",
                "model=gaussian",
                "model.estimator=unbiased",
                f"regime.pool={pool}",
                f"regime.n_real={GAUSS_N}",
                f"regime.n_synth={GAUSS_N}",
                f"loop.generations={generations}",
                f"loop.seeds={seeds}",
                "eval.metrics=[trace_ratio,mean_sqerr]",
            ]
        )
        out[pool] = t.assign(mean_err=t["mean_sqerr"] / 2.0)  # tr Sigma = d = 2
    return out


def gap_in_se(table: pd.DataFrame, t: np.ndarray, m: np.ndarray) -> float:
    """The largest |simulation mean - law| over generations and both moments, in standard errors."""
    stats = table.groupby("generation")[["trace_ratio", "mean_err"]]
    mean, se = stats.mean(), stats.std() / np.sqrt(table.seed.nunique())
    return float(
        max(
            (abs(mean["trace_ratio"] - t) / se["trace_ratio"]).max(), (abs(mean["mean_err"] - m) / se["mean_err"]).max()
        )
    )


def draw_gaussian(axes, gauss: dict[str, pd.DataFrame], generations: int) -> None:
    """Mean error, mean trace ratio (with the laws) and median trace ratio per pool."""
    gens = np.arange(generations + 1)
    for i, (pool, table) in enumerate(gauss.items()):
        for ax, metric in zip(axes[:2], ("mean_err", "trace_ratio"), strict=True):
            s = summarize(table, metric)
            ax.plot(s.index, s["mean"], color=f"C{i}", label=pool)
            ax.fill_between(s.index, s["lo"], s["hi"], color=f"C{i}", alpha=0.25)
        med = table.groupby("generation")["trace_ratio"].median()
        axes[2].plot(med.index, med.values, color=f"C{i}", label=pool)
        if pool in LAW_POOLS:
            t, m = theory.pool_moments(generations, GAUSS_N, GAUSS_N, 2, pool)
            axes[0].plot(gens, m, "k--", lw=1)
            axes[1].plot(gens, t, "k--", lw=1)
    axes[0].axhline(1 / GAUSS_N + np.pi**2 / 6 / GAUSS_N, color="grey", lw=0.8, ls=":")
    axes[0].plot([], [], "k--", lw=1, label="exact law (theory.pool_moments)")
    axes[0].plot([], [], color="grey", lw=0.8, ls=":", label="bound (1/n_r + (π²/6)/n)")
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=7, loc="lower right")
    axes[2].set_yscale("log")
    titles = ("E‖μ_g − μ‖² / tr Σ", "E tr Σ_g / tr Σ", "median tr Σ_g / tr Σ")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(f"Gaussian d = 2, n = {GAUSS_N}: {title}", fontsize=9)
        ax.set_xlabel("generation")


if __name__ == "__main__":
    main()
