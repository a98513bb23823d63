"""Bertrand et al. (2023) on the ring of 8: is iterative retraining on a fixed real set plus the previous
generation's samples stable, as a function of the synthetic-to-real ratio, for a class that fits the data and for
classes that do not?

Usage: python experiments/stability.py [--seeds 16] [--generations 100] [--out docs/stability.png] [--csv FILE]

Runs ``experiment=bertrand_stability`` (100 fixed real samples, n_synth in {25, ..., 1600} as a count sweep in one
program, warm-started fits) for three classes, and the fully synthetic loop (100 samples per generation, ratio
infinity) for each:
- GMM, 8 components: fits the ring (Bertrand et al.'s "the model class approximates the data well");
- GMM, 3 components: misspecified, a parametric maximum-likelihood fit far from the truth;
- KDE, Scott's bandwidth: oversmooths the ring (at generation 0 a kernel of std 100^(-1/6) x 1.41 = 0.66 per
  coordinate against modes of std 0.05) and adds the kernel's variance every generation, an error that compounds.

For the KDE the expected trace ratio follows an exact linear recursion. With N = n_r + n_s training samples (n_r
real ones with maximum-likelihood covariance C, n_s drawn from generation g), h^2 = N^(-2/(d+4)) and
k = 1 + h^2 N / (N - 1) (the kernel adds h^2 times the unbiased covariance),
    E tr S_{g+1} = k [n_r tr C + (n_s - 1) tr S_g + n_r n_s / N (D_g + tr S_g / n_s)] / N,
    D_{g+1} = (n_s / N)^2 (D_g + tr S_g / n_s),   D_g = E||mu_g - mean of the real set||^2,
with E tr C = (n_r - 1) / n_r tr Sigma, D_0 = 0, and in the fully synthetic loop n_r = 0 after generation 0. The
loop settles when the recursion's spectral radius rho is below 1, roughly when (n_s / N)(1 + h^2) < 1, i.e.
n_s h^2 < n_r: a KDE analogue of Bertrand et al.'s sufficient condition lambda (1 + L eps / alpha) < 1 (their
lambda = n_s / n_r), with the kernel's variance inflation h^2 as the error each generation adds. The script draws
that law, prints rho and marks the ratio where rho = 1.

Bands are the 95% t-interval of the mean over seeds, clipped to the seeds' range (the fully synthetic loops'
heavy tails otherwise push the lower end below zero on a log axis).
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
from madloop.report import summarize  # noqa: E402

PRESET = "experiment=bertrand_stability"
CLASSES = {  # label: overrides on top of the preset
    "GMM, 8 components (fits)": [],
    "GMM, 3 components (misspecified)": ["model.components=3"],
    "KDE, Scott bandwidth (oversmooths)": ["model=kde"],
}
CURVES = (("trace_ratio", "tr Σ_g / tr Σ"), ("sw2", "sliced W2 to held-out data"), ("nll", "held-out nll"))
FULL = np.inf  # the fully synthetic loop's ratio


def kde_trace_law(n_real: int, n_synth: int, generations: int, dim: int, fully_synthetic: bool) -> np.ndarray:
    """E tr Σ_g / tr Σ of the KDE loop (Scott's bandwidth) for g = 0..generations, from the recursion above.

    Args:
        n_real: real samples (generation 0's training set, and every generation's real part unless fully synthetic).
        n_synth: samples drawn from generation g - 1 for generation g.
        generations: the last generation G.
        dim: data dimension d.
        fully_synthetic: no real part after generation 0.

    Returns:
        [G + 1] expected trace ratios.
    """
    c = (n_real - 1) / n_real  # E tr C / tr Sigma for the real set's maximum-likelihood covariance C
    h0 = n_real ** (-2.0 / (dim + 4))
    t, dev = (1.0 + h0 * n_real / (n_real - 1)) * c, 0.0  # generation 0, fit to the real set; its mean is theirs
    nr = 0 if fully_synthetic else n_real
    big_n = nr + n_synth
    k = 1.0 + big_n ** (-2.0 / (dim + 4)) * big_n / (big_n - 1)
    out = [t]
    for _ in range(generations):
        between = nr * n_synth / big_n * (dev + t / n_synth)
        t, dev = k * (nr * c + (n_synth - 1) * t + between) / big_n, (n_synth / big_n) ** 2 * (dev + t / n_synth)
        out.append(t)
    return np.asarray(out)


def kde_rho(n_real: int, n_synth: int, dim: int) -> float:
    """Spectral radius of the KDE recursion's linear part in (E tr S_g, D_g): the loop settles iff it is < 1."""
    big_n = n_real + n_synth
    k = 1.0 + big_n ** (-2.0 / (dim + 4)) * big_n / (big_n - 1)
    a = np.array(
        [
            [k * ((n_synth - 1) + n_real / big_n) / big_n, k * n_real * n_synth / big_n**2],
            [n_synth / big_n**2, (n_synth / big_n) ** 2],
        ]
    )
    return float(np.max(np.abs(np.linalg.eigvals(a))))


def kde_threshold(n_real: int, dim: int) -> float:
    """The synthetic-to-real ratio where the KDE recursion's spectral radius reaches 1 (bisection on n_synth)."""
    lo, hi = 1.0, 1e6
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if kde_rho(n_real, mid, dim) < 1.0 else (lo, mid)
    return lo / n_real


def run_class(extra: list[str], common: list[str], n_real: int) -> dict[float, pd.DataFrame]:
    """The augmentation sweep and the fully synthetic loop of one class, as {ratio: table} (inf = fully synthetic).

    Args:
        extra: the class's overrides.
        common: the preset, seeds and generations.
        n_real: the preset's real-set size (the fully synthetic loop draws as many samples per generation).
    """
    aug = madloop.run_table([*common, *extra])
    full = madloop.run_table(
        [*common, *extra, "regime=fully_synthetic", f"regime.n_synth={n_real}", "sweep.regime.n_synth=null"]
    )
    runs = {n / n_real: part for n, part in aug.groupby("n_synth")}
    runs[FULL] = full
    return runs


def ratio_label(ratio: float) -> str:
    """'fully synthetic' or 'ratio r (share s)', with the synthetic share s = r / (1 + r)."""
    return "fully synthetic" if ratio == FULL else f"ratio {ratio:g} (share {ratio / (1 + ratio):.2f})"


def mean_se(x: pd.Series) -> str:
    """'mean ± standard error' over seeds, 3 significant digits."""
    return f"{x.mean():.3g} ± {x.std(ddof=1) / np.sqrt(len(x)):.2g}"


def paired(table: pd.DataFrame, metric: str, generation: int) -> pd.Series:
    """Per seed: metric at ``generation`` minus at generation 0."""
    by = table.set_index(["generation", "seed"])[metric]
    return by.loc[generation] - by.loc[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--out", default="stability.png")
    p.add_argument("--csv", default=None, help="also write every run's metrics (one tidy table) to this file")
    a = p.parse_args()
    common = [PRESET, f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    cfg = madloop.compose(common)
    n_real, dim, big = cfg.regime.n_real, 2, a.generations
    t0 = time.perf_counter()
    results, seconds = {}, {}
    for label, extra in CLASSES.items():
        t1 = time.perf_counter()
        results[label] = run_class(extra, common, n_real)
        seconds[label] = time.perf_counter() - t1
        print(f"{label}: {seconds[label]:.1f} s", flush=True)
    total = time.perf_counter() - t0

    ratios = sorted(r for r in next(iter(results.values())) if r != FULL)
    colors = {r: plt.cm.viridis(i / max(1, len(ratios) - 1)) for i, r in enumerate(ratios)} | {FULL: "C3"}
    x_full = ratios[-1] * 4  # where the summary panels put ratio infinity
    fig, axes = plt.subplots(len(CLASSES), len(CURVES) + 1, figsize=(4.1 * (len(CURVES) + 1), 3.2 * len(CLASSES)))
    rows = []
    for r_ax, (label, runs) in zip(axes, results.items(), strict=True):
        kde = "KDE" in label
        for ax, (metric, title) in zip(r_ax, CURVES, strict=False):
            for ratio, table in runs.items():
                s = summarize(table, metric)
                seeds = table.groupby("generation")[metric]
                s["lo"], s["hi"] = s["lo"].clip(lower=seeds.min()), s["hi"].clip(upper=seeds.max())
                ax.plot(s.index, s["mean"], color=colors[ratio], lw=1.2, label=ratio_label(ratio))
                ax.fill_between(s.index, s["lo"], s["hi"], color=colors[ratio], alpha=0.2, lw=0)
                if kde and metric == "trace_ratio":
                    n_synth = n_real if ratio == FULL else round(ratio * n_real)
                    law = kde_trace_law(n_real, n_synth, big, dim, ratio == FULL)
                    ax.plot(np.arange(big + 1), law, color="k", lw=0.7, ls=":")
            if metric == "nll" and min(t[metric].min() for t in runs.values()) <= 0:
                ax.set_yscale("symlog", linthresh=1.0)
            else:
                ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("generation")
            if kde and metric == "trace_ratio":
                ax.text(0.02, 0.92, "⋯ exact law (docstring)", transform=ax.transAxes, fontsize=7)
        # summary: generation G over generation 0 (ratio of seed means) against the synthetic-to-real ratio
        ax = r_ax[-1]
        xs = [*ratios, x_full]
        for metric, marker in (("trace_ratio", "o"), ("sw2", "s")):
            ys, errs = [], []
            for ratio in [*ratios, FULL]:
                table = results[label][ratio]
                g0 = table.loc[table.generation == 0, metric].mean()
                gl = table.loc[table.generation == big, metric]
                ys.append(gl.mean() / g0)
                errs.append(gl.std(ddof=1) / np.sqrt(len(gl)) / g0)
            ax.errorbar(xs, ys, yerr=errs, marker=marker, ms=4, lw=1, capsize=2, label=f"{metric}: G / 0")
        if kde:
            law = [
                kde_trace_law(n_real, round(r * n_real) if r != FULL else n_real, big, dim, r == FULL)
                for r in [*ratios, FULL]
            ]
            ax.plot(xs, [w[-1] / w[0] for w in law], "k:", lw=0.8, label="trace law")
            edge = kde_threshold(n_real, dim)
            ax.axvline(edge, color="gray", ls="--", lw=0.8, label=f"law: ρ = 1 at ratio {edge:.1f}")
        ax.axhline(1.0, color="gray", lw=0.6)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(xs, [f"{r:g}" for r in ratios] + ["∞"])
        ax.set_xlabel("synthetic-to-real ratio n_synth / n_real (∞ = fully synthetic)", fontsize=7)
        ax.set_title(f"generation {big} / generation 0 (mean ± SE)", fontsize=9)
        r_ax[0].set_ylabel(label, fontsize=9)
        ax.legend(fontsize=6)
        for ratio, table in results[label].items():
            last = table[table.generation == big]
            row = {"class": label, "loop": ratio_label(ratio)}
            row |= {f"{m} (0)": table.loc[table.generation == 0, m].mean() for m in ("trace_ratio", "sw2", "nll")}
            row |= {f"{m} ({big})": mean_se(last[m]) for m in ("trace_ratio", "sw2", "nll")}
            row |= {f"Δnll 0→{g}": mean_se(paired(table, "nll", g)) for g in (big // 2, big)}
            row |= {f"modes_hq ({big})": last["modes_hq"].mean(), f"hq ({big})": last["hq"].mean()}
            if kde:
                n_synth = n_real if ratio == FULL else round(ratio * n_real)
                row["law tr"] = kde_trace_law(n_real, n_synth, big, dim, ratio == FULL)[-1]
                row["rho"] = kde_rho(0 if ratio == FULL else n_real, n_synth, dim)
            rows.append(row)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(
        f"ring of 8, {n_real} fixed real samples + n_synth synthetic per generation (warm-started fits), {a.seeds} "
        f"seeds, mean and 95% CI: stability against the synthetic-to-real ratio",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    if a.csv:
        tidy = [
            t.drop(columns="n_synth", errors="ignore").assign(model=label, ratio=r)
            for label, runs in results.items()
            for r, t in runs.items()
        ]
        pd.concat(tidy, ignore_index=True).to_csv(a.csv, index=False)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(
        f"{a.seeds} seeds x {a.generations} generations; {total:.1f} s in all (compilation included; "
        + ", ".join(f"{k}: {v:.0f} s" for k, v in seconds.items())
        + f"); figure: {a.out}"
    )


if __name__ == "__main__":
    main()
