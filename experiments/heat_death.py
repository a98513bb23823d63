"""Heat death (Marchi et al. 2024) in the Gaussian fresh data loop: sampling hotter than the model (lam > 1) with
too little fresh data broadens the distribution without bound; colder (lam < 1) shrinks it toward a point mass;
enough fresh data holds it at a fixed point.

Usage: python experiments/heat_death.py [--seeds 500] [--generations 200] [--out docs/heat_death.png]

Runs ``experiment=heat_death``: unbiased Gaussian fits, n_s = 100 synthetic samples per generation drawn from
N(mu_{g-1}, lam Sigma_{g-1}) plus n_r fresh real ones, lam in {0.8, 1, 1.25} x n_r in {2, 10, 25, 100} in one
program. Pooling the two groups (unbiased estimator over N = n_r + n_s samples) gives exactly
    E[Sigma_g | g - 1] = (n_r Sigma + n_s lam Sigma_{g-1}) / N + n_r n_s / (N (N - 1)) (mu_{g-1} - mu)(...)^T,
    mu_g - mu = (n_s / N)(mu_{g-1} - mu) + noise,  E||noise||^2 = (n_r tr Sigma + n_s lam tr Sigma_{g-1}) / N^2,
a linear recursion for t_g = E tr Sigma_g / tr Sigma and m_g = E||mu_g - mu||^2 from t_0 = 1, m_0 = d / n_r
(generation 0 is an unbiased fit of n_r real samples). Without the mean term the fixed point would be
s* = n_r / (n_r - n_s (lam - 1)): the loop broadens without bound ("heat death") about when n_s (lam - 1) >= n_r,
and the mean term moves that threshold slightly (the spectral radius of the recursion reaching 1).
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop.theory import fresh_data_moments  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=500)
    p.add_argument("--generations", type=int, default=200)
    p.add_argument("--out", default="heat_death.png")
    a = p.parse_args()
    overrides = ["experiment=heat_death", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    table = madloop.run_table(overrides)
    seconds = time.perf_counter() - t0
    cfg = madloop.compose(overrides)
    n_synth, d = cfg.regime.n_synth, cfg.data.dim
    g = np.arange(a.generations + 1)
    lams = sorted(table["lam"].unique())
    fig, axes = plt.subplots(1, len(lams), figsize=(4.3 * len(lams), 3.6))
    print(f"{a.seeds} seeds x {a.generations} generations x {table.groupby(['lam', 'n_real']).ngroups} points: "
          f"{seconds:.1f} s (compilation included)")  # fmt: skip
    print(f"{'lam':>5s} {'n_real':>6s} {'g':>4s} {'metric':12s} {'law':>10s} {'mean':>10s} {'SE':>9s} {'z':>6s} "
          f"{'median':>10s}")  # fmt: skip
    for ax, lam in zip(axes, lams, strict=True):
        for i, (n_real, part) in enumerate(table[table["lam"] == lam].groupby("n_real")):
            by = part.groupby("generation")["trace_ratio"]
            law, law_m = fresh_data_moments(a.generations, lam, int(n_real), n_synth, d)
            ax.plot(g, by.mean(), color=f"C{i}", label=f"n_real = {n_real}: mean")
            ax.plot(g, by.median(), color=f"C{i}", ls="--", lw=1)
            ax.plot(g, law, color="k", lw=0.8, ls=":")
            for gen in (20, a.generations):
                for metric, want in (("trace_ratio", law), ("mean_sqerr", law_m)):
                    x = part.loc[part.generation == gen, metric]
                    se = x.std(ddof=1) / np.sqrt(len(x))
                    print(f"{lam:5.2f} {n_real:6d} {gen:4d} {metric:12s} {want[gen]:10.4g} {x.mean():10.4g} "
                          f"{se:9.2g} {(x.mean() - want[gen]) / se:6.2f} {x.median():10.4g}")  # fmt: skip
        above = "" if lam <= 1 else f" (broadens unless n_real > about {n_synth * (lam - 1):g})"
        ax.set_title(f"λ = {lam:g}{above}", fontsize=10)
        ax.set_yscale("log")
        ax.set_xlabel("generation")
    axes[0].set_ylabel("tr Σ_g / tr Σ")
    for ax in axes:
        ax.text(0.02, 0.02, "mean (solid), median (dashed), law ⋯", transform=ax.transAxes, fontsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"Gaussian fresh data loop, d = 2, n_synth = {n_synth}, unbiased fits, {a.seeds} seeds: heat death above "
        "the threshold, a point mass below 1",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
