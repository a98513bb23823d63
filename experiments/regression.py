"""Regression collapse (Dohmatob et al. 2024; Gerstgrasser et al. 2024): least squares refitted on its own labels
under replace, accumulate (with and without the real rows) and fresh data, with law 12 overlaid.

Usage: python experiments/regression.py [--seeds 1000] [--generations 100] [--out docs/regression.png]
    [--csv docs/data/regression.csv] [--from-csv] (redraws a saved table)

Runs ``experiment=regression_collapse`` (d = 10 Gaussian features, sigma = 1, T = 100 rows per generation) in five
loops: fully synthetic replace and accumulate, synthetic augmentation (the real rows stay) with accumulate and with
replace (no closed form), fresh data replace; and the fully synthetic replace loop with the label correction
gamma in {0.1, 0.5} (law 12's corrected form). Prints each law's largest gap in standard errors over generations.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import madloop  # noqa: E402
from madloop import theory  # noqa: E402

LOOPS = {  # label: (regime, pool, extra overrides, gamma)
    "fully synthetic, replace": ("fully_synthetic", "replace", [], 0.0),
    "fully synthetic, accumulate": ("fully_synthetic", "accumulate", [], 0.0),
    "augmentation, accumulate": ("synthetic_augmentation", "accumulate", [], 0.0),
    "augmentation, replace": ("synthetic_augmentation", "replace", [], 0.0),
    "fresh data, replace": ("fresh_data", "replace", [], 0.0),
    "fully synthetic, replace, γ = 0.1": ("fully_synthetic", "replace", ["correction.gamma=0.1"], 0.1),
    "fully synthetic, replace, γ = 0.5": ("fully_synthetic", "replace", ["correction.gamma=0.5"], 0.5),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=1000)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--out", default="regression.png")
    p.add_argument("--csv", default="regression.csv")
    p.add_argument("--from-csv", action="store_true")
    a = p.parse_args()
    base = ["experiment=regression_collapse", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    cfg = madloop.compose(base)
    d, t = cfg.data.dim, cfg.regime.n_real
    if a.from_csv:
        draw(pd.read_csv(a.csv), theory.regression_accumulate_bound(d, t), d, t, a)
        return
    rows, t0 = [], time.perf_counter()
    for label, (regime, pool, extra, gamma) in LOOPS.items():
        corrected = ["correction=toward_truth", *extra] if gamma > 0 else []
        table = madloop.run_table([*base, f"regime={regime}", f"regime.pool={pool}", *corrected])
        stats = table.groupby("generation")["test_error"]
        out = pd.DataFrame({"loop": label, "mean": stats.mean(), "se": stats.std(ddof=1) / np.sqrt(a.seeds)})
        out["median"] = stats.median()
        try:
            out["law"] = theory.regression_test_error(a.generations, d, t, t, regime, pool, gamma=gamma)
        except ValueError:  # no closed form for this loop
            out["law"] = np.nan
        rows.append(out.reset_index())
    seconds = time.perf_counter() - t0
    data = pd.concat(rows, ignore_index=True)
    data.to_csv(a.csv, index=False)
    print(f"{len(LOOPS)} loops x {a.seeds} seeds x {a.generations} generations: {seconds:.0f} s (compilation included)")
    print(f"{'loop':36s} {'g=0':>8s} {'g=10':>8s} {'g=G':>8s} {'law g=G':>8s} {'max |z|':>8s}")
    for label, part in data.groupby("loop", sort=False):
        z = np.abs(part["mean"] - part["law"]) / part["se"]
        m = part["mean"].to_numpy()
        print(
            f"{label:36s} {m[0]:8.4f} {m[10]:8.4f} {m[-1]:8.4f} {part['law'].iloc[-1]:8.4f} "
            f"{z.max() if z.notna().any() else float('nan'):8.2f}"
        )
    bound = theory.regression_accumulate_bound(d, t)
    print(f"Gerstgrasser et al.'s bound sigma^2 d / (T - d - 1) pi^2 / 6 = {bound:.4f}")
    draw(data, bound, d, t, a)


def draw(data: pd.DataFrame, bound: float, d: int, t: int, a: argparse.Namespace) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, labels in zip(axes, (list(LOOPS)[:5], [k for k in LOOPS if k != "fully synthetic, replace"]), strict=True):
        for i, label in enumerate(labels):
            part = data[data["loop"] == label]
            color = f"C{list(LOOPS).index(label)}"
            ax.plot(part["generation"], part["mean"], color=color, label=label)
            ax.fill_between(part["generation"], part["mean"] - 1.96 * part["se"], part["mean"] + 1.96 * part["se"],
                            color=color, alpha=0.25)  # fmt: skip
            if part["law"].notna().all():
                ax.plot(part["generation"], part["law"], color="k", ls=":", lw=1, label="law 12" if i == 0 else None)
        ax.set_xlabel("generation")
        ax.set_ylabel("test error E(x·(w − w*))²")
    axes[1].axhline(bound, color="grey", ls="--", lw=1, label="Gerstgrasser et al.'s bound")
    axes[1].set_ylim(0, 0.8)  # room for the legend above the curves
    axes[0].set_yscale("log")
    axes[0].set_title("every loop (log scale)", fontsize=10)
    axes[1].set_title("the bounded loops", fontsize=10)
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(
        f"least squares on its own labels: d = {d}, T = {t}, σ = 1, {a.seeds} seeds, mean and 95% CI; law 12 dotted",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}; table: {a.csv}")


if __name__ == "__main__":
    main()
