"""MAD's effective sample size n_e (Alemohammad et al. 2023, Sec. 5.3, eq. 4) in the Gaussian fresh data loop, as a
function of the synthetic sample size n_synth, for several sampling biases lam and real sample sizes n_real.

Usage: python experiments/effective_sample_size.py [--seeds 200] [--out docs/effective_sample_size.png]

1. Real-only curve: the closed-form W2 distance to the truth of an unbiased Gaussian fitted to n real samples,
   n in 3..2000, averaged over seeds and 5 i.i.d. refits (``regime.n_synth=0``, a count sweep of n_real).
2. Loops: ``experiment=effective_sample_size`` (lam x n_synth in one program) for each n_real; the long-run error
   is the mean W2 over generations 50..100 and seeds.
3. n_e = ``madloop.theory.effective_sample_size``: the real-only n with the same mean W2.
4. The initial model is forgotten: generation 0 fitted on n_initial in {3, 20, 2000} real samples
   (``regime.n_initial``), n_real = 20, n_synth = 100, lam = 0.9; the squared mean error and the trace ratio
   against the exact recursion (``madloop.theory.fresh_data_moments``) from each start.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop.theory import effective_sample_size  # noqa: E402

N_GRID = [3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
N_REAL = [10, 20, 50]
N_INITIAL = [3, 20, 2000]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--out", default="effective_sample_size.png")
    a = p.parse_args()
    t0 = time.perf_counter()
    grid = ",".join(map(str, N_GRID))
    real = madloop.run_table(
        ["experiment=effective_sample_size", f"loop.seeds={a.seeds}", "loop.generations=5", "sweep.bias.lam=null"]
        + ["regime.n_synth=0", "sweep.regime.n_synth=null", f"regime.n_real={N_GRID[-1]}"]
        + [f"sweep.regime.n_real=[{grid}]"]
    )
    real_error = real.groupby("n_real")["w2"].mean().reindex(N_GRID).to_numpy()
    fig, axes = plt.subplots(1, len(N_REAL) + 3, figsize=(4.2 * (len(N_REAL) + 3), 3.6))
    axes[0].loglog(N_GRID, real_error, "o-", color="k")
    axes[0].set_xlabel("real samples n")
    axes[0].set_title("real-only fit: mean W2 to the truth", fontsize=10)
    print("real-only W2: " + ", ".join(f"n={n}: {e:.3f}" for n, e in zip(N_GRID, real_error, strict=True)))
    for ax, n_real in zip(axes[1 : len(N_REAL) + 1], N_REAL, strict=True):
        overrides = ["experiment=effective_sample_size", f"loop.seeds={a.seeds}", f"regime.n_real={n_real}"]
        loop = madloop.run_table(overrides)
        long_run = loop[loop.generation >= 50].groupby(["lam", "n_synth"])["w2"].mean().unstack(0)
        for i, lam in enumerate(long_run.columns):
            n_e = effective_sample_size(long_run[lam].to_numpy(), N_GRID, real_error)
            x = np.maximum(long_run.index.to_numpy(), 0.5)  # n_synth = 0 drawn at 0.5 on the log axis
            ax.plot(x, n_e / n_real, "o-", color=f"C{i}", label=f"λ = {lam:g}")
            print(f"n_real={n_real:3d} lam={lam:4.2f}: n_e/n_real = "
                  + ", ".join(f"{s}: {v:.2f}" for s, v in zip(long_run.index, n_e / n_real, strict=True)))  # fmt: skip
        ax.axhline(1.0, color="0.6", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("synthetic samples per generation n_synth (0 at 0.5)")
        ax.set_title(f"n_real = {n_real}: n_e / n_real", fontsize=10)
        ax.legend(fontsize=7)
    draw_initial(axes[-2:], a.seeds)
    seconds = time.perf_counter() - t0
    fig.suptitle(
        f"effective sample size of the Gaussian fresh data loop (d = 2, unbiased fits, {a.seeds} seeds, "
        "long run = generations 50-100)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"{seconds:.1f} s (compilation included); figure: {a.out}")


def draw_initial(axes, seeds: int, generations: int = 60) -> None:
    """Panels 5-6: the loop from three generation-0 sample sizes, with the exact recursion from each start."""
    from madloop.theory import fresh_data_moments

    for i, n0 in enumerate(N_INITIAL):
        table = madloop.run_table(
            ["experiment=effective_sample_size", "sweep.bias.lam=null", "sweep.regime.n_synth=null", "bias.lam=0.9"]
            + ["regime.n_synth=100", f"regime.n_initial={n0}", f"loop.generations={generations}"]
            + [f"loop.seeds={seeds}", "eval.metrics=[trace_ratio,mean_sqerr]"]
        )
        law_t, law_m = fresh_data_moments(generations, 0.9, 20, 100, 2, n_initial=n0)
        laws = (law_m, law_t)  # in the panels' order
        stats = table.groupby("generation")[["mean_sqerr", "trace_ratio"]]
        mean, se = stats.mean(), stats.std() / np.sqrt(seeds)
        for ax, col, law in zip(axes, ("mean_sqerr", "trace_ratio"), laws, strict=True):
            ax.errorbar(mean.index, mean[col], yerr=1.96 * se[col], fmt="o", ms=2.5, color=f"C{i}", label=f"n_0 = {n0}")
            ax.plot(np.arange(generations + 1), law, color="k", lw=0.8)
        z = max(
            float((abs(mean[c] - law) / se[c]).max())
            for c, law in zip(("mean_sqerr", "trace_ratio"), laws, strict=True)
        )
        print(
            f"n_initial={n0}: E||mu - mu*||^2 {mean['mean_sqerr'].iloc[0]:.4f} -> {mean['mean_sqerr'].iloc[-1]:.4f} "
            f"(law {law_m[-1]:.4f}), trace ratio -> {mean['trace_ratio'].iloc[-1]:.4f} (law {law_t[-1]:.4f}); "
            f"largest gap {z:.1f} SE"
        )
    axes[0].set_yscale("log")
    axes[0].plot([], [], color="k", lw=0.8, label="exact recursion")
    axes[0].legend(fontsize=7)
    axes[0].set_title("forgetting generation 0: E‖μ_g − μ‖²", fontsize=10)
    axes[1].set_title("n_real = 20, n_synth = 100, λ = 0.9: E tr Σ_g / tr Σ", fontsize=10)
    for ax in axes:
        ax.set_xlabel("generation")


if __name__ == "__main__":
    main()
