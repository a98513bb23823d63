"""Verification (Feng et al. 2024): a phase map of the verifier's noise x the loop in the supervised family, and a
density verifier on the ring of 8.

Usage: python experiments/verifier.py [--seeds 200] [--generations 50] [--ring-seeds 16] [--ring-generations 20]
    [--out docs/verifier.png] [--csv docs/data/verifier.csv]

Supervised (``experiment=verifier``): least squares, d = 10, T = 100, a label verifier (tolerance 1 = sigma,
2 candidates per slot) whose noise is vmapped from 0 to 1e9 (a verifier that accepts nothing: the slots take the
first candidates, the unverified loop), in four loops: fully synthetic replace and accumulate, synthetic
augmentation replace, fresh data replace. The map shows the test error at the last generation over generation 0's.
Ring of 8 (GMM, fully synthetic, 512 per generation): the truth's log-density above its 5% quantile, noise
in {0, 2, 1e9} nats: recall and precision over generations (thresholding a density concentrates the model).
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

LOOPS = {
    "fully synthetic, replace": ("fully_synthetic", "replace"),
    "fully synthetic, accumulate": ("fully_synthetic", "accumulate"),
    "augmentation, replace": ("synthetic_augmentation", "replace"),
    "fresh data, replace": ("fresh_data", "replace"),
}
RING_NOISE = (0.0, 2.0, 1e9)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--generations", type=int, default=50)
    p.add_argument("--ring-seeds", type=int, default=16)
    p.add_argument("--ring-generations", type=int, default=20)
    p.add_argument("--out", default="verifier.png")
    p.add_argument("--csv", default="verifier.csv")
    a = p.parse_args()
    base = ["experiment=verifier", f"loop.seeds={a.seeds}", f"loop.generations={a.generations}"]
    t0 = time.perf_counter()
    parts = []
    for label, (regime, pool) in LOOPS.items():
        table = madloop.run_table([*base, f"regime={regime}", f"regime.pool={pool}"])
        table["loop"] = label
        parts.append(table)
    supervised = pd.concat(parts, ignore_index=True)
    t1 = time.perf_counter()
    ring = madloop.run_table(
        ["data=ring8", "model=gmm", "regime=fully_synthetic", "regime.n_real=512", "regime.n_synth=512"]
        + ["curation=verifier", f"sweep.curation.noise={list(RING_NOISE)}", f"loop.seeds={a.ring_seeds}"]
        + [f"loop.generations={a.ring_generations}", "eval.metrics=[recall,precision,modes,kept_share,unfilled]"]
    )
    t2 = time.perf_counter()
    summary = (
        supervised.groupby(["loop", "verifier_noise", "generation"])[
            ["test_error", "kept_share", "false_accept", "false_reject", "unfilled"]
        ]
        .mean()
        .reset_index()
    )
    summary.to_csv(a.csv, index=False)
    print(f"supervised: {len(LOOPS)} loops x {supervised.verifier_noise.nunique()} noises x {a.seeds} seeds x "
          f"{a.generations} generations, {t1 - t0:.0f} s; ring of 8: {t2 - t1:.0f} s")  # fmt: skip
    report(supervised, ring, a)
    draw(supervised, ring, a).savefig(a.out, dpi=110)
    print(f"figure: {a.out}; table: {a.csv}")


def ratio_map(supervised: pd.DataFrame, g: int) -> pd.DataFrame:
    """[loop, noise] the mean test error at generation g over the mean at generation 0."""
    means = supervised.groupby(["loop", "verifier_noise", "generation"])["test_error"].mean()
    last = means.xs(g, level="generation")
    first = means.xs(0, level="generation")
    return (last / first).unstack("verifier_noise").loc[list(LOOPS)]


def report(supervised: pd.DataFrame, ring: pd.DataFrame, a: argparse.Namespace) -> None:
    g = a.generations
    print(f"test error at generation {g} / generation 0 (rows: loop, columns: verifier noise):")
    print(ratio_map(supervised, g).round(3).to_string())
    blind = supervised[(supervised.verifier_noise > 1e8) & (supervised.loop == "fully synthetic, replace")]
    x = blind[blind.generation == g]["test_error"]
    law = theory.regression_test_error(g, 10, 100, 100)[-1]
    print(f"noise 1e9 (unverified), fully synthetic replace, g = {g}: {x.mean():.3f} +- {x.std() / np.sqrt(len(x)):.3f}"
          f" (law 12: {law:.3f})")  # fmt: skip
    rates = supervised[(supervised.generation > 0) & (supervised.loop == "fully synthetic, replace")]
    print(rates.groupby("verifier_noise")[["kept_share", "false_accept", "false_reject", "unfilled"]].mean().round(3))
    last = ring[ring.generation == a.ring_generations].groupby("verifier_noise")
    print(f"ring of 8 at generation {a.ring_generations}:")
    print(last[["recall", "precision", "modes", "kept_share", "unfilled"]].mean().round(3).to_string())


def draw(supervised: pd.DataFrame, ring: pd.DataFrame, a: argparse.Namespace) -> plt.Figure:
    """The phase map, the verifier's rates, and the ring's recall and precision."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9))
    ratio = ratio_map(supervised, a.generations)
    labels = ["∞" if v > 1e8 else f"{v:g}" for v in ratio.columns]
    im = axes[0].imshow(np.log2(ratio.to_numpy()), cmap="RdBu_r", vmin=-4, vmax=4, aspect="auto")
    axes[0].set_xticks(range(len(labels)), labels)
    axes[0].set_yticks(range(len(ratio)), ratio.index, fontsize=7)
    for (i, j), v in np.ndenumerate(ratio.to_numpy()):
        axes[0].text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7)
    axes[0].set_xlabel("verifier noise (label sd)")
    axes[0].set_title(f"test error, generation {a.generations} / 0", fontsize=9)
    fig.colorbar(im, ax=axes[0], label="log2 ratio")
    rates = supervised[(supervised.generation > 0) & (supervised.loop == "fully synthetic, replace")]
    by = rates.groupby("verifier_noise")[["kept_share", "false_accept", "false_reject", "unfilled"]].mean()
    for name in by.columns:
        axes[1].plot(range(len(by)), by[name], marker="o", label=name)
    axes[1].set_xticks(range(len(by)), ["∞" if v > 1e8 else f"{v:g}" for v in by.index])
    axes[1].set_xlabel("verifier noise")
    axes[1].set_title("the verifier (fully synthetic, replace)", fontsize=9)
    axes[1].legend(fontsize=7)
    for ax, metric in zip(axes[2:], ("recall", "precision"), strict=True):
        for noise, part in ring.groupby("verifier_noise"):
            s = part.groupby("generation")[metric].mean()
            ax.plot(s.index, s, label="unverified (noise ∞)" if noise > 1e8 else f"noise {noise:g} nats")
        ax.set_xlabel("generation")
        ax.set_title(f"ring of 8, GMM, density verifier: {metric}", fontsize=9)
    axes[2].legend(fontsize=7)
    title = f"verification: supervised loop (d = 10, T = 100, {a.seeds} seeds) and ring of 8 ({a.ring_seeds} seeds)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
