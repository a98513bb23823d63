"""Distribution control with SIMS: negative guidance moves the mode histogram toward a target.

Usage: python experiments/sims_control.py [--out docs/sims_control.png] [overrides...]

experiment=sims_control: the auxiliary model is fine-tuned on the base's samples weighted by share / target of
their mode (madloop.guidance.mode_ratio_weights); the sweep samples generation 0 for every omega in one program
and records the share of samples per mode (nearest truth component) and its total-variation distance to the
target.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import madloop  # noqa: E402
from madloop.guidance import mode_shares  # noqa: E402
from madloop.report import summarize  # noqa: E402
from madloop.sweep import omega_sweep  # noqa: E402

OMEGAS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/sims_control.png")
    a, rest = p.parse_known_args()
    overrides = ["experiment=sims_control", *rest]
    cfg = madloop.compose(overrides)
    target = np.asarray(cfg.guidance.target, np.float64)
    target = target / target.sum()
    k = len(target)

    def stats(x, loop):
        share = mode_shares(x, loop.parts.source.mixture)[1]
        return {"share": share, "tv_target": 0.5 * jnp.sum(jnp.abs(share - jnp.asarray(target, jnp.float32)))}

    table, seconds = omega_sweep(overrides, OMEGAS, stats)
    seeds = table["seed"].nunique()
    print(f"{seeds} seeds x {len(OMEGAS)} omegas in one program: {seconds:.1f} s (compile included)")
    print("target shares:", np.round(target, 4).tolist())
    shares = table.groupby("omega")[[f"share_{j}" for j in range(k)]].mean()
    for metric in ("tv_target", "precision", "recall", "hq", "sw2"):
        s = summarize(table, metric, by="omega")
        print(
            f"{metric:>10}: "
            + "  ".join(f"{w:g}: {s['mean'][w]:.4g} [{s['lo'][w]:.3g}, {s['hi'][w]:.3g}]" for w in OMEGAS)
        )
    for w in OMEGAS:
        print(f"omega {w:g}: mean mode shares " + " ".join(f"{v:.3f}" for v in shares.loc[w]))
    best = float(summarize(table, "tv_target", by="omega")["mean"].idxmin())
    fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1.4, 1]})
    s = summarize(table, "tv_target", by="omega")
    ax0.fill_between(s.index, s["lo"], s["hi"], alpha=0.3)
    ax0.plot(s.index, s["mean"], "o-", ms=3)
    ax0.set(xlabel="omega", title="TV(mode shares, target)")
    pos = np.arange(k)
    for i, (label, values) in enumerate(
        [("omega = 0 (base)", shares.loc[0.0]), (f"omega = {best:g}", shares.loc[best]), ("target", target)]
    ):
        ax1.bar(pos + (i - 1) * 0.27, values, width=0.27, label=label)
    ax1.set(xlabel="mode", ylabel="share of samples", title="mode histogram", xticks=pos)
    ax1.legend(fontsize=8)
    for metric in ("precision", "recall"):
        s = summarize(table, metric, by="omega")
        ax2.plot(s.index, s["mean"], "o-", ms=3, label=metric)
        ax2.fill_between(s.index, s["lo"], s["hi"], alpha=0.25)
    ax2.set(xlabel="omega", title="sample quality / diversity")
    ax2.legend(fontsize=8)
    fig.suptitle(f"SIMS distribution control on the ring of 8; {seeds} seeds, mean and 95% CI", fontsize=10)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
