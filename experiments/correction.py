"""Self-correction (Gillman et al. 2024), the toy expert ``correction=toward_truth``: correction strength against
stability in three loops.

Usage: python experiments/correction.py [--seeds 16] [--generations 30] [--law-seeds 500] [--law-generations 50]
    [--out docs/correction.png] [--csv docs/data/correction.csv]

- Ring of 8 (``experiment=correction``): a GMM refitted on its own samples, each moved a fraction gamma toward its
  nearest mode's mean; gamma in {0, 0.1, 0.5, 1} vmapped; recall, precision, modes.
- Supervised (``experiment=regression_collapse``, fully synthetic replace): labels moved toward w* . x, gamma in
  {0, 0.05, 0.1, 0.25, 0.5}; the exact expert stabilises the loop for every gamma > 0 (law 12's corrected form).
- Gaussian (d = 2, n = 100, unbiased, fully synthetic replace): samples moved toward the truth's mean; the mean is
  pulled back but the covariance shrinks as (1 - gamma)^(2g) (law 13).
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

SUPERVISED_GAMMA = [0.0, 0.05, 0.1, 0.25, 0.5]
GAUSSIAN_GAMMA = [0.0, 0.02, 0.05, 0.1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--law-seeds", type=int, default=500)
    p.add_argument("--law-generations", type=int, default=50)
    p.add_argument("--out", default="correction.png")
    p.add_argument("--csv", default="correction.csv")
    a = p.parse_args()
    t0 = time.perf_counter()
    ring = madloop.run_table(["experiment=correction", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"])
    t1 = time.perf_counter()
    g = a.law_generations
    law_runs = [f"loop.seeds={a.law_seeds}", f"loop.generations={g}", "correction=toward_truth"]
    supervised = madloop.run_table(
        ["experiment=regression_collapse", *law_runs, f"sweep.correction.gamma={SUPERVISED_GAMMA}"]
    )
    gaussian = madloop.run_table(
        ["data=gaussian", "model=gaussian", "model.estimator=unbiased", "regime.n_real=100", "regime.n_synth=100"]
        + [*law_runs, f"sweep.correction.gamma={GAUSSIAN_GAMMA}", "eval=closed_form"]
    )
    t2 = time.perf_counter()
    print(f"ring of 8: {a.seeds} seeds x {a.generations} generations x 4 gammas, {t1 - t0:.0f} s; "
          f"laws: {t2 - t1:.0f} s (compilation included)")  # fmt: skip
    rows = []
    for name, table, metrics in (
        ("ring8", ring, ["recall", "precision", "modes", "sw2", "mmd_local"]),
        ("supervised", supervised, ["test_error"]),
        ("gaussian", gaussian, ["trace_ratio", "mean_sqerr"]),
    ):
        stats = table.groupby(["gamma", "generation"])[metrics].agg(["mean", "sem"])
        stats.columns = [f"{m}_{s}" for m, s in stats.columns]
        rows.append(stats.reset_index().assign(loop=name))
    data = pd.concat(rows, ignore_index=True)
    for gamma, part in data[data.loop == "supervised"].groupby("gamma"):
        law = theory.regression_test_error(g, 10, 100, 100, gamma=gamma)
        data.loc[part.index, "law"] = law
    for gamma, part in data[data.loop == "gaussian"].groupby("gamma"):
        law_t, law_m = theory.corrected_gaussian_moments(g, 100, 100, gamma)
        data.loc[part.index, "law"] = law_t
        data.loc[part.index, "law_mean_sqerr"] = 2 * law_m  # tr Sigma = 2
    data.to_csv(a.csv, index=False)
    report(data, a)
    draw(data, a)


def report(data: pd.DataFrame, a: argparse.Namespace) -> None:
    ring = data[(data.loop == "ring8") & (data.generation == a.generations)]
    print(f"ring of 8 at generation {a.generations}:")
    print(ring[["gamma", "recall_mean", "precision_mean", "modes_mean", "sw2_mean"]].round(3).to_string(index=False))
    for loop, metric in (("supervised", "test_error"), ("gaussian", "trace_ratio"), ("gaussian", "mean_sqerr")):
        law = "law" if metric != "mean_sqerr" else "law_mean_sqerr"
        part = data[data.loop == loop]
        z = (part[f"{metric}_mean"] - part[law]) / part[f"{metric}_sem"]
        end = part[part.generation == a.law_generations]
        cells = ", ".join(f"γ={r.gamma:g}: {r[f'{metric}_mean']:.4g} (law {r[law]:.4g})" for _, r in end.iterrows())
        print(f"{loop} {metric} at generation {a.law_generations}: {cells}; max |z| = {np.nanmax(np.abs(z)):.2f}")


def draw(data: pd.DataFrame, a: argparse.Namespace) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9))
    ring = data[data.loop == "ring8"]
    for ax, metric in zip(axes[:2], ("recall", "precision"), strict=True):
        for gamma, part in ring.groupby("gamma"):
            ax.plot(part["generation"], part[f"{metric}_mean"], label=f"γ = {gamma:g}")
        ax.set_title(f"ring of 8, GMM: {metric}", fontsize=9)
        ax.set_xlabel("generation")
    axes[0].legend(fontsize=7)
    for ax, loop, metric, title in (
        (axes[2], "supervised", "test_error", "supervised (d = 10, T = 100): test error"),
        (axes[3], "gaussian", "trace_ratio", "Gaussian (d = 2, n = 100): tr Σ_g / tr Σ"),
    ):
        for i, (gamma, part) in enumerate(data[data.loop == loop].groupby("gamma")):
            ax.plot(part["generation"], part[f"{metric}_mean"], color=f"C{i}", label=f"γ = {gamma:g}")
            ax.plot(part["generation"], part["law"], color="k", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_title(title + " (law dotted)", fontsize=9)
        ax.set_xlabel("generation")
        ax.legend(fontsize=7)
    fig.suptitle("correction toward the truth: strength γ against stability", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}; table: {a.csv}")


if __name__ == "__main__":
    main()
