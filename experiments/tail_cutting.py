"""Dohmatob et al. 2024 ("A Tale of Tails"): cutting the tail of a Zipf law breaks the loss-vs-data scaling law.

Usage: python experiments/tail_cutting.py [--seeds 16] [--out docs/tail_cutting.png]

Runs ``experiment=tail_cutting``: 10,000 Zipf(1.5) types; generation 0 fits 100,000 real tokens; every later
generation fits n synthetic tokens of the previous one, sampled with top-k truncation (k = 0: no cut). The loss is
``tail_lost``, the truth mass on types the model has never seen (its excess code length is infinite there; the
missing mass of Good and Turing). For a categorical model fitted to n draws of a law q, E[missing truth mass] =
sum_v p_v (1 - q_v)^n; with q the truth (generation 0 is close to it) this is a power law in n without a cut,
n^-(1 - 1/alpha) = n^-1/3, and with a cut at k it cannot fall below the mass beyond rank k,
sum_{r > k} p_r (0.069 at k = 100, 0.017 at k = 1000 for this truth): the scaling law plateaus.
The dotted lines are that expectation for generation 1 with generation 0 replaced by the truth.
"""

from __future__ import annotations

import argparse
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop import theory  # noqa: E402
from madloop import tokens as T  # noqa: E402


def expected_missing_mass(p: np.ndarray, n: int, top_k: int) -> float:
    """E[truth mass absent from n draws of p truncated to its top k types] (k = 0: no truncation)."""
    q = theory.truncate(p, top_k)
    return float(np.sum(p * (1 - q) ** n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--out", default="tail_cutting.png")
    a = ap.parse_args()
    overrides = ["experiment=tail_cutting", f"loop.seeds={a.seeds}"]
    t0 = time.perf_counter()
    table = madloop.run_table(overrides)
    seconds = time.perf_counter() - t0
    cfg = madloop.compose(overrides)
    p = T.zipf_probs(cfg.data.vocab, cfg.data.alpha)
    print(f"{table.groupby(['n_synth', 'top_k']).ngroups} knob points x {a.seeds} seeds x "
          f"{cfg.loop.generations} generations: {seconds:.1f} s (compilation included)")  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    print(
        f"{'top_k':>6s} {'n':>7s} {'g':>2s} {'tail_lost':>10s} {'SE':>8s} {'law g1':>9s} {'floor':>8s} {'support':>8s}"
    )
    for i, (k, part) in enumerate(table.groupby("top_k")):
        k = int(k)
        floor = float(p[k:].sum()) if k else 0.0
        for ax, gen in zip(axes, (1, cfg.loop.generations), strict=True):
            rows = part[part.generation == gen].groupby("n_synth")["tail_lost"]
            ns = np.asarray(rows.mean().index)
            ax.errorbar(ns, rows.mean(), 2 * rows.std() / np.sqrt(a.seeds), color=f"C{i}", marker="o", ms=3,
                        label=f"top_k = {k or 'all'}")  # fmt: skip
            if gen == 1:
                ax.plot(ns, [expected_missing_mass(p, int(n), k) for n in ns], ":", color=f"C{i}")
            if floor:
                ax.axhline(floor, color=f"C{i}", lw=0.6, ls="--")
        for n, rows in part[part.generation.isin([1, cfg.loop.generations])].groupby(["n_synth", "generation"]):
            x = rows["tail_lost"]
            law = expected_missing_mass(p, int(n[0]), k) if n[1] == 1 else np.nan
            print(f"{k:6d} {n[0]:7d} {n[1]:2d} {x.mean():10.4f} {x.std() / np.sqrt(len(x)):8.4f} {law:9.4f} "
                  f"{floor:8.4f} {rows['support'].mean():8.4f}")  # fmt: skip
    for ax, gen in zip(axes, (1, cfg.loop.generations), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("synthetic tokens per generation n")
        ax.set_title(f"generation {gen}" + (" (dotted: expectation, gen 0 = truth)" if gen == 1 else ""), fontsize=9)
    axes[0].set_ylabel("tail_lost (truth mass never seen)")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        "Zipf(1.5) over 10,000 types, categorical MLE, top-k sampling: dashed = mass beyond rank k", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
