"""Heat death (Marchi et al. 2024) of a token law: sampling hotter than the model (temperature lam > 1) without
enough fresh data flattens it toward the uniform law on its support; fresh data hold it near the truth.

Usage: python experiments/heat_death_tokens.py [--seeds 32] [--generations 100] [--out docs/heat_death_tokens.png]

Runs ``experiment=heat_death_tokens``: 1,000 Zipf(1.1) types, a categorical model (MLE) refitted every generation
on 1,000 tokens it sampled at temperature lam plus n_real fresh real tokens, lam in {1, 1.25, 1.5} x n_real in
{10, 100, 1000}, in one program. Metrics: the model's entropy (nats; log 1000 = 6.91 is the uniform law), the
Zipf exponent fitted to it (1.1 for the truth, 0 for a flat law) and KL(model || truth). The dotted lines are the
mean-field map q_g = (n_r p + n_s T_lam(q_{g-1})) / N (theory.tempered_fresh_data_map: infinitely many tokens,
the same shares), the deterministic skeleton of the loop; the finite loop also loses types by sampling, which
lowers its entropy below the skeleton's.
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


def entropy(q: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of q [..., V]."""
    return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0), axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--out", default="heat_death_tokens.png")
    a = ap.parse_args()
    overrides = ["experiment=heat_death_tokens", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    table = madloop.run_table(overrides)
    seconds = time.perf_counter() - t0
    cfg = madloop.compose(overrides)
    p = T.zipf_probs(cfg.data.vocab, cfg.data.alpha)
    n_synth = cfg.regime.n_synth
    g = np.arange(a.generations + 1)
    lams = sorted(table["lam"].unique())
    print(f"{len(lams)} x {table['n_real'].nunique()} knob points x {a.seeds} seeds x {a.generations} generations: "
          f"{seconds:.1f} s (compilation included); truth entropy {entropy(p):.3f} nats")  # fmt: skip
    print(f"{'lam':>5s} {'n_real':>6s} {'g':>4s} {'entropy':>8s} {'SE':>7s} {'mean-field':>10s} {'zipf_fit':>8s} "
          f"{'kl_reverse':>10s} {'support':>7s}")  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, lam in enumerate(lams):
        for j, (n_real, part) in enumerate(table[table["lam"] == lam].groupby("n_real")):
            by = part.groupby("generation")
            skeleton = entropy(theory.tempered_fresh_data_map(p, lam, int(n_real), n_synth, a.generations))
            style = ("-", "--", "-.")[j]
            axes[0].plot(g, by["entropy"].mean(), style, color=f"C{i}", label=f"λ = {lam:g}, n_real = {n_real}")
            axes[0].plot(g, skeleton, ":", color=f"C{i}", lw=0.8)
            axes[1].plot(g, by["zipf_fit"].mean(), style, color=f"C{i}")
            for gen in (10, a.generations):
                x = part[part.generation == gen]
                print(f"{lam:5.2f} {n_real:6d} {gen:4d} {x['entropy'].mean():8.3f} "
                      f"{x['entropy'].std() / np.sqrt(len(x)):7.3f} {skeleton[gen]:10.3f} {x['zipf_fit'].mean():8.3f} "
                      f"{x['kl_reverse'].mean():10.4f} {x['support'].mean():7.3f}")  # fmt: skip
    axes[0].axhline(np.log(cfg.data.vocab), color="k", lw=0.6)
    axes[0].set_ylabel("entropy (nats); line: uniform on 1,000 types")
    axes[1].set_ylabel("fitted Zipf exponent (truth 1.1)")
    for ax in axes:
        ax.set_xlabel("generation")
    axes[0].legend(fontsize=6)
    fig.suptitle(f"Categorical fresh data loop, 1,000 Zipf(1.1) types, n_synth = {n_synth}, {a.seeds} seeds "
                 "(dotted: mean-field map)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"figure: {a.out}")


if __name__ == "__main__":
    main()
