"""Bertrand et al. (2024) through law 10 (docs/theory.md): the per-generation lag-1 autocorrelation of the fitted
parameters in the synthetic augmentation loop, against r / (1 + r), for a Gaussian and a GMM on the ring of 8.

Usage: python experiments/bertrand_autocorrelation.py [--seeds 16] [--generations 100]
       [--out docs/bertrand_autocorrelation.png]

A fixed real set of n_r = 100 samples is reused every generation with n_s = r n_r samples of the previous
generation, r in {0.25, ..., 16} (a count sweep in one program per family), warm-started fits:
- Gaussian, d = 2, maximum likelihood (an exponential family: the fit reproduces the training set's mean and
  second moment);
- GMM with 8 components on the ring of 8 (``experiment=bertrand_stability``, 10 EM iterations per generation).
The fitted parameters of every generation come from ``madloop.parameter_path``. Two statistics per model, both
well defined whatever the components do: the overall mean mu_t (sum_k pi_k m_k for the GMM; its 2 coordinates) and
the second moment about the real set's mean xbar, Q_t = tr Cov_t + ||mu_t - xbar||^2. EM's M-step makes both
exactly the training set's averages (with reg_covar added to Q), as maximum likelihood does for the Gaussian, so
both are AR(1)s with factor a = r / (1 + r) around a known fixed point: xbar, and the real set's Q plus
d reg_covar N / n_r (generation 0 holds both). A GMM's component means, by contrast, follow the contraction only
approximately (responsibilities move) and need a matching of components to modes that breaks when modes are lost.

The autocorrelation is ``madloop.theory.lag1_autocorrelation`` (the pooled regression through the fixed point:
no burn-in, no small-sample bias), with a 95% percentile interval from 2000 bootstrap resamples of the seeds. For
comparison the table also gives the textbook estimate, each path's autocorrelation about its own mean over
generations >= 20, averaged over seeds (biased low by about (1 + 3a) / T). The last panel is the stationary
E||mu_t - xbar||^2 / tr S (generations >= G / 2) against law 10's exact recursion (``theory.augmentation_moments``)
averaged over the same generations; its limit, n_s / (n_r (n_r + 2 n_s) + n_s), is bounded at every ratio.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop.theory import augmentation_autocorrelation, augmentation_moments, lag1_autocorrelation  # noqa: E402

N_REAL = 100
N_SYNTH = [25, 50, 100, 200, 400, 800, 1600]
SWEEP = f"sweep.regime.n_synth=[{','.join(map(str, N_SYNTH))}]"
FAMILIES = {  # label: overrides (the GMM is the stability preset with parameter metrics only)
    "Gaussian, d = 2 (MLE)": ["data=gaussian", "data.dim=2", "model=gaussian", "model.estimator=mle"]
    + ["regime=synthetic_augmentation", f"regime.n_real={N_REAL}", f"regime.n_synth={N_SYNTH[-1]}", SWEEP],
    "GMM, 8 components, ring of 8": ["experiment=bertrand_stability", SWEEP],
}
BURN_IN = 20  # generations left out of the textbook (own-mean) autocorrelation


def overall_moments(params) -> tuple[np.ndarray, np.ndarray]:
    """(mean [B, G + 1, d], covariance [B, G + 1, d, d]) of a Gaussian's or a mixture's parameter path."""
    if hasattr(params, "weights"):  # a mixture: sum_k pi_k m_k and sum_k pi_k (C_k + m_k m_k^T) - mu mu^T
        w, m, c = (np.asarray(p, np.float64) for p in (params.weights, params.means, params.covs))
        mean = np.einsum("bgk,bgki->bgi", w, m)
        second = np.einsum("bgk,bgkij->bgij", w, c + np.einsum("bgki,bgkj->bgkij", m, m))
        return mean, second - np.einsum("bgi,bgj->bgij", mean, mean)
    return np.asarray(params.mean, np.float64), np.asarray(params.cov, np.float64)


def deviations(params, reg_covar: float, n_synth: np.ndarray) -> dict[str, np.ndarray]:
    """Per run, each statistic minus its fixed point: {"mean": [B, G + 1, d], "Q": [B, G + 1], "delta": [B, G + 1]}
    with delta = ||mu_t - xbar||^2 / tr S (tr S = Q_0 less the covariance floor)."""
    mean, cov = overall_moments(params)
    d = mean.shape[-1]
    dev = mean - mean[:, :1]  # generation 0 is fitted to the real set alone: its mean is xbar
    q = np.trace(cov, axis1=-2, axis2=-1) + np.sum(dev**2, axis=-1)
    q_star = q[:, :1] + d * reg_covar * (n_synth[:, None] / N_REAL)  # Q_r + d reg (N / n_r) = Q_0 + d reg n_s / n_r
    tr_s = q[:, :1] - d * reg_covar
    return {"mean": dev, "Q": q - q_star, "delta": np.sum(dev**2, axis=-1) / tr_s}


def bootstrap_interval(dev: np.ndarray, rng: np.random.Generator, draws: int = 2000) -> tuple[float, float]:
    """95% percentile interval of ``lag1_autocorrelation`` over resamples of the runs (seeds)."""
    s = dev.shape[0]
    est = [lag1_autocorrelation(dev[rng.integers(0, s, s)])[0] for _ in range(draws)]
    lo, hi = np.percentile(est, [2.5, 97.5])
    return float(lo), float(hi)


def own_mean_autocorrelation(dev: np.ndarray) -> float:
    """The textbook lag-1 autocorrelation of each path about its own mean (generations >= BURN_IN), averaged."""
    x = dev[:, BURN_IN:].reshape(dev.shape[0], dev.shape[1] - BURN_IN, -1)
    x = x - x.mean(axis=1, keepdims=True)
    return float(np.mean(np.sum(x[:, 1:] * x[:, :-1], axis=(1, 2)) / np.sum(x**2, axis=(1, 2))))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--out", default="bertrand_autocorrelation.png")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    ratios = np.asarray(N_SYNTH) / N_REAL
    fine = np.geomspace(ratios[0] / 1.5, ratios[-1] * 1.5, 200)
    window = slice(a.generations // 2, None)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    t0, rows, seconds = time.perf_counter(), [], {}
    for i, (label, overrides) in enumerate(FAMILIES.items()):
        t1 = time.perf_counter()
        common = [f"loop.seeds={a.seeds}", f"loop.generations={a.generations}", "eval.metrics=[trace_ratio]"]
        path = madloop.parameter_path([*overrides, *common, "eval.snapshots=0", "eval.snapshot_n=1"])
        reg = getattr(madloop.compose(overrides).model, "reg_covar", 0.0)
        devs = deviations(path.params, reg, path.knobs["n_synth"])
        seconds[label] = time.perf_counter() - t1
        for stat, marker, shift in (("mean", "o", 0.97), ("Q", "s", 1.03)):
            est, lo, hi = [], [], []
            for n_synth in N_SYNTH:
                run = path.knobs["n_synth"] == n_synth
                e, se = lag1_autocorrelation(devs[stat][run])
                low, high = bootstrap_interval(devs[stat][run], rng)
                est.append(e), lo.append(low), hi.append(high)
                law = augmentation_autocorrelation(n_synth / N_REAL)
                rows.append(
                    f"{label:30s} {stat:4s} {n_synth / N_REAL:5g} {law:6.3f} {e:7.3f} [{low:6.3f}, {high:6.3f}] "
                    f"{(e - law) / se:+5.1f} {own_mean_autocorrelation(devs[stat][run]):7.3f}"
                )
            yerr = np.abs(np.array([lo, hi]) - np.asarray(est))
            axes[i].errorbar(ratios * shift, est, yerr=yerr, fmt=marker, ms=4, capsize=2, label=f"{stat}: measured")
        axes[i].plot(fine, fine / (1 + fine), "k-", lw=0.8, label="law r / (1 + r)")
        below = fine[fine < 1]  # Bertrand et al.'s condition at eps = 0 bounds the factor by r, < 1 only there
        axes[i].plot(below, below, "k:", lw=0.8, label="r: Bertrand et al.'s bound at ε = 0")
        axes[i].set_title(label, fontsize=10)
        # stationary squared deviation of the mean, against the exact recursion averaged over the same window
        measured, se, law = [], [], []
        for n_synth in N_SYNTH:
            per_seed = devs["delta"][path.knobs["n_synth"] == n_synth][:, window].mean(axis=1)
            measured.append(per_seed.mean()), se.append(per_seed.std(ddof=1) / np.sqrt(per_seed.size))
            law.append(augmentation_moments(a.generations, N_REAL, n_synth)[1][window].mean())
        axes[2].errorbar(ratios, measured, yerr=1.96 * np.asarray(se), fmt="os"[i], ms=4, capsize=2, label=label)
        if i == 0:
            axes[2].plot(ratios, law, "k-", lw=0.8, label="law 10 (exact recursion)")
        for n_synth, m, s, w in zip(N_SYNTH, measured, se, law, strict=True):
            stat = f"E||mu - xbar||^2 / tr S, r = {n_synth / N_REAL:g}"
            rows.append(f"{label:30s} {stat}: {m:.5f} +- {s:.5f} (law {w:.5f})")
    for ax in axes[:2]:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("synthetic-to-real ratio r = n_synth / n_real")
        ax.set_ylabel("lag-1 autocorrelation about the fixed point")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
    axes[2].set_xscale("log", base=2)
    axes[2].set_yscale("log")
    axes[2].set_xlabel("synthetic-to-real ratio r")
    axes[2].set_title(f"E‖μ_t − x̄‖² / tr S, generations ≥ {a.generations // 2} (mean, 95% CI)", fontsize=10)
    axes[2].legend(fontsize=7)
    fig.suptitle(
        f"synthetic augmentation, n_real = {N_REAL}: the fitted moments are AR(1)s with factor r / (1 + r) < 1 at "
        f"every ratio ({a.seeds} seeds x {a.generations} generations, 95% bootstrap intervals over seeds)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"{'model':30s} stat  ratio    law measured [95% bootstrap]     z  own-mean ACF (gens >= {BURN_IN})")
    print("\n".join(rows))
    print(
        f"{a.seeds} seeds x {a.generations} generations; {time.perf_counter() - t0:.1f} s in all (compilation "
        "included; " + ", ".join(f"{k}: {v:.0f} s" for k, v in seconds.items()) + f"); figure: {a.out}"
    )


if __name__ == "__main__":
    main()
