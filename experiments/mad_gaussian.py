"""MAD's Gaussian fully synthetic loop against its closed forms: mean vs median collapse, the random walk of the
mean, and how sampling bias lam < 1 speeds the collapse.

Usage: python experiments/mad_gaussian.py [--seeds 2000] [--generations 100] [--out docs/mad_gaussian.png]

Runs ``experiment=mad_gaussian`` (unbiased estimator, lam in {1, 0.95, 0.9} in one program) and the same loop
with the MLE estimator at lam = 1, and draws, per generation, the simulation's mean and median over seeds with
the laws of docs/theory.md (d = 2, n samples per generation, k = n - 1):
    E tr(Sigma_g) / tr(Sigma) = lam^g (unbiased), ((n - 1) / n)^(g + 1) (MLE);
    E log det(Sigma_g) / det(Sigma) = (g + 1) E log det W + g d log lam, W ~ Wishart_d(k, I) / k (unbiased),
    whose exp(. / d) is the median of the geometric-mean variance ratio (det ratio)^(1/d) in the normal
    approximation of the sum of log-determinant steps;
    E ||mu_g - mu||^2 = (tr Sigma / n) sum_{j=0..g} lam^j (unbiased), with ((n - 1) / n)^j for the MLE.
It prints, at a few generations, each law of a mean next to the simulated mean with its standard error (z =
difference / SE); the log-determinant panel shows medians, because a few float32 paths collapse to det = 0.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop.theory import expected_log_det_wishart  # noqa: E402


def laws(g: np.ndarray, lam: float, n: int, d: int, estimator: str) -> dict[str, np.ndarray]:
    """The closed forms per generation g (truth N(0, I_d), so tr Sigma = d)."""
    if estimator == "mle":
        r = (n - 1) / n
        return {
            "trace_ratio": r ** (g + 1),
            "mean_sqerr": d / n * (1 - r ** (g + 1)) / (1 - r),
        }
    elog = expected_log_det_wishart(d, n - 1)
    return {
        "trace_ratio": lam**g,
        "mean_sqerr": d / n * np.array([np.sum(lam ** np.arange(j + 1)) for j in g]),
        "logdet_ratio": (g + 1) * elog + g * d * np.log(lam),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2000)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--out", default="mad_gaussian.png")
    a = p.parse_args()
    common = ["experiment=mad_gaussian", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    unbiased = madloop.run_table(common)
    mle = madloop.run_table([*common, "model.estimator=mle", "sweep.bias.lam=null"])
    seconds = time.perf_counter() - t0
    cfg = madloop.compose(common)
    n, d = cfg.regime.n_real, cfg.data.dim
    g = np.arange(a.generations + 1)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    runs = [(f"unbiased, λ = {lam:g}", part, lam, "unbiased") for lam, part in unbiased.groupby("lam")][::-1]
    runs.append(("MLE, λ = 1", mle, 1.0, "mle"))
    rows = []
    for i, (label, part, lam, est) in enumerate(runs):
        colour = f"C{i}"
        law = laws(g, lam, n, d, est)
        by = part.groupby("generation")
        tr = by["trace_ratio"]
        axes[0].plot(g, tr.mean(), color=colour, label=f"{label}: mean tr ratio")
        axes[0].plot(g, law["trace_ratio"], color="k", lw=0.8, ls=":")
        if "logdet_ratio" in law:  # the typical path: the geometric-mean variance ratio (det ratio)^(1/d)
            gm = np.exp(part["logdet_ratio"] / d).groupby(part["generation"]).median()
            axes[0].plot(g, gm, color=colour, ls="--", label="median (det ratio)^(1/d)")
            axes[0].plot(g, np.exp(law["logdet_ratio"] / d), color="k", lw=0.8, ls="-.")
        sq = by["mean_sqerr"]
        axes[1].plot(g, sq.mean(), color=colour, label=label)
        axes[1].plot(g, law["mean_sqerr"], color="k", lw=0.8, ls=":")
        if "logdet_ratio" in law:  # the median: robust to the few float32 paths whose det rounds to 0 (-inf)
            ld = by["logdet_ratio"]
            axes[2].plot(g, ld.median(), color=colour, label=label)
            axes[2].plot(g, law["logdet_ratio"], color="k", lw=0.8, ls=":")
            dead = int((~np.isfinite(part.loc[part.generation == a.generations, "logdet_ratio"])).sum())
            print(f"{label}: {dead} of {a.seeds} paths have det Σ_G = 0 in float32 at G = {a.generations}")
        for gen in (1, 10, 50, a.generations):
            for metric in ("trace_ratio", "mean_sqerr", "logdet_ratio"):
                if metric in law:
                    x = part.loc[part.generation == gen, metric]
                    if not np.all(np.isfinite(x)):
                        continue  # (the mean of a law with -inf paths is not estimable; see the median panel)
                    rows.append((label, gen, metric, law[metric][gen], x.mean(), x.std(ddof=1) / np.sqrt(len(x))))
    axes[0].set_yscale("log")
    axes[0].set_title(
        "mean of tr Σ_g / tr Σ (solid; law ⋯) and median of\n"
        "(det Σ_g / det Σ)^(1/d) (dashed; law exp(E log det / d) -·-)",
        fontsize=9,
    )
    axes[1].set_title("‖μ_g − μ‖²: mean over seeds (law ⋯)")
    axes[2].set_title("log det Σ_g / det Σ: median over seeds\n(law of the mean ⋯; normal approximation)")
    for ax in axes:
        ax.set_xlabel("generation")
    axes[0].legend(fontsize=6, ncol=2)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"MAD Gaussian loop, d = {d}, n = {n}, {a.seeds} seeds, fully synthetic", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"{a.seeds} seeds x {a.generations} generations, 4 loops: {seconds:.1f} s (compilation included)")
    print(f"{'loop':22s} {'g':>4s} {'metric':13s} {'law':>10s} {'simulated':>10s} {'SE':>8s} {'z':>6s}")
    for label, gen, metric, law, mean, se in rows:
        print(f"{label:22s} {gen:4d} {metric:13s} {law:10.4g} {mean:10.4g} {se:8.2g} {(mean - law) / se:6.2f}")
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
