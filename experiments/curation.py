"""Curated retraining (Ferbach et al. 2024): the reward rises and diversity collapses when the model is retrained
on its curated samples alone, and both settle when real data is mixed back in. With the 1-D Gaussian law.

Usage: python experiments/curation.py [--seeds 16] [--generations 30] [--out docs/curation.png]

Ring of 8 with a GMM (``experiment=curation``): each kept synthetic sample is the choice among k = 4 model
samples with probability softmax(reward / T), reward = minus the distance to mode 0, T in {0.25, 1} vmapped.
Loops: fully synthetic (fully curated), synthetic augmentation (a fixed real set of 512 plus 512 curated samples)
and fresh data (512 new real samples plus 512 curated), against the uncurated fully synthetic loop (k = 1).
Theory panels: a 1-D Gaussian refitted to its best-of-2 samples under a linear reward, fully curated and with half
fresh real data, against ``madloop.theory.curated_gaussian_path`` at T = 0.001 (mean and band over seeds, law as
a line).
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
from madloop.report import summarize  # noqa: E402

METRICS = ("reward", "modes", "recall")
# The Gaussian runs' choice temperature. Not 0: the law uses the pair-choice formula at beta = sigma_g / T, which
# matters once sigma_g has collapsed to a few T (the best-of-2 law, T = 0, then overstates the variance decay).
TEMPERATURE = 0.001
LOOPS = {
    "fully synthetic, curated": [],
    "fixed real set + curated": ["regime=synthetic_augmentation"],
    "fresh real data + curated": ["regime=fresh_data"],
}


def gaussian_runs(seeds: int, generations: int) -> dict[str, tuple[pd.DataFrame, float]]:
    """The 1-D Gaussian best-of-2 loop (unbiased refit, n = 4096, reward -|x - 100| = x - 100), fully curated and
    with half fresh real data: {label: (table with columns generation, mu, var; real share)}."""
    common = [
        "data=gaussian",
        "data.dim=1",
        "model=gaussian",
        "model.estimator=unbiased",
        "regime.n_real=4096",
        "regime.n_synth=4096",
        "curation=k_choice",
        "curation.k=2",
        f"curation.temperature={TEMPERATURE}",
        "curation.reward=point",
        "curation.target=[100.0]",
        f"loop.generations={generations}",
        f"loop.seeds={seeds}",
        "eval.metrics=[trace_ratio,reward]",
    ]
    out = {}
    for label, regime, share in (("fully curated", "fully_synthetic", 0.0), ("half fresh data", "fresh_data", 0.5)):
        t = madloop.run_table([*common, f"regime={regime}"])
        out[label] = (t.assign(mu=t["reward"] + 100.0, var=t["trace_ratio"]), share)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=30)
    p.add_argument("--out", default="curation.png")
    a = p.parse_args()
    common = ["experiment=curation", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    runs: dict[str, pd.DataFrame] = {}
    for label, extra in LOOPS.items():
        for temp, part in madloop.run_table([*common, *extra]).groupby("temperature"):
            runs[f"{label}, T = {temp:.2g}"] = part
    base = madloop.run_table([*common, "curation.k=1", "sweep.curation.temperature=null"])
    runs["fully synthetic, uncurated (k = 1)"] = base
    gauss = gaussian_runs(a.seeds, a.generations)
    seconds = time.perf_counter() - t0

    fig, axes = plt.subplots(1, len(METRICS) + 2, figsize=(4.0 * (len(METRICS) + 2), 3.6))
    colours = {label: f"C{i}" for i, label in enumerate(LOOPS)}
    for ax, metric in zip(axes, METRICS, strict=False):
        for label, table in runs.items():
            loop = next((k for k in LOOPS if label.startswith(k)), None)
            colour, style = (colours[loop], "-" if "T = 0.25" in label else "--") if loop else ("k", ":")
            s = summarize(table, metric)
            ax.plot(s.index, s["mean"], color=colour, ls=style, label=label)
            ax.fill_between(s.index, s["lo"], s["hi"], color=colour, alpha=0.15)
        ax.set_title(f"ring of 8, GMM: {metric}")
        ax.set_xlabel("generation")
    axes[0].legend(fontsize=6)
    for ax, column, what in ((axes[-2], "mu", "mean μ_g"), (axes[-1], "var", "variance σ_g²")):
        for i, (label, (table, share)) in enumerate(gauss.items()):
            s = summarize(table, column)
            ax.errorbar(s.index, s["mean"], yerr=s["hi"] - s["mean"], fmt="o", ms=3, color=f"C{i + 3}", label=label)
            mu, var = theory.curated_gaussian_path(a.generations, 2, TEMPERATURE, share)
            ax.plot(np.arange(a.generations + 1), mu if column == "mu" else var, color="k", lw=1)
        ax.set_title(f"1-D Gaussian, best of 2: {what}")
        ax.set_xlabel("generation")
        if column == "var":
            ax.set_yscale("log")
    axes[-2].plot([], [], color="k", lw=1, label="law (theory.curated_gaussian_path)")
    axes[-2].legend(fontsize=7)
    fig.suptitle(
        f"Curated retraining (k-choice, reward = −distance to mode 0 / linear), {a.seeds} seeds, 95% bands",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)

    gens = sorted({0, 1, 2, 5, 10, a.generations})
    rows = {(label, g): t[t.generation == g][list(METRICS)].mean() for label, t in runs.items() for g in gens}
    print(pd.DataFrame(rows).T.round(3).to_string())
    for label, (table, share) in gauss.items():
        mu, var = theory.curated_gaussian_path(a.generations, 2, TEMPERATURE, share)
        s_mu, s_var = summarize(table, "mu"), summarize(table, "var")
        se = table.groupby("generation")[["mu", "var"]].std() / np.sqrt(a.seeds)
        z = np.maximum(np.abs(s_mu["mean"] - mu) / se["mu"], np.abs(s_var["mean"] - var) / se["var"])
        print(
            f"Gaussian {label}: generation {a.generations} mean {s_mu['mean'].iloc[-1]:.3f} (law {mu[-1]:.3f}), "
            f"variance {s_var['mean'].iloc[-1]:.4f} (law {var[-1]:.4f}); largest gap {z.max():.1f} SE"
        )
    print(f"{seconds:.0f} s in all; figure: {a.out}")


if __name__ == "__main__":
    main()
